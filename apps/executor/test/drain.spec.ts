/**
 * The executor's drain (the first half of its graceful stop, on SIGTERM): its node record is
 * marked `draining` at once, a group bound meanwhile (a bind that raced the mark) is handed back
 * `NodeLost` without running, and running tasks go on until they end or the drain grace passes;
 * those still running then are stopped by `close` and handed back `NodeLost` too.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '@batchapi/proc';
import { getNode } from '@batchapi/store';
import { bind, groupOf, jobOf, runLong, startNode, useTestbed } from './harness';

const tb = useTestbed();

it('marks the node draining, hands back a group bound meanwhile unrun, and lets a running task finish', async () => {
  const ex = await startNode(tb, 'drain-a', { drainGraceMs: 20000 });
  try {
    const go = join(tb.dir, 'go');
    await runLong(tb, 'drain-a', 'finishing', `while [ ! -f ${go} ]; do sleep 0.05; done; exit 0`);
    const drained = ex.agent.drain();
    const node = await waitFor(
      () => getNode(tb.store, 'drain-a'),
      (n) => n?.draining !== undefined,
    );
    // deadline − since = the drain grace
    expect(node!.draining!.deadline - node!.draining!.since).toBe(20000);
    // A bind that raced the mark: handed back at once, its command never runs, no failure charged.
    const ran = join(tb.dir, 'late-ran');
    await bind(tb, 'drain-a', 'late', ['sh', '-c', `touch ${ran}`], 1);
    const late = await waitFor(
      () => groupOf(tb, 'late'),
      (g) => g?.tasks[0].state === 'Failed',
    );
    expect(late?.tasks[0]).toMatchObject({ state: 'Failed', reason: 'NodeLost' });
    expect(late?.tasks[0].startedAt).toBeUndefined();
    expect(existsSync(ran)).toBe(false);
    expect(await jobOf(tb, 'late')).toMatchObject({ pending: [{ start: 0, end: 1, attempt: 2 }], counts: { failed: 0 } });
    // The running task was left alone: it ends on its own, and the drain resolves with nothing left.
    expect((await groupOf(tb, 'finishing'))?.tasks[0].state).toBe('Running');
    writeFileSync(go, '');
    expect(await drained).toBe(0);
    await ex.close();
    expect((await groupOf(tb, 'finishing'))?.tasks[0]).toMatchObject({ state: 'Succeeded', exitCode: 0 });
    expect(await jobOf(tb, 'finishing')).toMatchObject({ phase: 'Succeeded', pending: [] });
  } finally {
    await ex.close();
  }
});

it('past the drain grace, the tasks still running are stopped and handed back NodeLost, no retry charged', async () => {
  const ex = await startNode(tb, 'drain-b', { drainGraceMs: 300 });
  try {
    await runLong(tb, 'drain-b', 'outlives', 'sleep 60');
    // 1 attempt still running when the 300 ms grace ran out
    expect(await ex.agent.drain()).toBe(1);
    await ex.close();
    expect((await groupOf(tb, 'outlives'))?.tasks[0]).toMatchObject({ state: 'Failed', reason: 'NodeLost', signal: 'SIGTERM' });
    expect(await jobOf(tb, 'outlives')).toMatchObject({ pending: [{ start: 0, end: 1, attempt: 2 }], counts: { failed: 0 } });
  } finally {
    await ex.close();
  }
});
