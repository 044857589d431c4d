/**
 * Waits `ms` milliseconds, or less: resolves at once when `signal` aborts (a service shutting
 * down does not wait out a pause). Its abort listener is removed when the time is up, so a loop
 * that sleeps on one signal does not pile listeners on it.
 */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
