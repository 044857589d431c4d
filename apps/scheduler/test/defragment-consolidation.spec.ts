/**
 * Defragmentation and consolidation together on a real etcd, one scheduler with both on (re-pack
 * too): a defragmentation serves a waiting 3-GPU job on two GPU nodes; later, nothing waiting, a
 * re-pack on three CPU nodes nominates its own moved tasks. Protects two rules of the leader's
 * `consolidate`: a pass whose defragmentation stopped tasks runs no consolidation (it waits for the
 * next interval, its caches then hold the stops), and consolidation adds its nominations beside
 * those in force — the defragmentation's stay — instead of replacing them.
 */
import type { Binding, GroupStatus } from '@batchapi/api';
import { waitFor } from '@batchapi/proc';
import { clearCordon, registerNodes, reportGroups, setCordon, submitJob } from '@batchapi/store';
import { SchedulerService } from '../src';
import { allBindings, eagerConsolidation, nodeRecord, queuedJob, useScheduler } from './harness';

const suite = useScheduler({
  tuning: {
    // Defragmentation (4 moves a pass) and consolidation with re-pack, passes every 100 ms; no exempt time.
    consolidation: eagerConsolidation({ maxNodesPerPass: 1, repackMaxMoves: 100, defragmentMaxMoves: 4 }),
    preemption: { protectMs: 0, perQueuePerMinute: 100 },
  },
});

const where = (bs: readonly Binding[]) => bs.map((b) => `${b.jobId}@${b.node}`).sort();
const NODES = ['ra', 'rb', 'rc', 'ga', 'gb'];

it("a pass whose defragmentation stopped tasks runs no consolidation; consolidation's nominations join the defragmentation's", async () => {
  const store = suite.store;
  const service = suite.scheduler.app.get(SchedulerService);
  // Watched, not replaced: each call runs the live code; their order and results are read after.
  const defragment = jest.spyOn(service as never as { defragment: () => Promise<boolean> }, 'defragment');
  const consolidation = jest.spyOn(service as never as { consolidationPass: () => Promise<void> }, 'consolidationPass');
  const lease = await store.grantLease(30);
  // CPU nodes of 10 cores (re-pack's example: 5 + 3, 5 + 3, 4); GPU nodes of 4 cores and 4 GPUs, which
  // the CPU tasks do not fit once their GPU tasks (1 core each) hold them.
  await registerNodes(store, [nodeRecord('ra', 10), nodeRecord('rb', 10), nodeRecord('rc', 10), nodeRecord('ga', 4, 4), nodeRecord('gb', 4, 4)], lease.id);
  // Each node filled while an operator cordons all the others.
  const fill = async (open: string, jobs: Array<[string, Record<string, number>]>) => {
    for (const n of NODES) if (n !== open) await setCordon(store, { node: n, reason: 'maintenance', by: 'ops', at: Date.now() });
    await clearCordon(store, open);
    for (const [id, r] of jobs) await submitJob(store, queuedJob(id, 1, r));
    await waitFor(
      () => allBindings(store),
      (bs) => jobs.every(([id]) => where(bs).includes(`${id}@${open}`)),
    );
  };
  const cores = (n: number) => ({ cpu: n * 1000 });
  const gpu1 = { cpu: 1000, gpu: 1000 };
  await fill('ra', [
    ['f5a', cores(5)],
    ['f3a', cores(3)],
  ]);
  await fill('rb', [
    ['f5b', cores(5)],
    ['f3b', cores(3)],
  ]);
  await fill('rc', [['f4', cores(4)]]);
  await fill('ga', [
    ['a1', gpu1],
    ['a2', gpu1],
    ['a3', gpu1],
  ]);
  await fill('gb', [
    ['b1', gpu1],
    ['b2', gpu1],
  ]);
  // The GPU nodes take work (1 and 2 GPUs free), the CPU nodes stay cordoned: a 3-GPU job waits and
  // defragmentation moves one task off gb for it.
  await clearCordon(store, 'ga');
  await submitJob(store, queuedJob('big', 1, { cpu: 1000, gpu: 3000 }));
  const asked = await waitFor(
    () => allBindings(store),
    (bs) => bs.some((b) => (b.preempt ?? []).length > 0),
  );
  const [stop] = asked.filter((b) => (b.preempt ?? []).length > 0);
  expect(stop.node).toBe('gb');
  // Its executor stops it: requeued, it goes to ga (nominated), big to gb.
  const [group] = (await store.listAll<GroupStatus>(store.keys.groupsOf(stop.jobId))).items;
  const tasks = group.value.tasks.map(() => ({ state: 'Preempted' as const, finishedAt: Date.now() }));
  await reportGroups(store, stop.node, lease.id, [{ status: { ...group.value, tasks }, statusRevision: group.modRevision }], Date.now());
  await waitFor(
    () => allBindings(store),
    (bs) => where(bs).includes('big@gb') && where(bs).includes(`${stop.jobId}@ga`),
  );

  // Nothing waits; the CPU nodes take work again: re-pack empties rc and moves two tasks between ra
  // and rb, their planned nodes nominated.
  for (const n of ['ra', 'rb', 'rc']) await clearCordon(store, n);
  const repacked = await waitFor(
    () => allBindings(store),
    (bs) => bs.filter((b) => (b.preempt ?? []).length > 0 && (b.node === 'ra' || b.node === 'rb')).length === 2,
  );
  const moved = repacked.filter((b) => (b.preempt ?? []).length > 0 && (b.node === 'ra' || b.node === 'rb')).map((b) => b.jobId);
  // The leader's nominations: the re-pack's moved tasks (f4 off rc, and the two) beside the
  // defragmentation's (big, its moved task).
  // (Nominated once the pass's stops landed and its caches hold them: waited for, as the stops show in etcd first.)
  const nominations = () => (service as never as { nominations?: { byJob: ReadonlyMap<string, readonly string[]> } }).nominations;
  const held = await waitFor(
    async () => nominations(),
    (n) => moved.every((id) => n?.byJob.has(id) ?? false),
  );
  expect([...(held?.byJob.keys() ?? [])].sort()).toEqual(['big', 'f4', stop.jobId, ...moved].sort());
  expect(held?.byJob.get('big')).toEqual(['gb']);
  expect(held?.byJob.get(stop.jobId)).toEqual(['ga']);
  expect([...service.defragmentingAt(Date.now()).keys()]).toEqual(['big']);

  // Every consolidation pass came after a defragmentation that stopped nothing in the same call.
  const results = await Promise.all(defragment.mock.results.map((r) => r.value as Promise<boolean>));
  const stoppedAt = defragment.mock.invocationCallOrder.filter((_, i) => results[i]);
  expect(stoppedAt.length).toBeGreaterThan(0);
  expect(consolidation.mock.calls.length).toBeGreaterThan(0);
  for (const order of consolidation.mock.invocationCallOrder) {
    const before = defragment.mock.invocationCallOrder.filter((o) => o < order);
    const last = before[before.length - 1];
    expect(results[defragment.mock.invocationCallOrder.indexOf(last)]).toBe(false);
  }
  await lease.revoke();
}, 60_000);
