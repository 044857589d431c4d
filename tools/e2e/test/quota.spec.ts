/**
 * Quota end to end on one real etcd: three quota replicas decide concurrently submitted jobs
 * exactly once; a queue borrows its cohort's idle quota; when the lender wants it back, the
 * scheduler reclaims exactly the borrowed tasks it needs (preempted and requeued), and at no
 * moment does a queue hold more than its nominal plus what it may borrow (invariant 5).
 */
import type { JobRecord, NodeAllocation } from '@batchapi/api';
import { waitFor, type WaitOptions } from '@batchapi/proc';
import { api, useCluster } from './harness';

// Tokens of the harness: tenant-token speaks for "default", other-token for "other".
const CLUSTER = {
  tenants: [{ name: 'default' }, { name: 'other' }],
  queues: [
    // one cohort of 8 + 8 cores; the borrower may borrow at most 8
    { name: 'lender', tenant: 'default', cohort: 'shared', nominal: { cpu: '8' } },
    { name: 'borrower', tenant: 'other', cohort: 'shared', nominal: { cpu: '8' }, borrowingLimit: { cpu: '8' } },
  ],
};

// Three quota replicas; the scheduler's reclaim may stop tasks bound a moment ago (no protection window), at most 100 a minute per queue.
// 8 nodes × 4 cores = 32 cores: room is never what stops the borrower, quota is.
const cluster = useCluster({ cluster: CLUSTER, quotaReplicas: 3, fleet: { nodes: 8, capacity: { cpu: '4', memory: '16Gi' }, taskMs: 60_000 } });
/** How long and how often the tests poll: reclaim and requeue take a few scheduler cycles. */
const SETTLE: WaitOptions = { timeoutMs: 20_000, intervalMs: 100 };

/** Cores each queue's live tasks hold now, from the nodes' allocations (a task asked to stop holds its cores until it ends). */
async function held(): Promise<Record<string, number>> {
  const out: Record<string, number> = { lender: 0, borrower: 0 };
  for (const { value: a } of (await cluster.store.listAll<NodeAllocation>(cluster.store.keys.allocs())).items) {
    for (const [q, v] of Object.entries(a.queues ?? {})) out[q] = (out[q] ?? 0) + (v.cpu ?? 0) / 1000;
  }
  return out;
}

it('three quota replicas decide 30 concurrent submits exactly once each', async () => {
  const submits = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      api(cluster.base, 'POST', '/v1/jobs', {
        name: `tiny-${i}`,
        queue: 'lender',
        command: ['true'],
        resources: { cpu: '100m' },
        env: { BATCH_SIM_SECONDS: '0.1' },
      }),
    ),
  );
  expect(submits.every((s) => s.status === 201)).toBe(true);
  const ids = new Set(submits.map((s) => s.body.id as string));
  const jobs = await waitFor(
    async () => (await cluster.store.listAll<JobRecord>(cluster.store.keys.jobs())).items.filter((j) => ids.has(j.value.id)),
    (js) => js.every((j) => j.value.phase === 'Succeeded'),
    SETTLE,
  );
  expect(jobs.map((j) => j.value.phase)).toEqual(Array(30).fill('Succeeded'));
  const metrics = await Promise.all(cluster.services.slice(0, 3).map(async (q) => (await fetch(`${q.url}/metrics`)).text()));
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
    const b = await api(
      cluster.base,
      'POST',
      '/v1/jobs',
      { name: 'greedy', queue: 'borrower', tasks: 20, command: ['true'], resources: { cpu: '1' } },
      'other-token',
    );
    expect(b.status).toBe(201);
    expect(await waitFor(held, (h) => h.borrower === 16, SETTLE)).toMatchObject({ borrower: 16, lender: 0 });
    // the lender wants 6 of its 8 back: 6 borrowed tasks are preempted, 6 lender tasks run
    const l = await api(cluster.base, 'POST', '/v1/jobs', { name: 'mine', queue: 'lender', tasks: 6, command: ['true'], resources: { cpu: '1' } });
    expect(l.status).toBe(201);
    const settled = await waitFor(held, (h) => h.lender === 6 && h.borrower === 10, SETTLE);
    expect(settled).toEqual({ lender: 6, borrower: 10 });
    const greedy = (await cluster.store.get<JobRecord>(cluster.store.keys.job(b.body.id)))!.value;
    // the 6 preempted tasks went back to pending at their next attempt: 4 + 6 wait
    expect(greedy.pending.reduce((n, r) => n + r.end - r.start, 0)).toBe(10);
    expect(greedy.pending.some((r) => r.attempt === 2)).toBe(true);
    const metrics = await (await fetch(`${cluster.scheduler.url}/metrics`)).text();
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
  const q = await api(cluster.base, 'GET', '/v1/queues/borrower', undefined, 'other-token');
  expect(q.body).toMatchObject({ cohort: 'shared', nominal: { cpu: '8' }, borrowed: { cpu: '2' } });
  // and where the caller's waiting job stands: greedy, next in its queue with 10 tasks waiting
  expect(q.body.positions).toEqual([{ jobId: expect.any(String), position: 1, pendingTasks: 10 }]);
});
