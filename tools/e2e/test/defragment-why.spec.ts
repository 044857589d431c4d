/**
 * "Why pending" names a defragmentation's node from every replica, not only the leader: two
 * schedulers (a leader and a standby) with `BATCH_DEFRAGMENT_MAX_MOVES` on and admission, on one
 * real etcd. Two nodes of 4 GPUs hold three and two 1-GPU tasks (1 and 2 free), a 3-GPU job waits;
 * the leader asks one task on gb to stop and stores its nominations (`defragmenting`, fenced). Then:
 * the standby's own RPC and admission's HTTP (standbys asked first) say the job waits for gb. Both
 * schedulers gone, admission's own fallback does not: the record is of a term no leader holds now
 * (nobody keeps its nominations). A new leader deletes the last term's record.
 */
import { type Binding, type JobRecord, type NodeRecord, SCHEDULER_WHY, whyJobOf, type WhyView } from '@batchapi/api';
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import { waitFor } from '@batchapi/proc';
import { authorizeCalls, type RunningService } from '@batchapi/runtime';
import { type SchedulerTuning, startScheduler } from '@batchapi/scheduler';
import { clearCordon, EtcdStore, getLeader, type LocalEtcd, registerNodes, setCordon, startEtcd, submitJob } from '@batchapi/store';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { api, TOKENS } from './harness';

const LINE = 'waiting for node gb: 1 task moving to make room, nominated by defragmentation';

const tuning: Partial<SchedulerTuning> = {
  idleMs: 100,
  busyMs: 5,
  // Defragmentation on (at most 4 moves a pass), passes every 100 ms; consolidation off; no exempt time.
  consolidation: {
    maxNodesPerPass: 0,
    maxNodeFraction: 1,
    consolidateAfterMs: 0,
    maxTaskAgeMs: 600_000,
    intervalMs: 100,
    liftAfterMs: 600_000,
    defragmentMaxMoves: 4,
  },
  preemption: { protectMs: 0, perQueuePerMinute: 100 },
};

let etcd: LocalEtcd;
let store: EtcdStore;
const schedulers = new Map<string, RunningService>();
let admission: RunningService;
const config = () => ({ etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 2, logLevel: process.env.TEST_LOG ?? 'error' });

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  await store.txn([], [{ put: store.keys.queue('default'), value: { name: 'default', tenant: 'default', nominal: {} } }]);
  for (const id of ['sched-a', 'sched-b']) schedulers.set(id, await startScheduler({ config: { ...config(), instanceId: id }, tuning }));
  admission = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config: config() });
}, 60_000);
afterAll(async () => {
  await admission?.close().catch(() => undefined);
  for (const s of schedulers.values()) await s.close().catch(() => undefined);
  await store?.close();
  await etcd?.stop();
});

const gpuNode = (name: string): NodeRecord => ({
  name,
  capacity: { cpu: 16_000, memory: 64 * 2 ** 30, gpu: 4000 },
  labels: {},
  taints: [],
  gpus: [],
  url: 'http://127.0.0.1:1',
  registeredAt: 0,
});
const job = (id: string, resources: Record<string, number>): JobRecord => ({
  id,
  tenant: 'default',
  queue: 'default',
  phase: 'Queued',
  createdAt: Date.now(),
  spec: { name: id, command: ['true'], env: {}, resources, tasks: 1, priority: 0, labels: {} },
  pending: [{ start: 0, end: 1, attempt: 1 }],
  counts: { succeeded: 0, failed: 0, cancelled: 0 },
});
const bindings = async () => (await store.listAll<Binding>(store.keys.bindings())).items.map((i) => i.value);

/** "Why pending" asked of one scheduler replica's RPC (its address from its member record). */
async function whyFrom(id: string, record: JobRecord): Promise<WhyView> {
  const member = (await store.get<{ rpc?: string }>(store.keys.member('scheduler', id)))!.value;
  const at = member.rpc!.lastIndexOf(':');
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: member.rpc!.slice(0, at), port: Number(member.rpc!.slice(at + 1)) } });
  authorizeCalls(client, schedulers.get(id)!.ctx.credential);
  try {
    return (await firstValueFrom(client.send(SCHEDULER_WHY, { job: whyJobOf(record) }))) as WhyView;
  } finally {
    await client.close();
  }
}

it('the standby and admission through a standby name the node the leader nominated; with no leader, admission does not', async () => {
  const lease = await store.grantLease(30);
  await registerNodes(store, [gpuNode('ga'), gpuNode('gb')], lease.id);
  const gpu1 = { cpu: 1000, gpu: 1000 };
  // ga filled first with 3 one-GPU tasks (gb cordoned by an operator), then gb with 2.
  const fill = async (open: string, other: string, ids: string[]) => {
    await setCordon(store, { node: other, reason: 'maintenance', by: 'ops', at: Date.now() });
    await clearCordon(store, open);
    for (const id of ids) await submitJob(store, job(id, gpu1));
    await waitFor(bindings, (bs) => ids.every((id) => bs.some((b) => b.jobId === id && b.node === open)));
  };
  await fill('ga', 'gb', ['a1', 'a2', 'a3']);
  await fill('gb', 'ga', ['b1', 'b2']);
  await clearCordon(store, 'ga');
  // 1 + 2 GPUs free: the 3-GPU job fits neither node. gb needs one move: one of its tasks is asked to stop.
  await submitJob(store, job('big', { cpu: 4000, gpu: 3000 }));
  const asked = await waitFor(bindings, (bs) => bs.some((b) => (b.preempt ?? []).length > 0));
  expect(asked.filter((b) => (b.preempt ?? []).length > 0).map((b) => b.node)).toEqual(['gb']);
  // The leader stored the nominations: big's node gb, its moved task's stop.
  const record = await waitFor(
    async () => (await store.get<{ jobs: Array<{ jobId: string; freed: string[] }> }>(store.keys.defragmenting()))?.value,
    (v) => !!v?.jobs.some((j) => j.jobId === 'big'),
  );
  expect(record!.jobs.find((j) => j.jobId === 'big')!.freed).toEqual(['gb']);
  const big = (await store.get<JobRecord>(store.keys.job('big')))!.value;

  // The standby's own answer (its cache mirrors the record).
  const leader = (await getLeader(store, 'scheduler'))!;
  const standby = [...schedulers.keys()].find((id) => id !== leader)!;
  const fromStandby = await waitFor(
    () => whyFrom(standby, big),
    (w) => w.messages.includes(LINE),
  );
  expect(fromStandby.explainedBy).toBe('scheduler');

  // Admission's HTTP: the standby is asked first.
  const viaScheduler = (await api(admission.url, 'GET', '/v1/jobs/big/why')).body as WhyView;
  expect(viaScheduler.explainedBy).toBe('scheduler');
  expect(viaScheduler.messages).toContain(LINE);

  // Both schedulers gone (the standby first, so no new leader deletes the record): admission works it
  // out itself. The record is still stored, but its term's leader key is gone: no one holds its
  // nominations, and admission does not claim them.
  await schedulers.get(standby)!.close();
  schedulers.delete(standby);
  await schedulers.get(leader)!.close();
  schedulers.delete(leader);
  await waitFor(
    () => store.get(store.keys.leader('scheduler')),
    (v) => v === undefined,
  );
  const byAdmission = await waitFor(
    async () => (await api(admission.url, 'GET', '/v1/jobs/big/why')).body as WhyView,
    (w) => w.explainedBy === 'admission',
  );
  expect((await store.get<{ jobs: unknown[] }>(store.keys.defragmenting()))?.value.jobs).toHaveLength(1);
  expect(byAdmission.messages.filter((m) => m.includes('defragmentation'))).toEqual([]);

  // A new leader's term: the last term's record says nothing of its nominations; it is deleted.
  schedulers.set('sched-c', await startScheduler({ config: { ...config(), instanceId: 'sched-c' }, tuning }));
  await waitFor(
    () => store.get(store.keys.defragmenting()),
    (v) => v === undefined,
  );
  await lease.revoke();
}, 90_000);
