/**
 * The per-cycle bound on pending work. A cycle's pure phases (placement, reclaim, preemption)
 * cost at least linear time in the pending jobs they consider, and they run synchronously; a
 * backlog of tens of thousands of jobs would block the scheduler's event loop for seconds and
 * starve its lease keep-alive. So a cycle considers at most `maxJobs` jobs: the head of every
 * queue (round robin between queues, each in queue order), plus a window that rotates over
 * the rest from cycle to cycle, so that work behind a blocked head (a gang that cannot start,
 * a selector nothing matches) still gets its turn. When the backlog fits, nothing changes.
 */
import { queueOrder } from './plugins/queue-sort';
import type { PendingWork } from './snapshot';

/** The work one cycle considers. */
export interface WorkWindow {
  /** At most `maxJobs` pieces of work (all of it, as given, when it fits; else in queue order). */
  work: PendingWork[];
  /** Jobs left for later cycles. */
  deferred: number;
  /** Where the rotating window starts next cycle (pass it back as `cursor`). */
  cursor: number;
}

/**
 * Picks the work of one cycle: everything when it fits in `maxJobs`; else half of the bound
 * from the heads of the queues (round robin, queues by name) and the other half from the rest,
 * in queue order, starting at `cursor` and wrapping.
 */
export function boundWork(work: readonly PendingWork[], maxJobs: number, cursor = 0): WorkWindow {
  if (work.length <= maxJobs) return { work: [...work], deferred: 0, cursor: 0 };
  const ordered = [...work].sort(queueOrder);
  const byQueue = new Map<string, PendingWork[]>();
  for (const w of ordered) {
    const list = byQueue.get(w.queue);
    if (list) list.push(w);
    else byQueue.set(w.queue, [w]);
  }
  const heads = [...byQueue.keys()].sort().map((q) => byQueue.get(q)!);
  const chosen = new Set<PendingWork>();
  const headCount = Math.ceil(maxJobs / 2);
  for (let depth = 0; chosen.size < headCount; depth++) {
    let any = false;
    for (const list of heads) {
      if (depth >= list.length || chosen.size >= headCount) continue;
      chosen.add(list[depth]);
      any = true;
    }
    if (!any) break;
  }
  const rest = ordered.filter((w) => !chosen.has(w));
  const windowSize = Math.min(rest.length, maxJobs - chosen.size);
  const start = rest.length ? cursor % rest.length : 0;
  for (let k = 0; k < windowSize; k++) chosen.add(rest[(start + k) % rest.length]);
  return { work: ordered.filter((w) => chosen.has(w)), deferred: ordered.length - chosen.size, cursor: rest.length ? (start + windowSize) % rest.length : 0 };
}
