/**
 * Running caps against a real etcd, with scheduler replicas that fail over:
 * - `maxRunningTasks` of a queue (4) and of its tenant (6, over two queues): a fake executor ends
 *   tasks one at a time through the store's own `reportGroups`; at every report, the groups read
 *   at one revision never hold more than the caps, the caps are reached, the leader is stopped
 *   halfway, and every task succeeds exactly once.
 * - `gpuHoursPerDay` on the scheduler's (fake) clock: once a queue used its budget, work asking
 *   for GPUs waits while CPU-only work starts, also under a new leader (the usage survives the
 *   failover in etcd), until the usage ages out of the 24-hour window.
 */
import { type GroupStatus, type JobRecord, type Queue, type Tenant, TERMINAL_TASK_STATES, type GpuUsage } from '@batchapi/api';
import { FakeClock, type RunningService } from '@batchapi/runtime';
import { gpuHoursAt } from '@batchapi/scheduling';
import { EtcdStore, type LocalEtcd, registerNodes, reportGroups, startEtcd, submitJob } from '@batchapi/store';
import { waitFor, waitUntil } from '@batchapi/proc';
import { startScheduler } from '../src';
import { allBindings, nodeRecord, queuedJob } from './harness';

const HOUR_MS = 3_600_000;
let etcd: LocalEtcd;
let store: EtcdStore;
const replicas: RunningService[] = [];
// Stands still unless the test advances it: only the GPU test moves the schedulers' time.
const clock = new FakeClock(Date.now());
const start = () =>
  startScheduler({
    config: { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 2, logLevel: process.env.TEST_LOG ?? 'error' },
    tuning: { idleMs: 100, busyMs: 5, usageSaveMs: 1000 },
    clock,
  });

const tenant = (t: Tenant) => ({ put: store.keys.tenant(t.name), value: t });
const queue = (q: Queue) => ({ put: store.keys.queue(q.name), value: q });
const job = (id: string, q: string, tenantName: string, tasks: number, resources: Record<string, number>): JobRecord => ({
  ...queuedJob(id, tasks, resources),
  queue: q,
  tenant: tenantName,
  createdAt: clock.now(),
});

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  await store.txn(
    [],
    [
      tenant({ name: 'tc', weight: 1, maxRunningTasks: 6 }),
      queue({ name: 'ca', tenant: 'tc', nominal: {}, maxRunningTasks: 4 }),
      queue({ name: 'cb', tenant: 'tc', nominal: {} }),
      tenant({ name: 'tg', weight: 1 }),
      queue({ name: 'qg', tenant: 'tg', nominal: {}, gpuHoursPerDay: 0.5 }),
    ],
  );
  for (let i = 0; i < 2; i++) replicas.push(await start());
});
afterAll(async () => {
  for (const r of replicas) await r.close().catch(() => undefined);
  await store.close();
  await etcd.stop();
});

async function stopLeader(): Promise<void> {
  const leaderKey = await store.get<{ identity: string }>(store.keys.leader('scheduler'));
  const i = replicas.findIndex((r) => r.ctx.config.instanceId === leaderKey?.value.identity);
  await replicas[i].close();
  replicas.splice(i, 1);
}

/** Tasks of each job not yet ended, from one listing of every group (one revision). */
async function inFlightByJob(): Promise<{ byJob: Map<string, number>; groups: Array<{ value: GroupStatus; modRevision: string }> }> {
  const groups = (await store.listAll<GroupStatus>(`${store.keys.root}groups/`)).items;
  const byJob = new Map<string, number>();
  for (const g of groups) byJob.set(g.value.jobId, (byJob.get(g.value.jobId) ?? 0) + g.value.tasks.filter((t) => !TERMINAL_TASK_STATES.has(t.state)).length);
  return { byJob, groups };
}

it('never runs more than a queue’s (4) or its tenant’s (6, over two queues) maxRunningTasks, across a leader change, and all complete', async () => {
  const lease = await store.grantLease(10);
  // Room for 128 one-core tasks at once: only the caps hold the work back.
  await registerNodes(store, [nodeRecord('cap-a', 64), nodeRecord('cap-b', 64)], lease.id);
  await submitJob(store, job('a', 'ca', 'tc', 30, { cpu: 1000 }));
  await submitJob(store, job('b', 'cb', 'tc', 30, { cpu: 1000 }));

  let mostA = 0;
  let mostTenant = 0;
  let done = 0;
  let leaderStopped = false;
  const deadline = Date.now() + 90_000;
  for (;;) {
    const [a, b] = await Promise.all(['a', 'b'].map(async (id) => (await store.get<JobRecord>(store.keys.job(id)))!.value));
    if (a.phase === 'Succeeded' && b.phase === 'Succeeded') break;
    if (Date.now() > deadline) throw new Error(`not done: a ${JSON.stringify(a.counts)}, b ${JSON.stringify(b.counts)}`);
    const { byJob, groups } = await inFlightByJob();
    const inA = byJob.get('a') ?? 0;
    const inTenant = inA + (byJob.get('b') ?? 0);
    expect(inA).toBeLessThanOrEqual(4);
    expect(inTenant).toBeLessThanOrEqual(6);
    mostA = Math.max(mostA, inA);
    mostTenant = Math.max(mostTenant, inTenant);
    // The executor: the first task still running in each group ends; its slot frees with its room.
    for (const g of groups) {
      const k = g.value.tasks.findIndex((t) => !TERMINAL_TASK_STATES.has(t.state));
      if (k < 0) continue;
      const tasks = g.value.tasks.map((t, i) => (i === k ? { state: 'Succeeded' as const, exitCode: 0, finishedAt: Date.now() } : t));
      const res = await reportGroups(store, g.value.node, lease.id, [{ status: { ...g.value, tasks }, statusRevision: g.modRevision }], Date.now());
      done += res.accepted.size;
    }
    if (!leaderStopped && done >= 25) {
      // Halfway: the leader stops; the standby counts the running tasks from etcd's job records.
      await stopLeader();
      leaderStopped = true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(leaderStopped).toBe(true);
  expect(mostA).toBe(4);
  expect(mostTenant).toBe(6);
  for (const id of ['a', 'b']) {
    const j = (await store.get<JobRecord>(store.keys.job(id)))!.value;
    expect(j.counts).toEqual({ succeeded: 30, failed: 0, cancelled: 0 });
    const gs = (await store.listAll<GroupStatus>(store.keys.groupsOf(id))).items.map((g) => g.value);
    expect(gs.flatMap((g) => g.tasks.map((_, k) => g.start + k)).sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i));
  }
  expect(await waitUntil(async () => (await allBindings(store)).length === 0, { timeoutMs: 5000 })).toBe(true);
  await lease.revoke();
}, 120_000);

it('holds GPU work of a queue past its gpuHoursPerDay while CPU work starts, across a leader change, until the usage ages out', async () => {
  replicas.push(await start());
  const lease = await store.grantLease(30);
  await registerNodes(store, [nodeRecord('gpu-a', 16, 4)], lease.id);
  const boundTasks = async (id: string) => (await allBindings(store)).filter((b) => b.jobId === id).reduce((n, b) => n + b.end - b.start, 0);
  const stored = async () => (await store.get<GpuUsage>(store.keys.gpuUsage()))?.value;

  // g1 (1 GPU) runs for an hour of the schedulers' clock: 1 GPU-h ≥ the budget of 0.5.
  await submitJob(store, job('g1', 'qg', 'tg', 1, { cpu: 1000, gpu: 1000 }));
  await waitFor(
    () => boundTasks('g1'),
    (n) => n === 1,
  );
  // A probe bound on the same node after it: its bind compared the node's allocation, so the leader's cache holds g1's GPU.
  await submitJob(store, job('p1', 'qg', 'tg', 1, { cpu: 1000 }));
  await waitFor(
    () => boundTasks('p1'),
    (n) => n === 1,
  );
  clock.advance(HOUR_MS);
  const used = await waitFor(stored, (u) => gpuHoursAt(u?.queues.qg, clock.now()).used >= 0.99);
  expect(gpuHoursAt(used!.tenants.tg, clock.now()).used).toBeCloseTo(1, 3);

  // g2 asks for a GPU and is written before c1 (CPU only): the cycle that binds c1 saw g2 and held it.
  await submitJob(store, job('g2', 'qg', 'tg', 1, { cpu: 1000, gpu: 1000 }));
  await submitJob(store, job('c1', 'qg', 'tg', 1, { cpu: 1000 }));
  await waitFor(
    () => boundTasks('c1'),
    (n) => n === 1,
  );
  expect(await boundTasks('g2')).toBe(0);

  // A new leader goes on from the stored usage: g2 still waits while c2 starts.
  await stopLeader();
  await submitJob(store, job('c2', 'qg', 'tg', 1, { cpu: 1000 }));
  await waitFor(
    () => boundTasks('c2'),
    (n) => n === 1,
  );
  expect(await boundTasks('g2')).toBe(0);

  // g1 ends; 25 h later its hour has left the window and g2 starts.
  const g1 = (await store.listAll<GroupStatus>(store.keys.groupsOf('g1'))).items[0];
  const ended = g1.value.tasks.map(() => ({ state: 'Succeeded' as const, exitCode: 0, finishedAt: Date.now() }));
  await reportGroups(store, 'gpu-a', lease.id, [{ status: { ...g1.value, tasks: ended }, statusRevision: g1.modRevision }], Date.now());
  await waitFor(
    () => boundTasks('g1'),
    (n) => n === 0,
  );
  // As above: once c3 is bound, the leader's cache no longer counts g1's GPU as held.
  await submitJob(store, job('c3', 'qg', 'tg', 1, { cpu: 1000 }));
  await waitFor(
    () => boundTasks('c3'),
    (n) => n === 1,
  );
  expect(await boundTasks('g2')).toBe(0);
  clock.advance(25 * HOUR_MS);
  // The wall clock moved past the quiet-cluster period: the next cycle runs without a change and places g2.
  await waitFor(
    () => boundTasks('g2'),
    (n) => n === 1,
  );
  await lease.revoke();
}, 120_000);
