/**
 * Re-pack end to end on a real etcd, one scheduler with consolidation and re-pack on: three nodes of
 * 10 cores hold 5 + 3, 5 + 3 and 4 — twenty cores, two nodes' worth, but no node's tasks fit the room
 * the others leave (the worked example of docs/scheduler.md, "Re-pack"). The leader cordons the node
 * holding the 4 (`consolidation`, drain deadline now: its drain stops that task) and asks exactly two
 * tasks on the kept nodes to stop — one 5 and one 3, from different nodes — so that the kept nodes
 * end with 5 + 5 and 4 + 3 + 3. The executors' stops are reported through the store's own
 * `reportGroups`; the requeued tasks go to the nodes the re-pack nominated, rc is emptied and its
 * cordon lifted: two nodes in use instead of three.
 */
import type { Binding, Cordon, GroupStatus } from '@batchapi/api';
import { clearCordon, registerNodes, reportGroups, setCordon, submitJob } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { allBindings, eagerConsolidation, nodeRecord, queuedJob, useScheduler } from './harness';

const suite = useScheduler({
  tuning: {
    // Consolidation on with re-pack: one node a pass, no idle time, passes every 100 ms; no exempt time.
    consolidation: eagerConsolidation({ maxNodesPerPass: 1, repackMaxMoves: 100 }),
    preemption: { protectMs: 0, perQueuePerMinute: 100 },
  },
});

const cordonOf = async (node: string) => (await suite.store.get<Cordon>(suite.store.keys.cordon(node)))?.value;
const where = (bs: readonly Binding[]) => bs.map((b) => `${b.jobId}@${b.node}`).sort();
const operator = (node: string): Cordon => ({ node, reason: 'maintenance', by: 'ops', at: Date.now() });

it('moves tasks between kept nodes so that a node empties where consolidation alone cannot', async () => {
  const store = suite.store;
  const lease = await store.grantLease(20);
  await registerNodes(store, [nodeRecord('ra', 10), nodeRecord('rb', 10), nodeRecord('rc', 10)], lease.id);
  // Each node filled while the others are cordoned by an operator: ra 5 + 3, rb 5 + 3, rc 4.
  const fill = async (open: string, jobs: Array<[string, number]>, others: string[]) => {
    for (const n of others) await setCordon(store, operator(n));
    await clearCordon(store, open);
    for (const [id, cores] of jobs) await submitJob(store, queuedJob(id, 1, { cpu: cores * 1000 }));
    await waitFor(
      () => allBindings(store),
      (bs) => jobs.every(([id]) => where(bs).includes(`${id}@${open}`)),
    );
  };
  await fill(
    'ra',
    [
      ['f5a', 5],
      ['f3a', 3],
    ],
    ['rb', 'rc'],
  );
  await fill(
    'rb',
    [
      ['f5b', 5],
      ['f3b', 3],
    ],
    ['ra', 'rc'],
  );
  await fill('rc', [['f4', 4]], ['ra', 'rb']);
  expect(where(await allBindings(store))).toEqual(['f3a@ra', 'f3b@rb', 'f4@rc', 'f5a@ra', 'f5b@rb']);
  // All three take work again: rc 4/10 is least used, but its 4 cores fit neither 2 free; ra's and rb's
  // 5 + 3 do not fit the others' room either. Re-pack: rc emptied, one 5 and one 3 moved between ra and rb.
  await clearCordon(store, 'ra');
  await clearCordon(store, 'rb');
  const cordon = await waitFor(
    () => cordonOf('rc'),
    (c) => c?.consolidation !== undefined,
  );
  expect(cordon).toMatchObject({ by: 'batchapi', consolidation: { tasks: 1 } });
  const asked = await waitFor(
    () => allBindings(store),
    (bs) => bs.filter((b) => (b.preempt ?? []).length > 0 && b.node !== 'rc').length === 2,
  );
  const moved = asked.filter((b) => (b.preempt ?? []).length > 0 && b.node !== 'rc');
  // One 5 and one 3, from different nodes: the kept nodes end with 5 + 5 and 4 + 3 + 3.
  expect(moved.map((b) => b.jobId[1]).sort()).toEqual(['3', '5']);
  expect(new Set(moved.map((b) => b.node)).size).toBe(2);
  expect(await cordonOf('ra')).toBeUndefined();
  expect(await cordonOf('rb')).toBeUndefined();
  // The drain asks f4 to stop too. The executors stop the three (Preempted), one node after the
  // other, kept nodes first: each requeued task waits for the node nominated for it, so the order
  // does not matter.
  await waitFor(
    () => allBindings(store),
    (bs) => bs.some((b) => b.jobId === 'f4' && (b.preempt ?? []).includes(0)),
  );
  for (const b of [...moved, asked.find((x) => x.jobId === 'f4')!]) {
    const [group] = (await store.listAll<GroupStatus>(store.keys.groupsOf(b.jobId))).items;
    const tasks = group.value.tasks.map(() => ({ state: 'Preempted' as const, finishedAt: Date.now() }));
    const res = await reportGroups(store, b.node, lease.id, [{ status: { ...group.value, tasks }, statusRevision: group.modRevision }], Date.now());
    expect(res.accepted.size).toBe(1);
  }
  // Two nodes of 10 cores in use, rc empty and its cordon lifted.
  const after = await waitFor(
    async () => ({ bindings: await allBindings(store), cordon: await cordonOf('rc') }),
    (v) => v.bindings.length === 5 && !v.bindings.some((b) => b.node === 'rc') && v.cordon === undefined,
    { timeoutMs: 15_000 },
  );
  const cores = (node: string) =>
    after.bindings
      .filter((b) => b.node === node)
      .map((b) => Number(b.jobId.slice(1, 2)))
      .reduce((a, x) => a + x, 0);
  expect([cores('ra'), cores('rb')]).toEqual([10, 10]);
  await lease.revoke();
}, 60_000);
