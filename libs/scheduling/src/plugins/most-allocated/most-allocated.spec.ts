import type { NodeSnapshot, PendingWork } from '../../snapshot';
import { DEFAULT_RESOURCE_WEIGHTS, mostAllocated } from './index';

type Resources = PendingWork['resources'];

const Gi = 2 ** 30;

const node = (capacity: Resources): NodeSnapshot => ({
  name: 'n1',
  capacity,
  used: {},
  devices: {},
  gpuCount: Math.floor((capacity.gpu ?? 0) / 1000),
  labels: {},
  taints: [],
});

const work = (resources: Resources, spread = false): PendingWork => ({
  jobId: 'j1',
  queue: 'default',
  priority: 0,
  createdAt: 0,
  resources,
  tasks: 1,
  ...(spread ? { spread } : {}),
});

const cpuNode: Resources = { cpu: 8000, memory: 32 * Gi };
const gpuNode: Resources = { cpu: 64_000, memory: 256 * Gi, gpu: 8000 };

/** One case: the node's `capacity` (default `cpuNode`) and what is `free` on it, the task's `ask`, and the score it gets. */
type Case = { name: string; weights?: Record<string, number>; capacity?: Resources; free: Resources; ask: Resources; spread?: boolean; want: number };

describe('mostAllocated', () => {
  const table: Case[] = [
    // cpu (8−2+1)/8 = 0.875; memory not asked
    { name: 'one resource: the fraction used after one more task', free: { cpu: 2000, memory: 32 * Gi }, ask: { cpu: 1000 }, want: 0.875 },
    // cpu (8−8+1)/8 = 0.125
    { name: 'an empty node scores the task alone', free: cpuNode, ask: { cpu: 1000 }, want: 0.125 },
    // cpu (8−8+8)/8 = 1, memory (32−32+32)/32 = 1 → 1
    { name: 'a task that fills an empty node scores 1', free: cpuNode, ask: { cpu: 8000, memory: 32 * Gi }, want: 1 },
    // cpu (8−6+1)/8 = 0.375, memory (32−16+4)/32 = 0.625 → (1·0.375 + 1·0.625)/2 = 0.5
    { name: 'cpu and memory average with weight 1 each', free: { cpu: 6000, memory: 16 * Gi }, ask: { cpu: 1000, memory: 4 * Gi }, want: 0.5 },
    // cpu (64−32+8)/64 = 0.625, memory (256−128+32)/256 = 0.625, gpu (8−2+1)/8 = 0.875 → (0.625 + 0.625 + 2·0.875)/4 = 0.75
    {
      name: 'gpu weighs 2 by default',
      capacity: gpuNode,
      free: { cpu: 32_000, memory: 128 * Gi, gpu: 2000 },
      ask: { cpu: 8000, memory: 32 * Gi, gpu: 1000 },
      want: 0.75,
    },
    // cpu (64−64+4)/64 = 0.0625, gpu (8−7.5+0.25)/8 = 0.09375 → (0.0625 + 2·0.09375)/3 = 0.083333…
    {
      name: 'a fractional GPU counts in milli-GPU',
      capacity: gpuNode,
      free: { cpu: 64_000, memory: 256 * Gi, gpu: 7500 },
      ask: { cpu: 4000, gpu: 250 },
      want: 0.25 / 3,
    },
    // cpu (8−2+1)/8 = 0.875, memory (32−16+0)/32 skipped (ask 0) → 0.875
    { name: 'a zero request is left out of the average', free: { cpu: 2000, memory: 16 * Gi }, ask: { cpu: 1000, memory: 0 }, want: 0.875 },
    // gpu: the node has none, so only cpu (8−2+1)/8 = 0.875 counts
    { name: 'a resource the node lacks is left out', free: { cpu: 2000, memory: 32 * Gi }, ask: { cpu: 1000, gpu: 1000 }, want: 0.875 },
    // no term: Σw = 0 → 0
    { name: 'a task asking for nothing scores 0', free: cpuNode, ask: {}, want: 0 },
    // cpu 0.875, memory (32−16+4)/32 = 0.625 → (3·0.875 + 1·0.625)/4 = 0.8125
    { name: 'custom weights', weights: { cpu: 3, memory: 1 }, free: { cpu: 2000, memory: 16 * Gi }, ask: { cpu: 1000, memory: 4 * Gi }, want: 0.8125 },
    // fpga has no weight → 1: cpu 0.875, fpga (4−2+1)/4 = 0.75 → (0.875 + 0.75)/2 = 0.8125
    {
      name: 'a resource without a weight weighs 1',
      capacity: { ...cpuNode, 'example.com/fpga': 4 },
      free: { cpu: 2000, memory: 32 * Gi, 'example.com/fpga': 2 },
      ask: { cpu: 1000, 'example.com/fpga': 1 },
      want: 0.8125,
    },
    // memory weight 0: (1·0.875 + 0·0.625)/(1 + 0) = 0.875
    {
      name: 'a zero weight ignores the resource',
      weights: { cpu: 1, memory: 0 },
      free: { cpu: 2000, memory: 16 * Gi },
      ask: { cpu: 1000, memory: 4 * Gi },
      want: 0.875,
    },
    // −(cpu (8−2+1)/8) = −0.875: the fullest node now scores lowest
    { name: 'spread negates: the fullest node scores lowest', free: { cpu: 2000, memory: 32 * Gi }, ask: { cpu: 1000 }, spread: true, want: -0.875 },
    // −(cpu (8−8+1)/8) = −0.125: the emptiest node scores highest
    { name: 'spread negates: the emptiest node scores highest', free: cpuNode, ask: { cpu: 1000 }, spread: true, want: -0.125 },
  ];

  it.each(table)('$name', ({ weights, capacity = cpuNode, free, ask, spread, want }) => {
    const plugin = mostAllocated(weights);
    const n = node(capacity);
    expect(plugin.score(work(ask, spread), n, free, n.gpuCount)).toBeCloseTo(want, 12);
  });

  it('defaults to cpu 1, memory 1, gpu 2 and has weight 1 in the sum', () => {
    expect(DEFAULT_RESOURCE_WEIGHTS).toStrictEqual({ cpu: 1, memory: 1, gpu: 2 });
    expect(mostAllocated()).toMatchObject({ name: 'MostAllocated', weight: 1 });
  });
});
