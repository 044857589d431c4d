/**
 * Defragmentation through whole cycles on records in memory (`buildSnapshot` → `planDefragment`
 * with the cycle's placement as the check → the moved task asked to stop → "why pending" names the
 * node → the task requeued → `schedule` with the nominations places both where the plan said).
 */
import type { Cordon } from '@batchapi/api';
import { buildSnapshot, cycleProfile, explainJob, MemoryPlanner, placeTasks, planDefragment, schedule } from '@batchapi/scheduling';
import { jobRecord, nodeRecord, queue, T0 } from './fixtures';

const MIN = 60_000;

it('a waiting 3-GPU job gets a node: one task moves, why-pending names the node, the next cycle places both as nominated', async () => {
  // a and b of 4 GPUs: three 1-GPU jobs placed while b is cordoned → a; two while a is → b.
  const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 16, gpu: 4 }), nodeRecord('b', { cpu: 16, gpu: 4 })], queues: [queue('q')] });
  const op = (node: string): Cordon => ({ node, reason: 'test', by: 'ops', at: T0 });
  for (const id of ['a1', 'a2', 'a3']) p.jobs.set(id, jobRecord(id, 1, { cpu: 1, gpu: 1 }));
  p.cordons.set('b', op('b'));
  await p.apply(schedule(buildSnapshot(p.state(), T0)));
  p.cordons.clear();
  for (const id of ['b1', 'b2']) p.jobs.set(id, jobRecord(id, 1, { cpu: 1, gpu: 1 }, { createdAt: T0 + 1 }));
  p.cordons.set('a', op('a'));
  await p.apply(schedule(buildSnapshot(p.state(), T0 + 1)));
  p.cordons.clear();
  // 10 minutes later a 3-GPU job: 1 + 2 GPUs free, on two nodes; it fits neither.
  const now = T0 + 10 * MIN;
  p.jobs.set('big', jobRecord('big', 1, { cpu: 4, gpu: 3 }, { createdAt: now }));
  await p.apply(schedule(buildSnapshot(p.state(), now)));
  expect(p.bindings.some((b) => b.jobId === 'big')).toBe(false);

  // The pass: b needs one move (2 + 1 = 3 free), a two; b1 (first by name) to a (1 free → 0).
  const s = buildSnapshot(p.state(), now);
  const profile = cycleProfile(s);
  const plan = planDefragment(s.nodes, s.running(), s.work, (id) => ({ createdAt: p.jobs.get(id)!.createdAt }), now, {
    placer: (work, nodes) => placeTasks(work, nodes, { profile }).placements,
  });
  expect(plan.targets.map((t) => `${t.jobId}→${t.nodes.join('+')}`)).toEqual(['big→b']);
  expect(plan.moves.map((m) => `${m.task.jobId}:${m.task.node}→${m.nominated}`)).toEqual(['b1:b→a']);

  // The leader asks b1 to stop; while it runs, why-pending says big waits for b.
  const b1 = p.bindings.find((b) => b.jobId === 'b1')!;
  b1.preempt = [0];
  const nominated = new Map([
    ['b1', ['a']],
    ['big', ['b']],
  ]);
  // b2 asked to stop too, by no defragmentation (a cancel, a preemption): it is not counted as moving for big.
  const b2 = p.bindings.find((b) => b.jobId === 'b2')!;
  b2.cancel = [0];
  const defragmenting = new Map([['big', { nodes: ['b'], stops: [{ jobId: 'b1', groupStart: b1.start, attempt: b1.attempt, index: 0 }] }]]);
  const during = buildSnapshot(p.state(), now + 1, { nominated, nominatedSince: now });
  expect(explainJob(during, p.jobs.get('big')!, 'scheduler', { defragmenting }).messages).toContain(
    'waiting for node b: 1 task moving to make room, nominated by defragmentation',
  );
  delete b2.cancel;
  // Without the leader's map (a standby, admission) nothing is said of it.
  expect(explainJob(during, p.jobs.get('big')!, 'scheduler').messages.some((m) => m.includes('defragmentation'))).toBe(false);
  // Nor when big's waiting work no longer has b nominated (its entry used or gone): no claim.
  const unnominated = buildSnapshot(p.state(), now + 1, { nominated: new Map([['b1', ['a']]]), nominatedSince: now });
  expect(explainJob(unnominated, p.jobs.get('big')!, 'scheduler', { defragmenting }).messages.some((m) => m.includes('defragmentation'))).toBe(false);

  // The executor stops it (Preempted): requeued at attempt 2; the next cycle places both as nominated.
  p.release(b1);
  p.jobs.set('b1', { ...p.jobs.get('b1')!, pending: [{ start: 0, end: 1, attempt: 2 }] });
  await p.apply(schedule(buildSnapshot(p.state(), now + 2, { nominated, nominatedSince: now })));
  expect(p.bindings.map((b) => `${b.jobId}@${b.node}`).sort()).toEqual(['a1@a', 'a2@a', 'a3@a', 'b1@a', 'b2@b', 'big@b']);
});

it("a nomination's start is per job: a task bound before the job was nominated does not use its entry", async () => {
  // a of 1 core; x's 2 tasks of 1 core each: one bound on a at T0, one waits.
  const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 1 })], queues: [queue('q')] });
  p.jobs.set('x', jobRecord('x', 2, { cpu: 1 }));
  await p.apply(schedule(buildSnapshot(p.state(), T0)));
  expect(p.bindings.map((b) => `${b.jobId}@${b.node}`)).toEqual(['x@a']);
  const nominated = new Map([['x', ['a']]]);
  // x nominated a at T0 + 5 (after its task bound at T0): the entry stands.
  const later = buildSnapshot(p.state(), T0 + 10, { nominated, nominatedSince: new Map([['x', T0 + 5]]) });
  expect(later.work.find((w) => w.jobId === 'x')?.nominated).toEqual(['a']);
  // With one start for all, an older pass's (T0), the same binding would use it up.
  const shared = buildSnapshot(p.state(), T0 + 10, { nominated, nominatedSince: T0 });
  expect(shared.work.find((w) => w.jobId === 'x')?.nominated).toBeUndefined();
  // A job with no start of its own has every entry offered.
  const none = buildSnapshot(p.state(), T0 + 10, { nominated, nominatedSince: new Map() });
  expect(none.work.find((w) => w.jobId === 'x')?.nominated).toEqual(['a']);
});
