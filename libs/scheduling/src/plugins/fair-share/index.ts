/**
 * Fair share between queues (dominant resource fairness, Ghodsi et al., NSDI '11), within each
 * priority level: progressive filling — the queue with the lowest weighted dominant share
 * places its oldest work next, as many tasks as keep it at or below the next queue's share (at
 * least one), until no queue can place more. The engine calls back to place; this decides the
 * order and the step sizes.
 */
import { addResources, type ResourceVector } from '@batchapi/api';
import type { PendingWork } from '../../snapshot';

/** What dominant resource fairness needs. */
export interface FairShareInput {
  /** Total capacity the shares are relative to (normalized units). */
  capacity: ResourceVector;
  /** What each queue holds now (normalized units), plus its decayed past usage when the scheduler keeps one. */
  usage: Map<string, ResourceVector>;
  /** Weight of each queue. @default 1 */
  weights?: Map<string, number>;
  /**
   * Smallest step of dominant share a queue takes at a time (as a fraction of the cluster):
   * the bound on how far from exact fairness one decision can be, traded for speed.
   * @default 0.001
   */
  granularity?: number;
}

/**
 * A queue's dominant share: its largest share of any resource, divided by its weight.
 *   share = max_r usage_r / capacity_r ÷ weight
 */
export function dominantShare(usage: ResourceVector, capacity: ResourceVector, weight = 1): number {
  let share = 0;
  for (const [k, v] of Object.entries(usage)) if (capacity[k] > 0) share = Math.max(share, v / capacity[k]);
  return share / weight;
}

/** What placing up to `limit` tasks of a piece of work did. */
export interface PlaceStep {
  placed: number;
  /** It got less than it asked for (no room, quota or budget): it leaves the pass. */
  blocked: boolean;
}

/**
 * Runs progressive filling over `ordered` (queue order) with `place` as the engine's callback.
 * Returns the work that left the pass blocked (its remaining tasks count as unplaced with the
 * engine's reasons); work never reached (budget spent) is left for the caller to count.
 */
export function fairShareOrder(
  ordered: readonly PendingWork[],
  fair: FairShareInput,
  budget: () => number,
  place: (w: PendingWork, limit: number) => PlaceStep,
): Set<PendingWork> {
  const usage = new Map([...fair.usage].map(([q, u]) => [q, { ...u }]));
  const weight = (q: string) => fair.weights?.get(q) ?? 1;
  const share = (q: string) => dominantShare(usage.get(q) ?? {}, fair.capacity, weight(q));
  const levels = [...new Set(ordered.map((w) => w.priority))].sort((x, y) => y - x);
  const left = new Set<PendingWork>();
  for (const level of levels) {
    // Each queue's work of this level, oldest first (the order is already by age).
    const lists = new Map<string, PendingWork[]>();
    for (const w of ordered) {
      if (w.priority !== level || w.tasks === 0) continue;
      const list = lists.get(w.queue);
      if (list) list.push(w);
      else lists.set(w.queue, [w]);
    }
    while (lists.size > 0 && budget() > 0) {
      const queues = [...lists.keys()].sort((x, y) => share(x) - share(y) || (x < y ? -1 : 1));
      const q = queues[0];
      const w = lists.get(q)![0];
      const perTask = dominantShare(w.resources, fair.capacity, weight(q));
      const next = queues.length > 1 ? share(queues[1]) : Infinity;
      const step = Math.ceil((fair.granularity ?? 0.001) / Math.max(perTask, 1e-12));
      const limit = perTask > 0 && Number.isFinite(next) ? Math.max(1, step, Math.floor((next - share(q)) / perTask)) : w.tasks;
      const { placed, blocked } = place(w, limit);
      usage.set(q, addResources(usage.get(q) ?? {}, w.resources, placed));
      if (w.tasks === 0 || blocked) {
        if (w.tasks > 0) left.add(w);
        const list = lists.get(q)!;
        list.shift();
        if (list.length === 0) lists.delete(q);
      }
    }
  }
  return left;
}
