import type { NodeSnapshot, PendingWork } from '../../snapshot';
import { GpuFragmentation } from './index';

type Resources = PendingWork['resources'];

const node = (gpuCount: number): NodeSnapshot => ({
  name: 'n1',
  capacity: { cpu: 64_000, memory: 256 * 2 ** 30, ...(gpuCount ? { gpu: gpuCount * 1000 } : {}) },
  used: {},
  devices: {},
  gpuCount,
  labels: {},
  taints: [],
});

const work = (resources: Resources): PendingWork => ({ jobId: 'j1', queue: 'default', priority: 0, createdAt: 0, resources, tasks: 1 });

describe('GpuFragmentation', () => {
  const table: Array<{ name: string; ask: Resources; gpuCount: number; freeDevices: number; want: number }> = [
    { name: 'CPU work on a CPU node is neutral', ask: { cpu: 1000 }, gpuCount: 0, freeDevices: 0, want: 0 },
    // the filter keeps GPU work off CPU nodes; the score itself stays neutral
    { name: 'GPU work on a CPU node is neutral', ask: { cpu: 1000, gpu: 1000 }, gpuCount: 0, freeDevices: 0, want: 0 },
    { name: 'CPU work on a GPU node is penalized', ask: { cpu: 1000 }, gpuCount: 8, freeDevices: 8, want: -0.5 },
    { name: 'gpu: 0 is work without GPUs', ask: { cpu: 1000, gpu: 0 }, gpuCount: 8, freeDevices: 8, want: -0.5 },
    // the penalty does not depend on how busy the GPUs are
    { name: 'CPU work on a busy GPU node is penalized the same', ask: { cpu: 1000 }, gpuCount: 8, freeDevices: 0, want: -0.5 },
    // ⌈1000/1000⌉ = 1 < 8 devices, all 8 free
    { name: 'one GPU breaks an all-free 8-GPU node', ask: { cpu: 1000, gpu: 1000 }, gpuCount: 8, freeDevices: 8, want: -0.25 },
    // ⌈500/1000⌉ = 1 < 8, all 8 free
    { name: 'a fraction breaks an all-free node', ask: { cpu: 1000, gpu: 500 }, gpuCount: 8, freeDevices: 8, want: -0.25 },
    // ⌈4000/1000⌉ = 4 < 8, all 8 free
    { name: 'half the devices break an all-free node', ask: { cpu: 1000, gpu: 4000 }, gpuCount: 8, freeDevices: 8, want: -0.25 },
    // ⌈8000/1000⌉ = 8, not < 8
    { name: 'a request for every device uses the node whole', ask: { cpu: 1000, gpu: 8000 }, gpuCount: 8, freeDevices: 8, want: 0 },
    // ⌈500/1000⌉ = 1, not < 1
    { name: 'a fraction on an all-free 1-GPU node is neutral', ask: { cpu: 1000, gpu: 500 }, gpuCount: 1, freeDevices: 1, want: 0 },
    // 6 free of 8: already broken
    { name: 'one GPU on a partly used node is neutral', ask: { cpu: 1000, gpu: 1000 }, gpuCount: 8, freeDevices: 6, want: 0 },
    { name: 'a fraction on a node with no free device is neutral', ask: { cpu: 1000, gpu: 250 }, gpuCount: 8, freeDevices: 0, want: 0 },
  ];

  it.each(table)('$name', ({ ask, gpuCount, freeDevices, want }) => {
    expect(GpuFragmentation.score(work(ask), node(gpuCount), {}, freeDevices)).toBe(want);
  });
});
