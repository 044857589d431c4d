/**
 * `maxRunning` against a real etcd, with two scheduler replicas and the leader stopped halfway:
 * a fake executor reports tasks done one at a time through the store's own `reportGroups` (the
 * executor's report path: each ended task gives its room back and reaches its job in one
 * transaction); at every report, the job's groups read at one revision never hold more than
 * `maxRunning` tasks bound or running, and every task succeeds exactly once.
 */
import { type GroupStatus, type JobRecord, TERMINAL_TASK_STATES } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, registerNodes, reportGroups, startEtcd, submitJob } from '@batchapi/store';
import { waitUntil } from '@batchapi/proc';
import { startScheduler } from '../src';
import { nodeRecord, putQueue, queuedJob } from './harness';

let etcd: LocalEtcd;
let store: EtcdStore;
const replicas: RunningService[] = [];
const config = () => ({ etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 2, logLevel: process.env.TEST_LOG ?? 'error' });

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  await putQueue(store);
  for (let i = 0; i < 2; i++) replicas.push(await startScheduler({ config: config(), tuning: { idleMs: 100, busyMs: 5 } }));
});
afterAll(async () => {
  for (const r of replicas) await r.close().catch(() => undefined);
  await store.close();
  await etcd.stop();
});

/** Tasks of the job's groups not yet ended, from one listing (one revision). */
function inFlight(groups: ReadonlyArray<{ value: GroupStatus }>): number {
  return groups.reduce((n, g) => n + g.value.tasks.filter((t) => !TERMINAL_TASK_STATES.has(t.state)).length, 0);
}

it('never has more than maxRunning tasks of a 100-task array bound or running, across a leader change, and all complete', async () => {
  const lease = await store.grantLease(10);
  // Two nodes with room for 128 tasks at once: only the limit keeps the array at 5.
  await registerNodes(store, [nodeRecord('mr-a', 64), nodeRecord('mr-b', 64)], lease.id);
  await submitJob(store, { ...queuedJob('limited', 100, { cpu: 1000 }), spec: { ...queuedJob('limited', 100, { cpu: 1000 }).spec, maxRunning: 5 } });

  let most = 0;
  let done = 0;
  let leaderStopped = false;
  const deadline = Date.now() + 90_000;
  for (;;) {
    const job = (await store.get<JobRecord>(store.keys.job('limited')))!.value;
    if (job.phase === 'Succeeded') break;
    if (Date.now() > deadline) throw new Error(`not done: ${JSON.stringify(job.counts)}`);
    const groups = (await store.listAll<GroupStatus>(store.keys.groupsOf('limited'))).items;
    const now = inFlight(groups);
    expect(now).toBeLessThanOrEqual(5);
    most = Math.max(most, now);
    // The executor: the first task still running in each group ends (succeeds); its slot frees with its room.
    for (const g of groups) {
      const k = g.value.tasks.findIndex((t) => !TERMINAL_TASK_STATES.has(t.state));
      if (k < 0) continue;
      const tasks = g.value.tasks.map((t, i) => (i === k ? { state: 'Succeeded' as const, exitCode: 0, finishedAt: Date.now() } : t));
      const res = await reportGroups(store, g.value.node, lease.id, [{ status: { ...g.value, tasks }, statusRevision: g.modRevision }], Date.now());
      done += res.accepted.size;
    }
    if (!leaderStopped && done >= 40) {
      // Halfway: the leader stops; the standby counts the slots from etcd, not from the old leader's memory.
      const leaderKey = await store.get<{ identity: string }>(store.keys.leader('scheduler'));
      await replicas.find((r) => r.ctx.config.instanceId === leaderKey?.value.identity)!.close();
      leaderStopped = true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(leaderStopped).toBe(true);
  expect(most).toBe(5);
  const job = (await store.get<JobRecord>(store.keys.job('limited')))!.value;
  expect(job.counts).toEqual({ succeeded: 100, failed: 0, cancelled: 0 });
  // Each index ran once: one group entry per task, all at attempt 1.
  const groups = (await store.listAll<GroupStatus>(store.keys.groupsOf('limited'))).items.map((g) => g.value);
  const indices = groups.flatMap((g) => g.tasks.map((_, k) => g.start + k)).sort((a, b) => a - b);
  expect(indices).toEqual(Array.from({ length: 100 }, (_, i) => i));
  expect(groups.every((g) => g.attempt === 1)).toBe(true);
  expect(await waitUntil(async () => (await store.listAll(store.keys.bindings())).items.length === 0, { timeoutMs: 5000 })).toBe(true);
  await lease.revoke();
}, 120_000);
