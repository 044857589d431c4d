/**
 * A simulated fleet restarted under the same node names (its predecessor stopped past its lease;
 * its nodes registered again before the reaper got to them) ends the groups its predecessor
 * started `Failed`/`NodeLost` — requeued at the next attempt — instead of reporting against a
 * revision the predecessor's `Running` report moved on and leaving the group `Running` for good
 * with its binding present and its node up.
 */
import type { Binding, GroupStatus } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { startSimulatedFleet } from '../src';
import { waitFor } from '@batchapi/proc';
import { bind, groupOf, jobOf, serviceConfig, useTestbed } from './harness';

const tb = useTestbed();
const fleets: RunningService[] = [];
afterAll(async () => {
  for (const f of fleets) await f.close().catch(() => undefined);
});

const fleet = (taskMs: number) =>
  startSimulatedFleet({ nodes: 1, prefix: 'reborn', capacity: { cpu: '8', memory: '16Gi' }, taskMs, reportIntervalMs: 50 }, serviceConfig(tb));

it('ends NodeLost the groups its predecessor started, and runs the next attempt', async () => {
  const first = await fleet(60_000);
  fleets.push(first);
  await bind(tb, 'reborn-00000', 'inherited', ['true'], 2, { resources: { cpu: 100 } });
  // The predecessor's report of the start lands (the binding stays as the scheduler wrote it).
  expect(
    await waitFor(
      () => groupOf(tb, 'inherited'),
      (g) => g?.tasks.every((t) => t.state === 'Running') ?? false,
    ),
  ).toBeDefined();
  // It stops without a word (as after SIGSTOP past its lease, then exit): its tasks never end.
  await (first.fleet as unknown as { onApplicationShutdown(): Promise<void> }).onApplicationShutdown();

  const second = await fleet(200);
  fleets.push(second);
  const ended = await waitFor(
    () => groupOf(tb, 'inherited'),
    (g) => g?.tasks.every((t) => t.state === 'Failed') ?? false,
    { timeoutMs: 8000 },
  );
  expect(ended?.tasks.map((t: GroupStatus['tasks'][number]) => t.reason)).toEqual(['NodeLost', 'NodeLost']);
  expect(await tb.store.get<Binding>(tb.store.keys.binding('reborn-00000', 'inherited', 0, 1))).toBeUndefined();
  // Requeued at attempt 2 (not a failure of the job).
  const job = await waitFor(
    () => jobOf(tb, 'inherited'),
    (j) => j?.pending.some((r) => r.attempt === 2) ?? false,
    { timeoutMs: 5000 },
  );
  expect(job?.pending).toEqual([expect.objectContaining({ start: 0, end: 2, attempt: 2 })]);
  expect(job?.phase).not.toBe('Failed');
});

/** The fleet's handler of a binding and its groups, reached the way a relisting or a watch event reaches them. */
interface FleetInternals {
  groups: Map<string, { attempts: Map<number, { kill(): void }> }>;
  onBinding(key: string, b: Binding, boundAt: string | undefined, atStart: boolean): Promise<void>;
}

it('settles a report against a status another incarnation moved on, instead of resending it against a stale revision forever', async () => {
  const current = fleets[fleets.length - 1] as RunningService & { fleet: unknown };
  const internals = current.fleet as FleetInternals;
  await bind(tb, 'reborn-00000', 'moved', ['true'], 1, { resources: { cpu: 100 }, binding: { env: { BATCH_SIM_SECONDS: '60' } } });
  const bindingKey = tb.store.keys.binding('reborn-00000', 'moved', 0, 1);
  const binding = (await tb.store.get<Binding>(bindingKey))!;
  expect(
    await waitFor(
      () => groupOf(tb, 'moved'),
      (g) => g?.tasks[0].state === 'Running',
    ),
  ).toBeDefined();
  // The fleet loses track of it, and the status moves on under another lease while the binding
  // stays (a predecessor's late report); then the pristine binding reaches the fleet again.
  const g = internals.groups.get(bindingKey);
  internals.groups.delete(bindingKey);
  for (const a of g?.attempts.values() ?? []) a.kill();
  const key = tb.store.keys.group('moved', 0, 1);
  const st = (await tb.store.get<GroupStatus>(key))!;
  await tb.store.txn([], [{ put: key, value: { ...st.value, reporter: { lease: 'a-predecessor', seq: 7 } } }]);
  await internals.onBinding(bindingKey, binding.value, binding.modRevision, false);

  const ended = await waitFor(
    () => groupOf(tb, 'moved'),
    (s) => s?.tasks[0].state === 'Failed',
    { timeoutMs: 8000 },
  );
  expect(ended?.tasks[0]).toMatchObject({ state: 'Failed', reason: 'NodeLost' });
  expect(await tb.store.get<Binding>(bindingKey)).toBeUndefined();
});
