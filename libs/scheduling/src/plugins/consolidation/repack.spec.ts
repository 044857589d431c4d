import { cluster, node, NOW, task } from '../../../test/consolidation-fixtures';
import type { NodeSnapshot } from '../../snapshot';
import type { RunningTask } from '../preemption';
import { type ConsolidationJob, DO_NOT_DISRUPT_LABEL, planConsolidation, planRepack, type RepackOptions } from './index';

/**
 * The fragmented cluster of the worked example: three nodes of 10 cores.
 * a: 5a + 3a = 8 (2 free); b: 5b + 3b = 8 (2 free); c: 4 = 4 (6 free). 20 cores in all: two nodes' worth.
 * Consolidation empties nothing: c's 4 cores fit neither 2 free; a's 5 fits c's 6 but its 3 then fits
 * neither b's 2 nor c's 1 (b alike).
 */
const fragmented = () => [task('5a', 'a', 5), task('3a', 'a', 3), task('5b', 'b', 5), task('3b', 'b', 3), task('4', 'c', 4)];
const abc = () => [node('a', 10), node('b', 10), node('c', 10)];

interface Case {
  name: string;
  nodes: NodeSnapshot[];
  tasks: RunningTask[];
  jobs?: Record<string, ConsolidationJob>;
  opts?: RepackOptions;
  /** Nodes emptied. */
  chosen: string[];
  /** Moves as `job:from→to`, sorted. @default not checked */
  moves?: string[];
  /** Nodes in use after the plan. @default not checked */
  after?: number;
}

describe('planRepack', () => {
  const cases: Case[] = [
    {
      // Windows, most free first (c 0.6, then a and b 0.2 by name): [c, a] holds 4 + 5 + 3 = 12 > 10
      // cores, two nodes' worth: nothing freed. [c, a, b], best-fit decreasing on empty copies:
      // 5a → c, 5b → c (10), 4 → a, 3a → a, 3b → a (10): 2 bins. Matched by tasks in common (ties
      // by node, then bin): node a ← bin {4, 3a, 3b} (3a stays), node b ← bin {5a, 5b} (5b stays),
      // c unmatched: emptied. Moves: 4 → a, 5a → b, 3b → a; checked by best fit on a (3 used) and b
      // (5 used): 5a → b (0 left), 4 → a (3 left), 3b → a (0 left). 3 nodes in use → 2.
      name: 'tasks move between kept nodes so that a node empties where consolidation cannot',
      nodes: abc(),
      tasks: fragmented(),
      chosen: ['c'],
      moves: ['3b:b→a', '4:c→a', '5a:a→b'],
      after: 2,
    },
    {
      // b's tasks may not move (5b is do-not-disrupt): the pool is [c, a], 12 cores, two nodes: nothing.
      name: 'a node holding a do-not-disrupt task stays as it is',
      nodes: abc(),
      tasks: fragmented(),
      jobs: { '5b': { labels: { [DO_NOT_DISRUPT_LABEL]: 'true' } } },
      chosen: [],
    },
    {
      // 3b belongs to a gang: a gang is never split, its node stays; as above, nothing.
      name: 'a node holding a gang task stays as it is',
      nodes: abc(),
      tasks: fragmented(),
      jobs: { '3b': { gang: true } },
      chosen: [],
    },
    {
      // 3b was bound 30 s ago, within consolidateAfter (300 s) and the exempt time (60 s): b stays; nothing.
      name: 'a node holding a task bound within the exempt time stays as it is',
      nodes: abc(),
      tasks: [...fragmented().filter((t) => t.jobId !== '3b'), task('3b', 'b', 3, { ageMs: 30_000 })],
      chosen: [],
    },
    {
      // The plan needs 3 moves; the budget is 2.
      name: 'a plan over the budget of moves is not taken',
      nodes: abc(),
      tasks: fragmented(),
      opts: { maxMovesPerNode: 2 },
      chosen: [],
    },
    {
      // c carries a label the others lack (another pool): pools [a, b] (16 cores, two nodes) and
      // [c] (one node, no window): nothing moves across pools.
      name: 'nodes of different labels are different pools: no window mixes them',
      nodes: [node('a', 10), node('b', 10), node('c', 10, 0, { labels: { zone: 'z2' } })],
      tasks: fragmented(),
      chosen: [],
    },
    {
      // Two pools of the fragmented cluster (labels pool=1 on a, b, c; pool=2 on d, e, f, the jobs
      // selecting theirs); a budget of 1 node a pass (⌊0.1 × 6⌋ = 0 → at least 1): one pool re-packed.
      // Pools tie on free room (1.0 each); the first by its first node's name: a, b, c. As above.
      name: 'one node a pass: the first pool of two alike is re-packed',
      nodes: [...abc().map((n) => ({ ...n, labels: { pool: '1' } })), ...['d', 'e', 'f'].map((n) => node(n, 10, 0, { labels: { pool: '2' } }))],
      tasks: [...fragmented(), task('5d', 'd', 5), task('3d', 'd', 3), task('5e', 'e', 5), task('3e', 'e', 3), task('4f', 'f', 4)],
      jobs: Object.fromEntries(['5d', '3d', '5e', '3e', '4f'].map((j) => [j, { selector: { pool: '2' } }])),
      chosen: ['c'],
      moves: ['3b:b→a', '4:c→a', '5a:a→b'],
      after: 5,
    },
    {
      // a: 1a + 7a (2 free), b: 2b + 6b (2 free), c: 6c (4 free), d: 3d + 3e (4 free): 28 cores, three
      // nodes' worth; consolidation empties nothing. Windows, most free first (c, d, then a, b): [c, d]
      // holds 12 cores, two nodes; [c, d, a, b] packs into 3 bins but its closure moves 4 tasks, over
      // the 3 allowed. Ejection chains, c first: 6c fits no node (2, 2, 4 free); giving up one task
      // smaller than it makes room on d only (3d: 4 + 3 = 7; a's 1a gives 3, b's 2b 4), the smallest
      // first by name: 6c → d, 3d queued. 3d fits neither a nor b (2 free); a gives up 1a (2 + 1 = 3),
      // b 2b (2 + 2 = 4): a, the less given up: 3d → a, 1a queued. 1a fits b (leaves 1) and d (7 − 6
      // = 1 free, leaves 0): d. 3 moves; c freed: 4 nodes in use → 3.
      name: 'when no window empties a node within the moves, an ejection chain shifts tasks down a chain of nodes',
      nodes: [node('a', 10), node('b', 10), node('c', 10), node('d', 10)],
      tasks: [task('1a', 'a', 1), task('7a', 'a', 7), task('2b', 'b', 2), task('6b', 'b', 6), task('6c', 'c', 6), task('3d', 'd', 3), task('3e', 'd', 3)],
      opts: { maxMovesPerNode: 3 },
      chosen: ['c'],
      moves: ['1a:a→d', '3d:d→a', '6c:c→d'],
      after: 3,
    },
  ];
  it.each(cases)('$name', (c) => {
    const nodes = cluster(c.nodes, c.tasks);
    const jobs = c.jobs ?? {};
    const jobOf = (id: string): ConsolidationJob => ({ ...(c.nodes.some((n) => n.labels.pool) && !jobs[id] ? { selector: { pool: '1' } } : {}), ...jobs[id] });
    const plan = planRepack(nodes, c.tasks, jobOf, NOW, c.opts);
    expect(plan.nodes).toEqual(c.chosen);
    if (c.moves) expect(plan.moves.map((m) => `${m.task.jobId}:${m.task.node}→${m.to}`).sort()).toEqual(c.moves);
    if (c.after !== undefined) expect(plan.nodesInUseAfter).toBe(c.after);
    // Every task stopped is either on an emptied node or moved off a kept one, never a no-op.
    for (const m of plan.moves) expect(m.to).not.toBe(m.task.node);
  });

  it('consolidation alone empties nothing on the fragmented cluster (the contrast)', () => {
    expect(planConsolidation(cluster(abc(), fragmented()), fragmented(), () => ({}), NOW).nodes).toEqual([]);
  });

  it('with nominate, each move names the node the re-pack planned for it', () => {
    const tasks = fragmented();
    const plan = planRepack(cluster(abc(), tasks), tasks, () => ({}), NOW, { nominate: true });
    // The packing's targets: 4 → a (bin {4, 3a, 3b}), 5a → b (bin {5a, 5b}), 3b → a.
    expect(plan.moves.map((m) => `${m.task.jobId}→${m.nominated}`).sort()).toEqual(['3b→a', '4→a', '5a→b']);
  });

  it.each([
    // A window costs its packing (tasks × window nodes) and its check (2 × min(tasks, move budget) ×
    // nodes in use). [c, a]: 3 × 2 + 2 × 3 × 3 = 24; [c, a, b]: 5 × 3 + 2 × 5 × 3 = 45; in all 69.
    // No window freeing a node, the ejection chains spend what is left, a step per node a task is
    // tried on and per set of tasks given up: c's 4 tries a (1) giving up 3a (1), b (1) giving up 3b
    // (1), → a; then 3a tries b (1), nothing smaller to give up: 5 steps, no plan. a's 5a tries b (1)
    // giving up 3b (1), c (1) → c; 3a tries b (1), c (1): 5 steps; b alike: 5. 15 in all.
    [23, { nodes: [], windows: 0, steps: 15 }],
    [68, { nodes: [], windows: 1, steps: 24 + 15 }],
    [69, { nodes: ['c'], windows: 2, steps: 69 }],
  ])('a step bound of %d stops the search before a window that would exceed it', (maxSteps, expected) => {
    const tasks = fragmented();
    expect(planRepack(cluster(abc(), tasks), tasks, () => ({}), NOW, { maxSteps })).toMatchObject(expected);
  });
});
