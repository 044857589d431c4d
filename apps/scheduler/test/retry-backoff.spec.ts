/**
 * A retry's backoff ends without any record changing: the scheduler must cycle then on its own,
 * not wait for its periodic full cycle (every 5 s by default: a retry after a 1 s backoff started
 * up to 6 s after its failure). Against a real etcd, on a fake clock that stands still unless the
 * test moves it, with the full cycle an hour apart: only the end of the backoff can place the task.
 */
import type { Binding, JobRecord } from '@batchapi/api';
import { FakeClock } from '@batchapi/runtime';
import { submitJob } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { allBindings, nodeRecord, putNode, queuedJob, useScheduler } from './harness';

const HOUR_MS = 60 * 60_000;
const BACKOFF_MS = 60_000;
const clock = new FakeClock(Date.now());
// The usage history and GPU usage are stored an hour apart too: their writes would be a change.
const suite = useScheduler({ tuning: { fullCycleMs: HOUR_MS, usageSaveMs: HOUR_MS }, clock });

const boundOf = async (jobId: string): Promise<Binding[]> => (await allBindings(suite.store)).filter((b) => b.jobId === jobId);

it('places a retried task once its backoff ends, though nothing changed since and no full cycle is due', async () => {
  await putNode(suite.store, nodeRecord('n', 4));
  const t0 = clock.now();
  // Its first attempt failed; the second may not start before t0 + 60 s.
  const retried: JobRecord = {
    ...queuedJob('retried', 1, { cpu: 1000 }),
    phase: 'Running',
    createdAt: t0,
    pending: [{ start: 0, end: 1, attempt: 2, notBefore: t0 + BACKOFF_MS }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
  };
  await submitJob(suite.store, retried);
  // Written after it: a cycle that bound this one saw the retried job too (the cache follows etcd's order).
  await submitJob(suite.store, { ...queuedJob('later', 1, { cpu: 1000 }), createdAt: t0 });
  await waitFor(
    () => boundOf('later'),
    (b) => b.length === 1,
  );
  expect(await boundOf('retried')).toEqual([]);

  // The backoff ends on the scheduler's clock; no record changes, and the next full cycle is an hour away.
  clock.advance(BACKOFF_MS);
  const [binding] = await waitFor(
    () => boundOf('retried'),
    (b) => b.length === 1,
  );
  expect(binding.attempt).toBe(2);
  expect(binding.boundAt).toBeGreaterThanOrEqual(t0 + BACKOFF_MS);
});
