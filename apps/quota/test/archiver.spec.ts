/**
 * The archiver against a real etcd and a real PostgreSQL: a finished job leaves etcd (with its
 * groups and results) once `afterMs` has passed and is in history with one row per task attempt;
 * running jobs and steps of a running workflow stay; a job already in history from a pass that
 * crashed before its etcd delete is archived once; with PostgreSQL down the finished job stays in
 * etcd and a failure is counted, and it is archived once PostgreSQL is back.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GroupStatus, JobRecord, RuntimeEstimates, TaskResult, WorkflowRecord } from '@batchapi/api';
import { createDatabase, HistoryStore, type LocalPostgres, migrate, startPostgres } from '@batchapi/history';
import { putRuntimeEstimates, submitJob, submitWorkflow } from '@batchapi/store';
import { DEFAULT_CLUSTER, seedCluster, startQuota } from '../src';
import { finishedJob, quotaSuite, runningWorkflow } from './harness';
import { waitUntil } from '@batchapi/proc';

const suite = quotaSuite();
let pgDir: string;
let pg: LocalPostgres;
let url: string;
let history: HistoryStore;

beforeAll(async () => {
  pgDir = mkdtempSync(join(tmpdir(), 'batch-archiver-pg-'));
  pg = await startPostgres({ dataDir: pgDir, ephemeral: true });
  url = await createDatabase(pg.url, 'archiver');
  await migrate(url);
  history = HistoryStore.connect(url, { connectTimeoutMs: 1000 });
});
afterAll(async () => {
  await suite.quota?.close();
  suite.quota = undefined;
  await history?.close();
  await pg?.stop();
});

const until = (ok: () => Promise<boolean>, ms = 15_000): Promise<boolean> => waitUntil(ok, { timeoutMs: ms });
const inEtcd = async (id: string) => (await suite.store.get(suite.store.keys.job(id))) !== undefined;

const group = (job: JobRecord, node: string): GroupStatus => ({
  jobId: job.id,
  tenant: job.tenant,
  queue: job.queue,
  node,
  start: 0,
  end: 2,
  attempt: 1,
  resources: { cpu: 100 },
  devices: [[], []],
  boundAt: job.finishedAt! - 2000,
  tasks: [
    { state: 'Succeeded', exitCode: 0, startedAt: job.finishedAt! - 1500, finishedAt: job.finishedAt! - 10 },
    { state: 'Succeeded', exitCode: 0, startedAt: job.finishedAt! - 1500, finishedAt: job.finishedAt! },
  ],
});

it('moves a finished job with its groups and results to history, and leaves live work in etcd', async () => {
  const now = Date.now();
  const done: JobRecord = {
    ...finishedJob('done', now - 5_000),
    spec: { ...finishedJob('done', 0).spec, tasks: 2 },
    counts: { succeeded: 2, failed: 0, cancelled: 0 },
  };
  await submitJob(suite.store, done);
  const { store } = suite;
  await store.txn(
    [],
    [
      { put: store.keys.group('done', 0, 1), value: group(done, 'n1') },
      { put: store.keys.result('done', 1), value: { index: 1, attempt: 1, value: { answer: 42 } } satisfies TaskResult },
    ],
  );
  // Live: a running job, and a finished step of a workflow that still runs.
  await submitJob(store, { ...finishedJob('running', now), phase: 'Running', finishedAt: undefined });
  // Its first step ran (job "step", finished); its second waits on it and then never ends (no scheduler here).
  const job = { command: ['true'], resources: { cpu: '100m', memory: '16Mi' } };
  const wf: WorkflowRecord = {
    ...runningWorkflow('wf-live', [
      { name: 'first', dependsOn: [], when: 'success', job, criticalPath: 2, phase: 'Running', jobId: 'step' },
      { name: 'second', dependsOn: ['first'], when: 'success', job, criticalPath: 1, phase: 'Pending' },
    ]),
    createdAt: now,
  };
  await submitWorkflow(store, wf);
  const step = finishedJob('step', now - 5_000);
  await submitJob(store, { ...step, spec: { ...step.spec, labels: { 'batch.workflow': 'wf-live' } } });

  // The tenant and queue exist, so the second step's job is admitted and the workflow stays
  // Running. Without them that job is refused (unknown tenant), the workflow ends Failed, and its
  // finished step is rightly archived: the assertion below would race that.
  await seedCluster(store, DEFAULT_CLUSTER);
  suite.quota = await startQuota({
    config: { etcdEndpoints: suite.etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' },
    historyUrl: url,
    archive: {
      afterMs: 1_000,
      intervalMs: 50,
      retentionEveryMs: 100,
      runtimeEstimates: { everyMs: 100, windowMs: 86_400_000, quantile: 0.5, minSamples: 2 },
    },
  });
  expect(await until(async () => !(await inEtcd('done')))).toBe(true);
  expect(await history.getJob('done')).toEqual(done);
  const tasks = await history.listTasks('done');
  expect(tasks.tasks.map((t) => [t.index, t.attempt, t.node, t.state, t.exitCode])).toEqual([
    [0, 1, 'n1', 'Succeeded', 0],
    [1, 1, 'n1', 'Succeeded', 0],
  ]);
  expect((await history.listResults('done')).results).toEqual([{ index: 1, attempt: 1, value: { answer: 42 } }]);
  expect((await store.listAll(store.keys.groupsOf('done'))).items).toEqual([]);
  expect((await store.listAll(store.keys.resultsOf('done'))).items).toEqual([]);
  expect(await inEtcd('running')).toBe(true);
  expect(await inEtcd('step')).toBe(true);
  const metrics = await (await fetch(`${suite.quota.url}/metrics`)).text();
  expect(metrics).toMatch(/batch_archive_jobs_total\{service="quota"\} [1-9]/);
  expect(metrics).toMatch(/batch_archive_lag_seconds_count\{service="quota"\} [1-9]/);
});

it("learns each queue's runtime estimate from the history and stores it, fenced, for the scheduler", async () => {
  // 'done' ran two tasks in queue default: 1,490 ms and 1,500 ms (started 1.5 s before the end, ended 10 ms apart);
  // p50 of [1.49, 1.5] = 1.495 s; 'half-done' and the others ran no task
  const { store } = suite;
  let estimates: RuntimeEstimates | undefined;
  expect(
    await until(async () => {
      estimates = (await store.get<RuntimeEstimates>(store.keys.runtimeEstimates()))?.value;
      return estimates?.queues.default !== undefined;
    }),
  ).toBe(true);
  expect(estimates!.queues).toEqual({ default: { seconds: 1.495, samples: 2 } });
  expect(estimates!.quantile).toBe(0.5);
  expect(estimates!.at - estimates!.from).toBe(86_400_000);
  // a write under a fence that no longer holds (a deposed archiver) changes nothing
  expect(await putRuntimeEstimates(store, { key: store.keys.leader('archiver'), createRevision: '1' }, { ...estimates!, queues: {} })).toBe(false);
});

it('archives once a job a crashed pass had already written to history', async () => {
  const j = finishedJob('half-done', Date.now() - 5_000);
  // A previous archiver wrote it to history, then died before its etcd delete.
  await history.archiveJobs([{ job: j, groups: [], results: [] }]);
  await submitJob(suite.store, j);
  expect(await until(async () => !(await inEtcd('half-done')))).toBe(true);
  const listed = await history.listJobs({ namePrefix: 'half-done' });
  expect(listed.jobs.map((x) => x.id)).toEqual(['half-done']);
});

it('drops months of history older than the retention (90 days), whole, and keeps the recent ones; kept logs too', async () => {
  const old = finishedJob('long-ago', Date.now() - 200 * 86_400_000);
  const recent = finishedJob('recent', Date.now() - 86_400_000);
  const log = { contentType: 'text/plain; charset=utf-8', contentEncoding: 'gzip' as const, sizeBytes: 1 };
  await history.putBlob({ key: 'logs/long-ago/0000000000/000001/stdout', ...log, createdAt: Date.now() - 100 * 86_400_000 }, Buffer.from('x'));
  await history.putBlob({ key: 'logs/recent/0000000000/000001/stdout', ...log, createdAt: Date.now() - 86_400_000 }, Buffer.from('y'));
  await history.archiveJobs([
    { job: old, groups: [], results: [] },
    { job: recent, groups: [], results: [] },
  ]);
  expect(await until(async () => (await history.getJob('long-ago')) === undefined)).toBe(true);
  expect((await history.getJob('recent'))?.id).toBe('recent');
  // blobs older than the retention go by age, in the same retention pass (100 days > 90 days; 1 day kept)
  expect(await until(async () => (await history.getBlob('logs/long-ago/0000000000/000001/stdout')) === undefined)).toBe(true);
  expect((await history.getBlob('logs/recent/0000000000/000001/stdout'))?.body.toString()).toBe('y');
  // The drop commits before the archiver counts it: wait for the count too (a one-shot read raced it).
  const dropped = async () => /batch_history_partitions_dropped_total\{service="quota"\} [1-9]/.test(await (await fetch(`${suite.quota!.url}/metrics`)).text());
  expect(await until(dropped)).toBe(true);
});

it('keeps finished jobs in etcd while PostgreSQL is down, counts the failure, and archives them once it is back', async () => {
  const port = pg.port;
  await pg.stop();
  await submitJob(suite.store, finishedJob('while-down', Date.now() - 5_000));
  const failures = async () => {
    const text = await (await fetch(`${suite.quota!.url}/metrics`)).text();
    return Number(/batch_archive_failures_total\{reason="history_unavailable",service="quota"\} (\d+)/.exec(text)?.[1] ?? 0);
  };
  expect(await until(async () => (await failures()) > 0)).toBe(true);
  expect(await inEtcd('while-down')).toBe(true);
  pg = await startPostgres({ dataDir: pgDir, port, ephemeral: true });
  expect(await until(async () => !(await inEtcd('while-down')), 30_000)).toBe(true);
  expect((await history.getJob('while-down'))?.phase).toBe('Succeeded');
});
