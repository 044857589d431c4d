/**
 * Retention reads time only from its injected `Clock`: against a real etcd, a finished job
 * outlives any number of passes until a fake clock is advanced past its retention, so an hour's
 * retention is tested in moments, without sleeping through it or back-dating the job.
 */
import { FakeClock } from '@batchapi/runtime';
import { submitJob } from '@batchapi/store';
import { startQuota } from '../src';
import { finishedJob, quotaSuite } from './harness';
import { waitUntil } from '@batchapi/proc';

const HOUR_MS = 60 * 60_000;
const suite = quotaSuite();

/** Polls `ok` every 20 ms for up to 10 s of real time; resolves to its last answer. */
const until = (ok: () => Promise<boolean>): Promise<boolean> => waitUntil(ok, { intervalMs: 20 });

/** Retention passes the service has finished (a pass records its job count, 0 included). */
async function passesDone(): Promise<boolean> {
  const metrics = await (await fetch(`${suite.quota!.url}/metrics`)).text();
  return /batch_retention_deleted_total\{kind="job",service="quota"\} \d+\n/.test(metrics);
}

it('deletes a finished job only once its clock has passed the retention period', async () => {
  // A start in the past: on the machine's clock the job would be long expired, so a service that
  // read it instead of the injected clock would delete the job at its first pass.
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  // finished at the clock's start: kept for an hour of the clock's time
  await submitJob(suite.store, finishedJob('done', clock.now()));
  suite.quota = await startQuota({
    config: { etcdEndpoints: suite.etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' },
    retention: { jobRetentionMs: HOUR_MS, idempotencyTtlMs: HOUR_MS, intervalMs: 20 },
    clock,
  });

  // A pass ran, and the many that follow within 200 ms of real time (every 20 ms) keep the job:
  // no time passed on the service's clock.
  expect(await until(passesDone)).toBe(true);
  await new Promise((r) => setTimeout(r, 200));
  expect(await suite.store.get(suite.store.keys.job('done'))).toBeDefined();

  // Exactly the retention: still kept (a job expires once its age is past the retention, 1 h > 1 h is false).
  clock.advance(HOUR_MS);
  await new Promise((r) => setTimeout(r, 200));
  expect(await suite.store.get(suite.store.keys.job('done'))).toBeDefined();

  // A millisecond past it (age 1 h + 1 ms): deleted at the next pass.
  clock.advance(1);
  expect(await until(async () => (await suite.store.get(suite.store.keys.job('done'))) === undefined)).toBe(true);
});
