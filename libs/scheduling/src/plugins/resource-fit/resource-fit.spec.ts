import type { NodeSnapshot, PendingWork } from '../../snapshot';
import { pickDevices, ResourceKinds, tasksThatFit } from './index';

type Resources = PendingWork['resources'];

const Gi = 2 ** 30;

const node = (capacity: Resources, used: Resources = {}): NodeSnapshot => ({
  name: 'n1',
  capacity,
  used,
  devices: {},
  gpuCount: Math.floor((capacity.gpu ?? 0) / 1000),
  labels: {},
  taints: [],
});

const work = (resources: Resources): PendingWork => ({ jobId: 'j1', queue: 'default', priority: 0, createdAt: 0, resources, tasks: 1 });

type Refusal = ReturnType<typeof ResourceKinds.filter>;

const tooSmall = (resource: string): Refusal => ({
  code: 'Unschedulable',
  plugin: 'ResourceKinds',
  reason: `capacity of ${resource} too small`,
  detail: { kind: 'capacity', resource },
});

const cpuNode: Resources = { cpu: 8000, memory: 32 * Gi };
const gpuNode: Resources = { cpu: 64_000, memory: 256 * Gi, gpu: 8000 };

describe('ResourceKinds', () => {
  const table: Array<{ name: string; resources: Resources; capacity: Resources; used?: Resources; want: Refusal }> = [
    { name: 'a request within capacity passes', resources: { cpu: 2000, memory: 4 * Gi }, capacity: cpuNode, want: undefined },
    { name: 'a request equal to capacity passes', resources: { cpu: 8000, memory: 32 * Gi }, capacity: cpuNode, want: undefined },
    { name: 'no requests at all pass', resources: {}, capacity: cpuNode, want: undefined },
    // gpu: 0 asks for nothing, so a node without GPUs is fine
    { name: 'a zero request of a resource the node lacks passes', resources: { cpu: 1000, gpu: 0 }, capacity: cpuNode, want: undefined },
    // capacity, not free room: a node that is full now may take the work later
    { name: 'a node that is full now still passes', resources: { cpu: 8000 }, capacity: cpuNode, used: cpuNode, want: undefined },
    // 16000 > 8000
    { name: 'capacity smaller than the ask refuses', resources: { cpu: 16_000 }, capacity: cpuNode, want: tooSmall('cpu') },
    // 33 Gi > 32 Gi
    { name: 'memory capacity smaller than the ask refuses', resources: { cpu: 1000, memory: 33 * Gi }, capacity: cpuNode, want: tooSmall('memory') },
    { name: 'GPU work on a CPU node refuses', resources: { cpu: 1000, gpu: 500 }, capacity: cpuNode, want: tooSmall('gpu') },
    // 9000 > 8000 milli-GPU
    { name: 'more GPUs than the node has refuses', resources: { cpu: 1000, gpu: 9000 }, capacity: gpuNode, want: tooSmall('gpu') },
    { name: 'an extended resource the node lacks refuses', resources: { 'example.com/fpga': 1 }, capacity: cpuNode, want: tooSmall('example.com/fpga') },
    // cpu fails before gpu is looked at
    { name: 'the first resource too small is reported', resources: { cpu: 16_000, gpu: 1000 }, capacity: cpuNode, want: tooSmall('cpu') },
  ];

  it.each(table)('$name', ({ resources, capacity, used, want }) => {
    expect(ResourceKinds.filter(work(resources), node(capacity, used))).toStrictEqual(want);
  });
});

describe('tasksThatFit', () => {
  const table: Array<{ name: string; need: Resources; free: Resources; want: number }> = [
    // cpu ⌊7000/2000⌋ = 3, memory ⌊16/4⌋ = 4 → min 3
    { name: 'cpu binds', need: { cpu: 2000, memory: 4 * Gi }, free: { cpu: 7000, memory: 16 * Gi }, want: 3 },
    // cpu ⌊8000/1000⌋ = 8, memory ⌊10/4⌋ = 2 → min 2
    { name: 'memory binds', need: { cpu: 1000, memory: 4 * Gi }, free: { cpu: 8000, memory: 10 * Gi }, want: 2 },
    // cpu ⌊64000/1000⌋ = 64, gpu ⌊2000/1000⌋ = 2 → min 2
    { name: 'gpu counts as a dimension', need: { cpu: 1000, gpu: 1000 }, free: { cpu: 64_000, gpu: 2000 }, want: 2 },
    // gpu ⌊3500/500⌋ = 7
    { name: 'fractional GPUs divide the free milli-GPU', need: { gpu: 500 }, free: { cpu: 1000, gpu: 3500 }, want: 7 },
    // ⌊4000/4000⌋ = 1
    { name: 'an exact fit is one task', need: { cpu: 4000 }, free: { cpu: 4000 }, want: 1 },
    // ⌊3999/4000⌋ = 0
    { name: 'free room one unit short fits none', need: { cpu: 4000 }, free: { cpu: 3999 }, want: 0 },
    // ⌊4000/8000⌋ = 0
    { name: 'capacity smaller than the ask fits none', need: { cpu: 8000 }, free: { cpu: 4000 }, want: 0 },
    // free.gpu absent reads as 0: ⌊0/1000⌋ = 0
    { name: 'a resource absent from free room fits none', need: { cpu: 1000, gpu: 1000 }, free: { cpu: 8000 }, want: 0 },
    // over-committed: ⌊−1000/1000⌋ = −1, clamped to 0
    { name: 'negative free room fits none', need: { cpu: 1000 }, free: { cpu: -1000 }, want: 0 },
    // gpu: 0 is skipped: cpu ⌊3000/1000⌋ = 3
    { name: 'zero requests are ignored', need: { cpu: 1000, gpu: 0 }, free: { cpu: 3000 }, want: 3 },
    // nothing bounds the count: the caller caps it by the tasks left
    { name: 'a task asking for nothing fits without bound', need: { cpu: 0 }, free: {}, want: Number.POSITIVE_INFINITY },
    { name: 'an empty request fits without bound', need: {}, free: { cpu: 1000 }, want: Number.POSITIVE_INFINITY },
  ];

  it.each(table)('$name', ({ need, free, want }) => {
    expect(tasksThatFit(need, free)).toBe(want);
  });
});

describe('pickDevices', () => {
  const table: Array<{ name: string; devices: Record<string, number>; gpuCount: number; share: number; want: number[] | undefined }> = [
    { name: 'no GPU asked takes no device', devices: {}, gpuCount: 8, share: 0, want: [] },
    { name: 'no GPU asked on a CPU node takes no device', devices: {}, gpuCount: 0, share: 0, want: [] },
    { name: 'a negative share takes no device', devices: {}, gpuCount: 8, share: -500, want: [] },
    { name: 'one whole GPU takes the first free device', devices: {}, gpuCount: 8, share: 1000, want: [0] },
    // device 0 holds 250 milli-GPU: not fully free
    { name: 'whole GPUs skip a partly used device', devices: { 0: 250 }, gpuCount: 4, share: 2000, want: [1, 2] },
    // an entry of 0 is a free device
    { name: 'a device recorded at 0 is free', devices: { 0: 1000, 1: 0 }, gpuCount: 2, share: 1000, want: [1] },
    { name: 'all eight devices for an 8-GPU task', devices: {}, gpuCount: 8, share: 8000, want: [0, 1, 2, 3, 4, 5, 6, 7] },
    // 4 devices, 1 full and 1 at 100 → 2 free < 3 asked
    { name: 'too few fully free devices fits none', devices: { 0: 1000, 2: 100 }, gpuCount: 4, share: 3000, want: undefined },
    // 2 devices < 4 asked
    { name: 'capacity smaller than the ask fits none', devices: {}, gpuCount: 2, share: 4000, want: undefined },
    { name: 'a whole GPU on a CPU node fits none', devices: {}, gpuCount: 0, share: 1000, want: undefined },
    // device indices ≥ gpuCount are not devices of this node
    { name: 'entries beyond gpuCount are ignored', devices: { 0: 1000, 5: 0 }, gpuCount: 2, share: 1000, want: [1] },
    // all free, all used 0: the first wins ties
    { name: 'a fraction on an all-free node takes device 0', devices: {}, gpuCount: 8, share: 500, want: [0] },
    // used 250, 750, 500: 750 + 250 = 1000 ≤ 1000 → device 1, the fullest
    { name: 'a fraction packs onto the fullest device', devices: { 0: 250, 1: 750, 2: 500 }, gpuCount: 4, share: 250, want: [1] },
    // 750 + 300 = 1050 > 1000 skips device 1; 500 + 300 = 800 fits device 2, fuller than 0 (250) and 3 (0)
    { name: 'a fraction skips the fullest device it no longer fits on', devices: { 0: 250, 1: 750, 2: 500 }, gpuCount: 4, share: 300, want: [2] },
    // device 1 at 100 is fuller than free device 0: keep device 0 whole
    { name: 'a fraction prefers a partly used device over a free one', devices: { 1: 100 }, gpuCount: 2, share: 500, want: [1] },
    // devices 1 and 2 both at 500: the lower index wins
    { name: 'ties on the fullest device go to the lower index', devices: { 1: 500, 2: 500 }, gpuCount: 4, share: 500, want: [1] },
    // 1 + 999 = 1000 ≤ 1000
    { name: 'a fraction that exactly fills a device fits', devices: { 0: 1 }, gpuCount: 1, share: 999, want: [0] },
    // 1000 + 200 > 1000, 900 + 200 = 1100 > 1000
    { name: 'a fraction with no device room fits none', devices: { 0: 1000, 1: 900 }, gpuCount: 2, share: 200, want: undefined },
    { name: 'a fraction on a CPU node fits none', devices: {}, gpuCount: 0, share: 500, want: undefined },
  ];

  it.each(table)('$name', ({ devices, gpuCount, share, want }) => {
    expect(pickDevices(devices, gpuCount, share)).toStrictEqual(want);
  });
});
