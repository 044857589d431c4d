/**
 * Backpressure across two admission replicas on one real etcd: a tenant's token buckets hold
 * across replicas (429 with Retry-After and the limit's code), a queue's pending-task cap
 * refuses submits beyond it, a saturated replica sheds with 503, and every accepted submit is
 * stored while no refused one is.
 */
import { createHash } from 'node:crypto';
import type { JobRecord, Queue, Tenant } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { startQuota } from '@batchapi/quota';
import { startAdmission, TokenAuthenticator } from '../src';
import { PendingTasks, SubmitThrottle } from '../src/throttle';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const TOKENS = { tokens: ['fast', 'tasks', 'capped'].map((t) => ({ sha256: sha(`token-${t}`), tenant: t, role: 'tenant' as const })) };
const CLUSTER = {
  tenants: [
    { name: 'fast', limits: { submitsPerSecond: 5, submitBurst: 10 } },
    { name: 'tasks', limits: { tasksPerSecond: 1, taskBurst: 20 } },
    { name: 'capped' },
  ],
  queues: [
    { name: 'fast-q', tenant: 'fast' },
    { name: 'tasks-q', tenant: 'tasks' },
    // nothing runs in this test (no executor): pending tasks stay pending
    { name: 'capped-q', tenant: 'capped', maxPendingTasks: 5 },
  ],
};

let etcd: LocalEtcd;
let store: EtcdStore;
let quota: RunningService;
const replicas: RunningService[] = [];

async function submit(replica: number, token: string, body: Record<string, unknown>) {
  const res = await fetch(`${replicas[replica].url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer token-${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ command: ['true'], ...body }),
  });
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as { id?: string; error?: { code: string; field?: string } },
  };
}
const jobsOf = async (queue: string) => (await store.listAll<JobRecord>(store.keys.jobs())).items.filter((j) => j.value.queue === queue).map((j) => j.value.id);

beforeAll(async () => {
  etcd = await startEtcd();
  const config = { etcdEndpoints: etcd.endpoints, port: 0, leaseTtlSeconds: 5, logLevel: 'error' };
  store = new EtcdStore({ endpoints: etcd.endpoints });
  quota = await startQuota({ cluster: CLUSTER, config });
  for (let i = 0; i < 2; i++) replicas.push(await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config }));
});
afterAll(async () => {
  for (const r of replicas) await r.close();
  await quota?.close();
  await store?.close();
  await etcd?.stop();
});

it('holds a tenant to its submit rate across both replicas: 429 submit_rate_exceeded with Retry-After, and only accepted jobs exist', async () => {
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => submit(i % 2, 'fast', { queue: 'fast-q', name: `j${i}` })));
  const elapsed = (Date.now() - started) / 1000;
  const accepted = results.filter((r) => r.status === 201);
  const refused = results.filter((r) => r.status === 429);
  expect(accepted.length + refused.length).toBe(40);
  // burst 10 + 5/s × elapsed, whichever replica answered
  expect(accepted.length).toBeGreaterThanOrEqual(10);
  expect(accepted.length).toBeLessThanOrEqual(10 + Math.ceil(5 * elapsed));
  for (const r of refused) {
    expect(r.body.error).toMatchObject({ code: 'submit_rate_exceeded', field: 'tenant' });
    expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
  }
  expect((await jobsOf('fast-q')).sort()).toEqual(accepted.map((r) => r.body.id).sort());
  const metrics = await (await fetch(`${replicas[0].url}/metrics`)).text();
  expect(metrics).toMatch(/batch_admission_throttled_total\{limit="submits_per_second",service="admission"\} [1-9]/);
});

it('counts tasks, not requests, against the tasks bucket: 429 task_rate_exceeded', async () => {
  // burst 20 at 1 task/s: 15 fit, the next 15 do not (only ~1 more token by then)
  expect((await submit(0, 'tasks', { queue: 'tasks-q', tasks: 15 })).status).toBe(201);
  const second = await submit(1, 'tasks', { queue: 'tasks-q', tasks: 15 });
  expect(second.status).toBe(429);
  expect(second.body.error?.code).toBe('task_rate_exceeded');
  // 15 − (5 + ~0) missing tokens at 1/s → about 10 s
  expect(Number(second.retryAfter)).toBeGreaterThanOrEqual(9);
  expect(await jobsOf('tasks-q')).toHaveLength(1);
});

it('refuses a submit that would put a queue over its pending-task cap with 429 queue_full', async () => {
  expect((await submit(0, 'capped', { queue: 'capped-q', tasks: 3 })).status).toBe(201);
  // both replicas watch jobs: wait until each counts the 3 waiting tasks
  const deadline = Date.now() + 5000;
  let res = await submit(1, 'capped', { queue: 'capped-q', tasks: 3 });
  while (res.status === 201 && Date.now() < deadline) res = await submit(1, 'capped', { queue: 'capped-q', tasks: 1 });
  expect(res.status).toBe(429);
  expect(res.body.error).toMatchObject({ code: 'queue_full', field: 'queue' });
  const stored = (await store.listAll<JobRecord>(store.keys.jobs())).items.filter((j) => j.value.queue === 'capped-q');
  expect(stored.reduce((n, j) => n + j.value.spec.tasks, 0)).toBeLessThanOrEqual(5);
});

it('sheds load with 503 and Retry-After when a replica already handles its most submits at once', async () => {
  const throttle = new SubmitThrottle(store, new PendingTasks(), { chunkSeconds: 0.1, holdMs: 1000, maxInflight: 1 }, () => undefined);
  const tenant: Tenant = { name: 't', weight: 1 };
  const queue: Queue = { name: 'q', tenant: 't', nominal: {} };
  let release!: () => void;
  const first = throttle.admit(
    tenant,
    queue,
    1,
    Date.now(),
    () =>
      new Promise<void>((r) => {
        release = r;
      }),
  );
  await expect(throttle.admit(tenant, queue, 1, Date.now(), async () => undefined)).rejects.toMatchObject({
    status: 503,
    code: 'overloaded',
    details: { retryAfterSeconds: 1 },
  });
  release();
  await first;
  await expect(throttle.admit(tenant, queue, 1, Date.now(), async () => 'ok')).resolves.toBe('ok');
});
