/**
 * Retention against a real etcd: the elected quota replica deletes finished jobs past their
 * retention with their task-group histories, and idempotency records past their TTL; it
 * keeps unfinished jobs and recent history.
 */
import type { JobRecord } from '@batchapi/api';
import { submitJob } from '@batchapi/store';
import { startQuota } from '../src';
import { quotaSuite } from './harness';

const suite = quotaSuite();

const job = (id: string, phase: JobRecord['phase'], finishedAgoMs?: number): JobRecord => ({
  id,
  tenant: 'default',
  queue: 'default',
  phase,
  createdAt: Date.now() - 60_000,
  spec: { name: id, command: ['true'], env: {}, resources: { cpu: 100 }, tasks: 2, priority: 0, labels: {} },
  pending: [],
  counts: { succeeded: 0, failed: 0, cancelled: 0 },
  ...(finishedAgoMs !== undefined ? { finishedAt: Date.now() - finishedAgoMs } : {}),
});

it('deletes expired finished jobs with their groups and stale idempotency records, keeping everything else', async () => {
  // retention 10 s for jobs, 10 s for idempotency records
  await submitJob(suite.store, job('old-done', 'Succeeded', 60_000), { key: 'k-old', requestHash: 'h' });
  await submitJob(suite.store, job('new-done', 'Failed', 1_000));
  await submitJob(suite.store, job('running', 'Running'));
  for (const id of ['old-done', 'new-done'])
    for (const start of [0, 1]) await suite.store.txn([], [{ put: suite.store.keys.group(id, start, 1), value: { start } }]);
  // the idempotency record of old-done was written now: make it as old as its job
  const idem = (await suite.store.listAll<{ createdAt: number }>(suite.store.keys.idempotencyAll())).items[0];
  await suite.store.txn([], [{ put: idem.key, value: { ...idem.value, createdAt: Date.now() - 60_000 } }]);

  suite.quota = await startQuota({
    config: { etcdEndpoints: suite.etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' },
    retention: { jobRetentionMs: 10_000, idempotencyTtlMs: 10_000, intervalMs: 100 },
  });
  // A pass deletes the expired jobs first and the stale idempotency records after, in a later
  // transaction: waiting for the job alone let a loaded CI run read the record in between. Wait
  // until the pass is through both (or the deadline), then check everything.
  const deadline = Date.now() + 10_000;
  const passDone = async () =>
    !(await suite.store.get(suite.store.keys.job('old-done'))) && (await suite.store.listAll(suite.store.keys.idempotencyAll())).items.length === 0;
  while (Date.now() < deadline && !(await passDone())) await new Promise((r) => setTimeout(r, 100));

  expect(await suite.store.get(suite.store.keys.job('old-done'))).toBeUndefined();
  expect((await suite.store.listAll(suite.store.keys.groupsOf('old-done'))).items).toEqual([]);
  expect((await suite.store.listAll(suite.store.keys.idempotencyAll())).items).toEqual([]);
  expect(await suite.store.get(suite.store.keys.job('new-done'))).toBeDefined();
  expect((await suite.store.listAll(suite.store.keys.groupsOf('new-done'))).items).toHaveLength(2);
  expect(await suite.store.get(suite.store.keys.job('running'))).toBeDefined();
  const metrics = await (await fetch(`${suite.quota!.url}/metrics`)).text();
  expect(metrics).toMatch(/batch_retention_deleted_total\{kind="job",service="quota"\} 1\n/);
  expect(metrics).toMatch(/batch_retention_deleted_total\{kind="group",service="quota"\} 2\n/);
});
