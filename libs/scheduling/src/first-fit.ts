/**
 * First-fit placement: the foundation's placeholder policy. Jobs in queue order (priority,
 * then age, then id); for each, nodes in name order; on each node as many tasks as fit in
 * every dimension and on free GPU devices. Pure: snapshot in, placements out.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { NodeSnapshot, PendingWork, Placement } from './snapshot';

/** Limits of one cycle. */
export interface CycleLimits {
  /** Resources each queue may still take (absent queue or dimension = unlimited). */
  queueHeadroom?: Map<string, ResourceVector>;
  /** Most tasks placed in one cycle. @default 100000 */
  maxTasks?: number;
}

/** Deterministic queue order: higher priority, then older, then job id. */
export function queueOrder(a: PendingWork, b: PendingWork): number {
  return b.priority - a.priority || a.createdAt - b.createdAt || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0);
}

/** How many tasks of `need` fit in `free` by the non-device dimensions. */
export function tasksThatFit(need: ResourceVector, free: ResourceVector): number {
  let n = Number.POSITIVE_INFINITY;
  for (const [name, amount] of Object.entries(need)) {
    if (amount <= 0) continue;
    n = Math.min(n, Math.floor((free[name] ?? 0) / amount));
  }
  return Math.max(0, n);
}

/** How many tasks of `need` a queue headroom allows; dimensions absent from the headroom are unlimited. */
export function tasksWithinHeadroom(need: ResourceVector, room: ResourceVector): number {
  let n = Number.POSITIVE_INFINITY;
  for (const [name, limit] of Object.entries(room)) {
    const amount = need[name] ?? 0;
    if (amount > 0) n = Math.min(n, Math.floor(limit / amount));
  }
  return Math.max(0, n);
}

/** Picks devices for one task: `share` milli-GPU. Whole GPUs need fully free devices; a fraction shares one device. Returns undefined when none fit. */
export function pickDevices(devices: Record<string, number>, gpuCount: number, share: number): number[] | undefined {
  if (share <= 0) return [];
  if (share >= GPU_MILLI) {
    const whole = Math.ceil(share / GPU_MILLI);
    const free: number[] = [];
    for (let d = 0; d < gpuCount && free.length < whole; d++) if (!devices[d]) free.push(d);
    return free.length === whole ? free : undefined;
  }
  // Fractional: prefer the fullest device it still fits on, to keep whole devices free.
  let best: number | undefined;
  for (let d = 0; d < gpuCount; d++) {
    const used = devices[d] ?? 0;
    if (used + share <= GPU_MILLI && (best === undefined || used > (devices[best] ?? 0))) best = d;
  }
  return best === undefined ? undefined : [best];
}

function freeOf(n: NodeSnapshot): ResourceVector {
  const free: ResourceVector = {};
  for (const [k, v] of Object.entries(n.capacity)) free[k] = v - (n.used[k] ?? 0);
  return free;
}

/** Places pending work on nodes first-fit. Inputs are not changed. */
export function placeFirstFit(work: readonly PendingWork[], nodes: readonly NodeSnapshot[], limits: CycleLimits = {}): Placement[] {
  const order = [...work].sort(queueOrder);
  const state = [...nodes]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((n) => ({ node: n, free: freeOf(n), devices: { ...n.devices } }));
  const headroom = new Map([...(limits.queueHeadroom ?? new Map())].map(([q, v]) => [q, { ...v }]));
  let budget = limits.maxTasks ?? 100_000;
  const out: Placement[] = [];
  for (const w of order) {
    let left = Math.min(w.tasks, budget);
    const room = headroom.get(w.queue);
    if (room) left = Math.min(left, tasksWithinHeadroom(w.resources, room));
    const share = w.resources.gpu ?? 0;
    for (const s of state) {
      if (left <= 0) break;
      let count = Math.min(left, tasksThatFit(w.resources, s.free));
      if (count <= 0) continue;
      const devices: number[][] = [];
      if (share > 0) {
        // Devices are picked task by task; stop at the first task that finds none.
        let k = 0;
        for (; k < count; k++) {
          const picked = pickDevices(s.devices, s.node.gpuCount, share);
          if (!picked) break;
          for (const d of picked) s.devices[d] = (s.devices[d] ?? 0) + (share >= GPU_MILLI ? GPU_MILLI : share);
          devices.push(picked);
        }
        count = k;
        if (count === 0) continue;
      } else {
        for (let k = 0; k < count; k++) devices.push([]);
      }
      for (const [name, amount] of Object.entries(w.resources)) {
        s.free[name] = (s.free[name] ?? 0) - amount * count;
        if (room && name in room) room[name] -= amount * count;
      }
      out.push({ jobId: w.jobId, node: s.node.name, count, devices });
      left -= count;
      budget -= count;
    }
    if (budget <= 0) break;
  }
  return out;
}
