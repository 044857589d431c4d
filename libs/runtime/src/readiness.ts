/** The client side of a service's `GET /readyz`: what launchers and tests poll before they use it. */

/**
 * Whether the service at `url` (its base URL) answers `GET /readyz` with 200 within `timeoutMs`
 * milliseconds; a refused, failed or late answer is "not ready" (a stopped process must not
 * hang the caller's poll).
 */
export async function answersReady(url: string, timeoutMs = 2000): Promise<boolean> {
  return fetch(`${url}/readyz`, { signal: AbortSignal.timeout(timeoutMs) }).then(
    (r) => r.ok,
    () => false,
  );
}
