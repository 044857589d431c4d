/**
 * Batch fill: when many pieces of work arrive at the same instant with the same priority,
 * packing them one job at a time (decreasing best fit) leaves gaps that a person would not.
 * Instead, node by node (fullest first), search for the set of waiting tasks that fills the
 * node best — minimum bin slack — with a bounded search. Tasks of one shape (resources, node
 * selector, tolerations, image) are interchangeable; each node considers only the shapes its
 * filters let on it, so work tied to pools by selectors is packed within each pool. Whole
 * GPUs are one more dimension (counted over the node's wholly free devices, then devices
 * picked per task); CPU-only work is left off GPU nodes (the per-job pass weighs that). Pure.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';
import type { NodeSnapshot, PendingWork } from '../../snapshot';
import { pickDevices } from '../resource-fit';

/** A node's mutable state during a pass. */
export interface FillNode {
  node: NodeSnapshot;
  free: ResourceVector;
  /** Milli-GPU in use per device index; the fill marks the devices it gives whole-GPU tasks. @default none: no GPU work is filled on it */
  devices?: Record<string, number>;
}

/** Tasks the fill placed: `count` tasks of a job on a node, and each task's devices (empty lists without GPUs). */
export interface Filled {
  jobId: string;
  node: string;
  count: number;
  devices: number[][];
}

/** Search steps allowed per node. @default 20000 */
export const FILL_STEPS_PER_NODE = 20_000;

interface Shape {
  resources: ResourceVector;
  /** The first work of the shape: what the filters are asked about. */
  like: PendingWork;
  /** Jobs with tasks of this shape, in queue order, and how many tasks each still has. */
  jobs: Array<{ jobId: string; left: number }>;
  count: number;
}

function fits(need: ResourceVector, free: ResourceVector, times: number): boolean {
  for (const [k, v] of Object.entries(need)) if (v > 0 && v * times > (free[k] ?? 0)) return false;
  return true;
}

/** Share of the node's capacity a request takes, summed over its dimensions. */
function weight(need: ResourceVector, cap: ResourceVector): number {
  let w = 0;
  for (const [k, v] of Object.entries(need)) if (v > 0 && cap[k]) w += v / cap[k];
  return w;
}

/** Wholly free devices of a node (no task holds any of them). */
function wholeFreeDevices(n: FillNode): number {
  let free = 0;
  for (let d = 0; d < n.node.gpuCount; d++) if (!n.devices?.[d]) free++;
  return free;
}

/** What makes two pieces of work interchangeable to the fill: resources, selector, tolerations, image. */
function shapeKey(w: PendingWork): string {
  return JSON.stringify([
    Object.entries(w.resources)
      .filter(([, v]) => v > 0)
      .sort(),
    Object.entries(w.selector ?? {}).sort(),
    w.tolerations ?? [],
    w.image ?? '',
  ]);
}

/**
 * Fills nodes with the tasks of `tier` (work of one priority submitted at one instant, without
 * fractional GPUs, gangs or spreading). Returns tasks placed per job per node with their
 * devices, and changes `nodes[].free` and `nodes[].devices`.
 */
export function fillTier(tier: readonly PendingWork[], nodes: FillNode[], filters: readonly FilterPlugin[], steps = FILL_STEPS_PER_NODE): Filled[] {
  const shapes = new Map<string, Shape>();
  for (const w of tier) {
    const key = shapeKey(w);
    const s = shapes.get(key) ?? { resources: w.resources, like: w, jobs: [], count: 0 };
    s.jobs.push({ jobId: w.jobId, left: w.tasks });
    s.count += w.tasks;
    shapes.set(key, s);
  }
  // Tasks of one shape gain nothing from a search over combinations: the per-job pass, whose scores see the whole cluster, places them.
  if (shapes.size < 2) return [];
  const out: Filled[] = [];
  const order = [...nodes].sort((a, b) => weight(used(b), b.node.capacity) - weight(used(a), a.node.capacity) || (a.node.name < b.node.name ? -1 : 1));
  for (const n of order) {
    const gpuNode = n.node.gpuCount > 0;
    // On a GPU node the fill counts whole GPUs over the wholly free devices (a device partly held by a fractional task takes no whole-GPU task).
    const free: ResourceVector = gpuNode ? { ...n.free, gpu: Math.min(n.free.gpu ?? 0, wholeFreeDevices(n) * GPU_MILLI) } : { ...n.free };
    const cands = [...shapes.values()]
      .filter(
        (s) =>
          s.count > 0 &&
          (s.resources.gpu ?? 0) > 0 === gpuNode &&
          (!gpuNode || n.devices !== undefined) &&
          fits(s.resources, free, 1) &&
          !filters.some((f) => f.filter({ ...s.like, tasks: 1 }, n.node)),
      )
      .sort((a, b) => weight(b.resources, n.node.capacity) - weight(a.resources, n.node.capacity));
    if (cands.length === 0) continue;
    const target = weight(free, n.node.capacity);
    const best = new Array<number>(cands.length).fill(0);
    const cur = new Array<number>(cands.length).fill(0);
    let bestFill = -1;
    let budget = steps;
    const search = (i: number, fill: number): boolean => {
      if (fill > bestFill) {
        bestFill = fill;
        for (let k = 0; k < cands.length; k++) best[k] = cur[k];
      }
      if (bestFill >= target - 1e-9 || --budget <= 0) return true;
      if (i === cands.length) return false;
      const s = cands[i];
      let most = s.count;
      for (const [k, v] of Object.entries(s.resources)) if (v > 0) most = Math.min(most, Math.floor((free[k] ?? 0) / v));
      const w = weight(s.resources, n.node.capacity);
      for (let c = most; c >= 0; c--) {
        cur[i] = c;
        for (const [k, v] of Object.entries(s.resources)) free[k] = (free[k] ?? 0) - v * c;
        const stop = search(i + 1, fill + w * c);
        for (const [k, v] of Object.entries(s.resources)) free[k] += v * c;
        cur[i] = 0;
        if (stop) return true;
      }
      return false;
    };
    search(0, 0);
    cands.forEach((s, i) => {
      let take = best[i];
      for (const [k, v] of Object.entries(s.resources)) n.free[k] = (n.free[k] ?? 0) - v * take;
      s.count -= take;
      const share = s.resources.gpu ?? 0;
      for (const j of s.jobs) {
        if (take === 0) break;
        const c = Math.min(take, j.left);
        if (c === 0) continue;
        j.left -= c;
        take -= c;
        const devices: number[][] = [];
        for (let t = 0; t < c; t++) {
          // counted over wholly free devices above, so each task finds its own
          const picked = share > 0 && n.devices ? pickDevices(n.devices, n.node.gpuCount, share)! : [];
          for (const d of picked) n.devices![d] = (n.devices![d] ?? 0) + GPU_MILLI;
          devices.push(picked);
        }
        out.push({ jobId: j.jobId, node: n.node.name, count: c, devices });
      }
    });
  }
  return out;

  function used(n: FillNode): ResourceVector {
    const u: ResourceVector = {};
    for (const [k, v] of Object.entries(n.node.capacity)) u[k] = v - (n.free[k] ?? 0);
    return u;
  }
}
