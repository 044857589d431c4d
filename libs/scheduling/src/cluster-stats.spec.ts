import { nodeSnapshot, pendingWork } from '../test/fixtures';
import { allocationRatio, fragmentedGpus, type PendingWork } from './index';

const node = nodeSnapshot;
const gpuWork = (gpu: number, extra: Partial<PendingWork> = {}): PendingWork => pendingWork('j', 1, { cpu: '4', gpu }, extra);

describe('cluster stats', () => {
  it('allocation ratio per resource', () => {
    // cpu: (6 + 2) / (8 + 8) = 0.5; memory: 0 / 32Gi
    const r = allocationRatio([
      node('a', { cpu: '8', memory: '16Gi' }, { used: { cpu: 6000 } }),
      node('b', { cpu: '8', memory: '16Gi' }, { used: { cpu: 2000 } }),
    ]);
    expect(r).toEqual({ cpu: 0.5, memory: 0 });
  });

  it.each([
    // node a: 1 free device of 8, pending wants 2 whole GPUs → a's 1 is fragmented; b has 4 free → usable
    ['free devices too few together', [gpuWork(2)], 1],
    // nothing pending wants a GPU → nothing counts as fragmented
    ['no GPU demand', [], 0],
    // pending wants model H100; both nodes are A100 → all 1 + 4 free are unusable
    ['wrong model everywhere', [gpuWork(1, { selector: { 'gpu.model': 'H100' } })], 5],
  ])('%s → %i', (_n, pending, expected) => {
    const busy = (k: number) => Object.fromEntries(Array.from({ length: k }, (_, d) => [d, 1000]));
    const nodes = [
      node('a', { cpu: '64', gpu: 8 }, { devices: busy(7), labels: { 'gpu.model': 'A100' } }),
      node('b', { cpu: '64', gpu: 8 }, { devices: busy(4), labels: { 'gpu.model': 'A100' } }),
    ];
    expect(fragmentedGpus(nodes, pending as PendingWork[])).toBe(expected);
  });
});
