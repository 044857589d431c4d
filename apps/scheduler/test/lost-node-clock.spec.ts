/**
 * The scheduler reads time only from its injected `Clock`: the lost-node reap waits
 * `nodeLostAfterMs` on the clock's monotonic reading, so a test skips the wait by advancing a
 * fake clock instead of sleeping through it (here an hour, skipped in a moment).
 */
import type { Binding } from '@batchapi/api';
import { FakeClock } from '@batchapi/runtime';
import { submitJob } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { allBindings, nodeRecord, putNode, queuedJob, useScheduler } from './harness';

const HOUR_MS = 60 * 60_000;
// Stands still unless the test advances it: only the test moves the scheduler's time.
const clock = new FakeClock(Date.now());
const suite = useScheduler({ tuning: { nodeLostAfterMs: HOUR_MS }, clock });

async function addNode(name: string, cpu: number) {
  await putNode(suite.store, nodeRecord(name, cpu, 0, 2 ** 36));
}

function bindings(): Promise<Binding[]> {
  return allBindings(suite.store);
}

it('requeues a lost node’s tasks once nodeLostAfterMs has passed on its clock, not on the real one', async () => {
  await addNode('n1', 2);
  await submitJob(suite.store, { ...queuedJob('j', 2, { cpu: 1000 }), createdAt: clock.now() });
  const tasksOn = (bs: Binding[], node: string, attempt: number) =>
    bs.filter((b) => b.node === node && b.attempt === attempt).reduce((n, b) => n + b.end - b.start, 0);
  expect(tasksOn(await waitFor(bindings, (bs) => tasksOn(bs, 'n1', 1) === 2), 'n1', 1)).toBe(2);

  // n1 goes (its executor's lease expired); n2 has room for its tasks.
  await addNode('n2', 2);
  await suite.store.txn([], [{ delete: suite.store.keys.node('n1') }]);
  // A second of real time is about a hundred reap passes (one per idleMs / 10): none requeues,
  // since an hour has not passed on the scheduler's clock.
  await new Promise((r) => setTimeout(r, 1000));
  expect(tasksOn(await bindings(), 'n1', 1)).toBe(2);
  expect(tasksOn(await bindings(), 'n2', 2)).toBe(0);

  const skippedAt = Date.now();
  clock.advance(HOUR_MS);
  const after = await waitFor(bindings, (bs) => tasksOn(bs, 'n2', 2) === 2);
  expect(tasksOn(after, 'n2', 2)).toBe(2);
  expect(tasksOn(after, 'n1', 1)).toBe(0);
  expect(Date.now() - skippedAt).toBeLessThan(10_000);
});
