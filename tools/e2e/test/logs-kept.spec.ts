/**
 * Logs and large results outlive their node, end to end, with each blob store. A result over the
 * inline cap (64 KiB) is kept in the blob store and listed by reference (size, SHA-256); its own
 * route and the TypeScript SDK's `result()` answer its value, before and after the job is
 * archived. Logs: a real executor runs real processes;
 * when an attempt ends it uploads its stdout and stderr, and once the executor is gone and the job
 * archived out of etcd, `GET /v1/jobs/:id/tasks/:index/logs` still answers them — the latest
 * attempt by default, an earlier one by `attempt` — from PostgreSQL (the history database) or from
 * an S3-compatible server (versitygw). A task that never ran has no log kept: 404.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import { type BlobSettings, type LocalS3, startS3Server } from '@batchapi/blobs';
import { startExecutor } from '@batchapi/executor';
import { createDatabase, type LocalPostgres, startPostgres } from '@batchapi/history';
import { startQuota } from '@batchapi/quota';
import type { RunningService } from '@batchapi/runtime';
import { startScheduler } from '@batchapi/scheduler';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { BatchClient } from '@batchapi/sdk';
import { api, CLUSTER, TOKENS, until, waitForJob } from './harness';

let etcd: LocalEtcd;
let pg: LocalPostgres;
let s3: LocalS3;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'batch-logs-kept-'));
  [etcd, pg, s3] = await Promise.all([startEtcd(), startPostgres({ ephemeral: true }), startS3Server(join(dir, 's3'))]);
}, 60_000);
afterAll(async () => {
  await Promise.all([etcd?.stop(), pg?.stop(), s3?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const logOf = async (base: string, path: string) => {
  const res = await fetch(`${base}${path}`, { headers: { authorization: 'Bearer tenant-token' } });
  return { status: res.status, text: await res.text() };
};

describe.each(['postgres', 's3'] as const)('with the %s blob store', (kind) => {
  const services: RunningService[] = [];
  let admission: RunningService;
  let executor: RunningService;
  let base: string;
  let store: EtcdStore;

  beforeAll(async () => {
    const historyUrl = await createDatabase(pg.url, `logs_${kind}`);
    const blobs: BlobSettings = kind === 'postgres' ? { kind, historyUrl } : { kind, ...s3.options, prefix: 'e2e/' };
    // each cluster under its own prefix: the suite's two clusters share the etcd member
    const config = { etcdEndpoints: etcd.endpoints, etcdPrefix: `/logs-${kind}/`, leaseTtlSeconds: 5, logLevel: 'error' };
    store = new EtcdStore({ endpoints: etcd.endpoints, prefix: config.etcdPrefix });
    services.push(await startQuota({ cluster: CLUSTER, config, historyUrl, archive: { afterMs: 300, intervalMs: 100, idempotencyHandoverMs: 1000 } }));
    services.push(await startScheduler({ config, tuning: { idleMs: 100, busyMs: 5 } }));
    executor = await startExecutor({
      config,
      blobs,
      executor: { nodeName: `logs-${kind}`, dataDir: join(dir, kind), cpu: '4', memory: '8Gi', killGraceMs: 1000, reportIntervalMs: 50 },
    });
    admission = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config, historyUrl, blobs });
    services.push(admission);
    base = admission.url;
  }, 60_000);
  afterAll(async () => {
    await executor?.close().catch(() => undefined);
    for (const s of services.reverse()) await s.close().catch(() => undefined);
    await store?.close();
  });

  it('keeps a result over 64 KiB in the blob store and answers it by reference, before and after archiving', async () => {
    // [0,1,…,29999]: 168,890 bytes of JSON
    const script = 'awk \'BEGIN { printf "["; for (i = 0; i < 30000; i++) printf (i ? ",%d" : "%d"), i; printf "]" }\' > "$BATCH_RESULT_PATH"';
    const client = new BatchClient({ url: base, token: 'tenant-token' });
    const job = await client.jobs.submit({ tasks: 1, resources: { cpu: '0.5', memory: '64Mi' }, command: ['sh', '-c', script] });
    const expected = Array.from({ length: 30_000 }, (_, i) => i);
    expect(await job.result()).toEqual(expected);
    const listed = (await api(base, 'GET', `/v1/jobs/${job.id}/results`)).body;
    expect(listed).toEqual({ results: [{ index: 0, ref: { sizeBytes: JSON.stringify(expected).length, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } }] });
    // archived out of etcd: the reference is read from history, the value from the blob store
    expect(await until(async () => (await store.get(store.keys.job(job.id))) === undefined, 20_000)).toBe(true);
    expect((await api(base, 'GET', `/v1/jobs/${job.id}/results`)).body).toEqual(listed);
    expect((await api(base, 'GET', `/v1/jobs/${job.id}/results/0`)).body).toEqual(expected);
    expect((await api(base, 'GET', `/v1/jobs/${job.id}/results/1`)).status).toBe(404);
  });

  it("answers an ended attempt's logs after its node is gone and its job left etcd", async () => {
    // Task 1 fails its first attempt (exit 3) and succeeds its second; each attempt says which it is.
    const script = 'echo "out $BATCH_TASK_INDEX attempt $BATCH_ATTEMPT"; echo "err $BATCH_TASK_INDEX" >&2; [ "$BATCH_TASK_INDEX.$BATCH_ATTEMPT" != 1.1 ]';
    const res = await fetch(`${base}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: 'Bearer tenant-token', 'content-type': 'application/json' },
      body: JSON.stringify({ tasks: 3, resources: { cpu: '0.5', memory: '64Mi' }, command: ['sh', '-c', script], retry: { maxAttempts: 2 } }),
    });
    expect(res.status).toBe(201);
    const id = ((await res.json()) as { id: string }).id;
    expect(await waitForJob(base, id, 30_000)).toMatchObject({ phase: 'Succeeded' });

    // The node goes away, then the archiver moves the job out of etcd.
    await executor.close();
    expect(await until(async () => (await store.get(store.keys.job(id))) === undefined, 20_000)).toBe(true);

    expect(await logOf(base, `/v1/jobs/${id}/tasks/0/logs`)).toEqual({ status: 200, text: 'out 0 attempt 1\n' });
    expect(await logOf(base, `/v1/jobs/${id}/tasks/0/logs?stream=stderr`)).toEqual({ status: 200, text: 'err 0\n' });
    expect(await logOf(base, `/v1/jobs/${id}/tasks/1/logs`)).toEqual({ status: 200, text: 'out 1 attempt 2\n' });
    expect(await logOf(base, `/v1/jobs/${id}/tasks/1/logs?attempt=1`)).toEqual({ status: 200, text: 'out 1 attempt 1\n' });
    expect((await logOf(base, `/v1/jobs/${id}/tasks/1/logs?attempt=3`)).status).toBe(404);
  });
});
