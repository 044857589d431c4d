/**
 * Task inputs and results: each task sees its map item in `BATCH_MAP_ITEM`, writes JSON to
 * `BATCH_RESULT_PATH`, and the executor stores it at `results/{job}/{index}` with the
 * outcome; an oversize result fails the task with `ResultTooLarge`, invalid JSON is ignored.
 */
import type { TaskResult } from '@batchapi/api';
import { listResults } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { bind, groupOf, jobOf, startNode, useTestbed } from './harness';

const tb = useTestbed();

it('passes each task its item and stores the results it writes, in task order', async () => {
  const ex = await startNode(tb, 'res-node');
  try {
    // Task i doubles its item; task 2 writes nothing, so it has no result.
    const script = 'if [ "$BATCH_TASK_INDEX" != 2 ]; then echo "{\\"in\\": $BATCH_MAP_ITEM, \\"i\\": $BATCH_TASK_INDEX}" > "$BATCH_RESULT_PATH"; fi';
    await bind(tb, 'res-node', 'mapped', ['sh', '-c', script], 3, { binding: { items: [{ a: 1 }, 'two', 3] } });
    const done = await waitFor(
      () => jobOf(tb, 'mapped'),
      (j) => j?.phase === 'Succeeded',
    );
    expect(done?.phase).toBe('Succeeded');
    const results = await listResults(tb.store, 'mapped');
    expect(results).toEqual<TaskResult[]>([
      { index: 0, attempt: 1, value: { in: { a: 1 }, i: 0 } },
      { index: 1, attempt: 1, value: { in: 'two', i: 1 } },
    ]);
  } finally {
    await ex.close();
  }
});

it('fails a task whose result is over 64 KiB with ResultTooLarge, and ignores a result that is not JSON', async () => {
  const ex = await startNode(tb, 'big-node');
  try {
    // Task 0: 70000 bytes > 65536. Task 1: not JSON, still Succeeded.
    const script =
      'if [ "$BATCH_TASK_INDEX" = 0 ]; then head -c 70000 /dev/zero | tr "\\0" 1 > "$BATCH_RESULT_PATH"; else echo "not json" > "$BATCH_RESULT_PATH"; fi';
    await bind(tb, 'big-node', 'big', ['sh', '-c', script], 2);
    await waitFor(
      () => jobOf(tb, 'big'),
      (j) => j?.phase === 'Failed',
    );
    const status = (await groupOf(tb, 'big'))!;
    expect(status.tasks.map((t) => [t.state, t.reason])).toEqual([
      ['Failed', 'ResultTooLarge'],
      ['Succeeded', undefined],
    ]);
    expect(await listResults(tb.store, 'big')).toEqual([]);
  } finally {
    await ex.close();
  }
});
