import type { JobRecord, SemaphoreRecord } from '@batchapi/api';
import { jobRecord, nodeRecord, T0 } from '../../../test/fixtures';
import { buildSnapshot, type ClusterState } from '../../framework/snapshot-builder';
import { explainJob } from '../../explain';
import { countSemaphores, grantSemaphores, holdsSemaphores, MAX_LOCK_SERIES, semaphoreSeries, semaphoreViews, semaphoreWaitMessage } from './index';

/** A semaphore record of tenant t (a `global/…` one has none). */
const sem = (name: string, capacity: number): SemaphoreRecord => ({
  name,
  ...(name.startsWith('global/') ? {} : { tenant: 't' }),
  capacity,
  createdAt: T0,
  updatedAt: T0,
});
/** A job of `tasks` tasks, `bound` of them bound or running (left `pending`), `done` of those succeeded. */
const job = (
  id: string,
  tasks: number,
  o: {
    bound?: number;
    done?: number;
    priority?: number;
    createdAt?: number;
    locks?: string[];
    limits?: Record<string, number>;
    gang?: boolean;
    tenant?: string;
  } = {},
): JobRecord =>
  jobRecord(
    id,
    tasks,
    { cpu: 1 },
    {
      tenant: o.tenant ?? 't',
      pending: (o.bound ?? 0) < tasks ? [{ start: o.bound ?? 0, end: tasks, attempt: 1 }] : [],
      counts: { succeeded: o.done ?? 0, failed: 0, cancelled: 0 },
      phase: (o.bound ?? 0) > 0 ? 'Running' : 'Queued',
      createdAt: o.createdAt ?? T0,
      spec: { priority: o.priority ?? 0, ...(o.locks ? { locks: o.locks } : {}), ...(o.limits ? { limits: o.limits } : {}), ...(o.gang ? { gang: true } : {}) },
    },
  );
const state = (jobs: JobRecord[], semaphores: SemaphoreRecord[], nodes = [nodeRecord('n1', { cpu: 64, memory: '64Gi' })]): ClusterState => ({
  jobs,
  nodes,
  allocs: new Map(),
  queues: [],
  bindings: [],
  cordons: [],
  semaphores,
});
const placeable = (s: ReturnType<typeof buildSnapshot>, id: string) => s.work.find((w) => w.jobId === id)?.tasks ?? 0;

describe('countSemaphores: held units are counted from live jobs, never stored', () => {
  it.each([
    // held = Σ inFlight × units; inFlight = tasks − pending − done
    { name: 'none bound: 0 held', jobs: [job('a', 4, { limits: { db: 2 } })], held: 0 },
    { name: '3 bound × 2 units = 6', jobs: [job('a', 4, { bound: 3, limits: { db: 2 } })], held: 6 },
    { name: '3 bound, 1 done: (3 − 1) × 2 = 4', jobs: [job('a', 4, { bound: 3, done: 1, limits: { db: 2 } })], held: 4 },
    { name: 'two jobs: 1 × 2 + 2 × 1 = 4', jobs: [job('a', 4, { bound: 1, limits: { db: 2 } }), job('b', 2, { bound: 2, limits: { db: 1 } })], held: 4 },
    { name: "another tenant's db is another semaphore: 0", jobs: [job('a', 4, { bound: 3, limits: { db: 2 }, tenant: 'u' })], held: 0 },
  ])('$name', ({ jobs, held }) => {
    expect(countSemaphores(jobs, [sem('db', 8)]).get('t/db')?.held).toBe(held);
  });

  it('a mutex exists once a job names it, with capacity 1', () => {
    const c = countSemaphores([job('a', 1, { bound: 1, locks: ['dataset/lidar'] })], []).get('mutex:t/dataset/lidar');
    expect(c).toMatchObject({ capacity: 1, held: 1, mutex: true, name: 'dataset/lidar', tenant: 't' });
  });

  it('a global/ name is shared by every tenant', () => {
    const c = countSemaphores(
      [job('a', 2, { bound: 2, limits: { 'global/gpu-licence': 1 } }), job('b', 1, { bound: 1, limits: { 'global/gpu-licence': 1 }, tenant: 'u' })],
      [sem('global/gpu-licence', 5)],
    );
    expect(c.get('global/gpu-licence')).toMatchObject({ held: 3, capacity: 5 });
    expect(c.get('global/gpu-licence')?.tenant).toBeUndefined();
  });

  it('holdsSemaphores: a job is kept by the scheduler while its tasks hold units, and only then', () => {
    expect(holdsSemaphores(job('a', 2, { bound: 2, locks: ['x'] }))).toBe(true);
    expect(holdsSemaphores(job('a', 2, { bound: 2, done: 2, locks: ['x'] }))).toBe(false);
    expect(holdsSemaphores(job('a', 2, { bound: 2 }))).toBe(false);
  });
});

describe('grants in the snapshot: units go to waiting work in priority, then age, order', () => {
  it.each([
    // placeable = min(tasks, ⌊(capacity − held − granted before) / units⌋)
    {
      name: 'capacity 4, 1 held: a (3 tasks) gets ⌊(4 − 1) / 1⌋ = 3, b then 0',
      jobs: [
        job('run', 1, { bound: 1, limits: { db: 1 } }),
        job('a', 3, { limits: { db: 1 }, createdAt: T0 + 1 }),
        job('b', 2, { limits: { db: 1 }, createdAt: T0 + 2 }),
      ],
      capacity: 4,
      want: { a: 3, b: 0 },
    },
    {
      name: 'higher priority goes first though younger: b gets 4, a 0',
      jobs: [job('a', 3, { limits: { db: 1 }, createdAt: T0 + 1 }), job('b', 4, { limits: { db: 1 }, createdAt: T0 + 2, priority: 10 })],
      capacity: 4,
      want: { a: 0, b: 4 },
    },
    {
      name: '2 units a task, 5 free: ⌊5 / 2⌋ = 2 of a’s 3; the 1 left waits for a, so b (1 unit) gets none',
      jobs: [job('a', 3, { limits: { db: 2 }, createdAt: T0 + 1 }), job('b', 1, { limits: { db: 1 }, createdAt: T0 + 2 })],
      capacity: 5,
      want: { a: 2, b: 0 },
    },
    {
      name: 'a gang of 3 with 2 free takes nothing, and keeps the 2 for itself',
      jobs: [job('a', 3, { limits: { db: 1 }, gang: true, createdAt: T0 + 1 }), job('b', 1, { limits: { db: 1 }, createdAt: T0 + 2 })],
      capacity: 2,
      want: { a: 0, b: 0 },
    },
    {
      name: 'work no node can run takes no units: big (128 CPUs on a 64-CPU node) is skipped, b gets 1',
      jobs: [
        { ...job('big', 1, { limits: { db: 1 }, createdAt: T0 + 1 }), spec: { ...job('big', 1).spec, resources: { cpu: 128_000 }, limits: { db: 1 } } },
        job('b', 1, { limits: { db: 1 }, createdAt: T0 + 2 }),
      ],
      capacity: 1,
      want: { big: 1, b: 1 },
    },
    {
      name: 'a lock is one task at a time across jobs: a (bound 1 of 3) and b wait',
      jobs: [job('a', 3, { bound: 1, locks: ['ds'] }), job('b', 2, { locks: ['ds'], createdAt: T0 + 1 })],
      capacity: 4,
      want: { a: 0, b: 0 },
    },
    {
      name: 'a free lock goes to one task of the first in line: a 1, b 0',
      jobs: [job('a', 3, { locks: ['ds'] }), job('b', 2, { locks: ['ds'], createdAt: T0 + 1 })],
      capacity: 4,
      want: { a: 1, b: 0 },
    },
    {
      name: 'work without semaphores is untouched: c keeps its 5',
      jobs: [job('a', 3, { bound: 1, locks: ['ds'] }), job('c', 5)],
      capacity: 4,
      want: { a: 0, c: 5 },
    },
  ])('$name', ({ jobs, capacity, want }) => {
    const s = buildSnapshot(state(jobs, [sem('db', capacity)]), T0 + 10);
    for (const [id, tasks] of Object.entries(want)) expect([id, placeable(s, id)]).toEqual([id, tasks]);
  });

  it('a semaphore that does not exist grants nothing, and says how to create it', () => {
    const s = buildSnapshot(state([job('a', 2, { limits: { 'db/warehouse': 1 } })], []), T0);
    expect(placeable(s, 'a')).toBe(0);
    expect(semaphoreWaitMessage(s.pendingOf(s.jobs.get('a')!))).toBe(
      'waiting for semaphore db/warehouse, which does not exist: create it (batch semaphore put db/warehouse --capacity N, or PUT /v1/semaphores/db%2Fwarehouse); 2 tasks wait',
    );
  });

  it('grantSemaphores leaves the order of the work as it was given', () => {
    const jobs = [job('a', 1, { limits: { db: 1 }, createdAt: T0 + 2 }), job('b', 1, { limits: { db: 1 }, createdAt: T0 + 1 })];
    const s = buildSnapshot(state(jobs, [sem('db', 1)]), T0);
    const counts = countSemaphores(jobs, [sem('db', 1)]);
    const work = jobs.map((j) => s.pendingOf(j));
    expect(grantSemaphores(work, new Map(jobs.map((j) => [j.id, j])), counts).map((w) => [w.jobId, w.tasks])).toEqual([
      ['a', 0],
      ['b', 1],
    ]);
  });
});

describe('why pending names the semaphore, its holders and the wait', () => {
  it('a semaphore at capacity', () => {
    const jobs = [
      job('h1', 2, { bound: 2, limits: { 'db/warehouse-conn': 1 } }),
      job('h2', 2, { bound: 2, limits: { 'db/warehouse-conn': 1 } }),
      job('w', 3, { limits: { 'db/warehouse-conn': 1 } }),
    ];
    const s = buildSnapshot(state(jobs, [sem('db/warehouse-conn', 4)]), T0);
    const why = explainJob(s, jobs[2], 'scheduler');
    expect(why.messages).toContain('waiting for semaphore db/warehouse-conn (4/4 units held by jobs h1, h2): 3 tasks wait');
    expect(why.pendingTasks).toBe(3);
    expect(why.counterfactuals).toEqual([]);
  });

  it('a lock', () => {
    const jobs = [job('h', 1, { bound: 1, locks: ['dataset/lidar-2026-11'] }), job('w', 1, { locks: ['dataset/lidar-2026-11'] })];
    const why = explainJob(buildSnapshot(state(jobs, []), T0), jobs[1], 'scheduler');
    expect(why.messages).toContain('waiting for lock dataset/lidar-2026-11 (held by job h): 1 task waits');
  });

  it('the views show capacity, held, holders and waiting tasks', () => {
    const jobs = [job('h1', 3, { bound: 3, limits: { db: 1 } }), job('w', 2, { limits: { db: 1 } })];
    const s = buildSnapshot(state(jobs, [sem('db', 4)]), T0);
    expect(semaphoreViews(s.semaphores)).toEqual([
      { name: 'db', tenant: 't', mutex: false, capacity: 4, held: 3, holders: [{ jobId: 'h1', units: 3 }], waitingTasks: 1 },
    ]);
  });
});

describe('semaphoreSeries: what the scheduler exports', () => {
  it('ages are seconds at the scrape: oldest wait from the waiting work’s submit, oldest hold from the holder’s start', () => {
    // h1 started at T0 + 10 s and holds 3 of 4; w (submitted T0 + 20 s) waits for 2 more than the 1 left.
    const jobs = [{ ...job('h1', 3, { bound: 3, limits: { db: 1 } }), startedAt: T0 + 10_000 }, job('w', 3, { limits: { db: 1 }, createdAt: T0 + 20_000 })];
    const s = buildSnapshot(state(jobs, [sem('db', 4)]), T0 + 60_000);
    // at T0 + 80 s: wait 80 − 20 = 60 s, hold 80 − 10 = 70 s; w got ⌊(4 − 3) / 1⌋ = 1 of its 3, so 2 wait
    expect(semaphoreSeries(s.semaphores, T0 + 80_000)).toEqual([
      { labels: { semaphore: 'db', tenant: 't', kind: 'semaphore' }, capacity: 4, held: 3, waitingTasks: 2, oldestWaitSeconds: 60, oldestHoldSeconds: 70 },
    ]);
  });

  it('exports a lock only while work waits for it, the longest waits first, at most MAX_LOCK_SERIES', () => {
    const jobs = [
      job('h', 1, { bound: 1, locks: ['busy'] }),
      job('w', 1, { locks: ['busy'], createdAt: T0 + 5_000 }),
      job('solo', 1, { bound: 1, locks: ['alone'] }),
    ];
    const series = semaphoreSeries(buildSnapshot(state(jobs, []), T0 + 60_000).semaphores, T0 + 60_000);
    expect(series.map((x) => [x.labels.semaphore, x.labels.kind, x.waitingTasks])).toEqual([['busy', 'lock', 1]]);
    const many = Array.from({ length: MAX_LOCK_SERIES + 5 }, (_, i) => [
      job(`h${i}`, 1, { bound: 1, locks: [`l${i}`] }),
      job(`w${i}`, 1, { locks: [`l${i}`], createdAt: T0 + i }),
    ]).flat();
    expect(semaphoreSeries(buildSnapshot(state(many, []), T0 + 1_000).semaphores, T0 + 1_000)).toHaveLength(MAX_LOCK_SERIES);
  });
});
