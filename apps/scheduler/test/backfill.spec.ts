/**
 * Backfill with reservations against a real etcd: a job that cannot start gets the node where it
 * starts soonest; a job that may run past that start stays off the node, a job whose
 * `timeoutSeconds` ends it before runs there; the leader's `batch_scheduler_reservations` gauge
 * shows the reservation.
 */
import type { Binding } from '@batchapi/api';
import { submitJob } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { allBindings, nodeRecord, putNode, queuedJob, useScheduler } from './harness';

const suite = useScheduler();

const bound = async (jobId: string): Promise<Binding[]> => (await allBindings(suite.store)).filter((b) => b.jobId === jobId);

it('holds the node for the blocked job: unbounded work waits, work that ends before the start backfills', async () => {
  // One node of 4 cores. 'run' (2 cores, timeoutSeconds 600) runs; 'big' (4 cores) cannot start: it reserves
  // the node from run's bound + 600 s, with no spare core (4 free then − 4 held = 0).
  await putNode(suite.store, nodeRecord('n', 4));
  await submitJob(suite.store, { ...queuedJob('run', 1, { cpu: 2000 }), spec: { ...queuedJob('run', 1, { cpu: 2000 }).spec, timeoutSeconds: 600 } });
  await waitFor(
    () => bound('run'),
    (b) => b.length === 1,
  );
  const t = Date.now();
  // Submitted in this order, so every cycle that sees 'long' sees 'big' ahead of it, and the cycle that binds
  // 'short' has tried 'long' first.
  await submitJob(suite.store, { ...queuedJob('big', 1, { cpu: 4000 }), createdAt: t });
  await submitJob(suite.store, { ...queuedJob('long', 1, { cpu: 1000 }), createdAt: t + 1 });
  const short = queuedJob('short', 1, { cpu: 1000 });
  await submitJob(suite.store, { ...short, createdAt: t + 2, spec: { ...short.spec, timeoutSeconds: 60 } });
  // 'short' ends by now + 60 s, before big's start (≈ now + 600 s): it may use the held cores.
  await waitFor(
    () => bound('short'),
    (b) => b.length === 1,
  );
  // 'long' has no timeoutSeconds: it could still run at big's start, and the node has no spare core.
  expect(await bound('long')).toEqual([]);
  expect(await bound('big')).toEqual([]);
  const metrics = await (await fetch(`${suite.scheduler.url}/metrics`)).text();
  expect(metrics).toMatch(/batch_scheduler_reservations\{[^}]*queue="q"[^}]*\} 1/);
});
