/**
 * One tenant's oversized job cannot stop binding for everyone (issue 13, defect 3), on a
 * cluster of real services in this process against a real etcd: a job whose env makes it too
 * large is refused at submit (single, bulk and workflow submits alike) naming the field, and
 * writes nothing; a job record made that large behind admission's back fails with a reason,
 * while another tenant's 2-task job still binds and succeeds.
 */
import type { JobRecord } from '@batchapi/api';
import { submitJob } from '@batchapi/store';
import { api, until, useCluster, waitForJob } from './harness';

const CLUSTER = {
  tenants: [{ name: 'default' }, { name: 'other' }],
  queues: [
    { name: 'default', tenant: 'default' },
    { name: 'other-q', tenant: 'other' },
  ],
};

// admission keeps its default body limit (1 MiB): the reproduction's 960 KB body passes it
const cluster = useCluster({ cluster: CLUSTER, fleet: { nodes: 2, capacity: { cpu: '4', memory: '16Gi' }, taskMs: 200 } });

/** The reproduction's env: 30 entries of 32,000 characters (960,000 bytes). */
const HUGE_ENV = Object.fromEntries(Array.from({ length: 30 }, (_, k) => [`BIG_${k}`, 'x'.repeat(32_000)]));
const jobCount = async () => (await cluster.store.listAll(cluster.store.keys.jobs())).items.length;

describe('submit caps', () => {
  it.each([
    // [what, path, body, status, code, field]
    // 960,000 bytes of env: stored record ≈ 960 KB > 384 KiB (MAX_JOB_RECORD_BYTES)
    ['a job with 30 env entries of 32,000 characters', '/v1/jobs', { command: ['true'], env: HUGE_ENV }, 413, 'payload_too_large', 'env'],
    // 513 > MAX_ENV_ENTRIES (512)
    [
      'a job with 513 env entries',
      '/v1/jobs',
      { command: ['true'], env: Object.fromEntries(Array.from({ length: 513 }, (_, k) => [`E${k}`, '1'])) },
      400,
      'invalid_argument',
      'env',
    ],
    // 11,000 "€" = 33,000 bytes > 32 KiB (32,768) though 11,000 characters
    ['an env value over 32 KiB in UTF-8 bytes', '/v1/jobs', { command: ['true'], env: { A: '€'.repeat(11_000) } }, 400, 'invalid_argument', 'env.A'],
    // 65 > MAX_LABELS (64)
    [
      'a job with 65 labels',
      '/v1/jobs',
      { command: ['true'], labels: Object.fromEntries(Array.from({ length: 65 }, (_, k) => [`l${k}`, 'v'])) },
      400,
      'invalid_argument',
      'labels',
    ],
    // 33 > MAX_SELECTOR_ENTRIES (32)
    [
      'a job with 33 selector entries',
      '/v1/jobs',
      { command: ['true'], selector: Object.fromEntries(Array.from({ length: 33 }, (_, k) => [`s${k}`, 'v'])) },
      400,
      'invalid_argument',
      'selector',
    ],
    // a step's job is validated as a job, with the labels the controller adds
    [
      'a workflow step with the huge env',
      '/v1/workflows',
      { steps: [{ name: 'a', job: { command: ['true'], env: HUGE_ENV } }] },
      413,
      'payload_too_large',
      'steps[0].job.env',
    ],
    // 63 of the user's + the 2 a step job gets (batch.workflow, batch.step) = 65 > 64
    [
      "a workflow step with 63 labels (65 with the workflow's)",
      '/v1/workflows',
      { steps: [{ name: 'a', job: { command: ['true'], labels: Object.fromEntries(Array.from({ length: 63 }, (_, k) => [`l${k}`, 'v'])) } }] },
      400,
      'invalid_argument',
      'steps[0].job.labels',
    ],
  ])('refuses %s naming the field, and writes nothing', async (_name, path, body, status, code, field) => {
    const [jobs, workflows] = [await jobCount(), (await cluster.store.listAll(cluster.store.keys.workflows())).items.length];
    const res = await api(cluster.base, 'POST', path, body);
    expect(res.status).toBe(status);
    expect(res.body.error).toMatchObject({ code, field });
    expect(await jobCount()).toBe(jobs);
    expect((await cluster.store.listAll(cluster.store.keys.workflows())).items).toHaveLength(workflows);
  });

  it('refuses the huge job in its own slot of a bulk submit; the others are committed', async () => {
    const res = await api(cluster.base, 'POST', '/v1/jobs:batch', { jobs: [{ command: ['true'], env: HUGE_ENV }, { command: ['true'] }] });
    expect(res.status).toBe(200);
    expect(res.body.results[0]).toMatchObject({ status: 413, error: { code: 'payload_too_large', field: 'jobs[0].env' } });
    expect(res.body.results[1]).toMatchObject({ status: 201 });
  });
});

it("fails a job record made too large to bind behind admission, while another tenant's 2-task job binds and succeeds", async () => {
  // Written straight into etcd (no admission caps): tenant "other", already Queued, 960 KB of env.
  const big: JobRecord = {
    id: '000000001-bigbigbigbig',
    tenant: 'other',
    queue: 'other-q',
    phase: 'Queued',
    createdAt: 1,
    queuedAt: 1,
    spec: { name: 'big', command: ['true'], env: HUGE_ENV, resources: { cpu: 100, memory: 1024 * 1024 }, tasks: 2, priority: 0, labels: {} },
    pending: [{ start: 0, end: 2, attempt: 1 }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
  };
  await submitJob(cluster.store, big);
  const res = await api(cluster.base, 'POST', '/v1/jobs', { command: ['true'], tasks: 2, resources: { cpu: '100m', memory: '64Mi' } });
  expect(res.status).toBe(201);
  // before: every cycle's plan threw on the big job's bind (etcd: request is too large) and this stayed Queued
  const done = await waitForJob(cluster.base, res.body.id, 30_000);
  expect(done.phase).toBe('Succeeded');
  // its tenant sees why (other tenants get 404)
  let seen: any;
  await until(async () => (seen = (await api(cluster.base, 'GET', `/v1/jobs/${big.id}`, undefined, 'other-token')).body).phase === 'Failed', 10_000);
  expect(seen).toMatchObject({ phase: 'Failed', reason: { code: 'bind_too_large' } });
  expect(seen.reason.message).toMatch(/pass large values by reference/);
});
