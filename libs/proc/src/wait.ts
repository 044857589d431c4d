/** How long and how often {@link waitFor} asks. */
export interface WaitOptions {
  /** How long to keep asking, in milliseconds. @default 10000 */
  timeoutMs?: number;
  /** The pause between two questions, in milliseconds. @default 50 */
  intervalMs?: number;
}

/**
 * Asks `fn` until `ok` holds for its answer or `timeoutMs` has passed, and returns the last
 * answer (the caller asserts on it, so a timeout shows what was seen last). An answer that
 * throws counts as not yet; if the last one before the deadline threw, that error is thrown.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, ok: (v: T) => boolean, opts: WaitOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const pause = opts.intervalMs ?? 50;
  for (;;) {
    let last: { value: T } | { error: unknown };
    try {
      const value = await fn();
      if (ok(value)) return value;
      last = { value };
    } catch (error) {
      last = { error };
    }
    if (Date.now() >= deadline) {
      if ('error' in last) throw last.error;
      return last.value;
    }
    await new Promise((r) => setTimeout(r, pause));
  }
}

/** {@link waitFor} of a condition: true once it holds, false when `timeoutMs` passed first. */
export async function waitUntil(ok: () => boolean | Promise<boolean>, opts: WaitOptions = {}): Promise<boolean> {
  return (await waitFor(ok, (v) => v === true, opts)) === true;
}
