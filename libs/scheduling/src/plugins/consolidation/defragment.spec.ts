import { cluster, node, NOW, task, type TaskOptions } from '../../../test/consolidation-fixtures';
import { DEFAULT_PROFILE } from '../../framework/profile';
import { placeTasks } from '../../placement';
import type { NodeSnapshot, PendingWork } from '../../snapshot';
import type { RunningTask } from '../preemption';
import { type ConsolidationJob, type DefragmentOptions, DO_NOT_DISRUPT_LABEL, planDefragment } from './index';

/** `n` one-GPU tasks (1 core each) of jobs `<node><k>` on `nodeName`, on devices 0…n−1. */
function gpuTasks(nodeName: string, n: number, o: TaskOptions = {}): RunningTask[] {
  return Array.from({ length: n }, (_, k) => task(`${nodeName}${k}`, nodeName, 1, { gpu: 1, devices: [k], ...o }));
}

/** A waiting job of `tasks` tasks of `gpus` GPUs and 4 cores each. */
function waiting(jobId: string, gpus: number, extra: Partial<PendingWork> = {}): PendingWork {
  return { jobId, queue: 'q', priority: 0, createdAt: 0, resources: { cpu: 4000, gpu: gpus * 1000 }, tasks: 1, ...extra };
}

/** Four 8-GPU nodes of 64 cores: a 7 GPUs used (1 free), b 6 (2), c 5 (3), d 6 (2): 8 free, none with 4. */
const fleet = () => [node('a', 64, 8), node('b', 64, 8), node('c', 64, 8), node('d', 64, 8)];
const fragmented = () => [...gpuTasks('a', 7), ...gpuTasks('b', 6), ...gpuTasks('c', 5), ...gpuTasks('d', 6)];

interface Case {
  name: string;
  nodes?: NodeSnapshot[];
  tasks?: RunningTask[];
  pending: PendingWork[];
  jobs?: Record<string, ConsolidationJob>;
  opts?: DefragmentOptions;
  /** Targets as `job→node`. */
  targets: string[];
  /** Moves as `job:from→to`, sorted. @default not checked */
  moves?: string[];
  /** Skips as `job:reason`. @default not checked */
  skipped?: string[];
}

describe('planDefragment', () => {
  const cases: Case[] = [
    {
      // A 4-GPU task needs 4 free: a 1, b 2, c 3, d 2. Moves to make the room: a 3, b 2, c 1, d 2: c,
      // moving one task (c0 first by name among equals). Best fit for it on a, b, d (1, 2, 2 free): a
      // (0 left). Checked: c0 nominated a, the job nominated c (3 + 1 = 4 free): both placed so.
      name: 'one task moves off the node that needs the fewest moves, to the node it fills best',
      pending: [waiting('big', 4)],
      targets: ['big→c'],
      moves: ['c0:c→a'],
    },
    {
      // A gang of 2 × 3 GPUs an earlier pass laid out on f and c holds their room (f: 5 used, 3 free;
      // c: 6 used, c0 stopping, 3 free once it ends): taken as bound, f and c have 0 free. A 4-GPU job:
      // a 3 moves, b 2, d 2, c and f 4 → b by name; b0 → a (1 free → 0), b1 → d (2 → 1). Counted as
      // free, c would be chosen with one move and c1 sent into the room the gang takes (c: 3 + 1 = 4
      // for the job, 0 for the gang's member there).
      name: "a nominated gang's held room is taken: no job is served with it, no moved task sent into it",
      nodes: [...fleet(), node('f', 64, 8)],
      tasks: [
        ...gpuTasks('a', 7),
        ...gpuTasks('b', 6),
        ...gpuTasks('c', 6).map((t, k) => (k === 0 ? { ...t, stopping: true } : t)),
        ...gpuTasks('d', 6),
        ...gpuTasks('f', 5),
      ],
      pending: [waiting('gang', 3, { gang: true, tasks: 2, nominated: ['f', 'c'] }), waiting('big', 4)],
      targets: ['big→b'],
      moves: ['b0:b→a', 'b1:b→d'],
      skipped: ['gang:nominated'],
    },
    {
      // c has 3 free; the job asks 3 GPUs: it fits now, the placement serves it.
      name: 'a job that fits some node now is left to the placement',
      pending: [waiting('small', 3)],
      targets: [],
      skipped: ['small:fits-now'],
    },
    {
      // c's tasks run at priority 5 > the job's 0: c is no option. b and d need 2 moves each, the same
      // work lost: b by name. b0 → a (1 free → 0); b1: c 3 free, d 2 free → d (0 left).
      name: 'tasks of a higher priority than the waiting job never move',
      tasks: [...gpuTasks('a', 7), ...gpuTasks('b', 6), ...gpuTasks('c', 5).map((t) => ({ ...t, priority: 5 })), ...gpuTasks('d', 6)],
      pending: [waiting('big', 4)],
      targets: ['big→b'],
      moves: ['b0:b→a', 'b1:b→d'],
    },
    {
      // c0 is do-not-disrupt: c's other tasks make the room as well (c1 moves, to a).
      name: 'a do-not-disrupt task stays: another task of the node moves',
      pending: [waiting('big', 4)],
      jobs: { c0: { labels: { [DO_NOT_DISRUPT_LABEL]: 'true' } } },
      targets: ['big→c'],
      moves: ['c1:c→a'],
    },
    {
      // Every task is a gang's: none may move; no node can be given the room.
      name: 'gang tasks never move',
      pending: [waiting('big', 4)],
      jobs: Object.fromEntries(fragmented().map((t) => [t.jobId, { gang: true }])),
      targets: [],
      skipped: ['big:no-movable-room'],
    },
    {
      // Every task bound 30 s ago, within the exempt time (60 s): none moves.
      name: 'tasks within the exempt time never move',
      tasks: fragmented().map((t) => ({ ...t, boundAt: NOW - 30_000 })),
      pending: [waiting('big', 4)],
      targets: [],
      skipped: ['big:no-movable-room'],
    },
    {
      // A 6-GPU job: c needs 3 moves, b and d 4, a 5. A budget of 2 moves admits none.
      name: 'a node needing more moves than the budget is not chosen',
      pending: [waiting('huge', 6)],
      opts: { maxMoves: 2 },
      targets: [],
      skipped: ['huge:no-movable-room'],
    },
    {
      // Two nodes: a 7 used (1 free), b 6 (2 free): 3 free in all < 4; moves only shift room.
      name: 'no plan when the free room of all nodes together is short',
      nodes: [node('a', 64, 8), node('b', 64, 8)],
      tasks: [...gpuTasks('a', 7), ...gpuTasks('b', 6)],
      pending: [waiting('big', 4)],
      targets: [],
      skipped: ['big:no-room'],
    },
    {
      // a and b have 2 free each (4 in all); each needs 2 moves, but every task selects its own node
      // (label host): no other node takes it — the placement's filters refuse every destination,
      // the ejection chain's too (its plan fails the check).
      name: 'no plan when the filters keep the moved tasks off every other node',
      nodes: [node('a', 64, 8, { labels: { host: 'a' } }), node('b', 64, 8, { labels: { host: 'b' } })],
      tasks: [...gpuTasks('a', 6), ...gpuTasks('b', 6)],
      jobs: Object.fromEntries([...gpuTasks('a', 6), ...gpuTasks('b', 6)].map((t) => [t.jobId, { selector: { host: t.node } }])),
      pending: [waiting('big', 4)],
      targets: [],
      skipped: ['big:no-destination'],
    },
    {
      // Nodes of 10 cores, no GPU: a 1a + 7a (2 free), b 2b + 6b (2), c 6c (4), d 3d + 3e (4). An
      // 8-core task: a, b, c need one move (7a, 6b, 6c), d two. No single move finds room as it is
      // (free 2, 2, 4, 4 < 6). Ejection chains, a first: 7a fits nowhere; giving up one smaller task
      // makes room on b (6b: 2 + 6 = 8), c (6c: 10) and d (3d: 4 + 3 = 7): d, the least given up →
      // 3d queued; 3d fits c (4 free) → c. Moves 7a → d, 3d → c; the job on a (2 + 7 = 9 free).
      name: 'an ejection chain makes the room when no node has it for the moved task as it is',
      nodes: [node('a', 10), node('b', 10), node('c', 10), node('d', 10)],
      tasks: [task('1a', 'a', 1), task('7a', 'a', 7), task('2b', 'b', 2), task('6b', 'b', 6), task('6c', 'c', 6), task('3d', 'd', 3), task('3e', 'd', 3)],
      pending: [{ jobId: 'big', queue: 'q', priority: 0, createdAt: 0, resources: { cpu: 8000 }, tasks: 1 }],
      targets: ['big→a'],
      moves: ['3d:d→c', '7a:a→d'],
    },
    {
      // Two 4-GPU jobs, two served: first → c (c0 → a); then a and c are touched; b and d need 2
      // each: b by name; b's 2 tasks go to d (2 free → 0).
      name: 'with more jobs a pass, each served on a node no earlier target touched',
      pending: [waiting('big1', 4, { createdAt: 1 }), waiting('big2', 4, { createdAt: 2 })],
      opts: { maxJobs: 2 },
      targets: ['big1→c', 'big2→b'],
      moves: ['b0:b→d', 'b1:b→d', 'c0:c→a'],
    },
    {
      // c0 already stopping (a preemption in its grace period): c has 3 free + 1 on its way = 4, the
      // job's task fits c once c0 ends. No task more is stopped for it.
      name: 'a job whose room is already being freed gets no more tasks stopped',
      tasks: [...gpuTasks('a', 7), ...gpuTasks('b', 6), ...gpuTasks('c', 5).map((t, k) => (k === 0 ? { ...t, stopping: true } : t)), ...gpuTasks('d', 6)],
      pending: [waiting('big', 4)],
      targets: [],
      skipped: ['big:freeing'],
    },
    {
      // A 5-GPU job: c 3 free + c0 stopping = 4, one short. Counting c0 as gone, c needs 1 move (c1 → a,
      // 1 free → 0); counting it as staying, c would need 2 and b 3: the plan stops one task, not two.
      name: 'room already being freed counts toward the room a node needs',
      tasks: [...gpuTasks('a', 7), ...gpuTasks('b', 6), ...gpuTasks('c', 5).map((t, k) => (k === 0 ? { ...t, stopping: true } : t)), ...gpuTasks('d', 6)],
      pending: [waiting('big', 5)],
      targets: ['big→c'],
      moves: ['c1:c→a'],
    },
    {
      // The job's base priority 0, aged to 5; c's tasks run at 3 (> 0): c is no option, though 3 ≤ 5.
      // b and d need 2 moves each: b by name; b0 → a (1 free → 0); b1: a 0, c 3, d 2 free → d, the best fit (1 left).
      name: 'the base priority, not the aged one, bounds which tasks move',
      tasks: [...gpuTasks('a', 7), ...gpuTasks('b', 6), ...gpuTasks('c', 5).map((t) => ({ ...t, priority: 3 })), ...gpuTasks('d', 6)],
      pending: [waiting('big', 4, { priority: 5, basePriority: 0 })],
      targets: ['big→b'],
      moves: ['b0:b→a', 'b1:b→d'],
    },
    {
      // Queue order at equal priority and submit time is by id: f, n.
      name: 'fractional GPUs and nominated work are not served',
      pending: [waiting('f', 0.5), waiting('n', 4, { nominated: ['c'] })],
      targets: [],
      skipped: ['f:fractional-gpu', 'n:nominated'],
    },
    {
      // A gang of 2 × 4 GPUs: 8 free in all (1 + 2 + 3 + 2), exactly its need, none with 4. First
      // member: c needs 1 move (3 + 1), b and d 2, a 3 → c. Second: c is full now (4 more would take
      // 4 moves); b and d 2 each, the same work lost → b by name. 1 + 2 = 3 moves, the fewest: any
      // two nodes need ≥ 3 (c + b, c + d). The moved tasks go off b and c, in id order by best fit:
      // b0 → a (1 free → 0), b1 → d (2 → 1), c0 → d (1 → 0). The gang fits b and c (4 free each).
      name: 'a gang: room for all its members in one pass, on distinct nodes, with the fewest moves',
      pending: [waiting('g', 4, { gang: true, tasks: 2 })],
      targets: ['g→c+b'],
      moves: ['b0:b→a', 'b1:b→d', 'c0:c→d'],
    },
    {
      // a 4 used (4 free), b 6 (2), c 5 (3), d 6 (2). The gang's first member takes a's room (no move);
      // the second: c needs 1 move (c0), b and d 2 → c. c0: b and d have 2 free, the same fit → b by name.
      name: "a gang's member takes the room there is; moves make the room only for the others",
      tasks: [...gpuTasks('a', 4), ...gpuTasks('b', 6), ...gpuTasks('c', 5), ...gpuTasks('d', 6)],
      pending: [waiting('g', 4, { gang: true, tasks: 2 })],
      targets: ['g→c+a'],
      moves: ['c0:c→b'],
    },
    {
      // The gang needs 3 moves (c 1 + b 2, as above); a budget of 2 serves none of it (all or nothing).
      name: 'a gang whose room takes more moves than the budget is not served',
      pending: [waiting('g', 4, { gang: true, tasks: 2 })],
      opts: { maxMoves: 2 },
      targets: [],
      skipped: ['g:budget'],
    },
    {
      // A gang of 3 × 4 GPUs needs 12 free; the nodes have 8 in all: moves only shift room.
      name: 'a gang larger than the free room of all nodes is not served',
      pending: [waiting('g', 4, { gang: true, tasks: 3 })],
      targets: [],
      skipped: ['g:no-room'],
    },
    {
      // Two tasks of 4 GPUs, no gang: room for both in one pass, as the gang's (c 1 move, then b 2).
      name: 'a multi-task job: room for all its tasks in one pass',
      pending: [waiting('m', 4, { tasks: 2 })],
      targets: ['m→c+b'],
      moves: ['b0:b→a', 'b1:b→d', 'c0:c→d'],
    },
    {
      // The same with a budget of 2: c (1 move) for the first task; the second would need b's 2 (3 > 2):
      // one task served now, the other later.
      name: 'a multi-task job is served as far as the budget goes',
      pending: [waiting('m', 4, { tasks: 2 })],
      opts: { maxMoves: 2 },
      targets: ['m→c'],
      moves: ['c0:c→a'],
    },
    {
      // Racks: a and c in r1, b and d in r2. Unconstrained the gang would take c + b (3 moves); one
      // rack: r1 c 1 + a 3 = 4 moves, r2 b 2 + d 2 = 4 — a tie in moves and work lost: r1 by key.
      // a's three tasks and c0 go to b and d (2 free each → 0), in id order by best fit: a0 → b (the
      // first of a tie), a1 → b (1 left, the best fit), a2 → d, c0 → d.
      name: 'a gang with a required topology level gets its room within one domain',
      nodes: fleet().map((n) => ({ ...n, labels: { 'topology.batchapi.io/rack': n.name === 'a' || n.name === 'c' ? 'r1' : 'r2' } })),
      pending: [waiting('g', 4, { gang: true, tasks: 2, topology: { required: 'rack' } })],
      targets: ['g→c+a'],
      moves: ['a0:a→b', 'a1:a→b', 'a2:a→d', 'c0:c→d'],
    },
  ];
  it.each(cases)('$name', (c) => {
    const tasks = c.tasks ?? fragmented();
    const nodes = cluster(c.nodes ?? fleet(), tasks);
    const plan = planDefragment(nodes, tasks, c.pending, (id) => c.jobs?.[id] ?? {}, NOW, { maxJobs: 3, ...c.opts });
    expect(plan.targets.map((t) => `${t.jobId}→${t.nodes.join('+')}`)).toEqual(c.targets);
    if (c.moves) expect(plan.moves.map((m) => `${m.task.jobId}:${m.task.node}→${m.to}`).sort()).toEqual(c.moves);
    if (c.skipped) expect(plan.skipped.map((s) => `${s.jobId}:${s.reason}`)).toEqual(c.skipped);
    for (const m of plan.moves) {
      expect(m.to).not.toBe(m.task.node);
      expect(m.nominated).toBe(m.to);
    }
  });

  it('checked with the live placement: the moved task and the job land where the plan nominated them', () => {
    const tasks = fragmented();
    const placer = (work: PendingWork[], nodes: NodeSnapshot[]) => placeTasks(work, nodes, { profile: DEFAULT_PROFILE, maxTasks: 1000 }).placements;
    const plan = planDefragment(cluster(fleet(), tasks), tasks, [waiting('big', 4)], () => ({}), NOW, { placer });
    expect(plan.targets.map((t) => `${t.jobId}→${t.nodes.join('+')}`)).toEqual(['big→c']);
    expect(plan.moves.map((m) => `${m.task.jobId}:${m.task.node}→${m.to}`)).toEqual(['c0:c→a']);
  });

  it('checked with the live placement: a gang is placed on its laid-out nodes all at once, or holds their room', () => {
    // As the gang row: c (c0 moves) and b (b0, b1 move), 3 moves.
    const tasks = fragmented();
    const placer = (work: PendingWork[], nodes: NodeSnapshot[]) => placeTasks(work, nodes, { profile: DEFAULT_PROFILE, maxTasks: 1000 }).placements;
    const gang = waiting('g', 4, { gang: true, tasks: 2 });
    const plan = planDefragment(cluster(fleet(), tasks), tasks, [gang], () => ({}), NOW, { placer });
    expect(plan.targets.map((t) => `${t.jobId}→${t.nodes.join('+')}`)).toEqual(['g→c+b']);
    expect(plan.moves).toHaveLength(3);
    // Only c0 has stopped yet: c has 4 free, b 2. The gang waits, and a 1-GPU job does not take c's room.
    const c0 = tasks.find((t) => t.jobId === 'c0')!;
    const partly = cluster(
      fleet(),
      tasks.filter((t) => t !== c0),
    );
    const small = waiting('s', 1, { createdAt: 1 });
    const during = placeTasks([{ ...gang, nominated: ['c', 'b'] }, small], partly, { profile: DEFAULT_PROFILE }).placements;
    expect(during.map((p) => `${p.jobId}@${p.node}`)).not.toContain('g@c');
    expect(during.filter((p) => p.node === 'c')).toEqual([]);
    // All stops landed: both members placed at once on c and b.
    const after = cluster(
      fleet(),
      tasks.filter((t) => !plan.moves.some((m) => m.task === t)),
    );
    const placed = placeTasks([{ ...gang, nominated: ['c', 'b'] }], after, { profile: DEFAULT_PROFILE }).placements;
    expect(placed.map((p) => `${p.jobId}@${p.node}×${p.count}`).sort()).toEqual(['g@b×1', 'g@c×1']);
  });

  it('is deterministic: the same input gives the same plan', () => {
    const tasks = fragmented();
    const run = () => planDefragment(cluster(fleet(), tasks), [...tasks].reverse(), [waiting('big', 4)], () => ({}), NOW);
    expect(run()).toEqual(run());
  });

  it('a long backlog is cut short by the step bound', () => {
    // Each job looked at costs a step per node (4): j0 4, j1 8 (both fit c now); j2 would make 12 > 10.
    const tasks = fragmented();
    const pending = ['j0', 'j1', 'j2', 'j3'].map((id) => waiting(id, 3));
    const plan = planDefragment(cluster(fleet(), tasks), tasks, pending, () => ({}), NOW, { maxSteps: 10 });
    expect(plan.skipped.map((x) => `${x.jobId}:${x.reason}`)).toEqual(['j0:fits-now', 'j1:fits-now', 'j2:steps']);
  });

  it('the candidate search is counted before it runs: the bound is never overrun', () => {
    // The job costs 4 (a step per node); the search would cost 24 more (the tasks of a, b, c, d):
    // 4 + 24 = 28 > 20, so it does not run and the pass stops at 4 steps (no clamp hides an overrun).
    const tasks = fragmented();
    const plan = planDefragment(cluster(fleet(), tasks), tasks, [waiting('big', 4)], () => ({}), NOW, { maxSteps: 20 });
    expect(plan.skipped).toEqual([{ jobId: 'big', reason: 'steps' }]);
    expect(plan.steps).toBe(4);
  });

  it("the check after an ejection chain is counted with the chain's moved tasks", () => {
    // The ejection-chain row: 4 (the job) + 7 (the tasks of the 4 candidates) + 72 (the direct
    // tries: a, b, c one task each, 2 × 2 × 4 = 16 each; d two, 2 × 3 × 4 = 24) + 13 (the chain's
    // own) + 12 (the check with the chain's 2 moved tasks, (2 + 1) × 4) = 108. (Counted before the
    // chain with a's single task, 2 × 2 × 4 = 16, it was 112 and a longer chain's check went uncounted.)
    const tasks = [task('1a', 'a', 1), task('7a', 'a', 7), task('2b', 'b', 2), task('6b', 'b', 6), task('6c', 'c', 6), task('3d', 'd', 3), task('3e', 'd', 3)];
    const big: PendingWork = { jobId: 'big', queue: 'q', priority: 0, createdAt: 0, resources: { cpu: 8000 }, tasks: 1 };
    const nodes = cluster([node('a', 10), node('b', 10), node('c', 10), node('d', 10)], tasks);
    const plan = planDefragment(nodes, tasks, [big], () => ({}), NOW);
    expect(plan.targets.map((t) => t.nodes)).toEqual([['a']]);
    expect(plan.steps).toBe(108);
  });

  it("a gang's layout is counted too: a bound too small for it stops the pass, never overrun", () => {
    // The gang row: 4 (the job) + 8 (two slot counts over the 4 able nodes) + 4 (the group) + 24 (the
    // first member's search: the tasks of a, b, c, d) = 40; the second member's search (23 tasks left)
    // would make 63 > 50.
    const tasks = fragmented();
    const gang = waiting('g', 4, { gang: true, tasks: 2 });
    const plan = planDefragment(cluster(fleet(), tasks), tasks, [gang], () => ({}), NOW, { maxSteps: 50 });
    expect(plan.targets).toEqual([]);
    expect(plan.skipped).toEqual([{ jobId: 'g', reason: 'steps' }]);
    expect(plan.steps).toBeLessThanOrEqual(50);
    expect(plan.steps).toBe(40);
  });

  it("a gang's group is counted before its slot counts run: a bound just past the job's own checks is not overrun", () => {
    // 4 (the job) + 8 (two slot counts over the 4 able nodes) = 12; the group's 4 slot counts would
    // make 16 > 15: the pass stops at 12. (Counted after they ran, it stopped at 16, past the bound.)
    const tasks = fragmented();
    const gang = waiting('g', 4, { gang: true, tasks: 2 });
    const plan = planDefragment(cluster(fleet(), tasks), tasks, [gang], () => ({}), NOW, { maxSteps: 15 });
    expect(plan.skipped).toEqual([{ jobId: 'g', reason: 'steps' }]);
    expect(plan.steps).toBe(12);
  });

  it('a step bound too small for the check stops the pass', () => {
    // Candidate search: 4 nodes (able) + 24 tasks = 28 steps; the first option costs 2 × (1 + 1) × 4 = 16.
    const tasks = fragmented();
    const plan = planDefragment(cluster(fleet(), tasks), tasks, [waiting('big', 4)], () => ({}), NOW, { maxSteps: 43 });
    expect(plan.targets).toEqual([]);
    expect(plan.skipped).toEqual([{ jobId: 'big', reason: 'steps' }]);
  });
});
