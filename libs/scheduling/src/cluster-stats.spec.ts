import { parseResources } from '@batchapi/api';
import { allocationRatio, fragmentedGpus, type NodeSnapshot, type PendingWork } from './index';

const node = (name: string, cap: Record<string, string | number>, extra: Partial<NodeSnapshot> = {}): NodeSnapshot => ({
  name,
  capacity: parseResources(cap),
  used: {},
  devices: {},
  gpuCount: Number(cap.gpu ?? 0),
  labels: {},
  taints: [],
  ...extra,
});
const gpuWork = (gpu: number, extra: Partial<PendingWork> = {}): PendingWork => ({
  jobId: 'j',
  queue: 'q',
  priority: 0,
  createdAt: 0,
  resources: parseResources({ cpu: '4', gpu }),
  tasks: 1,
  ...extra,
});

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
