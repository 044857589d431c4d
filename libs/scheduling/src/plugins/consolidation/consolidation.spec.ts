import { cluster, node, NOW, task } from '../../../test/consolidation-fixtures';
import type { NodeSnapshot } from '../../snapshot';
import type { RunningTask } from '../preemption';
import {
  type ConsolidationJob,
  type ConsolidationOptions,
  type ConsolidationSkip,
  consolidationBudget,
  DO_NOT_DISRUPT_LABEL,
  planConsolidation,
  utilizationOf,
} from './index';

const plain = (): ConsolidationJob => ({});

interface Case {
  name: string;
  nodes: NodeSnapshot[];
  tasks: RunningTask[];
  jobs?: Record<string, ConsolidationJob>;
  opts?: ConsolidationOptions;
  /** Nodes emptied, in order. */
  chosen: string[];
  /** Moves as `job→node`, sorted. @default not checked */
  moves?: string[];
  /** Skip reasons of nodes in use not chosen. @default not checked */
  skipped?: Record<string, ConsolidationSkip>;
}

describe('planConsolidation', () => {
  const table: Case[] = [
    {
      // a: 2 of 8 cores (25%), b: 4 of 8 (50%). a is tried first: its 2 cores fit b's 4 free → a emptied.
      // Then b: its 4 cores would need a (chosen) — budget 1 anyway.
      name: 'two half-used nodes become one: the less used one is emptied into the other',
      nodes: [node('a', 8), node('b', 8)],
      tasks: [task('j1', 'a', 2), task('j2', 'b', 4)],
      chosen: ['a'],
      moves: ['j1→b'],
      skipped: { b: 'budget' },
    },
    {
      // a: 6 of 8 (75%), b: 6 of 8 (75%). a's 6 cores do not fit b's 2 free (nor b's into a's).
      name: 'nothing is chosen when the tasks do not fit the room left',
      nodes: [node('a', 8), node('b', 8)],
      tasks: [task('j1', 'a', 6), task('j2', 'b', 6)],
      chosen: [],
      skipped: { a: 'no-room', b: 'no-room' },
    },
    {
      // a: 3+2 = 5 of 8; b: 6 of 8 (2 free); c: 5 of 8 (3 free). a's tasks, decreasing: 3 → c (best fit:
      // c leaves 0, b cannot take 3), 2 → b (leaves 0). Every task of a placed → a emptied.
      name: 'a node emptied into two others, best fit decreasing',
      nodes: [node('a', 8), node('b', 8), node('c', 8)],
      tasks: [task('j1', 'a', 3), task('j2', 'a', 2), task('j3', 'b', 6), task('j4', 'c', 5)],
      chosen: ['a'],
      moves: ['j1→c', 'j2→b'],
    },
    {
      // budget: min(3 per pass, max(1, ⌊0.5 × 4 in use⌋ = 2)) = 2. a, b, d hold 1 core each, c 2:
      // a's core goes to c (best fit: 6 free, the least), then b's too (5 free); d and c stop at the budget.
      // c's reason: the budget is checked first.
      name: 'the disruption budget bounds the nodes per pass, as a fraction of the nodes in use',
      nodes: [node('a', 8), node('b', 8), node('c', 8), node('d', 8)],
      tasks: [task('j1', 'a', 1), task('j2', 'b', 1), task('j3', 'c', 2), task('j4', 'd', 1)],
      opts: { maxNodesPerPass: 3, maxNodeFraction: 0.5 },
      chosen: ['a', 'b'],
      skipped: { c: 'budget' },
    },
    {
      // a: 1 GPU task on device 0 of 2; b: devices 0, 1 of 4 held → 2 wholly free; c: its 1 device held.
      // a's task (1 GPU, 1 core) fits b's free devices, not c (no free device).
      name: 'GPU tasks move only where whole devices are free',
      nodes: [node('a', 8, 2), node('b', 8, 4), node('c', 8, 1)],
      tasks: [
        task('g1', 'a', 1, { gpu: 1, devices: [0] }),
        task('g2', 'b', 1, { gpu: 1, devices: [0] }),
        task('g3', 'b', 1, { gpu: 1, devices: [1] }),
        task('g4', 'c', 1, { gpu: 1, devices: [0] }),
      ],
      // utilization: a 1/2 = 50%, b 2/4 = 50%, c 1/1 = 100%. a first (name order at a tie): g1 → b (2 free devices).
      chosen: ['a'],
      moves: ['g1→b'],
    },
    {
      // a: 2 GPUs wanted, b: 1 device free of 2 → does not fit; b into a: 1 GPU into a's 0 free → no.
      name: 'a GPU task needing two devices does not move onto a node with one free device',
      nodes: [node('a', 8, 2), node('b', 8, 2)],
      tasks: [task('g1', 'a', 1, { gpu: 2, devices: [0, 1] }), task('g2', 'b', 1, { gpu: 1, devices: [0] })],
      chosen: [],
      skipped: { a: 'no-room', b: 'no-room' },
    },
    {
      // a: 1 core of job `sel` that needs pool=x; b (pool y) has room but not the label; c (pool x) does.
      // utilization a 1/8, b 4/8, c 6/8: a first → c.
      name: 'a selector keeps moved tasks on matching nodes',
      nodes: [node('a', 8, 0, { labels: { pool: 'x' } }), node('b', 8, 0, { labels: { pool: 'y' } }), node('c', 8, 0, { labels: { pool: 'x' } })],
      tasks: [task('sel', 'a', 1), task('j2', 'b', 4), task('j3', 'c', 6)],
      jobs: { sel: { selector: { pool: 'x' } } },
      chosen: ['a'],
      moves: ['sel→c'],
    },
    {
      // b has room (4 free) but a NoSchedule taint a's task does not tolerate → a stays; b's 4 cores
      // go to a (7 free, no taint).
      name: 'a taint the task does not tolerate keeps it off',
      nodes: [node('a', 8), node('b', 8, 0, { taints: [{ key: 'dedicated', value: 'x', effect: 'NoSchedule' }] })],
      tasks: [task('j1', 'a', 1), task('j2', 'b', 4)],
      chosen: ['b'],
      moves: ['j2→a'],
      skipped: { a: 'no-room' },
    },
    {
      // a's task was bound 30 s ago < protectMs 60 s → protected; b's node got new work 30 s ago too.
      name: 'tasks bound within the exempt time are not moved',
      nodes: [node('a', 8), node('b', 8)],
      tasks: [task('j1', 'a', 1, { ageMs: 30_000 }), task('j2', 'b', 4, { ageMs: 30_000 })],
      opts: { consolidateAfterMs: 10_000 },
      chosen: [],
      skipped: { a: 'protected', b: 'protected' },
    },
    {
      // a's task runs for 1 hour > maxTaskAge 10 min: a move would lose an hour of work → a stays. b's
      // (4 cores, bound 5 min ago: ≥ 60 s exempt, ≤ 10 min) goes to a (7 free).
      name: 'tasks older than the age bound are not moved (a move restarts them)',
      nodes: [node('a', 8), node('b', 8)],
      tasks: [task('old', 'a', 1), task('young', 'b', 4, { ageMs: 300_000 })],
      opts: { maxTaskAgeMs: 600_000, consolidateAfterMs: 60_000 },
      chosen: ['b'],
      moves: ['young→a'],
      skipped: { a: 'too-old' },
    },
    {
      // newest task on a: 120 s ago < consolidateAfter 300 s (the default) → the node is still taking work.
      name: 'a node that took new work lately is not a candidate (consolidateAfter)',
      nodes: [node('a', 8), node('b', 8)],
      tasks: [task('j1', 'a', 1), task('j1', 'a', 1, { ageMs: 120_000 }), task('j2', 'b', 4)],
      chosen: ['b'],
      skipped: { a: 'recent-work' },
    },
    {
      name: 'jobs at their repeat limit, labelled do-not-disrupt, requiring a topology domain or unknown stay',
      nodes: [node('a', 8), node('b', 8), node('c', 8), node('d', 8), node('e', 8)],
      tasks: [task('rep', 'a', 1), task('keep', 'b', 1), task('topo', 'c', 1), task('ghost', 'd', 1), task('big', 'e', 4)],
      jobs: { keep: { labels: { [DO_NOT_DISRUPT_LABEL]: 'true' } }, topo: { topology: { required: 'rack' } }, ghost: undefined as unknown as ConsolidationJob },
      opts: { exemptJobs: new Set(['rep']), maxNodesPerPass: 5, maxNodeFraction: 1 },
      // e (4 of 8) is the only one left: its 4 cores fit a (7 free, first by name among equal fits) → e emptied.
      chosen: ['e'],
      moves: ['big→a'],
      skipped: { a: 'repeat-limit', b: 'do-not-disrupt', c: 'topology', d: 'unknown-job' },
    },
    {
      // gang g on a and b (1 core each), c holds 4. a: g also runs on b (not chosen) → gang. b: g on a
      // (not chosen) → gang. c: 4 cores into a (7 free) → emptied.
      name: 'a gang spread over two nodes does not move one half',
      nodes: [node('a', 8), node('b', 8), node('c', 8)],
      tasks: [task('g', 'a', 1), task('g', 'b', 1), task('j', 'c', 4)],
      jobs: { g: { gang: true } },
      opts: { maxNodesPerPass: 3, maxNodeFraction: 1 },
      chosen: ['c'],
      skipped: { a: 'gang', b: 'gang' },
    },
    {
      // a gang whole on one node moves: a (2 × 1 core of g) → b (4 free).
      name: 'a gang whole on one node moves',
      nodes: [node('a', 8), node('b', 8)],
      tasks: [task('g', 'a', 1), task('g', 'a', 1), task('j', 'b', 4)],
      jobs: { g: { gang: true } },
      chosen: ['a'],
      moves: ['g→b', 'g→b'],
    },
    {
      // a task being stopped: its room is on its way back; the node is left to that stop.
      name: 'a node with a task already stopping is left alone',
      nodes: [node('a', 8), node('b', 8)],
      tasks: [task('j1', 'a', 1, { stopping: true }), task('j2', 'b', 4)],
      chosen: ['b'],
      skipped: { a: 'stopping' },
    },
    {
      // empty nodes are neither candidates nor targets: moving onto one frees nothing. a (1 core) has
      // only b (empty) to go to → no room.
      name: 'an empty node is not a target',
      nodes: [node('a', 8), node('b', 8)],
      tasks: [task('j1', 'a', 1)],
      chosen: [],
      skipped: { a: 'no-room' },
    },
    {
      // 3 fit checks allowed: a's task checks b (1), … the pass stops at the bound with nothing chosen.
      name: 'the step bound stops the search',
      nodes: [node('a', 8), node('b', 8), node('c', 8), node('d', 8), node('e', 8)],
      tasks: [task('j1', 'a', 1), task('j2', 'b', 2), task('j3', 'c', 3), task('j4', 'd', 4), task('j5', 'e', 5)],
      opts: { maxSteps: 3 },
      chosen: [],
      skipped: { a: 'steps', b: 'steps' },
    },
  ];

  it("counts a placer's run as each task against each node it is offered, before running it", () => {
    // 5 nodes of 8 cores, one task each, least used first: a (1 core) is offered b, c, d, e:
    // 1 task × 4 nodes = 4 steps ≤ 6, so the placer runs and puts it on b (the first offered).
    // b is now a target. c (3 cores) would be offered b, d, e: 4 + 1 × 3 = 7 > 6, so the pass stops
    // at the bound without running the placer again; d and e are skipped for the same reason.
    const tasks = [task('j1', 'a', 1), task('j2', 'b', 2), task('j3', 'c', 3), task('j4', 'd', 4), task('j5', 'e', 5)];
    const nodes = cluster([node('a', 8), node('b', 8), node('c', 8), node('d', 8), node('e', 8)], tasks);
    const offered: number[] = [];
    const plan = planConsolidation(nodes, tasks, () => plain(), NOW, {
      maxSteps: 6,
      maxNodesPerPass: 5,
      maxNodeFraction: 1,
      placer: (work, offeredNodes) => {
        offered.push(offeredNodes.length);
        return work.map((w) => ({ jobId: w.jobId, node: offeredNodes[0].name, count: w.tasks, devices: Array.from({ length: w.tasks }, () => []) }));
      },
    });
    expect(offered).toEqual([4]);
    expect(plan.nodes).toEqual(['a']);
    expect(plan.steps).toBe(4);
    expect(Object.fromEntries(plan.skipped.map((x) => [x.node, x.reason]))).toEqual({ b: 'target', c: 'steps', d: 'steps', e: 'steps' });
  });

  it.each(table)('$name', (c) => {
    const nodes = cluster(c.nodes, c.tasks);
    const jobs = c.jobs ?? {};
    const plan = planConsolidation(nodes, c.tasks, (id) => (id in jobs ? jobs[id] : plain()), NOW, c.opts);
    expect(plan.nodes).toEqual(c.chosen);
    if (c.moves) expect(plan.moves.map((m) => `${m.task.jobId}→${m.to}`).sort()).toEqual([...c.moves].sort());
    if (c.skipped) {
      const got = Object.fromEntries(plan.skipped.map((s) => [s.node, s.reason]));
      for (const [n, reason] of Object.entries(c.skipped)) expect([n, got[n]]).toEqual([n, reason]);
    }
  });

  it('never moves a task to a node chosen in the same pass, and every moved task fits where it goes', () => {
    // 6 nodes of 8 cores, each with 1–3 one-core tasks: any plan must leave every target within 8 cores.
    const nodes = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => node(n, 8));
    const tasks = nodes.flatMap((n, k) => Array.from({ length: 1 + (k % 3) }, () => task(`j-${n.name}`, n.name, 1 + (k % 2))));
    const snap = cluster(nodes, tasks);
    const plan = planConsolidation(snap, tasks, plain, NOW, { maxNodesPerPass: 6, maxNodeFraction: 1 });
    expect(plan.nodes.length).toBeGreaterThan(0);
    const chosen = new Set(plan.nodes);
    expect(plan.moves.filter((m) => chosen.has(m.to))).toEqual([]);
    // every task of a chosen node moves
    expect(plan.moves.length).toBe(tasks.filter((t) => chosen.has(t.node)).length);
    for (const n of snap) {
      const incoming = plan.moves.filter((m) => m.to === n.name).reduce((s, m) => s + m.task.resources.cpu, 0);
      expect((n.used.cpu ?? 0) + incoming).toBeLessThanOrEqual(n.capacity.cpu);
    }
  });
});

describe('utilizationOf and consolidationBudget', () => {
  it.each([
    // max(2000/8000 cpu, 1000/4000 gpu... ) = max(0.25, 0.25)
    { used: { cpu: 2000, gpu: 1000 }, cap: { cpu: 8000, gpu: 4000 }, u: 0.25 },
    // max(1000/8000, 3000/4000) = 0.75: the GPUs dominate
    { used: { cpu: 1000, gpu: 3000 }, cap: { cpu: 8000, gpu: 4000 }, u: 0.75 },
  ])('dominant share $u', ({ used, cap, u }) => {
    expect(utilizationOf({ ...node('x', 0), capacity: cap, used })).toBe(u);
  });
  it.each([
    // min(1, max(1, ⌊0.1 × 5⌋ = 0)) = 1
    { inUse: 5, o: {}, budget: 1 },
    // min(10, max(1, ⌊0.1 × 50⌋ = 5)) = 5
    { inUse: 50, o: { maxNodesPerPass: 10 }, budget: 5 },
    // min(0, …) = 0: off
    { inUse: 50, o: { maxNodesPerPass: 0 }, budget: 0 },
  ])('budget of $inUse nodes in use is $budget', ({ inUse, o, budget }) => {
    expect(consolidationBudget(inUse, o)).toBe(budget);
  });
});
