/**
 * Each scheduler leader stores its cluster-wide placement settings at `scheduler-settings` as its
 * term starts (fenced), which admission's "why pending" reads when no replica answers.
 */
import type { SchedulerSettings } from '@batchapi/api';
import { waitFor } from '@batchapi/proc';
import { settingsOfRecord } from '@batchapi/scheduling';
import { useScheduler } from './harness';

const backfill = { maxReservations: 2, runtimeSeconds: 900, queueRuntimeSeconds: { q: 60 } };
const topology = [{ name: 'pod', label: 'example.com/pod' }, { name: 'host' }];
const suite = useScheduler({ tuning: { topology, aging: { perHour: 2, max: 6 }, backfill } });

it('stores its topology levels, aging and backfill as its term starts', async () => {
  const stored = await waitFor(
    async () => (await suite.store.get<SchedulerSettings>(suite.store.keys.schedulerSettings()))?.value,
    (v) => v !== undefined,
  );
  expect(stored).toMatchObject({ topology, aging: { perHour: 2, max: 6 }, backfill });
  // and reads back as the same settings
  const { policy, backfill: back } = settingsOfRecord(stored);
  expect(policy.topology).toEqual(topology);
  expect([back?.maxReservations, back?.runtimeSeconds('q'), back?.runtimeSeconds('other')]).toEqual([2, 60, 900]);
});
