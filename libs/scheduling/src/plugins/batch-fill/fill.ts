/**
 * Batch fill: when many pieces of work arrive at the same instant with the same priority,
 * packing them one job at a time (decreasing best fit) leaves gaps that a person would not.
 * Instead, node by node (fullest first), search for the set of waiting tasks that fills the
 * node best — minimum bin slack — with a bounded search. Pure.
 */
import type { ResourceVector } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';
import type { NodeSnapshot, PendingWork } from '../../snapshot';

/** A node's mutable state during a pass. */
export interface FillNode {
  node: NodeSnapshot;
  free: ResourceVector;
}

/** Search steps allowed per node. @default 20000 */
export const FILL_STEPS_PER_NODE = 20_000;

interface Shape {
  resources: ResourceVector;
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

/**
 * Fills nodes with the tasks of `tier` (work of one priority submitted at one instant, without
 * GPUs, gangs, selectors or spreading). Returns tasks placed per job per node, and changes
 * `nodes[].free`.
 */
export function fillTier(
  tier: readonly PendingWork[],
  nodes: FillNode[],
  filters: readonly FilterPlugin[],
  steps = FILL_STEPS_PER_NODE,
): Array<{ jobId: string; node: string; count: number }> {
  const shapes = new Map<string, Shape>();
  for (const w of tier) {
    const key = JSON.stringify(
      Object.entries(w.resources)
        .filter(([, v]) => v > 0)
        .sort(),
    );
    const s = shapes.get(key) ?? { resources: w.resources, jobs: [], count: 0 };
    s.jobs.push({ jobId: w.jobId, left: w.tasks });
    s.count += w.tasks;
    shapes.set(key, s);
  }
  const out: Array<{ jobId: string; node: string; count: number }> = [];
  const order = [...nodes].sort((a, b) => weight(used(b), b.node.capacity) - weight(used(a), a.node.capacity) || (a.node.name < b.node.name ? -1 : 1));
  for (const n of order) {
    const cands = [...shapes.values()]
      .filter((s) => s.count > 0 && fits(s.resources, n.free, 1) && !filters.some((f) => f.filter({ ...tier[0], resources: s.resources, tasks: 1 }, n.node)))
      .sort((a, b) => weight(b.resources, n.node.capacity) - weight(a.resources, n.node.capacity));
    if (cands.length === 0) continue;
    const target = weight(n.free, n.node.capacity);
    const best = new Array<number>(cands.length).fill(0);
    const cur = new Array<number>(cands.length).fill(0);
    let bestFill = -1;
    let budget = steps;
    const free = { ...n.free };
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
      for (const j of s.jobs) {
        if (take === 0) break;
        const c = Math.min(take, j.left);
        if (c === 0) continue;
        j.left -= c;
        take -= c;
        out.push({ jobId: j.jobId, node: n.node.name, count: c });
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
