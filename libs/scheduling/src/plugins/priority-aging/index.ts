/**
 * Priority aging (Slurm's PriorityWeightAge, kueue #754): the effective priority of waiting work
 * grows with its wait, by whole points, up to a cap, so nothing waits forever behind a steady
 * stream of higher-priority work. Settings are per queue (`priorityAgingPerHour`,
 * `priorityAgingMax`), defaulting to the cluster-wide ones. Aging orders the queues (QueueSort,
 * fair-share tiers, batch fill); it gives no power to preempt: preemption compares the priority
 * the job was submitted with. Pure: time is passed in.
 */
import type { Queue } from '@batchapi/api';
import type { PendingWork } from '../../snapshot';

const HOUR_MS = 3_600_000;

/** How waiting raises priority. */
export interface PriorityAging {
  /** Points added per hour of waiting; 0 turns aging off. @default 0 */
  perHour: number;
  /** Most points aging adds. @default 0 */
  max: number;
}

/** No aging (Slurm's default too: `PriorityWeightAge=0`). */
export const NO_AGING: PriorityAging = { perHour: 0, max: 0 };

/**
 * Points aging adds after waiting `waitMs`:
 *   boost = min(max, floor(perHour × waitMs / 3 600 000))
 * Whole points, so work that waited about as long stays in one priority tier (fair share still
 * interleaves queues within it).
 */
export function agingBoost(waitMs: number, aging: PriorityAging): number {
  if (waitMs <= 0 || aging.perHour <= 0 || aging.max <= 0) return 0;
  // The small epsilon keeps an exact hour count from falling one point short to float rounding.
  return Math.min(aging.max, Math.floor((aging.perHour * waitMs) / HOUR_MS + 1e-9));
}

/** The aging settings of `queue`: its own fields, else the cluster-wide `fallback`. */
export function agingOf(queue: Pick<Queue, 'priorityAgingPerHour' | 'priorityAgingMax'> | undefined, fallback: PriorityAging): PriorityAging {
  return { perHour: queue?.priorityAgingPerHour ?? fallback.perHour, max: queue?.priorityAgingMax ?? fallback.max };
}

/**
 * `w` with its effective priority at `now`: `priority` raised by `agingBoost(now − createdAt)`,
 * the submitted one kept as `basePriority` (set only when aging raised it). `w` itself is not changed.
 */
export function agePendingWork(w: PendingWork, now: number, aging: PriorityAging): PendingWork {
  const boost = agingBoost(now - w.createdAt, aging);
  return boost === 0 ? w : { ...w, priority: w.priority + boost, basePriority: w.basePriority ?? w.priority };
}

/**
 * The wait after which work of priority `from` ranks with work of priority `to` submitted just
 * now, in milliseconds: the smallest wait with `agingBoost ≥ to − from`, i.e.
 *   ceil((to − from) × 3 600 000 / perHour)
 * 0 when `from ≥ to`; undefined when aging never gets there (off, or `max < to − from`).
 */
export function agingCatchUpMs(from: number, to: number, aging: PriorityAging): number | undefined {
  const gap = to - from;
  if (gap <= 0) return 0;
  if (aging.perHour <= 0 || aging.max < gap) return undefined;
  let ms = Math.ceil((gap * HOUR_MS) / aging.perHour);
  // Float rounding: step back while one less millisecond still reaches the gap.
  while (ms > 0 && agingBoost(ms - 1, aging) >= gap) ms--;
  return ms;
}
