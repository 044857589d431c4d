import { type NodeSnapshot, type PendingWork, placeTasks } from '../../index';
import { unusedNominations } from '../../framework/snapshot-builder';

const node = (name: string, cores: number, usedCores = 0, labels: Record<string, string> = {}): NodeSnapshot => ({
  name,
  capacity: { cpu: cores * 1000 },
  used: { cpu: usedCores * 1000 },
  devices: {},
  gpuCount: 0,
  labels,
  taints: [],
});
const work = (jobId: string, cores: number, tasks: number, extra: Partial<PendingWork> = {}): PendingWork => ({
  jobId,
  queue: 'q',
  priority: 0,
  createdAt: 0,
  resources: { cpu: cores * 1000 },
  tasks,
  ...extra,
});

interface Case {
  name: string;
  nodes: NodeSnapshot[];
  work: PendingWork[];
  /** Placements as `job→node×count`, in order. */
  placed: string[];
}

describe('nominated nodes', () => {
  const cases: Case[] = [
    {
      // a: 10 free, b: 4 free. Best fit puts 4 cores on b (0 left); nominated a, it goes to a (6 left).
      name: 'a nominated task is placed on its nominated node before the scores are asked',
      nodes: [node('a', 10), node('b', 10, 6)],
      work: [work('j', 4, 1, { nominated: ['a'] })],
      placed: ['j→a×1'],
    },
    {
      // a has 3 free (a moved task still runs there): the 4-core task waits for a, though b has 4 free.
      name: 'a task whose nominated node has not the room yet waits for it',
      nodes: [node('a', 10, 7), node('b', 10, 6)],
      work: [work('j', 4, 1, { nominated: ['a'] })],
      placed: [],
    },
    {
      // The nominated node is not among those taking work (cordoned): placed as any other (b).
      name: 'a task whose nominated node takes no work is placed as any other work',
      nodes: [node('b', 10, 6)],
      work: [work('j', 4, 1, { nominated: ['a'] })],
      placed: ['j→b×1'],
    },
    {
      // Two tasks, one nominated to a (10 free): one on a; the other by the pass: best fit b (4 free → 0).
      name: 'only as many tasks as nominations go to nominated nodes',
      nodes: [node('a', 10), node('b', 10, 6)],
      work: [work('j', 4, 2, { nominated: ['a'] })],
      placed: ['j→a×1', 'j→b×1'],
    },
    {
      // a is labelled zone=1, the work selects zone=2: the filters refuse the nomination; b takes it.
      name: 'the filters still apply to a nominated node',
      nodes: [node('a', 10, 0, { zone: '1' }), node('b', 10, 6, { zone: '2' })],
      work: [work('j', 4, 1, { nominated: ['a'], selector: { zone: '2' } })],
      placed: ['j→b×1'],
    },
    {
      // Nominated [a, b], one task left (its sibling already runs on a, now full): a has no room, b has
      // 10 free — it goes to b rather than waiting for a.
      name: 'a task goes to a nominated node with room though an earlier entry is full',
      nodes: [node('a', 10, 10), node('b', 10)],
      work: [work('j', 4, 1, { nominated: ['a', 'b'] })],
      placed: ['j→b×1'],
    },
    {
      // The stops landed the other way round: a has room first (its moved task stopped), b not yet
      // (7 of 10 used). Two tasks: one on a (10 → 6 free), one waits for b.
      name: 'the tasks of a job take the nominated nodes that have room, in any order; the rest wait',
      nodes: [node('a', 10), node('b', 10, 7)],
      work: [work('j', 4, 2, { nominated: ['b', 'a'] })],
      placed: ['j→a×1'],
    },
    {
      // Three tasks, nominated [a, b]: a has room (one placed), b is short (one waits); the third has
      // no nomination left and goes by the pass: best fit c (4 free → 0).
      name: 'a task beyond the nominations short of room is placed by the pass',
      nodes: [node('a', 10), node('b', 10, 7), node('c', 10, 6)],
      work: [work('j', 4, 3, { nominated: ['a', 'b'] })],
      placed: ['j→a×1', 'j→c×1'],
    },
    {
      // A gang of 2 × 4 cores nominated [a, b], both with room: both members placed there at once,
      // though best fit would put one on c (4 free → 0).
      name: 'a gang is placed on its nominated nodes, all members at once',
      nodes: [node('a', 10), node('b', 10, 4), node('c', 10, 6)],
      work: [work('g', 4, 2, { gang: true, nominated: ['a', 'b'] })],
      placed: ['g→a×1', 'g→b×1'],
    },
    {
      // b still short (7 of 10 used): the gang waits, and its member's room on a is held for it in
      // the pass (10 − 4 = 6 free left) — the 8-core job after it, which only a's whole 10 would take
      // (b 3, c 6 free), is not placed there.
      name: "a gang whose nominated node is short waits, and the others' room is held for it",
      nodes: [node('a', 10), node('b', 10, 7), node('c', 10, 4)],
      work: [work('g', 4, 2, { gang: true, nominated: ['a', 'b'] }), work('x', 8, 1, { createdAt: 1 })],
      placed: [],
    },
    {
      // As above, but x has priority 5 > the gang's 0 and would fit on a (10 cores ≥ 8): the gang's
      // nomination holds nothing against it. The pass in priority order: x on a (10 free → 2); the
      // gang then needs 4 + 4 cores: a 2, b 3, c 6 free hold one member only (c) → it waits.
      name: 'a gang whose nominated node is short holds nothing against higher-priority work that could use its nodes',
      nodes: [node('a', 10), node('b', 10, 7), node('c', 10, 4)],
      work: [work('x', 8, 1, { priority: 5 }), work('g', 4, 2, { gang: true, nominated: ['a', 'b'] })],
      placed: ['x→a×1'],
    },
    {
      // x (priority 5) could run on a (10 cores ≥ 8), so the gang holds nothing against it; but x
      // fits only c (a 6, b 3, c 8 free) and goes there. The gang, left to the pass in its place,
      // finds one member's room (a 6; b 3, c 0) and waits — holding a's 4 cores (6 → 2) against the
      // work behind it of no higher priority, as a Kubernetes nomination does: z (5 cores) waits.
      name: 'a gang whose hold gave way to higher-priority work still holds its room against the work behind it',
      nodes: [node('a', 10, 4), node('b', 10, 7), node('c', 10, 2)],
      work: [work('x', 8, 1, { priority: 5 }), work('g', 4, 2, { gang: true, nominated: ['a', 'b'] }), work('z', 5, 1, { createdAt: 1 })],
      placed: ['x→c×1'],
    },
    {
      // As above, with z of x's request shape: its ranking is the one kept from x (a ranked at 6
      // free), re-scored after the hold took a's 4 cores (6 → 2 < 5): z waits.
      name: "a gang's hold taken at its turn reaches the ranking kept for work of one shape before it",
      nodes: [node('a', 10, 4), node('b', 10, 7), node('c', 10, 5)],
      work: [work('x', 5, 1, { priority: 5 }), work('g', 4, 2, { gang: true, nominated: ['a', 'b'] }), work('z', 5, 1, { createdAt: 1 })],
      placed: ['x→c×1'],
    },
    {
      // Higher-priority work ahead that no nominated node could run (12 cores > a's and b's 10): the
      // gang holds its room as before, and y waits (c has 6 free).
      name: 'higher-priority work that none of its nominated nodes could run does not lift the hold',
      nodes: [node('a', 10), node('b', 10, 7), node('c', 10, 4)],
      work: [work('y', 12, 1, { priority: 5 }), work('g', 4, 2, { gang: true, nominated: ['a', 'b'] }), work('x', 8, 1, { createdAt: 1 })],
      placed: [],
    },
    {
      // One nomination for two members (not a defragmentation's layout): left to the pass, which
      // places the gang by best fit: a (10 free → 6), then a again (6 → 2).
      name: 'a gang with fewer nominations than members is left to the pass',
      nodes: [node('a', 10), node('b', 10, 7)],
      work: [work('g', 4, 2, { gang: true, nominated: ['b'] })],
      placed: ['g→a×2'],
    },
  ];
  it.each(cases)('$name', (c) => {
    const res = placeTasks(c.work, c.nodes);
    expect(res.placements.map((p) => `${p.jobId}→${p.node}×${p.count}`)).toEqual(c.placed);
    // The same plan from a scan of every node (no node buckets).
    expect(placeTasks(c.work, c.nodes, { nodeIndex: false })).toEqual(res);
  });
});

it('a gang whose hold gave way to higher-priority work holds its room at its turn with fair share on too', () => {
  // The rows above, one queue under fair share (the levels by priority: x, then g and z): x on c;
  // the gang waits holding a's 4 cores (6 → 2); z (5 cores) waits.
  const nodes = [node('a', 10, 4), node('b', 10, 7), node('c', 10, 2)];
  const jobs = [work('x', 8, 1, { priority: 5 }), work('g', 4, 2, { gang: true, nominated: ['a', 'b'] }), work('z', 5, 1, { createdAt: 1 })];
  for (const nodeIndex of [true, false]) {
    const res = placeTasks(jobs, nodes, { nodeIndex, fairShare: { capacity: { cpu: 30_000 }, usage: new Map() } });
    expect({ nodeIndex, placed: res.placements.map((p) => `${p.jobId}→${p.node}×${p.count}`) }).toEqual({ nodeIndex, placed: ['x→c×1'] });
  }
});

describe('a gang whose hold gave way to higher-priority work, with backfill (EASY: one reservation a pass)', () => {
  // The row above: x (8 cores, priority 5) on c; the gang, nominated [a, b], waits at its turn
  // holding a's 4 cores (6 → 2). z (5 cores) is blocked behind it: a 2, b 3, c 0 free.
  // Expected ends: a's 4 used cores at 1 s, b's 7 at 2 s, c's 2 at 3 s.
  const nodes = [node('a', 10, 4), node('b', 10, 7), node('c', 10, 2)];
  const releases = [
    { node: 'a', at: 1000, resources: { cpu: 4000 }, count: 1 },
    { node: 'b', at: 2000, resources: { cpu: 7000 }, count: 1 },
    { node: 'c', at: 3000, resources: { cpu: 2000 }, count: 1 },
  ];
  const backfill = { maxReservations: 1, runtimeSeconds: () => 3600, now: 0, releases };
  it.each([
    {
      name: "the hold is the gang's reservation: the one reservation goes to the next blocked work (z)",
      jobs: [work('x', 8, 1, { priority: 5 }), work('g', 4, 2, { gang: true, nominated: ['a', 'b'] }), work('z', 5, 1, { createdAt: 1 })],
      reserved: ['z'],
    },
    {
      // b cordoned (not among the nodes): no layout to hold any more, so the gang is reserved for as any blocked work.
      name: 'a gang whose nominated node is gone gets a reservation as any blocked work',
      jobs: [work('x', 8, 1, { priority: 5 }), work('g', 4, 2, { gang: true, nominated: ['a', 'b'] }), work('z', 5, 1, { createdAt: 1 })],
      without: 'b',
      reserved: ['g'],
    },
    {
      // x (6 cores) fits only a (6 free; b 3, c 0 after x is not there: c has 8): here c is full,
      // so x takes a's whole room (6 → 0). The gang's hold takes nothing (a 0, b 3), so it is
      // reserved for as any blocked work, and z is not.
      name: 'a gang whose hold takes no room (the work ahead took it) gets a reservation as any blocked work',
      jobs: [work('x', 6, 1, { priority: 5 }), work('g', 4, 2, { gang: true, nominated: ['a', 'b'] }), work('z', 5, 1, { createdAt: 1 })],
      full: 'c',
      reserved: ['g'],
      placed: ['x→a×1'],
    },
  ])('$name', ({ jobs, without, full, reserved, placed }) => {
    const live = nodes.filter((n) => n.name !== without).map((n) => (n.name === full ? { ...n, used: { cpu: 10_000 } } : n));
    // With node buckets and scanning every node; without fair share and with it (one queue: the levels by priority).
    for (const [nodeIndex, fair] of [
      [true, false],
      [false, false],
      [true, true],
    ]) {
      const res = placeTasks(jobs, live, {
        nodeIndex,
        backfill: { ...backfill, releases: releases.filter((r) => r.node !== without) },
        ...(fair ? { fairShare: { capacity: { cpu: 30_000 }, usage: new Map() } } : {}),
      });
      expect({
        nodeIndex,
        fair,
        placed: res.placements.map((p) => `${p.jobId}→${p.node}×${p.count}`),
        reserved: (res.reservations ?? []).map((r) => r.jobId),
      }).toEqual({
        nodeIndex,
        fair,
        placed: placed ?? ['x→c×1'],
        reserved,
      });
    }
  });
});

describe('unusedNominations (a kept nomination is used up by a task bound there since)', () => {
  it.each([
    // nothing bound since the nominations: every entry offered
    { nominated: ['a', 'b'], used: undefined, left: ['a', 'b'] },
    // one task bound on a since: a's entry used, b's left
    { nominated: ['a', 'b'], used: { a: 1 }, left: ['b'] },
    // two entries on a, one task bound there: one a left (the first entry is the one used)
    { nominated: ['a', 'a', 'b'], used: { a: 1 }, left: ['a', 'b'] },
    // more bound on a node than nominated there (a task of the job placed by the pass): the entry goes, no more
    { nominated: ['a', 'b'], used: { a: 3, c: 2 }, left: ['b'] },
  ])('$nominated less $used → $left', ({ nominated, used, left }) => {
    expect(unusedNominations(nominated, used ? new Map(Object.entries(used)) : undefined)).toEqual(left);
  });
});
