import { parseResources } from '@batchapi/api';
import { DEFAULT_FILTERS, type FillNode, fillTier, type NodeSnapshot, placeTasks, type PendingWork } from '../../index';

const bin = (name: string): NodeSnapshot => ({ name, capacity: parseResources({ cpu: '100' }), used: {}, devices: {}, gpuCount: 0, labels: {}, taints: [] });
const item = (i: number, cores: number, createdAt = 0): PendingWork => ({
  jobId: `i${String(i).padStart(2, '0')}`,
  queue: 'q',
  priority: 0,
  createdAt,
  resources: { cpu: cores * 1000 },
  tasks: 1,
});

describe('batch fill', () => {
  // A triplet instance: 45+30+25, 44+29+27, 40+35+25 — three full bins. Decreasing best fit
  // puts 45, 44 together (89) and then cannot use the rest well; filling node by node finds the triplets.
  const sizes = [45, 30, 25, 44, 29, 27, 40, 35, 25];
  const nodes = ['a', 'b', 'c', 'd'].map(bin);

  it('packs simultaneous work into the optimal number of nodes', () => {
    const res = placeTasks(
      sizes.map((s, i) => item(i, s)),
      nodes,
      { filters: DEFAULT_FILTERS },
    );
    expect(res.placements.reduce((n, p) => n + p.count, 0)).toBe(9);
    expect(new Set(res.placements.map((p) => p.node)).size).toBe(3);
    // job at a time, decreasing best fit: 45+44 share a node, then 40+35+25, 30+29+27 (86), 25 alone → 4
    const greedy = placeTasks(
      sizes.map((s, i) => item(i, s)),
      nodes,
      { batchFill: false },
    );
    expect(new Set(greedy.placements.map((p) => p.node)).size).toBe(4);
  });

  it('does not apply to work submitted at different instants (queue order first)', () => {
    // the same items, each a moment apart: placed one by one in age order
    const res = placeTasks(
      sizes.map((s, i) => item(i, s, i)),
      nodes,
    );
    expect(res.placements.map((p) => p.jobId)).toEqual(sizes.map((_, i) => `i${String(i).padStart(2, '0')}`));
  });

  it.each([
    // [window, nodes]: the triplet items created in decreasing size, 0, 1, … 8 apart (45, 44, 40, 35, 30, 29, 27, 25, 25).
    // Window 8 spans them all (8 − 0 ≤ 8): one tier, the 3 triplet nodes. Window 7 leaves the last 25 (at 8) to the
    // per-job pass: the fill packs 45+30+25, 44+29+27 and 40+35, and that 25 joins 40+35 (100) → 3 nodes still.
    // Window 0, one at a time, fullest node that fits: 45+44 (89), 40+35 (75), 30+29+27 (86), the first 25 → 75+25,
    // the last 25 fits none (89+25, 86+25 > 100) → a fourth node.
    [8, 3],
    [7, 3],
    [0, 4],
  ])('with a batching window of %d, work created within it of the first is one tier: %d nodes', (window, used) => {
    const decreasing = [...sizes].sort((a, b) => b - a);
    const res = placeTasks(
      decreasing.map((s, i) => item(i, s, i)),
      nodes,
      { batchWindow: window },
    );
    expect(res.placements.reduce((n, p) => n + p.count, 0)).toBe(9);
    expect(new Set(res.placements.map((p) => p.node)).size).toBe(used);
  });

  it('packs work tied to pools by selectors within each pool, as well as each pool alone', () => {
    // the triplets twice, once for pool a's nodes and once for pool b's, shuffled together: 3 nodes each (6), never across pools
    const pooled =
      (pool: string) =>
      (n: NodeSnapshot): NodeSnapshot => ({ ...n, name: `${pool}-${n.name}`, labels: { pool } });
    const poolNodes = [...nodes.map(pooled('a')), ...nodes.map(pooled('b'))];
    const work = [
      ...sizes.map((s, i) => ({ ...item(i, s), selector: { pool: 'a' } })),
      ...sizes.map((s, i) => ({ ...item(i + 50, s), selector: { pool: 'b' } })),
    ];
    const shuffled = work
      .map((w, i) => ({ w, k: (i * 7) % work.length }))
      .sort((x, y) => x.k - y.k)
      .map((x) => x.w);
    const res = placeTasks(shuffled, poolNodes, { filters: DEFAULT_FILTERS });
    expect(res.placements.reduce((n, p) => n + p.count, 0)).toBe(18);
    expect(new Set(res.placements.map((p) => p.node)).size).toBe(6);
    for (const p of res.placements) expect(p.node.slice(0, 1)).toBe(work.find((w) => w.jobId === p.jobId)!.selector.pool);
  });

  it('packs whole-GPU work over wholly free devices, each device to one task, and fills no CPU-only work on GPU nodes', () => {
    const gpuNode = (name: string, devices: Record<string, number> = {}): FillNode => ({
      node: { name, capacity: parseResources({ cpu: '64', gpu: '8' }), used: {}, devices, gpuCount: 8, labels: {}, taints: [] },
      free: { cpu: 64_000, gpu: 8000 - Object.values(devices).reduce((a, b) => a + b, 0) },
      devices: { ...devices },
    });
    const gpus = (id: string, g: number): PendingWork => ({ ...item(0, 1), jobId: id, resources: { cpu: 1000, gpu: g * 1000 } });
    const tier = [gpus('g5', 5), gpus('g4a', 4), gpus('g6', 6), gpus('g3', 3), gpus('g4b', 4), gpus('g2', 2), { ...item(9, 10), jobId: 'cpu' }];
    // c has half of device 0 held by a fractional task: 7 whole devices, and it is the fullest, so it goes first.
    // c: 5+2 = 7 (4+3 fills it as well, found later); a: 4+4 = 8; b: 6 (3 does not fit beside it) — 3 and the CPU-only job stay for the per-job pass
    const filled = fillTier(tier, [gpuNode('a'), gpuNode('b'), gpuNode('c', { 0: 500 })], []);
    const on = (node: string) => filled.filter((f) => f.node === node);
    expect(on('c').map((f) => f.jobId)).toEqual(['g5', 'g2']);
    expect(on('a').map((f) => f.jobId)).toEqual(['g4a', 'g4b']);
    expect(on('b').map((f) => f.jobId)).toEqual(['g6']);
    for (const [node, gpusHeld] of [
      ['a', 8],
      ['b', 6],
      ['c', 7],
    ] as const) {
      const held = on(node).flatMap((f) => f.devices.flat());
      expect(held.length).toBe(gpusHeld);
      expect(new Set(held).size).toBe(held.length); // no device twice
      if (node === 'c') expect(held).not.toContain(0);
    }
    expect(filled.find((f) => f.jobId === 'cpu' || f.jobId === 'g3')).toBeUndefined();
  });

  it.each([
    {
      name: 'goes back to an earlier node for its next exact fill when a later node has none',
      sizes: [52, 51, 41, 39, 38, 36, 21, 12, 10],
      // Node by node (minimum bin slack, heaviest first) takes the first exact fill of n0, 52+38+10, and then n1 has
      // none: 51+36+12 = 99, n2 41+39 = 80, n3 21 — 4 nodes. The exact search goes back to n0's next exact fill,
      // 52+36+12 = 100; then n1 51+39+10 = 100 and n2 41+38+21 = 100 — 3 nodes, every one full.
      want: ['52+36+12', '51+39+10', '41+38+21'],
    },
    {
      name: 'a last node that takes every task left need not be full',
      sizes: [60, 50, 40, 30],
      // n0: 60+40 = 100 exactly; n1 takes 50+30 = 80, all that is left
      want: ['60+40', '50+30'],
    },
    {
      name: 'falls back to minimum bin slack node by node when no plan fills every node',
      sizes: [70, 50, 40],
      // No set makes 100 and none holds all three (160): the exact search finds nothing. Node by node, n0 takes the
      // least slack, 50+40 = 90 (70 alone leaves 30; 70+50 and 70+40 do not fit), n1 takes 70
      want: ['50+40', '70'],
    },
  ])('$name', ({ sizes, want }) => {
    const cpuBins: FillNode[] = ['n0', 'n1', 'n2', 'n3'].map((name) => ({ node: bin(name), free: { cpu: 100_000 } }));
    const filled = fillTier(
      sizes.map((s, i) => item(i, s)),
      cpuBins,
      [],
    );
    const byNode = new Map<string, number[]>();
    for (const f of filled) byNode.set(f.node, [...(byNode.get(f.node) ?? []), sizes[Number(f.jobId.slice(1))]]);
    expect([...byNode.values()].map((s) => s.join('+'))).toEqual(want);
  });

  it('skips tasks that leave room no task fits, so the plan is found within fewer steps', () => {
    // The first example: beside 52, 41 leaves 100 − 52 − 41 = 7 and 39 leaves 9, below the lightest task (10): no
    // task fits that room, so the fill can be neither full nor hold every task, and neither is tried (nor 12 beside
    // 51+36 once n0 holds 10: room 1). With them skipped the three-node plan is found within 13 steps (tasks tried);
    // counted without the skip it needs 18, and with 12 steps the search runs out and node by node gives 4 nodes.
    const sizes = [52, 51, 41, 39, 38, 36, 21, 12, 10];
    const nodesUsed = (steps: number) => {
      const cpuBins: FillNode[] = ['n0', 'n1', 'n2', 'n3'].map((name) => ({ node: bin(name), free: { cpu: 100_000 } }));
      return new Set(
        fillTier(
          sizes.map((s, i) => item(i, s)),
          cpuBins,
          [],
          steps,
        ).map((f) => f.node),
      ).size;
    };
    expect(nodesUsed(13)).toBe(3);
    expect(nodesUsed(12)).toBe(4);
  });

  it.each([
    // 8,000 one-task jobs of 1, 2, … 8,000 millicores (8,000 · 8,001 / 2 = 32,004,000 in all; 8,000 shapes, as deep a
    // search: it overflowed the call stack before) on two nodes of 32,003,999: the exact plan takes 8,000 down to 2 on
    // n0 (32,004,000 − 1, full; 7,999 tasks tried) and the 1 left on n1.
    { steps: 20_000, n0: { tasks: 7999, sum: 32_003_999 }, n1: { tasks: 1, sum: 1 } },
    // With 3,000 steps the exact plan runs out; node by node, each node takes the heaviest first until its 3,000 steps
    // end (2,999 tasks): n0 8,000 down to 5,002 ((5,002 + 8,000) · 2,999 / 2 = 19,496,499), n1 5,001 down to 2,003
    // ((2,003 + 5,001) · 2,999 / 2 = 10,502,498).
    { steps: 3000, n0: { tasks: 2999, sum: 19_496_499 }, n1: { tasks: 2999, sum: 10_502_498 } },
  ])('searches thousands of shapes without overflowing the call stack ($steps steps)', ({ steps, n0, n1 }) => {
    const big = (name: string): FillNode => ({ node: { ...bin(name), capacity: { cpu: 32_003_999 } }, free: { cpu: 32_003_999 } });
    const tier = Array.from({ length: 8000 }, (_, i): PendingWork => ({ ...item(0, 0), jobId: `m${i + 1}`, resources: { cpu: i + 1 } }));
    const filled = fillTier(tier, [big('n0'), big('n1')], [], steps);
    const on = (node: string) => {
      const cpus = filled.filter((f) => f.node === node).map((f) => Number(f.jobId.slice(1)));
      return { tasks: cpus.length, sum: cpus.reduce((a, b) => a + b, 0) };
    };
    expect(on('n0')).toEqual(n0);
    expect(on('n1')).toEqual(n1);
  });
});
