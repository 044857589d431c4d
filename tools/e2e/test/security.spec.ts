/**
 * Bad input and other tenants change nothing: a property-based fuzzer sends over 10,000
 * generated requests to every route and accepts only 4xx answers with a stable code (or a
 * 201 for a body that really is valid), never a 5xx; then an authorization matrix of every
 * route × {anonymous, tenant A, tenant B, operator}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import { ErrorCode, type JobRecord, parseSubmit } from '@batchapi/api';
import { startExecutor } from '@batchapi/executor';
import { startQuota } from '@batchapi/quota';
import type { RunningService } from '@batchapi/runtime';
import { startScheduler } from '@batchapi/scheduler';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import fc from 'fast-check';
import { sha, until } from './harness';

const TOKENS = {
  tokens: [
    { sha256: sha('token-a'), tenant: 'team-a', role: 'tenant' as const },
    { sha256: sha('token-b'), tenant: 'team-b', role: 'tenant' as const },
    { sha256: sha('token-op'), tenant: 'ops', role: 'operator' as const },
  ],
};
const CLUSTER = {
  tenants: [{ name: 'team-a' }, { name: 'team-b' }, { name: 'ops' }],
  queues: [
    { name: 'default', tenant: 'team-a' },
    { name: 'b', tenant: 'team-b' },
  ],
};
const CODES = new Set<string>(Object.values(ErrorCode));

let etcd: LocalEtcd;
let store: EtcdStore;
let dir: string;
let base: string;
const services: RunningService[] = [];

/**
 * Sends one request and reads its whole answer. The path must reach the server as written: the
 * client's URL parser resolves dot segments (`/v1/jobs/./events` is sent as `/v1/jobs/events`,
 * the job-counts stream, which answers 200 and never ends — a fuzz run that drew the id `.`
 * hung until the suite's timeout), so a path it would rewrite is an error of the generator here.
 * Answers are read within 10 s: a stream opened by mistake fails naming its request.
 */
async function send(method: string, path: string, token: string | undefined, body?: string) {
  const url = new URL(`${base}${path}`);
  if (url.pathname !== path.split('?')[0]) throw new Error(`the client would send ${url.pathname}, not ${path}`);
  const res = await fetch(url, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text().catch((err: Error) => {
    throw new Error(`${method} ${path} → ${res.status} ${res.headers.get('content-type')}: answer not read in 10 s (${err.message})`);
  });
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  dir = mkdtempSync(join(tmpdir(), 'sec-'));
  const config = { etcdEndpoints: etcd.endpoints, logLevel: 'fatal', leaseTtlSeconds: 5 };
  services.push(await startQuota({ cluster: CLUSTER, config }));
  services.push(await startScheduler({ config, tuning: { idleMs: 100, busyMs: 5 } }));
  services.push(
    await startExecutor({ config, executor: { nodeName: 'sec-0', dataDir: dir, cpu: '2', memory: '4Gi', killGraceMs: 500, reportIntervalMs: 50 } }),
  );
  const admission = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config, bodyLimit: 64 * 1024 });
  services.push(admission);
  base = admission.url;
});

afterAll(async () => {
  for (const s of services.reverse()) await s.close().catch(() => undefined);
  await store.close();
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
});

const jobCount = async () => (await store.listAll<JobRecord>(store.keys.jobs())).items.length;

/** Values that are wrong for each submit field. */
const BAD: Record<string, unknown[]> = {
  command: [[], [''], 'ls', [1], null, [['a']], Array.from({ length: 1025 }, () => 'x')],
  tasks: [0, -1, 1.5, 1e12, '5', null, {}, [], Number.MAX_SAFE_INTEGER],
  resources: [{ cpu: 'lots' }, { gpu: 1.5 }, { 'bad name': 1 }, { memory: '-1Gi' }, [], { cpu: '1e400' }, { memory: '9999999999999Ti' }, 'cpu'],
  priority: [1e9, 'high', 0.5, -1001],
  env: [{ '1BAD': 'x' }, { A: 1 }, [], 'A=1', { '': 'x' }],
  queue: ['UPPER', '', 'a'.repeat(64), 7, 'ü'],
  tenant: ['Bad_Name', 5, ''],
  labels: [{ 'bad key!': 'x' }, { k: 5 }],
  selector: [{ k: 5 }, []],
  tolerations: [[{}], 'x', [{ key: 'k', effect: 'Sometimes' }]],
  gang: ['yes', 1],
  retry: [{}, { maxAttempts: 0 }, { maxAttempts: 2, retryOnReasons: ['Bored'] }],
  timeoutSeconds: [0, -5, 'soon', 1e12],
  name: ['', ' spaced ', 'x'.repeat(200), '💥'],
};
const VALID = { command: ['true'], tasks: 2, resources: { cpu: '100m' } };

const corrupted = fc.constantFrom(...Object.keys(BAD)).chain((field) => fc.constantFrom(...BAD[field]).map((bad) => ({ ...VALID, [field]: bad })));
const unknownKey = fc
  .string({ minLength: 1, maxLength: 12 })
  .filter((k) => !(k in BAD) && k !== '__proto__')
  .map((k) => ({ ...VALID, [k]: 1 }));
const anyJson = fc.jsonValue({ maxDepth: 4 });
const deep = fc.integer({ min: 50, max: 400 }).map((d) => {
  let v: unknown = 1;
  for (let i = 0; i < d; i++) v = { command: v };
  return v;
});
const bodyText = fc.oneof(
  { weight: 4, arbitrary: corrupted.map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: unknownKey.map((b) => JSON.stringify(b)) },
  { weight: 2, arbitrary: anyJson.map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: deep.map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) }, // not JSON, mostly
  { weight: 1, arbitrary: fc.integer({ min: 65 * 1024, max: 200 * 1024 }).map((n) => JSON.stringify({ ...VALID, env: { BIG: 'x'.repeat(n) } })) },
);
/** A path segment `encodeURIComponent` leaves as a dot segment, which the client resolves away before sending (see `send`). */
const isDotSegment = (s: string) => s === '.' || s === '..';
// '%2e%2e' is sent encoded (%252e%252e): an id of dots the server must refuse like any other
const segment = fc
  .oneof(fc.string({ maxLength: 30 }), fc.constantFrom('0', '-1', '999999999999', '%2e%2e', '😀', 'a'.repeat(300)))
  .filter((s) => !isDotSegment(s));
const token = fc.constantFrom(undefined, 'token-a', 'token-b', 'token-op', 'nope', '');

describe('fuzzing every route', () => {
  it('sends the ids it draws as written: no drawn segment is one the client resolves away', () => {
    // the trap: a dot segment turns a job's stream into the job-counts stream (200, never ends)
    expect(new URL('http://h/v1/jobs/./events').pathname).toBe('/v1/jobs/events');
    fc.assert(
      fc.property(segment, (seg) => {
        const path = `/v1/jobs/${encodeURIComponent(seg)}/events`;
        return new URL(`http://h${path}`).pathname === path;
      }),
      { numRuns: 20_000 },
    );
  });

  it('answers 10,000+ generated bad requests with 4xx and a stable code, never 5xx, and writes nothing', async () => {
    const before = await jobCount();
    let valid201 = 0;
    let tried = 0;
    const check = (r: { status: number; json: any }, what: string) => {
      tried++;
      if (r.status >= 500 || r.status < 400 || !CODES.has(r.json?.error?.code)) throw new Error(`${what} → ${r.status} ${JSON.stringify(r.json)}`);
    };
    await fc.assert(
      fc.asyncProperty(bodyText, token, async (body, tok) => {
        const r = await send('POST', '/v1/jobs', tok, body);
        if (r.status === 201 || r.status === 200) {
          // Only a body that really is valid may be accepted.
          parseSubmit(JSON.parse(body));
          valid201++;
          tried++;
          return;
        }
        check(r, `POST /v1/jobs ${body.slice(0, 200)}`);
      }),
      { numRuns: 5000 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          ['GET', ''],
          ['GET', '/why'],
          ['GET', '/tasks/0/logs'],
          ['GET', '/tasks/x/logs?follow=maybe'],
          ['DELETE', ''],
          ['GET', '/results'],
          ['GET', '/events'],
        ),
        segment,
        token,
        async ([method, tail], seg, tok) => {
          const path = `/v1/jobs/${encodeURIComponent(seg)}${tail}`;
          check(await send(method, path, tok), `${method} ${path}`);
        },
      ),
      { numRuns: 3000 },
    );
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.constantFrom('state', 'queue', 'limit', 'pageToken', 'x'), fc.string({ maxLength: 20 })), token, async (q, tok) => {
        const r = await send('GET', `/v1/jobs?${new URLSearchParams(q)}`, tok);
        if (r.status === 200) {
          tried++;
          return;
        } // a valid filter
        check(r, `GET /v1/jobs?${new URLSearchParams(q)}`);
      }),
      { numRuns: 1500 },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('cordon', 'drain'), segment, anyJson, token, async (verb, seg, body, tok) => {
        check(await send('POST', `/v1/nodes/${encodeURIComponent(seg)}/${verb}`, tok, JSON.stringify(body)), `POST nodes ${verb}`);
      }),
      { numRuns: 1500 },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(['GET', ''], ['GET', '/events'], ['DELETE', '']), segment, token, async ([method, tail], seg, tok) => {
        const path = `/v1/workflows/${encodeURIComponent(seg)}${tail}`;
        check(await send(method, path, tok), `${method} ${path}`);
      }),
      { numRuns: 500 },
    );
    await fc.assert(
      fc.asyncProperty(segment, anyJson, token, async (seg, body, tok) => {
        const path = `/v1/workflows/${encodeURIComponent(seg)}/retry`;
        check(await send('POST', path, tok, JSON.stringify(body)), `POST ${path}`);
      }),
      { numRuns: 300 },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/v1/workflows', '/v1/jobs:batch'), anyJson, token, async (path, body, tok) => {
        check(await send('POST', path, tok, JSON.stringify(body)), `POST ${path} ${JSON.stringify(body).slice(0, 200)}`);
      }),
      { numRuns: 500 },
    );
    console.log(`fuzz: ${tried} requests tried, ${valid201} valid bodies accepted`);
    expect(tried).toBeGreaterThanOrEqual(10_000);
    expect(await jobCount()).toBe(before + valid201);
    expect((await store.listAll(store.keys.cordons())).items).toHaveLength(0);
    expect((await store.listAll(store.keys.workflows())).items).toHaveLength(0);
  }, 240_000);
});

describe('authorization matrix', () => {
  it('every route × {anonymous, tenant A, tenant B, operator}', async () => {
    const submit = await send('POST', '/v1/jobs', 'token-a', JSON.stringify({ command: ['sh', '-c', 'echo secret-of-a'], resources: { cpu: '100m' } }));
    expect(submit.status).toBe(201);
    const id = submit.json.id;
    await until(async () => (await send('GET', `/v1/jobs/${id}`, 'token-a')).json.phase === 'Succeeded', 10000);
    // a finished run of A that failed: what a retry takes
    const wf = await send(
      'POST',
      '/v1/workflows',
      'token-a',
      JSON.stringify({ steps: [{ name: 'fail', job: { command: ['false'], resources: { cpu: '100m' } } }] }),
    );
    expect(wf.status).toBe(201);
    await until(async () => (await send('GET', `/v1/workflows/${wf.json.id}`, 'token-a')).json.phase === 'Failed', 10000);
    // expected status per principal: [anonymous, A, B, operator]
    const matrix: Array<[string, string, string | undefined, number[]]> = [
      ['GET', `/v1/jobs/${id}`, undefined, [401, 200, 404, 200]],
      ['GET', `/v1/jobs/${id}/why`, undefined, [401, 200, 404, 200]],
      ['GET', `/v1/jobs/${id}/tasks/0/logs`, undefined, [401, 200, 404, 200]],
      ['GET', `/v1/jobs/${id}/results`, undefined, [401, 200, 404, 200]],
      ['GET', '/v1/workflows', undefined, [401, 200, 200, 200]],
      ['GET', '/v1/jobs', undefined, [401, 200, 200, 200]],
      ['GET', '/v1/nodes', undefined, [401, 403, 403, 200]],
      ['POST', '/v1/nodes/sec-0/cordon', JSON.stringify({ reason: 'matrix' }), [401, 403, 403, 200]],
      ['DELETE', '/v1/nodes/sec-0/cordon', undefined, [401, 403, 403, 200]],
      ['POST', '/v1/jobs', JSON.stringify({ command: ['true'], tenant: 'team-a' }), [401, 201, 403, 201]],
      ['DELETE', `/v1/jobs/${id}`, undefined, [401, 202, 404, 202]],
      ['POST', `/v1/workflows/${wf.json.id}/retry`, '{}', [401, 201, 404, 201]],
    ];
    const principals = [undefined, 'token-a', 'token-b', 'token-op'];
    for (const [method, path, body, expected] of matrix) {
      const got = [];
      for (const p of principals) got.push((await send(method, path, p, body)).status);
      expect([method, path, got]).toEqual([method, path, expected]);
    }
    // The executor's internal routes answer no API token, operators' included: only the service credential.
    const executor = services.find((s) => s.ctx.name === 'executor')!;
    for (const p of principals) {
      const res = await fetch(`${executor.url}/internal/logs/${id}/0/1/stdout`, { headers: p ? { authorization: `Bearer ${p}` } : {} });
      const text = await res.text();
      expect([p, res.status, JSON.parse(text).error.code, text.includes('secret-of-a')]).toEqual([p, 401, 'unauthenticated', false]);
    }
    // B never sees A's job in a listing, nor its log text anywhere.
    const listB = await send('GET', '/v1/jobs?limit=1000', 'token-b');
    expect(listB.json.jobs.some((j: { id: string }) => j.id === id)).toBe(false);
    expect((await send('GET', `/v1/jobs/${id}/tasks/0/logs`, 'token-b')).text).not.toContain('secret-of-a');
  }, 60_000);
});
