/**
 * Fragmentation gradient (after "Beware of Fragmentation", Weng et al., USENIX ATC '23): a
 * node's GPU fragmentation is the free GPU capacity that the expected workload cannot use
 * there, weighted by how common each kind of request is; a task goes where placing it grows
 * that the least. Pure.
 *
 * For one request shape on one node, the free GPU it cannot use is:
 *   - all free GPU, when the shape does not fit the node's free CPU, memory or GPUs at all;
 *   - for a share s of one device: the free part of every device with less than s free;
 *   - for k whole devices: the free part of every partly used device;
 *   - and, of what the devices leave usable, whatever more the tasks that the node's free CPU
 *     and memory can still hold would not take (n tasks of k whole GPUs use n·k devices; n
 *     shares, n devices — the rest of a device a share fits on counts as usable, as above): a
 *     node's CPU running short strands its GPUs gradually, not only when the last task's CPU is
 *     gone, so CPU-heavy work goes where CPU is plentiful per free GPU;
 *   - nothing for requests without GPUs (they do not want GPUs).
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import { pickDevices } from '../resource-fit';
import type { ScorePlugin } from '../../framework/extension-points';
import { mostAllocated } from '../most-allocated';

/** A kind of request and how common it is. */
export interface RequestShape {
  /** Per task (normalized units: cpu millicores, memory bytes, gpu milli-devices). */
  resources: ResourceVector;
  /** Relative frequency; the weights need not sum to 1. */
  weight: number;
}

/**
 * The most common request shapes of a workload, with their frequencies: requests with the
 * same GPU ask and CPU are one shape (memory averaged). At most `max` shapes.
 */
export function requestShapes(requests: Iterable<{ resources: ResourceVector; count: number }>, max = 20): RequestShape[] {
  // By GPU ask, then CPU: Maps compare numbers as the text `${gpu}/${cpu}` did (0 and −0 alike, NaN
  // alike), without a string per request; shapes in the order first seen, as ties stay in the sort.
  const byGpu = new Map<number, Map<number, { cpu: number; gpu: number; memory: number; count: number }>>();
  const shapes: Array<{ cpu: number; gpu: number; memory: number; count: number }> = [];
  for (const r of requests) {
    const gpu = r.resources.gpu ?? 0;
    const cpu = r.resources.cpu ?? 0;
    let byCpu = byGpu.get(gpu);
    if (!byCpu) byGpu.set(gpu, (byCpu = new Map()));
    let s = byCpu.get(cpu);
    if (!s) {
      byCpu.set(cpu, (s = { cpu, gpu, memory: 0, count: 0 }));
      shapes.push(s);
    }
    s.memory += (r.resources.memory ?? 0) * r.count;
    s.count += r.count;
  }
  return shapes
    .sort((a, b) => b.count - a.count)
    .slice(0, max)
    .map((s) => ({ resources: { cpu: s.cpu, memory: Math.round(s.memory / s.count), ...(s.gpu ? { gpu: s.gpu } : {}) }, weight: s.count }));
}

/** Read once: the package index re-exports it through a getter, and scores run per node scored. */
const MILLI = GPU_MILLI;

/** Free GPU (milli) of a node that the shapes cannot use, weighted by their frequencies. */
export function fragmentation(shapes: readonly RequestShape[], free: ResourceVector, devices: Record<string, number>, gpuCount: number): number {
  return fragmentationWith(shapes, free.cpu ?? 0, free.memory ?? 0, devices, gpuCount);
}

/** `fragmentation` of a node with `freeCpu` millicores and `freeMemory` bytes free (the only room it reads besides the devices). */
function fragmentationWith(shapes: readonly RequestShape[], freeCpu: number, freeMemory: number, devices: Record<string, number>, gpuCount: number): number {
  if (gpuCount === 0) return 0;
  let freeGpu = 0;
  let wholeFree = 0;
  let partialFree = 0;
  for (let d = 0; d < gpuCount; d++) {
    const f = MILLI - (devices[d] ?? 0);
    freeGpu += f;
    if (f === MILLI) wholeFree++;
    else partialFree += f;
  }
  if (freeGpu === 0) return 0;
  let total = 0;
  let weights = 0;
  for (const s of shapes) {
    weights += s.weight;
    const gpu = s.resources.gpu ?? 0;
    if (gpu === 0) continue;
    // tasks of the shape the node's free CPU and memory hold
    const cpu = s.resources.cpu ?? 0;
    const memory = s.resources.memory ?? 0;
    const tasks = Math.min(cpu > 0 ? Math.floor(freeCpu / cpu) : Infinity, memory > 0 ? Math.floor(freeMemory / memory) : Infinity);
    let lost: number;
    if (tasks === 0) lost = freeGpu;
    else if (gpu < MILLI) {
      lost = 0;
      let usable = false;
      for (let d = 0; d < gpuCount; d++) {
        const f = MILLI - (devices[d] ?? 0);
        if (f < gpu) lost += f;
        else usable = true;
      }
      if (!usable) lost = freeGpu;
    } else lost = wholeFree * MILLI < gpu ? freeGpu : partialFree;
    // n tasks of k whole GPUs use n·k devices; n shares open at most n devices (as above, the rest of a device a share fits on counts as usable)
    lost = Math.max(lost, freeGpu - tasks * Math.max(gpu, MILLI));
    total += s.weight * lost;
  }
  return weights > 0 ? total / weights : 0;
}

/**
 * A request mix as the gradient reads it: the shapes that ask for GPUs, in the mix's order, as
 * plain numbers, and the sum of every shape's weight (summed in the mix's order, as
 * `fragmentationWith` sums it). Shapes without GPUs add only their weight.
 */
interface Mix {
  cpu: Float64Array;
  memory: Float64Array;
  gpu: Float64Array;
  weight: Float64Array;
  weights: number;
  /** Scratch: the free part of each device of the node being scored (read once per call, grown to its GPU count). */
  free: Float64Array;
}

function mixOf(shapes: readonly RequestShape[]): Mix {
  const gpuShapes = shapes.filter((s) => (s.resources.gpu ?? 0) !== 0);
  let weights = 0;
  for (const s of shapes) weights += s.weight;
  return {
    cpu: Float64Array.from(gpuShapes, (s) => s.resources.cpu ?? 0),
    memory: Float64Array.from(gpuShapes, (s) => s.resources.memory ?? 0),
    gpu: Float64Array.from(gpuShapes, (s) => s.resources.gpu ?? 0),
    weight: Float64Array.from(gpuShapes, (s) => s.weight),
    weights,
    free: new Float64Array(8),
  };
}

/** Tasks of one shape (`cpu`, `memory` per task) that `freeCpu` and `freeMemory` hold (as `fragmentationWith` counts them). */
function tasksIn(cpu: number, memory: number, freeCpu: number, freeMemory: number): number {
  return Math.min(cpu > 0 ? Math.floor(freeCpu / cpu) : Infinity, memory > 0 ? Math.floor(freeMemory / memory) : Infinity);
}

/**
 * The gradient of work without GPUs (the devices stay as they are): `fragmentationWith` of the room
 * before and after one task (`cpuAfter`, `memoryAfter`), in one walk over the mix — what only the
 * devices decide is worked out once for both — and the same sums in the same order, so the same
 * numbers as two calls.
 */
function gradientWithoutGpus(
  mix: Mix,
  cpu: number,
  memory: number,
  cpuAfter: number,
  memoryAfter: number,
  devices: Record<string, number>,
  gpuCount: number,
): number {
  if (mix.free.length < gpuCount) mix.free = new Float64Array(gpuCount);
  const free = mix.free;
  let freeGpu = 0;
  let wholeFree = 0;
  let partialFree = 0;
  for (let d = 0; d < gpuCount; d++) {
    const f = MILLI - (devices[d] ?? 0);
    free[d] = f;
    freeGpu += f;
    if (f === MILLI) wholeFree++;
    else partialFree += f;
  }
  if (freeGpu === 0) return -(0 - 0) / MILLI;
  let before = 0;
  let after = 0;
  // The free GPU a share cannot use depends on the share only: shapes of the last share asked reuse it.
  let shareSeen = NaN;
  let shareLost = 0;
  for (let k = 0; k < mix.gpu.length; k++) {
    const gpu = mix.gpu[k];
    let lost: number;
    if (gpu < MILLI) {
      if (gpu !== shareSeen) {
        shareLost = 0;
        let usable = false;
        for (let d = 0; d < gpuCount; d++) {
          const f = free[d];
          if (f < gpu) shareLost += f;
          else usable = true;
        }
        if (!usable) shareLost = freeGpu;
        shareSeen = gpu;
      }
      lost = shareLost;
    } else lost = wholeFree * MILLI < gpu ? freeGpu : partialFree;
    const each = Math.max(gpu, MILLI);
    const tb = tasksIn(mix.cpu[k], mix.memory[k], cpu, memory);
    const ta = tasksIn(mix.cpu[k], mix.memory[k], cpuAfter, memoryAfter);
    before += mix.weight[k] * Math.max(tb === 0 ? freeGpu : lost, freeGpu - tb * each);
    after += mix.weight[k] * Math.max(ta === 0 ? freeGpu : lost, freeGpu - ta * each);
  }
  const w = mix.weights;
  return -((w > 0 ? after / w : 0) - (w > 0 ? before / w : 0)) / MILLI;
}

/**
 * Score: minus the growth of the node's fragmentation if one task of the work is placed
 * there, in GPUs (so one GPU made unusable costs 1). Spread work and nodes without GPUs
 * score 0.
 */
export function fragmentationGradient(shapes: readonly RequestShape[]): ScorePlugin {
  const mix = mixOf(shapes);
  return {
    name: 'FragmentationGradient',
    weight: 1,
    score(work, node, free, _freeDevices, devices = node.devices) {
      if (node.gpuCount === 0 || shapes.length === 0) return 0;
      const cpu = free.cpu ?? 0;
      const memory = free.memory ?? 0;
      // One task less of room: its CPU and memory (the only room besides devices fragmentation reads).
      const cpuAfter = cpu - (work.resources.cpu ?? 0);
      const memoryAfter = memory - (work.resources.memory ?? 0);
      const share = work.resources.gpu ?? 0;
      // Work without GPUs (most of what is scored on GPU nodes) leaves the devices as they are.
      if (!(share > 0)) return gradientWithoutGpus(mix, cpu, memory, cpuAfter, memoryAfter, devices, node.gpuCount);
      const before = fragmentationWith(shapes, cpu, memory, devices, node.gpuCount);
      const next = { ...devices };
      const picked = pickDevices(next, node.gpuCount, share);
      if (!picked) return 0;
      for (const d of picked) next[d] = (next[d] ?? 0) + (share >= MILLI ? MILLI : share);
      return -(fragmentationWith(shapes, cpuAfter, memoryAfter, next, node.gpuCount) - before) / MILLI;
    },
    // Work without GPUs only takes CPU and memory: each shape's tasks that fit can only fall, so its
    // unusable GPU only grows (every step of the sums is monotone in floating point too): at most 0.
    // GPU work may lower fragmentation (filling a partly used device): no bound.
    bound: (work, node) => (node.gpuCount === 0 || shapes.length === 0 || !((work.resources.gpu ?? 0) > 0) ? 0 : Infinity),
    labelKeys: () => [],
  };
}

/**
 * The scores of bin packing given the cluster's request mix: work without GPUs packs by
 * `MostAllocated` and keeps off GPU nodes; GPU work goes where it grows fragmentation least
 * (ties in node name order, which packs nodes one after another). Measured on the Alibaba
 * trace in docs/benchmarks.md.
 */
export function packingScores(shapes: readonly RequestShape[]): ScorePlugin[] {
  const most = mostAllocated();
  const fgd = fragmentationGradient(shapes);
  return [
    {
      name: 'MostAllocated',
      weight: 1,
      score: (w, n, f, fd, d) => ((w.resources.gpu ?? 0) > 0 || n.gpuCount > 0 ? 0 : most.score(w, n, f, fd, d)),
      bound: (w, n) => ((w.resources.gpu ?? 0) > 0 || n.gpuCount > 0 ? 0 : most.bound!(w, n)),
      labelKeys: () => [],
    },
    {
      name: 'FragmentationGradient',
      weight: 1,
      score: (w, n, f, fd, d) => (w.spread ? 0 : fgd.score(w, n, f, fd, d)),
      bound: (w, n) => (w.spread ? 0 : fgd.bound!(w, n)),
      labelKeys: () => [],
    },
  ];
}
