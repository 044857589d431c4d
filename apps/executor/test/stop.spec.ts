/**
 * Stopping work that is no longer wanted: a cancelled job's running tasks get SIGTERM (and
 * SIGKILL after the grace) and end `Cancelled`; tasks of a binding that arrives cancelled
 * never start; a binding removed under the executor (its node was reaped) has its tasks
 * killed at once, since another attempt may already run elsewhere.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Binding } from '@batchapi/api';
import { cancelJob, cancelTask } from '@batchapi/store';
import { attemptPaths, type RunningExecutor } from '../src';
import { waitFor, waitUntil } from '@batchapi/proc';
import { bind, groupAlive, groupOf, jobOf, runLong, startNode, useTestbed } from './harness';

const tb = useTestbed();
const GRACE_MS = 1500;
let ex: RunningExecutor;
beforeAll(async () => {
  ex = await startNode(tb, 'stop-node', { killGraceMs: GRACE_MS });
});
afterAll(async () => {
  await ex?.close();
});

it('cancels a running task: SIGTERM to its process group, Cancelled well within the grace', async () => {
  const pid = await runLong(tb, 'stop-node', 'cancel-me', 'sleep 30');
  const cancelledAt = Date.now();
  await cancelJob(tb.store, 'cancel-me', cancelledAt);
  const g = await waitFor(
    () => groupOf(tb, 'cancel-me'),
    (x) => x?.tasks[0].state === 'Cancelled',
    { timeoutMs: 5000 },
  );
  expect(g?.tasks[0]).toMatchObject({ state: 'Cancelled', signal: 'SIGTERM' });
  expect(g!.tasks[0].finishedAt! - cancelledAt).toBeLessThan(GRACE_MS);
  expect(groupAlive(pid)).toBe(false);
  expect(
    await waitFor(
      () => jobOf(tb, 'cancel-me'),
      (j) => j?.phase === 'Cancelled',
    ),
  ).toMatchObject({ phase: 'Cancelled', counts: { cancelled: 1 } });
  expect(await tb.store.get(tb.store.keys.binding('stop-node', 'cancel-me', 0, 1))).toBeUndefined();
});

it('cancels one running task of three alone: it ends Cancelled, the others run on to Succeeded, the job ends Cancelled', async () => {
  // task 1 sleeps until stopped; tasks 0 and 2 end once the file "go" exists
  const go = join(tb.dir, 'one-of-three-go');
  await bind(
    tb,
    'stop-node',
    'one-of-three',
    ['sh', '-c', `if [ "$BATCH_TASK_INDEX" = 1 ]; then sleep 30; else while [ ! -e ${go} ]; do sleep 0.05; done; fi`],
    3,
    {
      resources: { cpu: 100 },
    },
  );
  await waitFor(
    () => groupOf(tb, 'one-of-three'),
    (g) => g?.tasks.every((t) => t.state === 'Running') ?? false,
  );
  const cancelled = await cancelTask(tb.store, 'one-of-three', 1, Date.now());
  expect(cancelled).toMatchObject({ value: { cancelledTasks: [{ start: 1, end: 2 }] } });
  const g = await waitFor(
    () => groupOf(tb, 'one-of-three'),
    (x) => x?.tasks[1].state === 'Cancelled',
    { timeoutMs: 5000 },
  );
  expect(g?.tasks.map((t) => t.state)).toEqual(['Running', 'Cancelled', 'Running']);
  expect(g?.tasks[1]).toMatchObject({ signal: 'SIGTERM' });
  writeFileSync(go, '');
  expect(
    await waitFor(
      () => jobOf(tb, 'one-of-three'),
      (j) => j?.phase === 'Cancelled',
    ),
  ).toMatchObject({ phase: 'Cancelled', counts: { succeeded: 2, failed: 0, cancelled: 1 } });
  // the task ended: cancelling it again is refused as such; the job ended: so is any task of it
  expect(await cancelTask(tb.store, 'one-of-three', 0, Date.now())).toBe('job_ended');
});

it('SIGKILLs a task that ignores SIGTERM once the grace has passed', async () => {
  // An ignored signal stays ignored in children: neither sh nor its sleeps die of SIGTERM.
  const pid = await runLong(tb, 'stop-node', 'stubborn', "trap '' TERM; while :; do sleep 0.1; done");
  const cancelledAt = Date.now();
  await cancelJob(tb.store, 'stubborn', cancelledAt);
  const g = await waitFor(
    () => groupOf(tb, 'stubborn'),
    (x) => x?.tasks[0].state === 'Cancelled',
    { timeoutMs: GRACE_MS + 5000 },
  );
  expect(g?.tasks[0]).toMatchObject({ state: 'Cancelled', signal: 'SIGKILL' });
  expect(g!.tasks[0].finishedAt! - cancelledAt).toBeGreaterThanOrEqual(GRACE_MS);
  expect(groupAlive(pid)).toBe(false);
});

it('ends the tasks of a binding that arrives cancelled without starting them', async () => {
  await bind(tb, 'stop-node', 'never', ['sh', '-c', 'echo ran'], 2, { resources: { cpu: 100 }, binding: { cancelRequested: true } });
  const g = await waitFor(
    () => groupOf(tb, 'never'),
    (x) => !!x?.tasks.every((t) => t.state === 'Cancelled'),
  );
  expect(g?.tasks.map((t) => [t.state, t.startedAt])).toEqual([
    ['Cancelled', undefined],
    ['Cancelled', undefined],
  ]);
  expect(existsSync(attemptPaths(join(tb.dir, 'stop-node'), 'never', 0, 1).stdout)).toBe(false);
  expect(
    await waitFor(
      () => jobOf(tb, 'never'),
      (j) => j?.counts.cancelled === 2,
    ),
  ).toMatchObject({ counts: { cancelled: 2 } });
});

it('applies a cancel that lands while the binding is still being set up', async () => {
  // The cancel follows the bind by one etcd round trip: it may reach the executor while it reads the group's status.
  await bind(tb, 'stop-node', 'quick-cancel', ['sleep', '30'], 1, { resources: { cpu: 100 } });
  await cancelJob(tb.store, 'quick-cancel', Date.now());
  const g = await waitFor(
    () => groupOf(tb, 'quick-cancel'),
    (x) => x?.tasks[0].state === 'Cancelled',
    { timeoutMs: 5000 },
  );
  expect(g?.tasks[0].state).toBe('Cancelled');
});

it('kills at once the tasks of a binding removed under it (its node was reaped)', async () => {
  const pid = await runLong(tb, 'stop-node', 'reaped', 'sleep 30');
  const key = tb.store.keys.binding('stop-node', 'reaped', 0, 1);
  const b = (await tb.store.get<Binding>(key))!;
  const removedAt = Date.now();
  await tb.store.txn([{ key, modRevision: b.modRevision }], [{ delete: key }]);
  expect(await waitUntil(() => !groupAlive(pid), { timeoutMs: GRACE_MS })).toBe(true);
  expect(Date.now() - removedAt).toBeLessThan(GRACE_MS);
  expect(ex.agent.isRunning('reaped', 0, 1)).toBe(false);
});
