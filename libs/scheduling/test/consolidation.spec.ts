/**
 * Consolidation through whole cycles on records in memory (`buildSnapshot` → `planConsolidation`
 * with the cycle's placement as the check → cordon with a drain deadline of now → `drainStops` →
 * the tasks requeued and placed by `schedule`), and "why pending" while the cordon is up.
 */
import type { Cordon } from '@batchapi/api';
import { buildSnapshot, cycleProfile, drainStops, explainJob, MemoryPlanner, placeTasks, planConsolidation, schedule } from '@batchapi/scheduling';
import { jobRecord, nodeRecord, queue, T0 } from './fixtures';

const MIN = 60_000;

it('two half-used nodes become one: the less used is cordoned, drained, its task placed on the other; why-pending names consolidation', async () => {
  // a and b of 8 cores; x (3 cores) is placed while b is cordoned → a; y (4 cores) while a is → b.
  const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 8 }), nodeRecord('b', { cpu: 8 })], queues: [queue('q')] });
  const op = (node: string): Cordon => ({ node, reason: 'test', by: 'ops', at: T0 });
  p.jobs.set('x', jobRecord('x', 1, { cpu: 3 }));
  p.cordons.set('b', op('b'));
  await p.apply(schedule(buildSnapshot(p.state(), T0)));
  p.cordons.clear();
  p.jobs.set('y', jobRecord('y', 1, { cpu: 4 }, { createdAt: T0 + 1 }));
  p.cordons.set('a', op('a'));
  await p.apply(schedule(buildSnapshot(p.state(), T0 + 1)));
  p.cordons.clear();
  expect(p.bindings.map((b) => `${b.jobId}@${b.node}`).sort()).toEqual(['x@a', 'y@b']);

  // 10 minutes later (past the 5-minute idle time and the 1-minute exempt time): a is 3/8 used,
  // b 4/8 → a first; x's 3 cores fit b's 4 free → a is chosen.
  const now = T0 + 10 * MIN;
  const s = buildSnapshot(p.state(), now);
  const profile = cycleProfile(s);
  const plan = planConsolidation(s.nodes, s.running(), (id) => ({ createdAt: p.jobs.get(id)!.createdAt }), now, {
    placer: (work, nodes) => placeTasks(work, nodes, { profile }).placements,
  });
  expect(plan.nodes).toEqual(['a']);
  expect(plan.moves.map((m) => `${m.task.jobId}→${m.to}`)).toEqual(['x→b']);

  // The leader cordons a with a drain deadline of now: the drain asks x to stop.
  p.cordons.set('a', { node: 'a', reason: 'consolidation: emptying the node', by: 'batchapi', at: now, drainDeadline: now, consolidation: { tasks: 1 } });
  const stops = drainStops(p.bindings, p.cordons, now);
  expect(stops.map((x) => `${x.jobId}@${x.node}`)).toEqual(['x@a']);
  // The executor stops it (Preempted) and it is requeued at attempt 2.
  p.release(p.bindings.find((b) => b.jobId === 'x')!);
  const x = p.jobs.get('x')!;
  p.jobs.set('x', { ...x, pending: [{ start: 0, end: 1, attempt: 2 }] });

  const during = buildSnapshot(p.state(), now + 1);
  expect(explainJob(during, p.jobs.get('x')!, 'scheduler').messages).toContain(
    '1 node is being emptied by consolidation (its tasks fit on the other nodes) and takes no new work until it is empty',
  );
  expect(explainJob(during, p.jobs.get('x')!, 'scheduler').messages.some((m) => m.includes('by an operator'))).toBe(false);

  await p.apply(schedule(during));
  // x on b beside y: one node in use, a empty (its cordon is the leader's to lift).
  expect(p.bindings.map((b) => `${b.jobId}@${b.node}`).sort()).toEqual(['x@b', 'y@b']);
});
