import { parseResources } from '@batchapi/api';
import { DEFAULT_FILTERS, type NodeSnapshot, placeTasks, type PendingWork } from '../../index';

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
});
