/**
 * A simulated fleet cancels every task of a group whose binding carries a cancel, also when an
 * earlier preemption left indices in `preempt`: before, only those indices were "cancelled" (they
 * were already Preempted) and the rest ran on to Succeeded.
 */
import type { Binding } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { startSimulatedFleet } from '../src';
import { waitFor } from '@batchapi/proc';
import { cancelTask } from '@batchapi/store';
import { bind, groupOf, serviceConfig, useTestbed } from './harness';

const tb = useTestbed();
let fleet: RunningService | undefined;
afterAll(async () => {
  await fleet?.close().catch(() => undefined);
});

it('cancels the tasks a preemption left running when the job is cancelled', async () => {
  fleet = await startSimulatedFleet(
    { nodes: 1, prefix: 'sim', capacity: { cpu: '8', memory: '16Gi' }, taskMs: 60_000, reportIntervalMs: 50 },
    serviceConfig(tb),
  );
  await bind(tb, 'sim-00000', 'mixed', ['true'], 3, { resources: { cpu: 100 } });
  const running = (g: Awaited<ReturnType<typeof groupOf>>) => g?.tasks.every((t) => t.state === 'Running') ?? false;
  expect(running(await waitFor(() => groupOf(tb, 'mixed'), running))).toBe(true);
  const key = tb.store.keys.binding('sim-00000', 'mixed', 0, 1);
  const b = (await tb.store.get<Binding>(key))!;
  // Task 0 preempted...
  await tb.store.txn([], [{ put: key, value: { ...b.value, preempt: [0], preemptRequestedAt: Date.now() } }]);
  const preempted = await waitFor(
    () => groupOf(tb, 'mixed'),
    (g) => g?.tasks[0].state === 'Preempted',
  );
  expect(preempted?.tasks.map((t) => t.state)).toEqual(['Preempted', 'Running', 'Running']);
  // ...then the job is cancelled: tasks 1 and 2 end Cancelled at once, not Succeeded a minute later.
  const now = (await tb.store.get<Binding>(key))!;
  await tb.store.txn([], [{ put: key, value: { ...now.value, cancelRequested: true } }]);
  const ended = await waitFor(
    () => groupOf(tb, 'mixed'),
    (g) => g?.tasks.slice(1).every((t) => t.state !== 'Running') ?? false,
    { timeoutMs: 5000 },
  );
  expect(ended?.tasks.map((t) => t.state)).toEqual(['Preempted', 'Cancelled', 'Cancelled']);
});

it('cancels one task of a group alone: it ends Cancelled at once, the others keep running', async () => {
  await bind(tb, 'sim-00000', 'one-task', ['true'], 3, { resources: { cpu: 100 } });
  const running = (g: Awaited<ReturnType<typeof groupOf>>) => g?.tasks.every((t) => t.state === 'Running') ?? false;
  expect(running(await waitFor(() => groupOf(tb, 'one-task'), running))).toBe(true);
  await cancelTask(tb.store, 'one-task', 2, Date.now());
  const ended = await waitFor(
    () => groupOf(tb, 'one-task'),
    (g) => g?.tasks[2].state === 'Cancelled',
    { timeoutMs: 5000 },
  );
  expect(ended?.tasks.map((t) => t.state)).toEqual(['Running', 'Running', 'Cancelled']);
});
