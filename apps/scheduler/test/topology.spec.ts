/**
 * Topology-aware placement against a real etcd, with the scheduler's own level order (a custom
 * `rack` label, as `BATCH_TOPOLOGY_LEVELS=rack=example.com/rack,host` sets it): a gang with
 * `required: rack` is bound within one rack, best fit; a gang no rack can hold is not bound, and
 * "why pending" over the scheduler's RPC names the level and the roomiest rack.
 */
import { type Binding, type JobRecord, SCHEDULER_WHY, whyJobOf, type WhyView } from '@batchapi/api';
import { waitFor } from '@batchapi/proc';
import { authorizeCalls } from '@batchapi/runtime';
import { submitJob } from '@batchapi/store';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { allBindings, nodeRecord, putNode, queuedJob, useScheduler } from './harness';

const RACK = 'example.com/rack';
const suite = useScheduler({ tuning: { topology: [{ name: 'rack', label: RACK }, { name: 'host' }] } });

const bound = async (jobId: string): Promise<Binding[]> => (await allBindings(suite.store)).filter((b) => b.jobId === jobId);
const gang = (id: string, tasks: number): JobRecord => {
  const j = queuedJob(id, tasks, { cpu: 1000, gpu: 8000 });
  return { ...j, spec: { ...j.spec, gang: true, topology: { required: 'rack' } } };
};

it('binds a gang within one rack, best fit, and explains a gang no rack can hold', async () => {
  // Racks a (a-1, a-2, a-3) and b (b-1, b-2), 8 GPUs a node. A 2 × 8-GPU gang: rack a holds 3 tasks
  // (leftover 1), rack b 2 (leftover 0) → best fit: rack b, keeping rack a's 3 nodes whole.
  for (const [name, rack] of [
    ['a-1', 'a'],
    ['a-2', 'a'],
    ['a-3', 'a'],
    ['b-1', 'b'],
    ['b-2', 'b'],
  ])
    await putNode(suite.store, { ...nodeRecord(name, 64, 8), labels: { [RACK]: rack } });
  await submitJob(suite.store, gang('pair', 2));
  const pair = await waitFor(
    () => bound('pair'),
    (b) => b.reduce((n, x) => n + x.end - x.start, 0) === 2,
  );
  expect(pair.map((b) => b.node).sort()).toEqual(['b-1', 'b-2']);

  // A 4 × 8-GPU gang: rack a holds 3 < 4, rack b 0 now → it waits (without topology it would take a-1..a-3 and wait too,
  // so the 3-task gang behind it shows the rack is still whole: it is bound to a-1..a-3).
  await submitJob(suite.store, { ...gang('four', 4), createdAt: Date.now() - 1000 });
  await submitJob(suite.store, gang('three', 3));
  const three = await waitFor(
    () => bound('three'),
    (b) => b.reduce((n, x) => n + x.end - x.start, 0) === 3,
  );
  expect(three.map((b) => b.node).sort()).toEqual(['a-1', 'a-2', 'a-3']);
  expect(await bound('four')).toEqual([]);

  const address = (await suite.store.list<{ rpc?: string }>(suite.store.keys.membersOf('scheduler'))).items.map((m) => m.value.rpc).find(Boolean)!;
  const at = address.lastIndexOf(':');
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: address.slice(0, at), port: Number(address.slice(at + 1)) } });
  authorizeCalls(client, suite.scheduler.ctx.credential);
  try {
    const job = (await suite.store.get<JobRecord>(suite.store.keys.job('four')))!.value;
    // Every node is full once the replica's cache has seen 'three' bound: no rack has room for one task.
    const why = await waitFor(
      async () => (await firstValueFrom(client.send(SCHEDULER_WHY, { job: whyJobOf(job) }))) as WhyView,
      (w) => w.messages.some((m) => m.includes('none has room')),
    );
    expect(why.messages).toContain(
      'topology: no rack has room for all 4 tasks now; none has room for one task (a node is in a rack by its label example.com/rack)',
    );
    expect(why.placeableNow).toBe(0);
  } finally {
    await client.close();
  }
});
