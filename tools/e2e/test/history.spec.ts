/**
 * Live state in etcd, history in PostgreSQL, end to end: jobs run on simulated nodes through the
 * real quota service (with its archiver), scheduler and admission; once finished they leave etcd
 * (job, groups, results), and the API answers for them from history — the job, its results, its
 * event stream, a cancel (a no-op), and a submit retried with the same Idempotency-Key.
 */
import type { UsageGroupView } from '@batchapi/api';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import { startSimulatedFleet } from '@batchapi/executor';
import { createDatabase, type LocalPostgres, startPostgres } from '@batchapi/history';
import { startQuota } from '@batchapi/quota';
import type { RunningService } from '@batchapi/runtime';
import { startScheduler } from '@batchapi/scheduler';
import { type ArchiveBacklog, EtcdStore, type LocalEtcd, sha256, startEtcd } from '@batchapi/store';
import { api, CLUSTER, TOKENS, until, waitForJob } from './harness';

let etcd: LocalEtcd;
let pg: LocalPostgres;
let pgDir: string;
let pgStopped = false;
let store: EtcdStore;
const services: RunningService[] = [];
let base: string;
let config: { etcdEndpoints: string[]; leaseTtlSeconds: number; logLevel: string };
let historyUrl: string;

beforeAll(async () => {
  pgDir = mkdtempSync(join(tmpdir(), 'batch-history-e2e-'));
  [etcd, pg] = await Promise.all([startEtcd(), startPostgres({ dataDir: pgDir, ephemeral: true })]);
  historyUrl = await createDatabase(pg.url, 'history');
  store = new EtcdStore({ endpoints: etcd.endpoints });
  config = { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' };
  services.push(await startQuota({ cluster: CLUSTER, config, historyUrl, archive: { afterMs: 500, intervalMs: 100, idempotencyHandoverMs: 1000 } }));
  services.push(await startScheduler({ config, tuning: { idleMs: 100, busyMs: 5 } }));
  services.push(await startSimulatedFleet({ nodes: 4, capacity: { cpu: '4', memory: '16Gi' }, taskMs: 100 }, config));
  const admission = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config, historyUrl });
  services.push(admission);
  base = admission.url;
});
afterAll(async () => {
  for (const s of services.reverse()) await s.close().catch(() => undefined);
  await store?.close();
  await etcd?.stop();
  if (!pgStopped) await pg?.stop().catch(() => undefined);
  rmSync(pgDir, { recursive: true, force: true });
});

/** Starts PostgreSQL again on its data dir and port after a test stopped it. */
async function restartPostgresIfStopped(): Promise<void> {
  if (!pgStopped) return;
  pg = await startPostgres({ dataDir: pgDir, port: pg.port, ephemeral: true });
  pgStopped = false;
}

const gone = async (id: string) => (await store.get(store.keys.job(id))) === undefined && (await store.listAll(store.keys.groupsOf(id))).items.length === 0;

it('answers for a finished job from history once it has left etcd', async () => {
  const body = { tasks: 6, resources: { cpu: '1', memory: '1Gi' }, command: ['true'] };
  const submit = await fetch(`${base}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer tenant-token`, 'content-type': 'application/json', 'idempotency-key': 'history-e2e-1' },
    body: JSON.stringify(body),
  });
  expect(submit.status).toBe(201);
  const id = ((await submit.json()) as { id: string }).id;
  const done = await waitForJob(base, id, 30_000);
  expect(done).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 6 } });

  expect(await until(() => gone(id), 20_000)).toBe(true);
  const got = await api(base, 'GET', `/v1/jobs/${id}`);
  expect(got.status).toBe(200);
  expect(got.body).toMatchObject({ id, phase: 'Succeeded', taskCounts: { succeeded: 6, failed: 0, pending: 0, running: 0 } });
  // Another tenant still gets 404 for it.
  expect((await api(base, 'GET', `/v1/jobs/${id}`, undefined, 'other-token')).status).toBe(404);
  expect((await api(base, 'GET', `/v1/jobs/${id}/results`)).body).toEqual({ results: [] });
  // Its tasks, one row per attempt, from history, page by page.
  const first = await api(base, 'GET', `/v1/jobs/${id}/tasks?limit=4`);
  expect(first.status).toBe(200);
  expect(first.body.tasks.map((t: { index: number }) => t.index)).toEqual([0, 1, 2, 3]);
  expect(first.body.tasks.every((t: { state: string; node?: string }) => t.state === 'Succeeded' && t.node?.startsWith('sim-'))).toBe(true);
  const second = await api(base, 'GET', `/v1/jobs/${id}/tasks?limit=4&pageToken=${first.body.nextPageToken}`);
  expect(second.body.tasks.map((t: { index: number }) => t.index)).toEqual([4, 5]);
  expect(second.body.nextPageToken).toBeUndefined();
  expect((await api(base, 'GET', `/v1/jobs/${id}/tasks?state=Failed`)).body).toEqual({ tasks: [] });
  expect((await api(base, 'DELETE', `/v1/jobs/${id}`)).body).toMatchObject({ id, phase: 'Succeeded' });
  // The same submit again: the same job, 200, not a new one.
  const again = await fetch(`${base}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer tenant-token`, 'content-type': 'application/json', 'idempotency-key': 'history-e2e-1' },
    body: JSON.stringify(body),
  });
  expect(again.status).toBe(200);
  expect(await again.json()).toMatchObject({ id, phase: 'Succeeded' });

  // PostgreSQL down: the archived job is a 503 to retry, never a 404 or a 500.
  await pg.stop();
  pgStopped = true;
  const down = await fetch(`${base}/v1/jobs/${id}`, { headers: { authorization: 'Bearer tenant-token' } });
  expect(down.status).toBe(503);
  expect(down.headers.get('retry-after')).toBe('5');
  expect(((await down.json()) as { error: { code: string } }).error.code).toBe('unavailable');
});

it('lists live and archived jobs as one list in id order, each once, page by page', async () => {
  await restartPostgresIfStopped();
  const submitted: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await api(base, 'POST', '/v1/jobs', { tasks: 1, resources: { cpu: '1', memory: '1Gi' }, command: ['true'] }, 'operator-token');
    submitted.push(r.body.id);
  }
  for (const id of submitted) await waitForJob(base, id, 30_000);
  expect(await until(async () => (await Promise.all(submitted.map(gone))).every(Boolean), 20_000)).toBe(true);
  // One that stays live: more cores than any node has, so it waits Queued.
  const waiting = (await api(base, 'POST', '/v1/jobs', { tasks: 1, resources: { cpu: '64', memory: '1Gi' }, command: ['true'] }, 'operator-token')).body.id;
  // Its one task is listed live, waiting.
  expect((await api(base, 'GET', `/v1/jobs/${waiting}/tasks`, undefined, 'operator-token')).body).toEqual({
    tasks: [{ index: 0, attempt: 1, state: 'Pending' }],
  });
  const seen: string[] = [];
  let token: string | undefined;
  do {
    const page = await api(base, 'GET', `/v1/jobs?limit=2${token ? `&pageToken=${token}` : ''}`, undefined, 'operator-token');
    expect(page.status).toBe(200);
    seen.push(...(page.body.jobs as Array<{ id: string }>).map((j) => j.id));
    token = page.body.nextPageToken;
  } while (token);
  expect(new Set(seen).size).toBe(seen.length);
  expect(seen).toEqual([...seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  for (const id of [...submitted, waiting]) expect(seen).toContain(id);
  // A tenant's list holds only its own jobs, archived ones included.
  const other = await api(base, 'GET', '/v1/jobs?limit=100', undefined, 'other-token');
  expect(other.body.jobs).toEqual([]);
});

it('filters and orders live and archived jobs alike: label selector, name, times, tenant, sort', async () => {
  await restartPostgresIfStopped();
  const prefix = `flt${Date.now().toString(36)}-`;
  const submit = async (name: string, labels: Record<string, string>, cpu = '1') =>
    (await api(base, 'POST', '/v1/jobs', { name: prefix + name, labels, tasks: 1, resources: { cpu, memory: '1Gi' }, command: ['true'] })).body as {
      id: string;
      createdAt: string;
    };
  // a, b, c run and are archived, one after the other; d waits Queued (more cores than any node), live.
  const a = await submit('a', { team: 'ml', env: 'prod' });
  await waitForJob(base, a.id, 30_000);
  const b = await submit('b', { team: 'ml', env: 'dev' });
  await waitForJob(base, b.id, 30_000);
  const c = await submit('c', { team: 'web' });
  await waitForJob(base, c.id, 30_000);
  expect(await until(async () => (await Promise.all([a, b, c].map((j) => gone(j.id)))).every(Boolean), 20_000)).toBe(true);
  const d = await submit('d', { team: 'ml', env: 'prod' }, '64');
  const names = async (query: string, token = 'tenant-token') => {
    const r = await api(base, 'GET', `/v1/jobs?namePrefix=${prefix}&${query}`, undefined, token);
    expect(r.status).toBe(200);
    return (r.body.jobs as Array<{ name: string }>).map((j) => j.name.slice(prefix.length));
  };
  const sel = (s: string) => `labelSelector=${encodeURIComponent(s)}`;
  expect(await names('')).toEqual(['a', 'b', 'c', 'd']);
  expect(await names(sel('team=ml'))).toEqual(['a', 'b', 'd']);
  expect(await names(sel('env in (prod)'))).toEqual(['a', 'd']);
  // != also holds where the label is absent (c has no env)
  expect(await names(sel('env!=dev'))).toEqual(['a', 'c', 'd']);
  expect(await names(sel('!env'))).toEqual(['c']);
  expect(await names('sort=-submitted')).toEqual(['d', 'c', 'b', 'a']);
  expect(await names(`submittedSince=${encodeURIComponent(b.createdAt)}`)).toEqual(['b', 'c', 'd']);
  expect(await names(`submittedBefore=${encodeURIComponent(b.createdAt)}`)).toEqual(['a']);
  // finished jobs only: the live, waiting d is not one
  expect(await names('finishedBefore=2100-01-01T00:00:00Z')).toEqual(['a', 'b', 'c']);
  // by end, newest first, in pages of 2 that carry the order
  const first = await api(base, 'GET', `/v1/jobs?namePrefix=${prefix}&sort=-finished&limit=2`);
  expect(first.body.jobs.map((j: { name: string }) => j.name.slice(prefix.length))).toEqual(['c', 'b']);
  const second = await api(base, 'GET', `/v1/jobs?namePrefix=${prefix}&sort=-finished&limit=2&pageToken=${first.body.nextPageToken}`);
  expect(second.body.jobs.map((j: { name: string }) => j.name.slice(prefix.length))).toEqual(['a']);
  expect(second.body.nextPageToken).toBeUndefined();
  // a token is bound to its order
  const wrongOrder = await api(base, 'GET', `/v1/jobs?namePrefix=${prefix}&sort=finished&pageToken=${first.body.nextPageToken}`);
  expect(wrongOrder.status).toBe(400);
  expect(wrongOrder.body.error).toMatchObject({ code: 'invalid_argument', field: 'pageToken' });
  // tenants: an operator filters by tenant; a tenant may not ask for another's jobs
  expect(await names('tenant=default', 'operator-token')).toEqual(['a', 'b', 'c', 'd']);
  expect(await names('tenant=other', 'operator-token')).toEqual([]);
  const foreign = await api(base, 'GET', '/v1/jobs?tenant=default', undefined, 'other-token');
  expect(foreign.status).toBe(403);
  expect(foreign.body.error).toMatchObject({ code: 'permission_denied', field: 'tenant' });
  // bad input: a clear error naming the field
  const bad = await api(base, 'GET', `/v1/jobs?${sel('team in (a')}`);
  expect(bad.status).toBe(400);
  expect(bad.body.error).toMatchObject({ code: 'invalid_argument', field: 'labelSelector' });
  expect(bad.body.error.message).toMatch(/unclosed/);
  const badTime = await api(base, 'GET', '/v1/jobs?submittedSince=yesterday');
  expect(badTime.body.error).toMatchObject({ code: 'invalid_argument', field: 'submittedSince' });
  await api(base, 'DELETE', `/v1/jobs/${d.id}`);

  // Usage of those archived runs by the team label: a and b are team=ml, c team=web; each one
  // attempt of 1 CPU and 1 GiB, so its core-hours equal its GiB-hours.
  const usage = await api(base, 'GET', `/v1/usage?groupBy=label:team&from=${encodeURIComponent(a.createdAt)}`);
  expect(usage.status).toBe(200);
  expect(usage.body).toMatchObject({ groupBy: 'label:team', truncated: false });
  const team = Object.fromEntries((usage.body.groups as UsageGroupView[]).map((g) => [g.key, g]));
  expect(team.ml).toMatchObject({ attempts: 2, succeeded: 2, failed: 0, gpuHours: 0 });
  expect(team.web).toMatchObject({ attempts: 1, succeeded: 1 });
  expect(team.ml.cpuCoreHours).toBeGreaterThan(0);
  // equal up to their rounding to 1e-6 each: two sums computed apart may round to neighbours (a CI run saw 0.000057 and 0.000058)
  expect(Math.abs(team.ml.memoryGiBHours - team.ml.cpuCoreHours)).toBeLessThanOrEqual(1e-6 + 1e-12);
  expect(team.ml.queueWaitP50Seconds).toBeGreaterThanOrEqual(0);
  // another tenant sees none of it, and may not ask for this one's
  expect((await api(base, 'GET', `/v1/usage?from=${encodeURIComponent(a.createdAt)}`, undefined, 'other-token')).body.groups).toEqual([]);
  expect((await api(base, 'GET', '/v1/usage?tenant=default', undefined, 'other-token')).status).toBe(403);
});

it('moves a finished workflow and its step jobs to history, and answers for them from there', async () => {
  await restartPostgresIfStopped();
  const job = { resources: { cpu: '1', memory: '1Gi' }, command: ['true'] };
  const res = await api(base, 'POST', '/v1/workflows', {
    name: 'archived-flow',
    steps: [
      { name: 'a', job },
      { name: 'b', dependsOn: ['a'], job },
    ],
  });
  expect(res.status).toBe(201);
  const id = res.body.id as string;
  const done = await until(async () => (await api(base, 'GET', `/v1/workflows/${id}`)).body.phase === 'Succeeded', 30_000);
  expect(done).toBe(true);
  const steps = (await api(base, 'GET', `/v1/workflows/${id}`)).body.steps as Array<{ jobId: string }>;
  // The workflow leaves etcd, then its step jobs.
  expect(
    await until(
      async () => (await store.get(store.keys.workflow(id))) === undefined && (await Promise.all(steps.map((s) => gone(s.jobId)))).every(Boolean),
      20_000,
    ),
  ).toBe(true);
  const got = await api(base, 'GET', `/v1/workflows/${id}`);
  expect(got.status).toBe(200);
  expect(got.body).toMatchObject({ id, name: 'archived-flow', phase: 'Succeeded' });
  for (const s of steps) expect((await api(base, 'GET', `/v1/jobs/${s.jobId}`)).body.phase).toBe('Succeeded');
  expect((await api(base, 'GET', '/v1/workflows')).body.workflows.map((w: { id: string }) => w.id)).toContain(id);
  expect((await api(base, 'GET', `/v1/workflows/${id}`, undefined, 'other-token')).status).toBe(404);
  expect((await api(base, 'DELETE', `/v1/workflows/${id}`)).body).toMatchObject({ id, phase: 'Succeeded' });
});

it('pauses submits while etcd holds more finished jobs than the history has taken, and resumes once they drain', async () => {
  await restartPostgresIfStopped();
  // An admission replica that pauses at 2 finished jobs waiting (the others keep the default).
  const gated = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config, historyUrl, backlog: { maxFinished: 2 } });
  services.push(gated);
  const backlog = async () => (await store.get<ArchiveBacklog>(store.keys.archiveBacklog()))?.value;
  const body = { tasks: 1, resources: { cpu: '1', memory: '1Gi' }, command: ['true'] };
  // History down: two jobs finish and stay in etcd, and the archiver counts them.
  await pg.stop();
  pgStopped = true;
  const held = [(await api(base, 'POST', '/v1/jobs', body)).body.id, (await api(base, 'POST', '/v1/jobs', body)).body.id];
  for (const id of held) await waitForJob(base, id, 30_000);
  expect(await until(async () => ((await backlog())?.finished ?? 0) >= 2, 20_000)).toBe(true);
  expect(await until(async () => (await fetch(`${gated.url}/v1/jobs`, submitRequest(body))).status === 503, 10_000)).toBe(true);
  const refused = await fetch(`${gated.url}/v1/jobs`, submitRequest(body));
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toBe('30');
  expect(((await refused.json()) as { error: { code: string; message: string } }).error).toMatchObject({
    code: 'overloaded',
    message: expect.stringMatching(/finished jobs waiting for the history store \(limit 2/),
  });
  // History back: the backlog drains and submits are taken again.
  await restartPostgresIfStopped();
  expect(await until(() => Promise.all(held.map(gone)).then((g) => g.every(Boolean)), 30_000)).toBe(true);
  expect(await until(async () => ((await backlog())?.finished ?? 0) < 2, 20_000)).toBe(true);
  expect(await until(async () => (await fetch(`${gated.url}/v1/jobs`, submitRequest(body))).status === 201, 10_000)).toBe(true);
});

function submitRequest(body: unknown): RequestInit {
  return { method: 'POST', headers: { authorization: 'Bearer tenant-token', 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

it("answers a retried submit from history once its job and its key's record have left etcd; another body is a conflict; no history, no keyed submit", async () => {
  await restartPostgresIfStopped();
  const body = { tasks: 1, resources: { cpu: '1', memory: '1Gi' }, command: ['true'], labels: { case: 'key-handover' } };
  const submit = (b: unknown, key: string) =>
    fetch(`${base}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: 'Bearer tenant-token', 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(b),
    });
  const key = `handover-${Date.now()}`;
  const first = await submit(body, key);
  expect(first.status).toBe(201);
  const id = ((await first.json()) as { id: string }).id;
  await waitForJob(base, id, 30_000);
  // The job leaves etcd; its key's record follows once the handover (1 s here) has passed.
  const record = store.keys.idempotency('default', sha256(key));
  expect(await until(async () => (await gone(id)) && (await store.get(record)) === undefined, 20_000)).toBe(true);
  const again = await submit(body, key);
  expect(again.status).toBe(200);
  expect(await again.json()).toMatchObject({ id, phase: 'Succeeded' });
  // nothing new was made under the key
  expect(await store.get(record)).toBeUndefined();
  const other = await submit({ ...body, tasks: 2 }, key);
  expect(other.status).toBe(409);
  expect(((await other.json()) as { error: { code: string } }).error.code).toBe('idempotency_conflict');
  // History down: a keyed submit cannot be told new from a retry — 503 to retry; one without a key goes in.
  await pg.stop();
  pgStopped = true;
  const down = await submit(body, `${key}-new`);
  expect(down.status).toBe(503);
  expect((await api(base, 'POST', '/v1/jobs', body)).status).toBe(201);
  await restartPostgresIfStopped();
  expect((await submit(body, `${key}-new`)).status).toBe(201);
});
