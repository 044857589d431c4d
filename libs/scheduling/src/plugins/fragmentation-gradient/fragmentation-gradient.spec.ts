import type { ResourceVector } from '@batchapi/api';
import type { NodeSnapshot, PendingWork } from '../../index';
import { fragmentation, fragmentationGradient, packingScores, type RequestShape, requestShapes } from '../../index';
import { placeTasks } from '../../index';

const gpuNode = (name: string, devices: Record<string, number> = {}, cpu = 64_000): NodeSnapshot => ({
  name,
  capacity: { cpu: 64_000, memory: 256 * 2 ** 30, gpu: 8000 },
  used: { cpu: 64_000 - cpu },
  devices,
  gpuCount: 8,
  labels: {},
  taints: [],
});

describe('fragmentation', () => {
  const free = { cpu: 64_000, memory: 256 * 2 ** 30 };
  it.each([
    // one device half used (500 free): a 0.6 share cannot use its 500; 7 free devices are usable → 500
    { name: "shares larger than a device's free part", shapes: [{ resources: { cpu: 1000, gpu: 600 }, weight: 1 }], devices: { 0: 500 }, want: 500 },
    // whole-GPU requests cannot use partly used devices: 500 lost
    { name: 'whole GPUs cannot use partly used devices', shapes: [{ resources: { cpu: 1000, gpu: 1000 }, weight: 1 }], devices: { 0: 500 }, want: 500 },
    // 8-GPU requests with one device busy: none of the 7 free GPUs usable → 7000
    {
      name: 'a request larger than the whole devices left loses them all',
      shapes: [{ resources: { cpu: 1000, gpu: 8000 }, weight: 1 }],
      devices: { 0: 1000 },
      want: 7000,
    },
    // mix 3:1 of 0.6-shares (lose 500) and 8-GPU (lose 7500): (3·500 + 1·7500)/4 = 2250
    {
      name: 'weights average the shapes',
      shapes: [
        { resources: { cpu: 1000, gpu: 600 }, weight: 3 },
        { resources: { cpu: 1000, gpu: 8000 }, weight: 1 },
      ],
      devices: { 0: 500 },
      want: 2250,
    },
    // requests without GPUs lose nothing
    { name: 'CPU-only requests do not count', shapes: [{ resources: { cpu: 1000 }, weight: 1 }], devices: { 0: 500 }, want: 0 },
  ])('$name', ({ shapes, devices, want }) => {
    expect(fragmentation(shapes, free, devices, 8)).toBe(want);
  });

  it('counts all free GPUs as lost when the node has no CPU left for the requests', () => {
    // 8 free GPUs, 500m CPU free; GPU requests need 4 CPUs → all 8000 lost
    expect(fragmentation([{ resources: { cpu: 4000, gpu: 1000 }, weight: 1 }], { cpu: 500, memory: 2 ** 40 }, {}, 8)).toBe(8000);
  });

  it.each([
    // 8 free GPUs, 20 cores free; 1 GPU + 8 cores a task: ⌊20/8⌋ = 2 tasks use 2000 → 8000 − 2000 = 6000 lost
    { name: 'CPU for fewer tasks than the free GPUs strands the rest', need: { cpu: 8000, gpu: 1000 }, free: { cpu: 20_000, memory: 2 ** 40 }, want: 6000 },
    // 0.5 shares with 4 cores: ⌊10/4⌋ = 2 tasks open 2 devices (the rest of a device a share fits on counts as usable): 8000 − 2000 = 6000
    { name: 'the same for shares, a device per task', need: { cpu: 4000, gpu: 500 }, free: { cpu: 10_000, memory: 2 ** 40 }, want: 6000 },
    // 0.25 shares with 12 cores on 96 free: 8 tasks, one per device → nothing lost (counted in milli, 8 × 250 = 2000, it would lose 6000)
    { name: 'shares with CPU for one task per free device lose nothing', need: { cpu: 12_000, gpu: 250 }, free: { cpu: 96_000, memory: 2 ** 40 }, want: 0 },
    // memory binds: 64 GiB free / 32 GiB = 2 tasks of 1 GPU → 6000
    { name: 'and for memory', need: { cpu: 1000, memory: 32 * 2 ** 30, gpu: 1000 }, free: { cpu: 64_000, memory: 64 * 2 ** 30 }, want: 6000 },
    // 2-GPU tasks, 32 cores free, 8 each: 4 tasks × 2000 = 8000 ≥ 8000 free → nothing lost
    { name: 'nothing when CPU feeds every free GPU', need: { cpu: 8000, gpu: 2000 }, free: { cpu: 32_000, memory: 2 ** 40 }, want: 0 },
  ])('$name', ({ need, free: room, want }) => {
    expect(fragmentation([{ resources: need as ResourceVector, weight: 1 }], room, {}, 8)).toBe(want);
  });

  it('requestShapes keeps the most common shapes with their counts', () => {
    const shapes = requestShapes(
      [
        { resources: { cpu: 1000, gpu: 500 }, count: 5 },
        { resources: { cpu: 1000, gpu: 500 }, count: 2 },
        { resources: { cpu: 2000 }, count: 3 },
      ],
      1,
    );
    expect(shapes).toEqual([{ resources: { cpu: 1000, memory: 0, gpu: 500 }, weight: 7 }]);
  });
});

describe('packingScores', () => {
  it('keeps a free 8-GPU node whole for 8-GPU work: a 1-GPU task goes to the partly used node', () => {
    const nodes = [gpuNode('a-free'), gpuNode('b-partial', { 0: 1000, 1: 1000 })];
    const shapes = requestShapes([
      { resources: { cpu: 1000, gpu: 1000 }, count: 10 },
      { resources: { cpu: 1000, gpu: 8000 }, count: 5 },
    ]);
    const work: PendingWork[] = [{ jobId: 'j', queue: 'q', priority: 0, createdAt: 0, resources: { cpu: 1000, gpu: 1000 }, tasks: 1 }];
    expect(placeTasks(work, nodes, { scores: packingScores(shapes) }).placements).toEqual([{ jobId: 'j', node: 'b-partial', count: 1, devices: [[2]] }]);
  });

  it("puts CPU work on CPU nodes, not on the CPU that GPU nodes' free GPUs need", () => {
    const cpuNode: NodeSnapshot = {
      name: 'z-cpu',
      capacity: { cpu: 32_000, memory: 128 * 2 ** 30 },
      used: {},
      devices: {},
      gpuCount: 0,
      labels: {},
      taints: [],
    };
    const shapes = requestShapes([{ resources: { cpu: 8000, gpu: 1000 }, count: 10 }]);
    const work: PendingWork[] = [{ jobId: 'c', queue: 'q', priority: 0, createdAt: 0, resources: { cpu: 4000 }, tasks: 1 }];
    // the GPU node has 10 CPUs free: 4 more taken would leave 6 < 8 for a GPU task → every free GPU lost; the CPU node wins
    expect(placeTasks(work, [gpuNode('a-gpu', {}, 10_000), cpuNode], { scores: packingScores(shapes) }).placements[0].node).toBe('z-cpu');
  });
});

describe('fragmentationGradient for work without GPUs (one walk over the mix for the room before and after)', () => {
  const GiB = 2 ** 30;
  // A mix of ¼ shares (2 cores), whole GPUs (8 cores, 32 GiB), 4-GPU tasks (16 cores) and CPU work (weight only).
  const mix: RequestShape[] = [
    { resources: { cpu: 2000, memory: 8 * GiB, gpu: 250 }, weight: 2 },
    { resources: { cpu: 8000, memory: 32 * GiB, gpu: 1000 }, weight: 1 },
    { resources: { cpu: 16_000, memory: 64 * GiB, gpu: 4000 }, weight: 1 },
    { resources: { cpu: 1000, memory: 2 * GiB }, weight: 4 },
  ];
  const score = (need: ResourceVector, cpu: number, memory: number, devices: Record<string, number>) =>
    fragmentationGradient(mix).score(
      { jobId: 'j', queue: 'q', priority: 0, createdAt: 0, resources: need, tasks: 1 },
      gpuNode('n', devices, cpu),
      { cpu, memory, gpu: 8000 },
      0,
      devices,
    );
  it.each<{ name: string; need: ResourceVector; cpu: number; devices: Record<string, number>; want: number }>([
    // 8 free GPUs, 20 cores: before ¼ ⌊20/2⌋=10 tasks → 0 lost; 1 GPU ⌊20/8⌋=2 → 8000−2000 = 6000; 4 GPUs ⌊20/16⌋=1 → 8000−4000 = 4000;
    // (2·0 + 6000 + 4000)/8 = 1250. After 4 cores: 16 cores → ¼ 8 tasks → 0; 1 GPU 2 → 6000; 4 GPUs 1 → 4000: 1250. −(1250−1250)/1000 = −0
    { name: 'room left for every GPU shape as before: no growth', need: { cpu: 4000, memory: GiB }, cpu: 20_000, devices: {}, want: -0 },
    // After 5 cores: 15 → 4 GPUs ⌊15/16⌋ = 0 → all 8000 lost (was 4000); 1 GPU ⌊15/8⌋ = 1 → 7000 (was 6000); ¼ 7 tasks → 1000 (was 0):
    // (2·1000 + 7000 + 8000)/8 = 2125 vs 1250 → −875/1000 = −0.875
    { name: 'CPU taken strands GPUs of every shape', need: { cpu: 5000, memory: GiB }, cpu: 20_000, devices: {}, want: -0.875 },
    // Device 0 at 900 used (100 free, less than ¼), device 1 whole used: free 6100. ¼: lost 100 (device 0); 1 GPU: partial 100; 4 GPUs: 6 whole → partial 100.
    // Before (64 cores): ¼ 32 tasks, 1 GPU 8, 4 GPUs 4 → max(100, 6100 − 32·1000 < 0) = 100 each → (200 + 100 + 100)/8 = 50.
    // After 60 of 64 cores: 4 left → ¼ 2 tasks → 6100 − 2000 = 4100; 1 GPU 0 → 6100; 4 GPUs 0 → 6100: (8200 + 6100 + 6100)/8 = 2550 → −2.5
    { name: 'partly used devices, lost before and after', need: { cpu: 60_000, memory: GiB }, cpu: 64_000, devices: { 0: 900, 1: 1000 }, want: -2.5 },
    // every device used: no free GPU, nothing to lose either way → −(0 − 0)/1000
    { name: 'no free GPU: 0', need: { cpu: 4000 }, cpu: 64_000, devices: { 0: 1000, 1: 1000, 2: 1000, 3: 1000, 4: 1000, 5: 1000, 6: 1000, 7: 1000 }, want: -0 },
  ])('$name', ({ need, cpu, devices, want }) => {
    expect(score(need, cpu, 256 * GiB, devices)).toBe(want);
  });

  // Shares of one size next to each other and apart (the walk reuses the last share's lost GPU), on 4- and 8-GPU nodes.
  const shares: RequestShape[] = [
    { resources: { cpu: 2000, memory: 8 * GiB, gpu: 250 }, weight: 3 },
    { resources: { cpu: 6000, memory: 8 * GiB, gpu: 250 }, weight: 2 },
    { resources: { cpu: 2000, memory: 16 * GiB, gpu: 500 }, weight: 2 },
    { resources: { cpu: 8000, memory: 32 * GiB, gpu: 1000 }, weight: 1 },
    { resources: { cpu: 1000, memory: 4 * GiB, gpu: 250 }, weight: 1 },
    { resources: { cpu: 4000, memory: 8 * GiB, gpu: 750 }, weight: 1 },
  ];
  it.each<[string, RequestShape[]]>([
    ['the mix above', mix],
    ['a mix of shares of several sizes', shares],
  ])('gives what two walks of the mix give, on random rooms (%s)', (_name, shapes) => {
    let seed = 7;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const plugin = fragmentationGradient(shapes);
    for (let k = 0; k < 2000; k++) {
      const gpus = rand() < 0.5 ? 4 : 8;
      const devices: Record<string, number> = {};
      for (let d = 0; d < gpus; d++) if (rand() < 0.4) devices[d] = [250, 500, 750, 800, 1000][Math.floor(rand() * 5)];
      const cpu = Math.floor(rand() * 96) * 1000 + (rand() < 0.3 ? 500 : 0);
      const memory = Math.floor(rand() * 768) * GiB;
      const need = { cpu: [100, 1000, 4000, 12_000][Math.floor(rand() * 4)], memory: Math.floor(rand() * 64) * GiB };
      const node = { ...gpuNode('n', devices, cpu), gpuCount: gpus };
      const got = plugin.score(
        { jobId: 'j', queue: 'q', priority: 0, createdAt: 0, resources: need, tasks: 1 },
        node,
        { cpu, memory, gpu: gpus * 1000 },
        0,
        devices,
      );
      const before = fragmentation(shapes, { cpu, memory }, devices, gpus);
      const after = fragmentation(shapes, { cpu: cpu - need.cpu, memory: memory - need.memory }, devices, gpus);
      expect(got).toBe(-(after - before) / 1000);
    }
  });
});

describe('requestShapes groups requests by GPU and CPU ask', () => {
  /** The grouping by the text `${gpu}/${cpu}` (what it did before numbers were compared in Maps). */
  function byText(requests: Array<{ resources: ResourceVector; count: number }>, max: number) {
    const by = new Map<string, { cpu: number; gpu: number; memory: number; count: number }>();
    for (const r of requests) {
      const key = `${r.resources.gpu ?? 0}/${r.resources.cpu ?? 0}`;
      const s = by.get(key) ?? { cpu: r.resources.cpu ?? 0, gpu: r.resources.gpu ?? 0, memory: 0, count: 0 };
      s.memory += (r.resources.memory ?? 0) * r.count;
      s.count += r.count;
      by.set(key, s);
    }
    return [...by.values()]
      .sort((a, b) => b.count - a.count)
      .slice(0, max)
      .map((s) => ({ resources: { cpu: s.cpu, memory: Math.round(s.memory / s.count), ...(s.gpu ? { gpu: s.gpu } : {}) }, weight: s.count }));
  }

  it('keeps ties in the order first seen, 0 and −0 as one ask', () => {
    // (gpu 0, cpu 2000) ×2 first, then (gpu 500, cpu 1000) ×2, then (0, 1000) ×1: ties by first seen;
    // memory averaged per shape: (1 + 3) / 2 = 2 GiB for the first
    const GiB = 2 ** 30;
    const shapes = requestShapes([
      { resources: { cpu: 2000, memory: GiB }, count: 1 },
      { resources: { cpu: 1000, gpu: 500 }, count: 2 },
      { resources: { cpu: 2000, memory: 3 * GiB, gpu: -0 }, count: 1 },
      { resources: { cpu: 1000 }, count: 1 },
    ]);
    expect(shapes.map((s) => [s.resources.gpu ?? 0, s.resources.cpu, s.resources.memory, s.weight])).toEqual([
      [0, 2000, 2 * GiB, 2],
      [500, 1000, 0, 2],
      [0, 1000, 0, 1],
    ]);
  });

  it('groups as the text of the asks did, on random requests', () => {
    let seed = 5;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    for (let t = 0; t < 500; t++) {
      const requests = Array.from({ length: 1 + Math.floor(rand() * 40) }, () => {
        const resources: ResourceVector = {};
        if (rand() < 0.9) resources.cpu = pick([0, -0, 100, 1000, 1000.5, NaN]);
        if (rand() < 0.6) resources.memory = pick([0, 1, 2 ** 30]);
        if (rand() < 0.5) resources.gpu = pick([0, -0, 250, 1000, NaN]);
        return { resources, count: pick([1, 2, 5]) };
      });
      const max = pick([1, 3, 20]);
      expect(requestShapes(requests, max)).toEqual(byText(requests, max));
    }
  });
});
