/**
 * A graceful stop (SIGTERM to the executor) charges no task for the node leaving, and only
 * that: a task its stop killed ends `NodeLost` (requeued at the next attempt, no failure
 * counted), while a task that ends on its own with a code of its own during the stop's grace
 * ends `Failed/Error` and counts against its job like any failure.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitUntil } from '@batchapi/proc';
import { groupAlive, groupOf, jobOf, runLong, startNode, useTestbed } from './harness';

const tb = useTestbed();

it('ends NodeLost only the task its stop killed; a task that exits 3 by itself during the stop ends Failed/Error, charged', async () => {
  const ex = await startNode(tb, 'drain-node', { killGraceMs: 3000 });
  const crashNow = join(tb.dir, 'crash-now');
  const killed = await runLong(tb, 'drain-node', 'killed-by-stop', 'sleep 60');
  // Ignores the stop's SIGTERM (so it outlives it) and crashes with code 3 when told to by the test.
  await runLong(tb, 'drain-node', 'crashed-alone', `trap '' TERM; while [ ! -f ${crashNow} ]; do sleep 0.05; done; exit 3`);
  const closing = ex.close();
  // The first task dying of SIGTERM means the stop has begun; the second crashes only now, within the 3 s grace.
  expect(await waitUntil(() => !groupAlive(killed), { timeoutMs: 5000 })).toBe(true);
  writeFileSync(crashNow, '');
  await closing;
  expect((await groupOf(tb, 'killed-by-stop'))?.tasks[0]).toMatchObject({ state: 'Failed', reason: 'NodeLost', signal: 'SIGTERM' });
  expect(await jobOf(tb, 'killed-by-stop')).toMatchObject({ pending: [{ start: 0, end: 1, attempt: 2 }], counts: { failed: 0 } });
  // before: NodeLost too (any Failed exit after the stop began), requeued without charge
  expect((await groupOf(tb, 'crashed-alone'))?.tasks[0]).toMatchObject({ state: 'Failed', reason: 'Error', exitCode: 3 });
  expect(await jobOf(tb, 'crashed-alone')).toMatchObject({ phase: 'Failed', pending: [], counts: { failed: 1 } });
});
