/**
 * Backfill with a runtime estimate learned from the history, against a real etcd: the estimate the
 * archiver stored at `runtime-estimates` (here put by the test) is how long a running task without
 * `timeoutSeconds` is expected to run, so it sets when a reservation starts and which bounded work
 * may backfill before it.
 */
import type { Binding, RuntimeEstimates } from '@batchapi/api';
import { submitJob } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { allBindings, nodeRecord, putNode, queuedJob, useScheduler } from './harness';
import { SchedulerService } from '../src';

const suite = useScheduler();

const bound = async (jobId: string): Promise<Binding[]> => (await allBindings(suite.store)).filter((b) => b.jobId === jobId);
const withTimeout = (id: string, cpu: number, timeoutSeconds: number) => {
  const j = queuedJob(id, 1, { cpu });
  return { ...j, spec: { ...j.spec, timeoutSeconds } };
};

it("sets a reservation's start from the queue's learned runtime: work ending after it waits, work ending before it backfills", async () => {
  // Queue q's tasks ran 120 s (p90) lately; the configured default is 3600 s.
  const learned: RuntimeEstimates = { at: Date.now(), from: Date.now() - 86_400_000, quantile: 0.9, queues: { q: { seconds: 119.4, samples: 50 } } };
  await suite.store.txn([], [{ put: suite.store.keys.runtimeEstimates(), value: learned }]);
  // The scheduler mirrors the record on a watch of its own: until it holds it, a cycle uses the configured default
  // (3600 s), under which 'mid' may backfill (CI once bound it so). Waited for, as the archiver's first store is.
  const cache = suite.scheduler.app.get(SchedulerService).cache;
  await waitFor(
    () => cache.learnedRuntimes()?.queues.q?.seconds,
    (s) => s === 119.4,
  );
  // One node of 4 cores. 'run' (2 cores, no timeoutSeconds) runs, expected to end 120 s after its bind
  // (119.4 rounded up to 120); 'big' (4 cores) cannot start: it reserves the node from then, with no spare core.
  await putNode(suite.store, nodeRecord('n', 4));
  await submitJob(suite.store, queuedJob('run', 1, { cpu: 2000 }));
  await waitFor(
    () => bound('run'),
    (b) => b.length === 1,
  );
  const t = Date.now();
  // In this order, so every cycle that sees 'mid' sees 'big' ahead of it, and the cycle that binds 'short' tried 'mid' first.
  await submitJob(suite.store, { ...queuedJob('big', 1, { cpu: 4000 }), createdAt: t });
  // 'mid' ends by now + 300 s: after big's start (≈ now + 120 s) — with the 3600 s default it would have backfilled.
  await submitJob(suite.store, { ...withTimeout('mid', 1000, 300), createdAt: t + 1 });
  // 'short' ends by now + 60 s, before big's start: it may use the held cores.
  await submitJob(suite.store, { ...withTimeout('short', 1000, 60), createdAt: t + 2 });
  await waitFor(
    () => bound('short'),
    (b) => b.length === 1,
  );
  expect(await bound('mid')).toEqual([]);
  expect(await bound('big')).toEqual([]);
});
