/**
 * Resource fit. The Filter: the node has each resource a task asks for at all (capacity, not
 * free room: a node that is only full now may take the work later). The arithmetic the engine
 * reserves with: how many tasks fit in free room, and which GPU devices a task takes.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';

export const ResourceKinds: FilterPlugin = {
  name: 'ResourceKinds',
  filter(work, node) {
    for (const [resource, amount] of Object.entries(work.resources))
      if (amount > 0 && (node.capacity[resource] ?? 0) < amount)
        return { code: 'Unschedulable', plugin: 'ResourceKinds', reason: `capacity of ${resource} too small`, detail: { kind: 'capacity', resource } };
    return undefined;
  },
  labelKeys: () => [],
};

/** How many tasks of `need` fit in `free` by the non-device dimensions. */
export function tasksThatFit(need: ResourceVector, free: ResourceVector): number {
  let n = Number.POSITIVE_INFINITY;
  for (const name in need) {
    const amount = need[name];
    if (amount <= 0) continue;
    n = Math.min(n, Math.floor((free[name] ?? 0) / amount));
  }
  return Math.max(0, n);
}

/**
 * Whether one task of `need` fits in `free` by the non-device dimensions: `tasksThatFit(need, free)
 * !== 0`, without computing how many (and allocating nothing: the reserve loop asks it of every
 * node it passes).
 */
export function fitsOne(need: ResourceVector, free: ResourceVector): boolean {
  for (const name in need) {
    const amount = need[name];
    // The quotient tasksThatFit floors: below 1 is 0 tasks (NaN falls through, as it does there).
    if (amount > 0 && (free[name] ?? 0) / amount < 1) return false;
  }
  return true;
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
  // Fractional: the fullest device it still fits on, to keep whole devices free.
  let best: number | undefined;
  for (let d = 0; d < gpuCount; d++) {
    const used = devices[d] ?? 0;
    if (used + share <= GPU_MILLI && (best === undefined || used > (devices[best] ?? 0))) best = d;
  }
  return best === undefined ? undefined : [best];
}
