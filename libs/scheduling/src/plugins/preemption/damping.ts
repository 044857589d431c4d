/**
 * Thrash damping, the repeat limit: a job whose tasks were stopped (preemption or reclaim) in
 * `maxPreemptions` distinct cycles within the last `windowMs` is not a victim again until the
 * oldest of those leaves the window. Pure: the stop times per job in, the exempt jobs out.
 */

/** The repeat limit. */
export interface RepeatLimit {
  /** Times a job may be preempted within the window before it is exempt; 0 turns the limit off. @default 3 */
  maxPreemptions: number;
  /** The window, in milliseconds. @default 600000 */
  windowMs: number;
}

/** 3 preemptions in 10 minutes. */
export const DEFAULT_REPEAT_LIMIT: RepeatLimit = { maxPreemptions: 3, windowMs: 600_000 };

/**
 *   exempt = { job : |{ t ∈ preemptedAt(job) : now − t < windowMs }| ≥ maxPreemptions }   (maxPreemptions > 0)
 * Returns the exempt jobs and the times still inside the window (the caller keeps them; jobs
 * with none left are dropped).
 */
export function repeatExempt(
  preemptedAt: ReadonlyMap<string, readonly number[]>,
  now: number,
  limit: RepeatLimit,
): { exempt: Set<string>; recent: Map<string, number[]> } {
  const exempt = new Set<string>();
  const recent = new Map<string, number[]>();
  for (const [job, times] of preemptedAt) {
    const kept = times.filter((t) => now - t < limit.windowMs);
    if (kept.length === 0) continue;
    recent.set(job, kept);
    if (limit.maxPreemptions > 0 && kept.length >= limit.maxPreemptions) exempt.add(job);
  }
  return { exempt, recent };
}

/** `preemptedAt` with one more stop at `at` for each job of `victims` (one per job per cycle); a new map. */
export function recordPreemptions(
  preemptedAt: ReadonlyMap<string, readonly number[]>,
  victims: Iterable<{ task: { jobId: string } }>,
  at: number,
): Map<string, number[]> {
  const out = new Map<string, number[]>([...preemptedAt].map(([k, v]) => [k, [...v]]));
  for (const jobId of new Set([...victims].map((v) => v.task.jobId))) out.set(jobId, [...(out.get(jobId) ?? []), at]);
  return out;
}
