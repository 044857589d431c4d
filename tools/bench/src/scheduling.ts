/**
 * `bench scheduling`: the pure placement pass on 10,000 mixed nodes with a mixed backlog,
 * and, side by side, a naive baseline that filters and scores every node for every task
 * (the kube-scheduler way), so the ratio shows.
 */
import { GPU_MILLI, parseResources, type ResourceVector } from '@batchapi/api';
import {
  DEFAULT_FILTERS,
  DEFAULT_SCORES,
  type NodeSnapshot,
  packingScores,
  type PendingWork,
  placeTasks,
  requestShapes,
  tasksThatFit,
  pickDevices,
} from '@batchapi/scheduling';
import { progress, rng } from './rng';

/** Options of the scheduling benchmark. */
export interface SchedulingBenchOptions {
  /** @default 9000 */ cpuNodes: number;
  /** @default 1000 */ gpuNodes: number;
  /** Tasks in the backlog (about). @default 500000 */ tasks: number;
  /** Tasks the naive baseline places (it is slow). @default 2000 */ baselineTasks: number;
  /** @default 42 */ seed: number;
}

export function makeCluster(cpuNodes: number, gpuNodes: number): NodeSnapshot[] {
  const nodes: NodeSnapshot[] = [];
  for (let i = 0; i < cpuNodes; i++) {
    nodes.push({
      name: `cpu-${String(i).padStart(5, '0')}`,
      capacity: parseResources({ cpu: '32', memory: '128Gi' }),
      used: {},
      devices: {},
      gpuCount: 0,
      labels: { zone: `z${i % 3}` },
      taints: [],
    });
  }
  for (let i = 0; i < gpuNodes; i++) {
    const model = i % 2 ? 'H100' : 'A100';
    nodes.push({
      name: `gpu-${String(i).padStart(5, '0')}`,
      capacity: parseResources({ cpu: '96', memory: '768Gi', gpu: 8 }),
      used: {},
      devices: {},
      gpuCount: 8,
      labels: { 'gpu.model': model, zone: `z${i % 3}` },
      taints: [],
    });
  }
  return nodes;
}

export function makeBacklog(totalTasks: number, seed: number): PendingWork[] {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const work: PendingWork[] = [];
  let tasks = 0;
  for (let i = 0; tasks < totalTasks; i++) {
    const kind = rand();
    let resources: ResourceVector;
    let selector: Record<string, string> | undefined;
    let n: number;
    if (kind < 0.7) {
      resources = parseResources({ cpu: pick(['500m', '1', '2', '4']), memory: pick(['1Gi', '2Gi', '4Gi', '8Gi']) });
      n = 1 + Math.floor(rand() ** 2 * 10_000);
    } else if (kind < 0.9) {
      resources = parseResources({ cpu: '8', memory: '60Gi', gpu: pick([1, 2, 4, 8]) });
      selector = rand() < 0.5 ? { 'gpu.model': pick(['A100', 'H100']) } : undefined;
      n = 1 + Math.floor(rand() * 64);
    } else {
      resources = parseResources({ cpu: '2', memory: '8Gi', gpu: pick([0.25, 0.5]) });
      n = 1 + Math.floor(rand() * 256);
    }
    n = Math.min(n, totalTasks - tasks);
    work.push({
      jobId: `job-${String(i).padStart(6, '0')}`,
      queue: `q${i % 8}`,
      priority: rand() < 0.1 ? 10 : 0,
      createdAt: i,
      resources,
      tasks: n,
      selector,
      gang: rand() < 0.05 && n <= 64,
    });
    tasks += n;
  }
  return work;
}

/**
 * A backlog of `jobs` distinct single-task jobs (issue 16): each job is one task, its shape drawn
 * from a seeded mix wide enough that jobs rarely share a request shape — CPU tasks of 100m–8
 * cores with 0.5–4 GiB per core in 128 MiB steps (some tied to a zone), whole-GPU tasks (1, 2, 4
 * or 8 GPUs, some tied to a GPU model), GPU shares (¼ or ½ of a device) — over 8 queues and
 * 3 priorities.
 */
export function makeSingleTaskBacklog(jobs: number, seed: number): PendingWork[] {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const MiB = 1024 ** 2;
  const work: PendingWork[] = [];
  for (let i = 0; i < jobs; i++) {
    const kind = rand();
    let resources: ResourceVector;
    let selector: Record<string, string> | undefined;
    if (kind < 0.92) {
      const cpu = pick([100, 250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000]);
      const perCore = 512 + 128 * Math.floor(rand() * 29); // 0.5–4 GiB per core
      resources = { cpu, memory: Math.ceil((cpu * perCore) / 1000 / 128) * 128 * MiB };
      if (rand() < 0.2) selector = { zone: `z${Math.floor(rand() * 3)}` };
    } else if (kind < 0.96) {
      const gpus = pick([1, 1, 1, 1, 2, 2, 4, 8]);
      resources = { cpu: gpus * pick([2000, 4000, 8000, 12000]), memory: gpus * (16 + 8 * Math.floor(rand() * 11)) * 1024 * MiB, gpu: gpus * GPU_MILLI };
      if (rand() < 0.5) selector = { 'gpu.model': pick(['A100', 'H100']) };
    } else {
      resources = { cpu: pick([500, 1000, 2000, 4000]), memory: (2 + 2 * Math.floor(rand() * 8)) * 1024 * MiB, gpu: pick([250, 500]) };
    }
    work.push({
      jobId: `one-${String(i).padStart(6, '0')}`,
      queue: `q${Math.floor(rand() * 8)}`,
      priority: pick([0, 0, 0, 5, 10]),
      createdAt: i,
      resources,
      tasks: 1,
      ...(selector ? { selector } : {}),
    });
  }
  return work;
}

/** The kube-scheduler way: for each task, filter and score every node, bind to the best. */
export function naivePlace(work: readonly PendingWork[], nodes: readonly NodeSnapshot[], maxTasks: number): number {
  const state = nodes.map((n) => ({
    node: n,
    free: Object.fromEntries(Object.entries(n.capacity).map(([k, v]) => [k, v - (n.used[k] ?? 0)])) as ResourceVector,
    devices: { ...n.devices },
  }));
  let placed = 0;
  for (const w of work) {
    for (let t = 0; t < w.tasks && placed < maxTasks; t++) {
      let best: (typeof state)[number] | undefined;
      let bestScore = -Infinity;
      for (const s of state) {
        if (DEFAULT_FILTERS.some((f) => f.filter(w, s.node))) continue;
        if (tasksThatFit(w.resources, s.free) < 1) continue;
        if ((w.resources.gpu ?? 0) > 0 && !pickDevices(s.devices, s.node.gpuCount, w.resources.gpu ?? 0)) continue;
        let score = 0;
        const fd = Array.from({ length: s.node.gpuCount }, (_, d) => d).filter((d) => !s.devices[d]).length;
        for (const p of DEFAULT_SCORES) score += p.weight * p.score(w, s.node, s.free, fd);
        if (score > bestScore) {
          bestScore = score;
          best = s;
        }
      }
      if (!best) break;
      for (const [k, v] of Object.entries(w.resources)) best.free[k] -= v;
      const share = w.resources.gpu ?? 0;
      for (const d of pickDevices(best.devices, best.node.gpuCount, share) ?? []) best.devices[d] = (best.devices[d] ?? 0) + Math.min(share, GPU_MILLI);
      placed++;
    }
    if (placed >= maxTasks) break;
  }
  return placed;
}

export function benchScheduling(o: SchedulingBenchOptions): Record<string, unknown> {
  progress(`scheduling: ${o.cpuNodes} CPU + ${o.gpuNodes} GPU nodes, backlog of ~${o.tasks} tasks (seed ${o.seed})`);
  const nodes = makeCluster(o.cpuNodes, o.gpuNodes);
  const work = makeBacklog(o.tasks, o.seed);
  const backlog = work.reduce((n, w) => n + w.tasks, 0);
  progress(`scheduling: ${work.length} jobs, ${backlog} tasks; warming up`);
  placeTasks(work.slice(0, 50), nodes); // JIT warm-up on a small slice
  // As the live scheduler runs it: dominant resource fairness between the 8 queues, and
  // packing scores against the request mix (the mix is computed inside the timed part, as a cycle does).
  const capacity = nodes.reduce<ResourceVector>((acc, n) => {
    for (const [k, v] of Object.entries(n.capacity)) acc[k] = (acc[k] ?? 0) + v;
    return acc;
  }, {});
  const t0 = performance.now();
  const scores = packingScores(requestShapes(work.map((w) => ({ resources: w.resources, count: w.tasks }))));
  const res = placeTasks(work, nodes, { maxTasks: Number.MAX_SAFE_INTEGER, fairShare: { capacity, usage: new Map() }, scores });
  const seconds = (performance.now() - t0) / 1000;
  const placed = res.placements.reduce((n, p) => n + p.count, 0);
  progress(`scheduling: placed ${placed} tasks in ${seconds.toFixed(3)} s; running the naive baseline on ${o.baselineTasks} tasks`);
  const b0 = performance.now();
  const naivePlaced = naivePlace(work, nodes, o.baselineTasks);
  const naiveSeconds = (performance.now() - b0) / 1000;
  const rate = placed / seconds;
  const naiveRate = naivePlaced / naiveSeconds;
  return {
    bench: 'scheduling',
    nodes: nodes.length,
    jobs: work.length,
    backlogTasks: backlog,
    placed,
    unplacedJobs: res.unplaced.length,
    seconds: round(seconds),
    placementsPerSecond: Math.round(rate),
    baseline: { name: 'filter+score every node per task', placed: naivePlaced, seconds: round(naiveSeconds), placementsPerSecond: Math.round(naiveRate) },
    speedup: round(rate / naiveRate),
    target: 100000,
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
