import { GPU_MILLI, parseResources, type ResourceVector } from '@batchapi/api';
import { nodeSnapshot, pendingWork, rng } from '../../test/fixtures';
import {
  domainScore,
  GpuFragmentation,
  mostAllocated,
  type NodeSnapshot,
  packingScores,
  type PendingWork,
  pickDevices,
  requestShapes,
  type ScorePlugin,
  tasksThatFit,
} from '../index';
import { freeDeviceCount, scoreBound } from './node-buckets';

const NODES: NodeSnapshot[] = [
  nodeSnapshot('cpu', { cpu: '32', memory: '128Gi' }, { labels: { rack: 'r0' } }),
  nodeSnapshot('small', { cpu: '3', memory: '5Gi' }, { labels: { rack: 'r1' } }),
  nodeSnapshot('gpu8', { cpu: '96', memory: '768Gi', gpu: 8 }, { labels: { rack: 'r0' } }),
  nodeSnapshot('gpu2', { cpu: '16', memory: '64Gi', gpu: 2 }, { labels: { rack: 'r2' } }),
];

const WORK: PendingWork[] = [
  pendingWork('cpu', 1, { cpu: '1', memory: '2Gi' }),
  pendingWork('odd', 1, { cpu: '333m', memory: '777Mi' }),
  pendingWork('cpu-only', 1, { cpu: '2' }),
  pendingWork('memory-only', 1, { memory: '3Gi' }),
  pendingWork('spread', 1, { cpu: '1', memory: '1Gi' }, { spread: true }),
  pendingWork('share', 1, { cpu: '1', memory: '4Gi', gpu: 0.25 }),
  pendingWork('whole', 1, { cpu: '4', memory: '16Gi', gpu: 1 }),
  pendingWork('two', 1, { cpu: '8', memory: '32Gi', gpu: 2 }),
  // Refused by the API's schema, but a pass must not misplace it: a negative GPU ask.
  { ...pendingWork('negative', 1, { cpu: '1' }), resources: { cpu: 1000, gpu: -500 } },
];

/** A room of `node` after random use, with random device use (absent device: unused). */
function randomRoom(node: NodeSnapshot, rand: () => number): { free: ResourceVector; devices: Record<string, number> } {
  const free: ResourceVector = {};
  for (const [k, v] of Object.entries(node.capacity)) free[k] = Math.floor(v * rand() ** 0.5);
  const devices: Record<string, number> = {};
  for (let d = 0; d < node.gpuCount; d++) {
    const r = rand();
    if (r < 0.3) devices[d] = GPU_MILLI;
    else if (r < 0.6) devices[d] = [250, 500, 750][Math.floor(rand() * 3)];
  }
  if (node.gpuCount) free.gpu = node.gpuCount * GPU_MILLI - Object.values(devices).reduce((a, b) => a + b, 0);
  return { free, devices };
}

describe('score bounds (ScorePlugin.bound): no score above its bound, wherever one task fits', () => {
  const mix = requestShapes(WORK.map((w) => ({ resources: w.resources, count: 1 + w.jobId.length })));
  const cases: Array<[string, readonly ScorePlugin[]]> = [
    ['packingScores (MostAllocated off GPU nodes, the fragmentation gradient)', packingScores(mix)],
    ['MostAllocated, default weights', [mostAllocated()]],
    ['MostAllocated, weights not whole numbers', [mostAllocated({ cpu: 0.3, memory: 1.7, gpu: 2.9 })]],
    ['GpuFragmentation', [GpuFragmentation]],
    ['the default scores together', [mostAllocated(), GpuFragmentation]],
    [
      'TopologyDomain',
      [
        domainScore(
          NODES.map((n, k) => ({ ...n, used: parseResources({ cpu: `${k}` }) })),
          [{ name: 'rack', label: 'rack' }],
        )!,
      ],
    ],
  ];
  it.each(cases)('%s: 20,000 random rooms of 4 node kinds, 9 shapes', (_name, scores) => {
    const rand = rng(7);
    let checked = 0;
    let finite = 0;
    const above: unknown[] = [];
    while (checked < 20_000) {
      const node = NODES[Math.floor(rand() * NODES.length)];
      const work = WORK[Math.floor(rand() * WORK.length)];
      const { free, devices } = randomRoom(node, rand);
      // Only rooms where one task fits (what a ranking scores), devices included.
      if (tasksThatFit(work.resources, free) < 1 || (work.resources.gpu && !pickDevices(devices, node.gpuCount, work.resources.gpu))) continue;
      let score = 0;
      const fd = freeDeviceCount({ node, free, devices });
      for (const p of scores) score += p.weight * p.score(work, node, free, fd, devices);
      const bound = scoreBound(work, node, scores);
      if (!(score <= bound)) above.push({ node: node.name, work: work.jobId, free, devices, score, bound });
      checked++;
      if (bound < Infinity) finite++;
    }
    expect(above).toEqual([]);
    // Most of the rooms checked had a bound to check against (GPU work has none under the gradient).
    expect(finite).toBeGreaterThan(checked / 2);
  });

  it('is Infinity when a plugin gives none or has a negative weight, and a weight of 0 adds nothing', () => {
    const node = NODES[0];
    const work = WORK[0];
    const none: ScorePlugin = { name: 'NoBound', weight: 1, score: () => 0 };
    const bounded: ScorePlugin = { name: 'Half', weight: 2, score: () => 0.5, bound: () => 0.5 };
    expect(scoreBound(work, node, [bounded])).toBe(1); // 2 × 0.5
    expect(scoreBound(work, node, [bounded, none])).toBe(Infinity);
    expect(scoreBound(work, node, [{ ...bounded, weight: -1 }])).toBe(Infinity);
    expect(scoreBound(work, node, [bounded, { ...none, weight: 0 }])).toBe(1);
    expect(scoreBound(work, node, [{ ...bounded, bound: () => NaN }])).toBe(Infinity);
  });
});
