/**
 * Consolidation end to end on a real etcd, one scheduler with it on: two half-used nodes become one.
 * The leader cordons the less-used node (`consolidation`, drain deadline now), the drain asks its
 * task to stop, a fake executor reports it `Preempted` through the store's own `reportGroups` (the
 * task is requeued), the next cycle places it on the other node, and the leader lifts its cordon once
 * the node is empty.
 */
import type { Binding, Cordon, GroupStatus } from '@batchapi/api';
import { clearCordon, registerNodes, reportGroups, setCordon, submitJob } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { buildSnapshot } from '@batchapi/scheduling';
import { runnableWaiting } from '../src';
import { allBindings, eagerConsolidation, nodeRecord, queuedJob, useScheduler } from './harness';

const suite = useScheduler({
  tuning: {
    // Consolidation on: one node a pass, no idle time, passes every 100 ms; no exempt time.
    consolidation: eagerConsolidation({ maxNodesPerPass: 1 }),
    preemption: { protectMs: 0, perQueuePerMinute: 100 },
  },
});

const cordonOf = async (node: string) => (await suite.store.get<Cordon>(suite.store.keys.cordon(node)))?.value;
const where = (bs: readonly Binding[]) => bs.map((b) => `${b.jobId}@${b.node}`).sort();
const operator = (node: string): Cordon => ({ node, reason: 'maintenance', by: 'ops', at: Date.now() });

it('empties the less-used of two half-used nodes into the other, then lifts its own cordon', async () => {
  const store = suite.store;
  const lease = await store.grantLease(20);
  await registerNodes(store, [nodeRecord('c1', 8), nodeRecord('c2', 8)], lease.id);
  // x (3 cores) on c1 while c2 is cordoned by an operator; y (4 cores) on c2 while c1 is.
  await setCordon(store, operator('c2'));
  await submitJob(store, queuedJob('x', 1, { cpu: 3000 }));
  await waitFor(
    () => allBindings(store),
    (bs) => where(bs).includes('x@c1'),
  );
  await setCordon(store, operator('c1'));
  await clearCordon(store, 'c2');
  await submitJob(store, queuedJob('y', 1, { cpu: 4000 }));
  expect(
    where(
      await waitFor(
        () => allBindings(store),
        (bs) => bs.length === 2,
      ),
    ),
  ).toEqual(['x@c1', 'y@c2']);
  // Both nodes take work again: c1 3/8 used, c2 4/8 → c1 is emptied (x's 3 cores fit c2's 4 free).
  await clearCordon(store, 'c1');
  const cordon = await waitFor(
    () => cordonOf('c1'),
    (c) => c?.consolidation !== undefined,
  );
  expect(cordon).toMatchObject({ by: 'batchapi', consolidation: { tasks: 1 } });
  expect(cordon?.reason).toMatch(/^consolidation: /);
  expect(cordon?.drainDeadline).toBe(cordon?.at);
  // The drain asks x to stop; the executor stops it (Preempted) and its task is requeued.
  const asked = await waitFor(
    () => allBindings(store),
    (bs) => bs.some((b) => b.jobId === 'x' && (b.preempt ?? []).includes(0)),
  );
  expect(asked.find((b) => b.jobId === 'y')?.preempt).toBeUndefined();
  const [group] = (await store.listAll<GroupStatus>(store.keys.groupsOf('x'))).items;
  const tasks = group.value.tasks.map(() => ({ state: 'Preempted' as const, finishedAt: Date.now() }));
  const res = await reportGroups(store, 'c1', lease.id, [{ status: { ...group.value, tasks }, statusRevision: group.modRevision }], Date.now());
  expect(res.accepted.size).toBe(1);
  // x placed again on c2 (c1 is cordoned), and then c1's cordon lifted: one node in use.
  const after = await waitFor(
    async () => ({ bindings: where(await allBindings(store)), cordon: await cordonOf('c1') }),
    (v) => v.bindings.join() === 'x@c2,y@c2' && v.cordon === undefined,
    { timeoutMs: 15_000 },
  );
  expect(after).toEqual({ bindings: ['x@c2', 'y@c2'], cordon: undefined });
  await lease.revoke();
}, 60_000);

it('waits for work some node could run, not for work no node could ever run', () => {
  // One node of 8 cores: a 1-core job could run there (consolidation waits for it); a 64-core one never could.
  const state = (cpu: number) => ({
    jobs: [queuedJob('w', 1, { cpu })],
    nodes: [nodeRecord('r1', 8)],
    allocs: new Map(),
    queues: [{ name: 'q', tenant: 't', nominal: {} }],
    bindings: [],
    cordons: [],
  });
  expect(runnableWaiting(buildSnapshot(state(1000), Date.now()))).toBe(true);
  expect(runnableWaiting(buildSnapshot(state(64_000), Date.now()))).toBe(false);
});
