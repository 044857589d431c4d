/**
 * Quarantine: a node whose attempts keep failing for node reasons is taken out of scheduling.
 * Pure: the failure times in, the decision out.
 */

/** When a node is quarantined. */
export interface QuarantinePolicy {
  /** Node failures within the window that quarantine it. @default 3 */
  failures: number;
  /** The window, in milliseconds. @default 600000 (10 min) */
  windowMs: number;
}

export const DEFAULT_QUARANTINE: QuarantinePolicy = { failures: 3, windowMs: 600_000 };

/**
 * Adds a node failure at `now` to the node's recent failure times (dropping those older than
 * the window) and says whether the node now crosses the threshold.
 */
export function recordNodeFailure(
  times: readonly number[],
  now: number,
  policy: QuarantinePolicy = DEFAULT_QUARANTINE,
): { times: number[]; quarantine: boolean } {
  const recent = [...times.filter((t) => now - t < policy.windowMs), now];
  return { times: recent, quarantine: recent.length >= policy.failures };
}
