/**
 * The schedule controller against a real etcd, driven by an injected clock (the cron offers no
 * seconds field, so a minute's tick is a clock advance, not a minute's wait): each tick of a
 * `* * * * *` schedule starts exactly one job, a tick past its starting deadline is counted
 * missed and never started, and a leader killed between deciding a tick and writing it
 * (held in a hook, its lease revoked as a crash would, then let go) cannot make the tick fire
 * twice: its successor fires it once and the old leader's fenced write is refused. With a run
 * still active, Forbid holds the next tick until the run ends and Replace cancels the run.
 */
import { type JobRecord, SCHEDULE_LABEL, type ScheduleRecord } from '@batchapi/api';
import { FakeClock, type RunningService } from '@batchapi/runtime';
import { cancelJob, createSchedule, EtcdStore, getJob, getSchedule } from '@batchapi/store';
import { DEFAULT_CLUSTER, ScheduleController, startQuota } from '../src';
import { quotaSuite } from './harness';
import { waitUntil } from '@batchapi/proc';

const suite = quotaSuite();
const START = Date.UTC(2026, 11, 1, 10, 0, 0);
const MIN = 60_000;
const started: RunningService[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
  await suite.store.client.delete().all();
});

/** Polls `ok` every 20 ms for up to 10 s of real time; resolves to its last answer. */
const until = (ok: () => Promise<boolean>): Promise<boolean> => waitUntil(ok, { intervalMs: 20 });

function schedule(name: string, over: Partial<ScheduleRecord> = {}): ScheduleRecord {
  return {
    name,
    tenant: 'default',
    schedule: '* * * * *',
    timeZone: 'UTC',
    concurrencyPolicy: 'Allow',
    successfulHistoryLimit: 3,
    failedHistoryLimit: 3,
    suspend: false,
    template: {
      kind: 'job',
      queue: 'default',
      spec: { name, command: ['true'], env: {}, resources: { cpu: 100 }, tasks: 1, priority: 0, labels: { [SCHEDULE_LABEL]: name } },
    },
    createdAt: START,
    lastScheduleTime: START,
    missedTicks: 0,
    active: [],
    succeeded: [],
    failed: [],
    ...over,
  };
}

/** The jobs a schedule started, in id (tick) order. */
async function jobsOf(store: EtcdStore, name: string): Promise<JobRecord[]> {
  const { items } = await store.listAll<JobRecord>(store.keys.jobs());
  return items.map((kv) => kv.value).filter((j) => j.spec.labels[SCHEDULE_LABEL] === name);
}

async function quota(clock: FakeClock, id: string, beforeFire?: (s: ScheduleRecord, tick: number) => Promise<void>, seed = false): Promise<RunningService> {
  const svc = await startQuota({
    ...(seed ? { cluster: DEFAULT_CLUSTER } : {}),
    config: { etcdEndpoints: suite.etcd.endpoints, leaseTtlSeconds: 2, logLevel: 'error', instanceId: id },
    clock,
    schedules: { intervalMs: 20, ...(beforeFire ? { beforeFire } : {}) },
  });
  started.push(svc);
  return svc;
}

/** Lets the leader run many passes (every 20 ms) on an unchanged clock. */
const manyPasses = () => new Promise((r) => setTimeout(r, 300));

it('starts exactly one job per tick of a "* * * * *" schedule, and records each tick with it', async () => {
  const clock = new FakeClock(START);
  await createSchedule(suite.store, schedule('nightly'));
  await quota(clock, 'quota-a');

  for (let minute = 1; minute <= 3; minute++) {
    // 10:00 + minute: exactly on the tick (the window (last, now] holds it).
    clock.advance(MIN);
    expect(await until(async () => (await jobsOf(suite.store, 'nightly')).length === minute)).toBe(true);
    // Many more passes on the same clock start nothing more.
    await manyPasses();
    expect((await jobsOf(suite.store, 'nightly')).length).toBe(minute);
  }
  const jobs = await jobsOf(suite.store, 'nightly');
  // Each job's id begins with its tick (base 36, 9 digits): 10:01, 10:02, 10:03.
  expect(jobs.map((j) => parseInt(j.id.split('-')[0], 36)).sort()).toEqual([START + MIN, START + 2 * MIN, START + 3 * MIN]);
  const rec = (await getSchedule(suite.store, 'default', 'nightly'))!.value;
  expect([rec.lastScheduleTime, rec.lastFiredTick, rec.missedTicks]).toEqual([START + 3 * MIN, START + 3 * MIN, 0]);
});

it('counts ticks past their starting deadline as missed and starts none of them', async () => {
  const clock = new FakeClock(START);
  await createSchedule(suite.store, schedule('late', { startingDeadlineSeconds: 30 }));
  const svc = await quota(clock, 'quota-a');
  await manyPasses();
  // An outage of 5 min 40 s: (10:00, 10:05:40] holds 10:01 … 10:05; the latest is 40 s late > 30 s: all 5 missed.
  clock.advance(5 * MIN + 40_000);
  expect(await until(async () => (await getSchedule(suite.store, 'default', 'late'))!.value.missedTicks === 5)).toBe(true);
  await manyPasses();
  const rec = (await getSchedule(suite.store, 'default', 'late'))!.value;
  expect([rec.missedTicks, rec.lastMissedTick, rec.lastScheduleTime, rec.active]).toEqual([5, START + 5 * MIN, START + 5 * MIN, []]);
  expect(await jobsOf(suite.store, 'late')).toEqual([]);
  const metrics = await (await fetch(`${svc.url}/metrics`)).text();
  expect(metrics).toMatch(/batch_schedule_ticks_missed_total\{service="quota"\} 5\n/);
});

it('after an outage within the starting deadline, fires the latest tick once and counts the earlier ones missed', async () => {
  const clock = new FakeClock(START);
  await createSchedule(suite.store, schedule('catch-up', { startingDeadlineSeconds: 60 }));
  await quota(clock, 'quota-a');
  await manyPasses();
  // An outage of 3 min 20 s: (10:00, 10:03:20] holds 10:01, 10:02, 10:03; 10:03 is 20 s late <= 60 s: it fires,
  // 10:01 and 10:02 are superseded (missed).
  clock.advance(3 * MIN + 20_000);
  expect(await until(async () => (await jobsOf(suite.store, 'catch-up')).length === 1)).toBe(true);
  await manyPasses();
  expect((await jobsOf(suite.store, 'catch-up')).map((j) => parseInt(j.id.split('-')[0], 36))).toEqual([START + 3 * MIN]);
  const rec = (await getSchedule(suite.store, 'default', 'catch-up'))!.value;
  expect([rec.lastScheduleTime, rec.missedTicks, rec.lastMissedTick]).toEqual([START + 3 * MIN, 2, START + 2 * MIN]);
});

it('fires a tick exactly once when the leader is killed between deciding it and writing it', async () => {
  const clock = new FakeClock(START);
  await createSchedule(suite.store, schedule('crash'));
  let decided!: (tick: number) => void;
  const decidedTick = new Promise<number>((r) => (decided = r));
  let letGo!: () => void;
  const held = new Promise<void>((r) => (letGo = r));
  const a = await quota(clock, 'quota-a', async (_s, tick) => {
    decided(tick);
    await held; // the leader stops here: decided, not written
  });
  const leaderKey = suite.store.keys.leader('schedules');
  expect(await until(async () => (await suite.store.get<{ identity: string }>(leaderKey))?.value.identity === 'quota-a')).toBe(true);

  clock.advance(MIN);
  expect(await decidedTick).toBe(START + MIN);
  // A crash as etcd sees it: A's lease (and with it the leader key) is gone. B campaigns and takes over.
  const aLease = (await suite.store.client.get(leaderKey).exec()).kvs[0].lease;
  await suite.store.client.leaseClient.leaseRevoke({ ID: aLease });
  await quota(clock, 'quota-b');
  expect(await until(async () => (await jobsOf(suite.store, 'crash')).length === 1)).toBe(true);
  expect((await suite.store.get<{ identity: string }>(leaderKey))?.value.identity).toBe('quota-b');

  // The old leader wakes up and goes on with its decision: its fenced transaction is refused.
  const aController = a.app.get(ScheduleController);
  letGo();
  expect(await until(async () => aController.leadership?.held() === false)).toBe(true);
  await manyPasses();
  const jobs = await jobsOf(suite.store, 'crash');
  expect(jobs.map((j) => parseInt(j.id.split('-')[0], 36))).toEqual([START + MIN]);
  const rec = (await getSchedule(suite.store, 'default', 'crash'))!.value;
  // Referenced once: running, or (no tenant was seeded, so the quota service rejects it) in the failed history.
  expect([rec.lastScheduleTime, [...rec.active, ...rec.succeeded, ...rec.failed].map((i) => i.id)]).toEqual([START + MIN, [jobs[0].id]]);
});

/** The tick (epoch ms) a schedule's job id begins with. */
const tickOf = (j: JobRecord) => parseInt(j.id.split('-')[0], 36);

describe('concurrency policies, with a run still active (the tenant and queue exist; no scheduler runs, so jobs stay Queued)', () => {
  it('Forbid holds the next tick while a run is active, and fires it once when the run has ended', async () => {
    const clock = new FakeClock(START);
    await createSchedule(suite.store, schedule('forbid', { concurrencyPolicy: 'Forbid' }));
    await quota(clock, 'quota-a', undefined, true);
    clock.advance(MIN); // 10:01
    expect(await until(async () => (await jobsOf(suite.store, 'forbid')).length === 1)).toBe(true);
    const [first] = await jobsOf(suite.store, 'forbid');
    clock.advance(MIN); // 10:02: due, but the 10:01 run is active
    await manyPasses();
    expect((await jobsOf(suite.store, 'forbid')).length).toBe(1);
    expect((await getSchedule(suite.store, 'default', 'forbid'))!.value.lastScheduleTime).toBe(START + MIN);
    // The run ends (cancelled): the waiting 10:02 tick fires, once.
    await cancelJob(suite.store, first.id, clock.now());
    expect(await until(async () => (await jobsOf(suite.store, 'forbid')).length === 2)).toBe(true);
    await manyPasses();
    expect((await jobsOf(suite.store, 'forbid')).map(tickOf).sort()).toEqual([START + MIN, START + 2 * MIN]);
    const rec = (await getSchedule(suite.store, 'default', 'forbid'))!.value;
    expect([rec.lastScheduleTime, rec.failed.map((i) => [i.id, i.phase]), rec.active.length]).toEqual([START + 2 * MIN, [[first.id, 'Cancelled']], 1]);
  });

  it('Replace cancels the active run and starts the new one', async () => {
    const clock = new FakeClock(START);
    await createSchedule(suite.store, schedule('replace', { concurrencyPolicy: 'Replace' }));
    await quota(clock, 'quota-a', undefined, true);
    clock.advance(MIN);
    expect(await until(async () => (await jobsOf(suite.store, 'replace')).length === 1)).toBe(true);
    const [first] = await jobsOf(suite.store, 'replace');
    clock.advance(MIN);
    expect(await until(async () => (await jobsOf(suite.store, 'replace')).length === 2)).toBe(true);
    expect((await getJob(suite.store, first.id))!.value.phase).toBe('Cancelled');
    const second = (await jobsOf(suite.store, 'replace')).find((j) => j.id !== first.id)!;
    expect([tickOf(second), second.phase === 'Cancelled']).toEqual([START + 2 * MIN, false]);
  });
});
