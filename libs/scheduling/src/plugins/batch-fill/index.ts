/**
 * Batch fill (run before the per-job pass): the leading tier of the queue — work of one
 * priority submitted at one instant (or within `window` after the first of it: the batching
 * window, which bounds how far the fill may reorder arrivals), plain enough (no fractional
 * GPUs, gangs, spreading, topology or quota limit; one queue when fair share is on; selectors, tolerations, images and
 * whole GPUs are fine) — is packed node by node with `fillTier` (minimum bin slack) instead of
 * one job at a time.
 */
import { GPU_MILLI } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';
import type { QuotaLedger } from '../quota/ledger';
import type { PendingWork, Placement } from '../../snapshot';
import { type FillNode, fillTier } from './fill';

export * from './fill';

/** Most tasks a batch fill searches over at once. */
export const BATCH_FILL_MAX_TASKS = 20_000;

/**
 * Reduces the tasks left in `ordered` (in queue order), appends to `placements`, and returns how
 * many were placed. `window`: work created this long after the head, at most, joins its tier (in
 * the unit of `createdAt`: epoch ms live, seconds in the simulation); 0 = the same instant only.
 */
export function batchFill(
  ordered: PendingWork[],
  states: FillNode[],
  filters: readonly FilterPlugin[],
  ledger: QuotaLedger,
  placements: Placement[],
  budget: number,
  fair: boolean,
  window = 0,
): number {
  const head = ordered[0];
  if (!head) return 0;
  const inTier = (w: PendingWork) => w.priority === head.priority && w.createdAt >= head.createdAt && w.createdAt <= head.createdAt + window;
  // With fair share on, packing never overrides fairness: only a tier of one queue is filled.
  if (fair && ordered.some((w) => w.queue !== head.queue && inTier(w))) return 0;
  const tier: PendingWork[] = [];
  let tasks = 0;
  for (const w of ordered) {
    const gpu = w.resources.gpu ?? 0;
    const plain = !w.gang && !w.spread && !w.topology && gpu % GPU_MILLI === 0 && !ledger.limits(w.queue);
    if (!plain || !inTier(w)) break;
    tier.push(w);
    tasks += w.tasks;
  }
  if (tier.length < 2 || tasks > Math.min(budget, BATCH_FILL_MAX_TASKS)) return 0;
  const filled = fillTier(tier, states, filters);
  const byId = new Map(tier.map((w) => [w.jobId, w]));
  let placed = 0;
  for (const f of filled) {
    byId.get(f.jobId)!.tasks -= f.count;
    placements.push({ jobId: f.jobId, node: f.node, count: f.count, devices: f.devices });
    placed += f.count;
  }
  return placed;
}
