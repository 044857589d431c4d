/** When the SDK retries a request, and how long it waits first. Pure: no clock but the one passed in. */

/** Statuses that mean "not now, try again": the request changed nothing. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 503]);

/**
 * Milliseconds a `Retry-After` header asks for: delta-seconds (`"2"`, `"0.5"`) or an
 * HTTP-date. `undefined` when absent or unreadable.
 */
export function retryAfterMs(header: string | null | undefined, now: number = Date.now()): number | undefined {
  if (header === null || header === undefined || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Delay before retry number `attempt` (0 = the first retry): what the server asked for when it
 * said (`Retry-After`, else the error body's `retryAfterSeconds`), else exponential from 200 ms
 * with ±50% jitter; never more than `maxMs`.
 */
export function backoff(attempt: number, retryAfter: string | null | undefined, maxMs = 10_000, bodySeconds?: number): number {
  const asked = retryAfterMs(retryAfter) ?? (bodySeconds !== undefined && Number.isFinite(bodySeconds) ? bodySeconds * 1000 : undefined);
  const base = asked ?? 200 * 2 ** attempt * (0.5 + Math.random());
  return Math.min(base, maxMs);
}
