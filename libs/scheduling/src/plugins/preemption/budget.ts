/**
 * The preemption budget: each queue loses at most `perMinute` tasks to preemption and reclaim
 * in any sliding minute. Pure: the times of recent stops per victim queue in, the victims each
 * queue may still lose out.
 */

/** Sliding window of the budget, in milliseconds. */
export const PREEMPTION_WINDOW_MS = 60_000;

/**
 *   budget(q) = max(0, perMinute − |{ t ∈ stoppedAt(q) : now − t < 60 000 }|)
 * Returns the budget and the times still inside the window (the caller keeps them).
 */
export function preemptionBudget(
  stoppedAt: ReadonlyMap<string, readonly number[]>,
  now: number,
  perMinute: number,
): { budget: Map<string, number>; recent: Map<string, number[]> } {
  const budget = new Map<string, number>();
  const recent = new Map<string, number[]>();
  for (const [queue, times] of stoppedAt) {
    const kept = times.filter((t) => now - t < PREEMPTION_WINDOW_MS);
    recent.set(queue, kept);
    budget.set(queue, Math.max(0, perMinute - kept.length));
  }
  return { budget, recent };
}
