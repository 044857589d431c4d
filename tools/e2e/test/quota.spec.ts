/**
 * Quota end to end on one real etcd: three quota replicas decide concurrently submitted jobs
 * exactly once; a queue borrows its cohort's idle quota; when the lender wants it back, the
 * scheduler reclaims exactly the borrowed tasks it needs (preempted and requeued), and at no
 * moment does a queue hold more than its nominal plus what it may borrow (invariant 5).
 */
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import type { JobRecord, NodeAllocation } from '@batchapi/api';
import { startSimulatedFleet } from '@batchapi/executor';
import { startQuota } from '@batchapi/quota';
import type { RunningService } from '@batchapi/runtime';
import { startScheduler } from '@batchapi/scheduler';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { api, TOKENS } from './harness';

// Tokens of the harness: tenant-token speaks for "default", other-token for "other".
const CLUSTER = {
  tenants: [{ name: 'default' }, { name: 'other' }],
  queues: [
    // one cohort of 8 + 8 cores; the borrower may borrow at most 8
    { name: 'lender', tenant: 'default', cohort: 'shared', nominal: { cpu: '8' } },
    { name: 'borrower', tenant: 'other', cohort: 'shared', nominal: { cpu: '8' }, borrowingLimit: { cpu: '8' } },
  ],
};

let etcd: LocalEtcd;
let store: EtcdStore;
const services: RunningService[] = [];
let base: string;
let scheduler: RunningService;

beforeAll(async () => {
  etcd = await startEtcd();
  const config = { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' };
  store = new EtcdStore({ endpoints: etcd.endpoints });
  for (let i = 0; i < 3; i++) services.push(await startQuota({ cluster: CLUSTER, config: { ...config, instanceId: `quota-${i}` } }));
  // reclaim may stop tasks bound a moment ago (no protection window), at most 100 a minute per queue
  scheduler = await startScheduler({ config, tuning: { idleMs: 100, busyMs: 5 } });
  services.push(scheduler);
  // 8 nodes × 4 cores = 32 cores: room is never what stops the borrower, quota is
  services.push(await startSimulatedFleet({ nodes: 8, capacity: { cpu: '4', memory: '16Gi' }, taskMs: 60_000 }, config));
  const admission = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config });
  services.push(admission);
  base = admission.url;
});
afterAll(async () => {
  for (const s of services.reverse()) await s.close().catch(() => undefined);
  await store?.close();
  await etcd?.stop();
});

/** Cores each queue's live tasks hold now, from the nodes' allocations (a task asked to stop holds its cores until it ends). */
async function held(): Promise<Record<string, number>> {
  const out: Record<string, number> = { lender: 0, borrower: 0 };
  for (const { value: a } of (await store.listAll<NodeAllocation>(store.keys.allocs())).items) {
    for (const [q, v] of Object.entries(a.queues ?? {})) out[q] = (out[q] ?? 0) + (v.cpu ?? 0) / 1000;
  }
  return out;
}

async function until<T>(what: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await what();
  while (!ok(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    v = await what();
  }
  return v;
}

it('three quota replicas decide 30 concurrent submits exactly once each', async () => {
  const submits = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      api(base, 'POST', '/v1/jobs', { name: `tiny-${i}`, queue: 'lender', command: ['true'], resources: { cpu: '100m' }, env: { BATCH_SIM_SECONDS: '0.1' } }),
    ),
  );
  expect(submits.every((s) => s.status === 201)).toBe(true);
  const ids = new Set(submits.map((s) => s.body.id as string));
  const jobs = await until(
    async () => (await store.listAll<JobRecord>(store.keys.jobs())).items.filter((j) => ids.has(j.value.id)),
    (js) => js.every((j) => j.value.phase === 'Succeeded'),
  );
  expect(jobs.map((j) => j.value.phase)).toEqual(Array(30).fill('Succeeded'));
  const metrics = await Promise.all(services.slice(0, 3).map(async (q) => (await fetch(`${q.url}/metrics`)).text()));
  // each job decided once in all: the Queued decisions of the three replicas add up to 30
  const queued = metrics
    .map((m) => Number(/batch_quota_decisions_total\{decision="Queued",service="quota"\} (\d+)/.exec(m)?.[1] ?? 0))
    .reduce((a, b) => a + b, 0);
  expect(queued).toBe(30);
});

it('lends idle quota, then reclaims exactly the borrowed tasks the lender needs, never over quota', async () => {
  const samples: Array<Record<string, number>> = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push(await held());
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    // the borrower asks for 20 one-core tasks: 8 nominal + 8 borrowed run, 4 wait
    const b = await api(base, 'POST', '/v1/jobs', { name: 'greedy', queue: 'borrower', tasks: 20, command: ['true'], resources: { cpu: '1' } }, 'other-token');
    expect(b.status).toBe(201);
    expect(await until(held, (h) => h.borrower === 16)).toMatchObject({ borrower: 16, lender: 0 });
    // the lender wants 6 of its 8 back: 6 borrowed tasks are preempted, 6 lender tasks run
    const l = await api(base, 'POST', '/v1/jobs', { name: 'mine', queue: 'lender', tasks: 6, command: ['true'], resources: { cpu: '1' } });
    expect(l.status).toBe(201);
    const settled = await until(held, (h) => h.lender === 6 && h.borrower === 10);
    expect(settled).toEqual({ lender: 6, borrower: 10 });
    const greedy = (await store.get<JobRecord>(store.keys.job(b.body.id)))!.value;
    // the 6 preempted tasks went back to pending at their next attempt: 4 + 6 wait
    expect(greedy.pending.reduce((n, r) => n + r.end - r.start, 0)).toBe(10);
    expect(greedy.pending.some((r) => r.attempt === 2)).toBe(true);
    const metrics = await (await fetch(`${scheduler.url}/metrics`)).text();
    expect(metrics).toMatch(/batch_quota_reclaimed_tasks_total\{queue="borrower",service="scheduler"\} 6\n/);
  } finally {
    sampling = false;
    await sampler;
  }
  // invariant 5 at every sample: borrower ≤ 8 + 8, the cohort ≤ 16
  expect(samples.length).toBeGreaterThanOrEqual(3);
  for (const s of samples) {
    expect(s.borrower).toBeLessThanOrEqual(16);
    expect(s.lender + s.borrower).toBeLessThanOrEqual(16);
  }
  // the queue view shows what is borrowed
  const q = await api(base, 'GET', '/v1/queues/borrower', undefined, 'other-token');
  expect(q.body).toMatchObject({ cohort: 'shared', nominal: { cpu: '8' }, borrowed: { cpu: '2' } });
  // and where the caller's waiting job stands: greedy, next in its queue with 10 tasks waiting
  expect(q.body.positions).toEqual([{ jobId: expect.any(String), position: 1, pendingTasks: 10 }]);
});
