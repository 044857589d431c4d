/**
 * A gang that requires a rack, with backfill, against a real etcd and the scheduler's own level
 * order (`BATCH_TOPOLOGY_LEVELS=rack=example.com/rack,host`): it is reserved for within one rack,
 * unbounded work keeps off that rack while work whose `timeoutSeconds` ends before the start
 * backfills there, and "why pending" over the scheduler's RPC names the rack and the ETA.
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
const job = (id: string, tasks: number, cpu: number, spec: Partial<JobRecord['spec']> = {}, createdAt = Date.now()): JobRecord => {
  const j = queuedJob(id, tasks, { cpu: cpu * 1000 });
  return { ...j, createdAt, spec: { ...j.spec, ...spec } };
};

it('reserves one rack for a rack gang: unbounded work waits, bounded work backfills, why-pending names the rack', async () => {
  // Racks a (a-1, a-2) and b (b-1, b-2) of 8-core nodes. a-1, a-2 are full (8 cores until +600 s / +1,800 s); b-1, b-2
  // half full (4 cores until +900 s / +1,200 s). 'big' (2 × 8 cores, required=rack): rack a is whole at +1,800 s, rack b at
  // +1,200 s → rack b is held from about +1,200 s, with no spare core (8 free then − 8 held).
  for (const name of ['a-1', 'a-2', 'b-1', 'b-2']) await putNode(suite.store, { ...nodeRecord(name, 8), labels: { [RACK]: name[0], host: name } });
  for (const [name, cpu, timeoutSeconds] of [
    ['a-1', 8, 600],
    ['a-2', 8, 1800],
    ['b-1', 4, 900],
    ['b-2', 4, 1200],
  ] as const)
    await submitJob(suite.store, job(`run-${name}`, 1, cpu, { selector: { host: name }, timeoutSeconds }));
  for (const name of ['a-1', 'a-2', 'b-1', 'b-2'])
    await waitFor(
      () => bound(`run-${name}`),
      (b) => b.length === 1,
    );
  const t = Date.now();
  // Submitted in this order, so every cycle that sees 'long' or 'short' sees 'big' ahead of them.
  await submitJob(suite.store, job('big', 2, 8, { gang: true, topology: { required: 'rack' } }, t));
  await submitJob(suite.store, job('long', 1, 1, {}, t + 1));
  await submitJob(suite.store, job('short', 1, 1, { timeoutSeconds: 60 }, t + 2));
  // 'short' ends by now + 60 s, before big's start: it may use rack b's held cores. The only free cores are in rack b.
  const short = await waitFor(
    () => bound('short'),
    (b) => b.length === 1,
  );
  expect(short[0].node[0]).toBe('b');
  // 'long' has no timeoutSeconds: it could still run at big's start, and rack b has no spare core.
  expect(await bound('long')).toEqual([]);
  expect(await bound('big')).toEqual([]);

  const address = (await suite.store.list<{ rpc?: string }>(suite.store.keys.membersOf('scheduler'))).items.map((m) => m.value.rpc).find(Boolean)!;
  const at = address.lastIndexOf(':');
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: address.slice(0, at), port: Number(address.slice(at + 1)) } });
  authorizeCalls(client, suite.scheduler.ctx.credential);
  try {
    const big = (await suite.store.get<JobRecord>(suite.store.keys.job('big')))!.value;
    const why = (await firstValueFrom(client.send(SCHEDULER_WHY, { job: whyJobOf(big) }))) as WhyView;
    // b-2's run ends last in rack b: the start is its binding's boundAt + 1,200 s (its timeout).
    const [b2] = await bound('run-b-2');
    const start = new Date(b2.boundAt + 1200 * 1000).toISOString();
    expect(why.messages.some((m) => m.startsWith(`reserved: room in rack b on 2 nodes (b-1, b-2) for all 2 tasks from ${start}, in `))).toBe(true);
  } finally {
    await client.close();
  }
});
