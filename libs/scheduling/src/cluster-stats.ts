/** Cluster-wide figures for dashboards: allocation and GPU fragmentation. Pure. */
import { DEFAULT_FILTERS } from './framework/profile';
import { pickDevices, tasksThatFit } from './plugins/resource-fit';
import type { NodeSnapshot, PendingWork } from './snapshot';

/** Share of each resource's total capacity that is allocated, 0–1. */
export function allocationRatio(nodes: readonly NodeSnapshot[]): Record<string, number> {
  const cap: Record<string, number> = {};
  const used: Record<string, number> = {};
  for (const n of nodes) {
    for (const [k, v] of Object.entries(n.capacity)) cap[k] = (cap[k] ?? 0) + v;
    for (const [k, v] of Object.entries(n.used)) used[k] = (used[k] ?? 0) + v;
  }
  return Object.fromEntries(
    Object.entries(cap)
      .filter(([, c]) => c > 0)
      .map(([k, c]) => [k, (used[k] ?? 0) / c]),
  );
}

/**
 * Free GPU devices that no pending GPU request can use: on nodes where not one task of any
 * pending GPU work fits (wrong model, taint, too little CPU or memory left, too few devices
 * free together). Zero when nothing waits for a GPU.
 */
export function fragmentedGpus(nodes: readonly NodeSnapshot[], pending: readonly PendingWork[]): number {
  const gpuWork = pending.filter((w) => (w.resources.gpu ?? 0) > 0 && w.tasks > 0);
  if (gpuWork.length === 0) return 0;
  let fragmented = 0;
  for (const n of nodes) {
    let free = 0;
    for (let d = 0; d < n.gpuCount; d++) if (!n.devices[d]) free++;
    if (free === 0) continue;
    const room: Record<string, number> = {};
    for (const [k, v] of Object.entries(n.capacity)) room[k] = v - (n.used[k] ?? 0);
    const usable = gpuWork.some(
      (w) =>
        !DEFAULT_FILTERS.some((f) => f.filter(w, n)) &&
        tasksThatFit(w.resources, room) > 0 &&
        pickDevices(n.devices, n.gpuCount, w.resources.gpu ?? 0) !== undefined,
    );
    if (!usable) fragmented += free;
  }
  return fragmented;
}
