/** The client side of a service's `GET /readyz`: what launchers and tests poll before they use it. */
import type { EtcdStore } from '@batchapi/store';
import type { MemberRecord } from './service';

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

/**
 * The URL of process `pid`, started as instance `id` of `service` with `BATCH_PORT=0`, once its
 * member record carries that pid and a URL and it answers ready there; else undefined (poll
 * again). A launcher reads the port the service picked itself, and never takes another
 * process's `/readyz` — an earlier one of the same name, or a stranger on a reused port — for it.
 */
export async function readyMemberUrl(store: EtcdStore, service: string, id: string, pid: number | undefined): Promise<string | undefined> {
  const member = (await store.get<MemberRecord>(store.keys.member(service, id)))?.value;
  return member && member.pid === pid && member.url && (await answersReady(member.url)) ? member.url : undefined;
}
