/**
 * `GET /v1/jobs/events` over real HTTP against a real etcd: the counts per phase of the jobs a
 * caller may see, first as they are, then at each change of one of them — a tenant counts only
 * its own jobs (another tenant's change sends it nothing), an operator counts every tenant's.
 * The console's jobs page reloads its list on each event. Also: the console is served under
 * `/console/` with its Content-Security-Policy.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobCountsView } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd, submitJob } from '@batchapi/store';
import { startAdmission, TokenAuthenticator } from '../src';
import { jobRecord } from './job-record';
import { sseEvents } from './sse';
import { teamTokens } from './tokens';

const TOKENS = teamTokens('team-c');

let etcd: LocalEtcd;
let store: EtcdStore;
let admission: RunningService;
let consoleDir: string;

const job = jobRecord;

/** The `data` of each `jobs` event of a stream, in order, as they arrive. */
function countEvents(token: string, signal: AbortSignal, lastEventId?: string): AsyncGenerator<JobCountsView> {
  const headers = { authorization: `Bearer ${token}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) };
  return sseEvents<JobCountsView>(`${admission.url}/v1/jobs/events`, 'jobs', headers, signal);
}

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  consoleDir = mkdtempSync(join(tmpdir(), 'console-'));
  writeFileSync(join(consoleDir, 'index.html'), '<!doctype html><title>console</title>');
  admission = await startAdmission({
    tokens: new TokenAuthenticator(TOKENS),
    config: { etcdEndpoints: etcd.endpoints, logLevel: 'error' },
    consoleDir,
    traceUrl: 'https://jaeger.example.com/trace/{traceId}',
  });
  await submitJob(store, job('a1', 'team-a'));
  await submitJob(store, job('a2', 'team-a', 'Running'));
  await submitJob(store, job('b1', 'team-b'));
});
afterAll(async () => {
  await admission?.close();
  await store?.close();
  await etcd?.stop();
  rmSync(consoleDir, { recursive: true, force: true });
});

describe('GET /v1/jobs/events', () => {
  it('sends the counts as they are to a client resuming with an id its view is not at (a newer one: an id of another stream, or counts that lost archived jobs)', async () => {
    const abort = new AbortController();
    // team-c has no job in etcd: its view's revision is 0, below the id the client says it saw
    const events = countEvents('token-team-c', abort.signal, '999999999');
    const first = await Promise.race([events.next(), new Promise<'none'>((r) => setTimeout(() => r('none'), 5000))]);
    abort.abort();
    expect(first === 'none' ? first : first.value).toEqual({ counts: {}, total: 0 });
  });

  it("counts a tenant's own jobs per phase, and sends a new count when one of them changes but not when another tenant's does", async () => {
    const abort = new AbortController();
    const events = countEvents('token-a', abort.signal);
    // a1 Queued, a2 Running; b1 is team-b's.
    expect((await events.next()).value).toEqual({ counts: { Queued: 1, Running: 1 }, total: 2 });
    // team-b's job comes first: it changes nothing team-a sees, so the next event is a3's.
    await submitJob(store, job('b2', 'team-b'));
    await submitJob(store, job('a3', 'team-a'));
    // (The informers' first sync rebuilds the view at the revision already sent: no second event.)
    expect((await events.next()).value).toEqual({ counts: { Queued: 2, Running: 1 }, total: 3 });
    abort.abort();
  });

  it("sends the smaller count when one of the tenant's jobs leaves etcd (archived), and nothing when another tenant's does", async () => {
    await submitJob(store, job('a9', 'team-a', 'Succeeded'));
    await submitJob(store, job('b9', 'team-b', 'Succeeded'));
    const abort = new AbortController();
    const events = countEvents('token-a', abort.signal);
    // a1, a3 Queued, a2 Running, a9 Succeeded
    expect((await events.next()).value).toEqual({ counts: { Queued: 2, Running: 1, Succeeded: 1 }, total: 4 });
    // team-b's b9 leaves first: team-a's counts do not change, so the next event is a9's leaving.
    // Each delete's revision is above every job left, so without the delete's revision as the
    // view's, neither would be sent (the view's revision would stay where it was).
    await store.txn([], [{ delete: store.keys.job('b9') }]);
    await store.txn([], [{ delete: store.keys.job('a9') }]);
    expect((await events.next()).value).toEqual({ counts: { Queued: 2, Running: 1 }, total: 3 });
    abort.abort();
  });

  it("counts every tenant's jobs for an operator", async () => {
    const abort = new AbortController();
    const first = (await countEvents('token-op', abort.signal).next()).value as JobCountsView;
    // a1, a3, b1, b2 Queued; a2 Running.
    expect(first).toEqual({ counts: { Queued: 4, Running: 1 }, total: 5 });
    abort.abort();
  });

  it('refuses a caller without a token (401)', async () => {
    const res = await fetch(`${admission.url}/v1/jobs/events`);
    expect(res.status).toBe(401);
    await res.body?.cancel();
  });
});

describe('/console/', () => {
  it('serves the console files with a strict Content-Security-Policy', async () => {
    const res = await fetch(`${admission.url}/console/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<title>console</title>');
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"])
      expect(csp).toContain(directive);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it("serves the deployment's console settings (the trace UI's template) under the same policy, to anyone: nothing in it is secret", async () => {
    const res = await fetch(`${admission.url}/console/config.json`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ traceUrl: 'https://jaeger.example.com/trace/{traceId}' });
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
  });

  it('redirects /console to /console/', async () => {
    const res = await fetch(`${admission.url}/console`, { redirect: 'manual' });
    expect(res.status).toBe(301);
    expect(res.headers.get('location')).toBe('/console/');
  });
});
