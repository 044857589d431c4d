/**
 * The schedule repository against a real etcd member: a tick and its instance are written
 * together or not at all — a second write decided from the same read is a conflict that adds
 * nothing, a write under a lost fence is refused whole — and the user's changes are
 * compare-and-swaps (create only if absent, change, delete, count).
 */
import type { JobRecord, ScheduleRecord } from '@batchapi/api';
import {
  CasConflictError,
  createSchedule,
  deleteSchedule,
  fireScheduleTick,
  getSchedule,
  listSchedules,
  type ScheduleInstanceRecord,
  updateSchedule,
} from '@batchapi/store';
import { type LeaderStore, queuedJob, startLeaderStore, stopLeaderStore } from './store-fixture';

let s: LeaderStore;
beforeAll(async () => {
  s = await startLeaderStore('/sched-test/', 'schedules');
});
afterAll(() => stopLeaderStore(s));

const T0 = Date.UTC(2026, 11, 1, 10, 0);
function schedule(name: string, tenant = 'a'): ScheduleRecord {
  const job = queuedJob('template');
  return {
    name,
    tenant,
    schedule: '* * * * *',
    timeZone: 'UTC',
    concurrencyPolicy: 'Allow',
    successfulHistoryLimit: 3,
    failedHistoryLimit: 1,
    suspend: false,
    template: { kind: 'job', queue: 'q', spec: job.spec },
    createdAt: T0,
    lastScheduleTime: T0,
    missedTicks: 0,
    active: [],
    succeeded: [],
    failed: [],
  };
}
const instance = (id: string): ScheduleInstanceRecord => ({ kind: 'job', record: { ...queuedJob(id), phase: 'Submitted' } });
const ticked = (cur: ScheduleRecord, tick: number, id: string): ScheduleRecord => ({
  ...cur,
  lastScheduleTime: tick,
  lastFiredTick: tick,
  active: [...cur.active, { id, kind: 'job', scheduledAt: tick }],
});

it('records a tick and creates its job in one transaction; a second write from the same read adds nothing', async () => {
  const { store, leader } = s;
  const cur = await createSchedule(store, schedule('once'));
  const tick = T0 + 60_000;
  const first = await fireScheduleTick(store, leader.fence(), cur, ticked(cur.value, tick, 'tick-1'), instance('tick-1'));
  expect(first.outcome).toBe('written');
  // The same decision again (a retry, or a second controller that read the same revision): refused, nothing new.
  const again = await fireScheduleTick(store, leader.fence(), cur, ticked(cur.value, tick, 'tick-1b'), instance('tick-1b'));
  expect(again).toEqual({ outcome: 'conflict' });
  expect(await store.get<JobRecord>(store.keys.job('tick-1b'))).toBeUndefined();
  const after = (await getSchedule(store, 'a', 'once'))!;
  expect([after.value.lastScheduleTime, after.value.active.map((i) => i.id), after.modRevision]).toEqual([
    tick,
    ['tick-1'],
    first.outcome === 'written' ? first.revision : '',
  ]);
  expect((await store.get<JobRecord>(store.keys.job('tick-1')))?.value.phase).toBe('Submitted');
});

it('refuses the whole write under a fence that no longer holds: neither the tick nor the job', async () => {
  const { store } = s;
  const cur = await createSchedule(store, schedule('fenced'));
  const stale = { key: store.keys.leader('schedules'), createRevision: '1' };
  const res = await fireScheduleTick(store, stale, cur, ticked(cur.value, T0 + 60_000, 'tick-f'), instance('tick-f'));
  expect(res).toEqual({ outcome: 'fenced' });
  expect(await store.get(store.keys.job('tick-f'))).toBeUndefined();
  expect((await getSchedule(store, 'a', 'fenced'))!.modRevision).toBe(cur.modRevision);
});

it('refuses a tick whose job id is taken, leaving the schedule as it was', async () => {
  const { store, leader } = s;
  const cur = await createSchedule(store, schedule('taken'));
  await store.txn([], [{ put: store.keys.job('tick-t'), value: queuedJob('tick-t') }]);
  expect(await fireScheduleTick(store, leader.fence(), cur, ticked(cur.value, T0 + 60_000, 'tick-t'), instance('tick-t'))).toEqual({ outcome: 'conflict' });
  expect((await getSchedule(store, 'a', 'taken'))!.modRevision).toBe(cur.modRevision);
});

it('creates only if absent, changes and deletes by compare-and-swap, lists and counts per tenant', async () => {
  const { store } = s;
  await createSchedule(store, schedule('x', 'b'));
  await expect(createSchedule(store, schedule('x', 'b'))).rejects.toBeInstanceOf(CasConflictError);
  await createSchedule(store, schedule('y', 'b'));
  await createSchedule(store, schedule('x', 'c'));
  expect((await listSchedules(store, { tenant: 'b' })).map((r) => r.name)).toEqual(['x', 'y']);
  expect(await store.count(store.keys.schedulesOf('b'))).toBe(2);
  expect((await updateSchedule(store, 'b', 'x', (r) => ({ ...r, suspend: true })))?.suspend).toBe(true);
  expect(await updateSchedule(store, 'b', 'nope', (r) => r)).toBeUndefined();
  expect((await deleteSchedule(store, 'b', 'x'))?.name).toBe('x');
  expect(await deleteSchedule(store, 'b', 'x')).toBeUndefined();
  expect(await getSchedule(store, 'c', 'x')).toBeDefined();
  // A name that could not be a schedule's is not looked up.
  expect(await getSchedule(store, 'b', '../x')).toBeUndefined();
});
