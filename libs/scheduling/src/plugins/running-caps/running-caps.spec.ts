import type { GpuUsage, JobRecord, Queue, Tenant } from '@batchapi/api';
import { jobRecord, nodeRecord, queue, T0 } from '../../../test/fixtures';
import { buildSnapshot, type ClusterState } from '../../framework/snapshot-builder';
import { explainJob } from '../../explain';
import { queueViews } from '../../queue-views';
import {
  addGpuInterval,
  advanceGpuUsage,
  capSeries,
  capWaitMessage,
  emptyGpuUsage,
  GPU_BUDGET_WINDOW_MS,
  GPU_USAGE_BUCKET_MS,
  gpuHoursAt,
  storableGpuUsage,
} from './index';

const HOUR = GPU_USAGE_BUCKET_MS;
/** T0 rounded down to its hour: the buckets' arithmetic reads better from an hour's start. */
const H0 = Math.floor(T0 / HOUR) * HOUR;

/** A job of `tasks` tasks in `queue` (tenant t unless told), `bound` of them bound or running, `done` of those succeeded. */
const job = (
  id: string,
  tasks: number,
  o: { queue?: string; bound?: number; done?: number; priority?: number; createdAt?: number; gang?: boolean; gpu?: number; maxRunning?: number } = {},
): JobRecord =>
  jobRecord(id, tasks, o.gpu ? { cpu: 1, gpu: o.gpu } : { cpu: 1 }, {
    queue: o.queue ?? 'q',
    pending: (o.bound ?? 0) < tasks ? [{ start: o.bound ?? 0, end: tasks, attempt: 1 }] : [],
    counts: { succeeded: o.done ?? 0, failed: 0, cancelled: 0 },
    phase: (o.bound ?? 0) > 0 ? 'Running' : 'Queued',
    createdAt: o.createdAt ?? T0,
    spec: { priority: o.priority ?? 0, ...(o.gang ? { gang: true } : {}), ...(o.maxRunning !== undefined ? { maxRunning: o.maxRunning } : {}) },
  });
const tenant = (name: string, extra: Partial<Tenant> = {}): Tenant => ({ name, weight: 1, ...extra });
const state = (jobs: JobRecord[], queues: Queue[], tenants: Tenant[] = [tenant('t')], gpuUsage?: GpuUsage): ClusterState => ({
  jobs,
  nodes: [nodeRecord('n1', { cpu: 256, memory: '256Gi', gpu: 64 })],
  allocs: new Map(),
  queues,
  bindings: [],
  cordons: [],
  tenants,
  ...(gpuUsage ? { gpuUsage } : {}),
});
const placeable = (s: ReturnType<typeof buildSnapshot>, id: string) => s.work.find((w) => w.jobId === id)?.tasks ?? 0;

describe('maxRunningTasks: a queue and its tenant start at most N tasks at once', () => {
  it.each([
    // room = min(tasks, max(queue) − running(queue) − granted, same for the tenant)
    { name: 'no cap: all 10 start', queues: [queue('q')], tenants: [tenant('t')], jobs: [job('a', 10)], want: { a: 10 } },
    { name: 'queue cap 4, none running: 4 of 10', queues: [queue('q', {}, { maxRunningTasks: 4 })], jobs: [job('a', 10)], want: { a: 4 } },
    {
      name: 'queue cap 4, 3 running (5 bound − 2 done): 4 − 3 = 1',
      queues: [queue('q', {}, { maxRunningTasks: 4 })],
      jobs: [job('r', 5, { bound: 5, done: 2 }), job('a', 10)],
      want: { a: 1 },
    },
    { name: 'queue cap 0 starts nothing', queues: [queue('q', {}, { maxRunningTasks: 0 })], jobs: [job('a', 3)], want: { a: 0 } },
    {
      name: 'tenant cap 5 over two queues: q runs 3, so q2 gets 5 − 3 = 2',
      queues: [queue('q'), queue('q2')],
      tenants: [tenant('t', { maxRunningTasks: 5 })],
      jobs: [job('r', 3, { bound: 3 }), job('a', 10, { queue: 'q2' })],
      want: { a: 2 },
    },
    {
      name: 'the tighter of queue (6 − 0 = 6) and tenant (5 − 3 = 2) wins: 2',
      queues: [queue('q', {}, { maxRunningTasks: 6 }), queue('q2')],
      tenants: [tenant('t', { maxRunningTasks: 5 })],
      jobs: [job('r', 3, { bound: 3, queue: 'q2' }), job('a', 10)],
      want: { a: 2 },
    },
    {
      name: 'higher priority first: hi takes 3 of 4, lo gets 4 − 3 = 1',
      queues: [queue('q', {}, { maxRunningTasks: 4 })],
      jobs: [job('lo', 5, { createdAt: T0 }), job('hi', 3, { priority: 10, createdAt: T0 + 1 })],
      want: { hi: 3, lo: 1 },
    },
    {
      name: 'older first at equal priority: old takes 3 of 4, new gets 1',
      queues: [queue('q', {}, { maxRunningTasks: 4 })],
      jobs: [job('new', 5, { createdAt: T0 + 5 }), job('old', 3, { createdAt: T0 })],
      want: { old: 3, new: 1 },
    },
    {
      name: 'a gang of 4 with 4 − 1 = 3 free gets none, and keeps the 3 from later work',
      queues: [queue('q', {}, { maxRunningTasks: 4 })],
      jobs: [job('r', 1, { bound: 1 }), job('g', 4, { gang: true, priority: 5 }), job('s', 1)],
      want: { g: 0, s: 0 },
    },
    {
      name: 'a gang of 5 under a cap of 4 can never start: it takes none and keeps none (4 free for the next)',
      queues: [queue('q', {}, { maxRunningTasks: 4 })],
      jobs: [job('g', 5, { gang: true, priority: 5 }), job('s', 1)],
      want: { g: 0, s: 1 },
    },
    {
      name: "a capped queue's backlog keeps none of its tenant's slots: q full (2 of 2), q2 gets min(10 − 2, 3) = 3",
      queues: [queue('q', {}, { maxRunningTasks: 2 }), queue('q2')],
      tenants: [tenant('t', { maxRunningTasks: 10 })],
      jobs: [job('r', 2, { bound: 2 }), job('backlog', 100, { priority: 5 }), job('other', 3, { queue: 'q2' })],
      want: { backlog: 0, other: 3 },
    },
    {
      name: 'a gang of 4 with 4 free starts whole; the next gets 4 − 4 = 0',
      queues: [queue('q', {}, { maxRunningTasks: 4 })],
      jobs: [job('g', 4, { gang: true, priority: 5 }), job('s', 1)],
      want: { g: 4, s: 0 },
    },
    {
      name: 'a gang of 3 short in its tenant (6 − 4 = 2 free) gets none; the 2 tenant slots wait for it, while the queue (cap 10) had room',
      queues: [queue('q', {}, { maxRunningTasks: 10 }), queue('q2')],
      tenants: [tenant('t', { maxRunningTasks: 6 })],
      jobs: [job('r', 4, { bound: 4, queue: 'q2' }), job('g', 3, { gang: true, priority: 1 }), job('s', 1, { queue: 'q2' })],
      want: { g: 0, s: 0 },
    },
    {
      name: "a job's own maxRunning still applies: min(maxRunning 2 − 0, cap 10) = 2",
      queues: [queue('q', {}, { maxRunningTasks: 10 })],
      jobs: [job('a', 5, { maxRunning: 2 })],
      want: { a: 2 },
    },
    {
      name: 'caps of one queue leave another alone: q full (2 of 2), q2 uncapped runs 7',
      queues: [queue('q', {}, { maxRunningTasks: 2 }), queue('q2')],
      jobs: [job('r', 2, { bound: 2 }), job('a', 3), job('b', 7, { queue: 'q2' })],
      want: { a: 0, b: 7 },
    },
  ])('$name', ({ queues, tenants, jobs, want }) => {
    const s = buildSnapshot(state(jobs, queues, tenants), T0);
    for (const [id, n] of Object.entries(want)) expect([id, placeable(s, id)]).toEqual([id, n]);
  });

  it('why pending names the cap that holds the work', () => {
    const jobs = [job('r', 50, { bound: 50, queue: 'ml' }), job('w', 3, { queue: 'ml' })];
    const s = buildSnapshot(state(jobs, [queue('ml', {}, { tenant: 'vision', maxRunningTasks: 50 })], [tenant('vision')]), T0);
    const why = explainJob(s, jobs[1], 'scheduler');
    expect(why.messages).toContain('queue "ml" runs 50 of its 50 tasks (maxRunningTasks): 3 tasks wait');
    expect(why.pendingTasks).toBe(3);
    expect(why.counterfactuals).toEqual([]);
  });

  it('why pending of a tenant cap, for a job the cycle has not seen yet', () => {
    const s = buildSnapshot(state([job('r', 2, { bound: 2 })], [queue('q', {}, { tenant: 'vision' })], [tenant('vision', { maxRunningTasks: 2 })]), T0);
    expect(capWaitMessage(s.pendingOf(job('new', 1)))).toBe('tenant "vision" runs 2 of its 2 tasks (maxRunningTasks): 1 task waits');
  });
});

describe('GPU-hour buckets: advanceGpuUsage and the rolling window', () => {
  const held = (q: Record<string, number>) => new Map(Object.entries(q));
  const tenantOf = () => 't';

  it('splits held GPUs over the hours they span, for the queue and its tenant', () => {
    // 1500 milli-GPU from H0 + 30 min to H0 + 90 min: 1.5 × 1800 s = 2700 GPU-s in each of the two hours
    const u = advanceGpuUsage(emptyGpuUsage(H0 + HOUR / 2), held({ q: 1500 }), tenantOf, H0 + (3 * HOUR) / 2);
    expect(u.queues.q).toEqual({ [H0]: 2700, [H0 + HOUR]: 2700 });
    expect(u.tenants.t).toEqual({ [H0]: 2700, [H0 + HOUR]: 2700 });
    expect(u.at).toBe(H0 + (3 * HOUR) / 2);
  });

  it('counts at most the last 24 h of a long gap, and drops hours that left the window', () => {
    // 1 GPU held for 30 h from H0: [H0 + 6 h, H0 + 30 h) is added, 24 hours of 3600 GPU-s; at H0 + 30 h the hour
    // H0 + 6 h has left the window (H0 + 6 h + 24 h ≤ now), so 23 hours = 23 GPU-h count (an hour counts 23 to 24 h)
    const u = advanceGpuUsage(emptyGpuUsage(H0), held({ q: 1000 }), tenantOf, H0 + 30 * HOUR);
    expect(Object.keys(u.queues.q)).toHaveLength(23);
    expect(gpuHoursAt(u.queues.q, H0 + 30 * HOUR).used).toBe(23);
    // then an hour idle: H0 + 7 h leaves too, 22 left
    const idle = advanceGpuUsage(u, held({}), tenantOf, H0 + 31 * HOUR);
    expect(gpuHoursAt(idle.queues.q, H0 + 31 * HOUR).used).toBe(22);
  });

  it.each([
    // a new leader credits the gap since the stored count (at = H0 + 1 h) up to now (H0 + 1 h + 60 s) to live bindings
    { name: 'bound before the count: 2 GPUs × the whole 60 s gap = 120 GPU-s', from: H0 + HOUR, milli: 2000, gpuSeconds: 120 },
    { name: 'bound within the gap (30 s before now): 2 GPUs × 30 s = 60 GPU-s', from: H0 + HOUR + 30_000, milli: 2000, gpuSeconds: 60 },
    { name: 'a quarter GPU over the whole gap: 0.25 × 60 = 15 GPU-s', from: H0 + HOUR, milli: 250, gpuSeconds: 15 },
  ])('addGpuInterval: $name', ({ from, milli, gpuSeconds }) => {
    const u = addGpuInterval(emptyGpuUsage(H0 + HOUR), 'q', 't', milli, from, H0 + HOUR + 60_000);
    expect(u.queues.q).toEqual({ [H0 + HOUR]: gpuSeconds });
    expect(u.tenants.t).toEqual({ [H0 + HOUR]: gpuSeconds });
    expect(u.at).toBe(H0 + HOUR);
  });

  it.each([
    // one bucket of 7200 GPU-s (2 GPU-h) at hour H0: counted while H0 + 24 h > now
    { name: 'at the hour itself', now: H0, used: 2, freesAt: H0 + GPU_BUDGET_WINDOW_MS },
    { name: '1 ms before it ages out', now: H0 + GPU_BUDGET_WINDOW_MS - 1, used: 2, freesAt: H0 + GPU_BUDGET_WINDOW_MS },
    { name: 'the instant it ages out: gone', now: H0 + GPU_BUDGET_WINDOW_MS, used: 0, freesAt: undefined },
    { name: 'a bucket in the future (clock step back) is not counted', now: H0 - 1, used: 0, freesAt: undefined },
  ])('gpuHoursAt: $name', ({ now, used, freesAt }) => {
    const at = gpuHoursAt({ [H0]: 7200 }, now);
    expect(at.used).toBe(used);
    expect(at.freesAt).toBe(freesAt);
  });

  it('freesAt is when the oldest counted hour leaves: buckets at H0 (1 GPU-h) and H0 + 5 h (2 GPU-h) frees at H0 + 24 h', () => {
    expect(gpuHoursAt({ [H0]: 3600, [H0 + 5 * HOUR]: 7200 }, H0 + 10 * HOUR)).toEqual({ used: 3, freesAt: H0 + GPU_BUDGET_WINDOW_MS });
    // past H0 + 24 h only the 2 GPU-h of H0 + 5 h count, freeing at H0 + 29 h
    expect(gpuHoursAt({ [H0]: 3600, [H0 + 5 * HOUR]: 7200 }, H0 + 25 * HOUR)).toEqual({ used: 2, freesAt: H0 + 29 * HOUR });
  });
});

describe('gpuHoursPerDay: work asking for GPUs waits while the last 24 h used the budget', () => {
  // q used 10 GPU-h (36,000 GPU-s) in the hour H0; t's tenant total is the same
  const usage: GpuUsage = { at: H0 + HOUR, queues: { q: { [H0]: 36_000 } }, tenants: { t: { [H0]: 36_000 } } };

  it.each([
    { name: 'budget 10, used 10: GPU work waits', queue: { gpuHoursPerDay: 10 }, tenantCaps: {}, now: H0 + HOUR, gpuWork: 0, cpuWork: 4 },
    {
      name: 'budget 10.5, used 10: GPU work starts (the budget is not yet reached)',
      queue: { gpuHoursPerDay: 10.5 },
      tenantCaps: {},
      now: H0 + HOUR,
      gpuWork: 4,
      cpuWork: 4,
    },
    { name: 'tenant budget 8 < 10 used: GPU work waits', queue: {}, tenantCaps: { gpuHoursPerDay: 8 }, now: H0 + HOUR, gpuWork: 0, cpuWork: 4 },
    // H0 + 24 h: the hour H0 left the window, 0 used
    {
      name: 'budget 10, the usage aged out at H0 + 24 h: GPU work starts',
      queue: { gpuHoursPerDay: 10 },
      tenantCaps: {},
      now: H0 + GPU_BUDGET_WINDOW_MS,
      gpuWork: 4,
      cpuWork: 4,
    },
    { name: 'budget 0: no GPU work ever', queue: { gpuHoursPerDay: 0 }, tenantCaps: {}, now: H0 + GPU_BUDGET_WINDOW_MS, gpuWork: 0, cpuWork: 4 },
  ])('$name', ({ queue: qcaps, tenantCaps, now, gpuWork, cpuWork }) => {
    const jobs = [job('g', 4, { gpu: 1 }), job('c', 4)];
    const s = buildSnapshot(state(jobs, [queue('q', {}, qcaps)], [tenant('t', tenantCaps)], usage), now);
    expect([placeable(s, 'g'), placeable(s, 'c')]).toEqual([gpuWork, cpuWork]);
  });

  it('a milli-GPU share counts by its fraction: 250 milli for 4 h is 1 GPU-h', () => {
    const u = advanceGpuUsage(emptyGpuUsage(H0), new Map([['q', 250]]), () => 't', H0 + 4 * HOUR);
    expect(gpuHoursAt(u.queues.q, H0 + 4 * HOUR).used).toBe(1);
  });

  it('why pending gives the figure and when the budget frees', () => {
    const jobs = [job('g', 2, { gpu: 1, queue: 'ml' })];
    const u: GpuUsage = { at: H0 + HOUR, queues: { ml: { [H0]: 36_000 } }, tenants: { vision: { [H0]: 36_000 } } };
    const s = buildSnapshot(state(jobs, [queue('ml', {}, { tenant: 'vision' })], [tenant('vision', { gpuHoursPerDay: 10 })], u), H0 + HOUR);
    const why = explainJob(s, jobs[0], 'scheduler');
    expect(why.messages).toContain(
      `tenant "vision" used 10 of its 10 GPU-hours in the last 24 h (gpuHoursPerDay): 2 tasks wait; budget frees from ${new Date(H0 + GPU_BUDGET_WINDOW_MS).toISOString()}`,
    );
  });

  it('the queue view shows running/max and GPU-hours used/budget for the queue and its tenant', () => {
    const jobs = [job('r', 3, { bound: 3, gpu: 1 })];
    const s = buildSnapshot(state(jobs, [queue('q', {}, { maxRunningTasks: 5 })], [tenant('t', { gpuHoursPerDay: 10 })], usage), H0 + HOUR);
    expect(queueViews(s)[0].caps).toEqual({
      queue: { runningTasks: 3, maxRunningTasks: 5, gpuHoursUsed: 10 },
      tenant: { runningTasks: 3, gpuHoursUsed: 10, gpuHoursPerDay: 10, gpuBudgetFreesAt: new Date(H0 + GPU_BUDGET_WINDOW_MS).toISOString() },
    });
    expect(capSeries(s.caps, s.tenantOf)).toEqual([
      { labels: { scope: 'queue', queue: 'q', tenant: 't' }, running: 3, maxRunningTasks: 5, gpuHoursUsed: 10 },
      { labels: { scope: 'tenant', queue: '', tenant: 't' }, running: 3, gpuHoursUsed: 10, gpuHoursPerDay: 10 },
    ]);
  });

  it('a queue without caps (nor its tenant) shows none', () => {
    const s = buildSnapshot(state([], [queue('q')]), T0);
    expect(queueViews(s)[0].caps).toBeUndefined();
  });
});

describe('storableGpuUsage: what the leader stores stays under a byte bound, budgeted owners first', () => {
  const H = 1_800_000_000_000; // an hour's start
  const usage: GpuUsage = {
    at: H + 60_000,
    queues: { big: { [H]: 7200.0004 }, small: { [H]: 10 }, capped: { [H]: 1 } },
    tenants: { acme: { [H]: 7211.0004 } },
  };
  // each owner's entry: "name":{"1800000000000":n} plus a comma; the empty record {"at":…,"queues":{},"tenants":{}} is 47 bytes
  const entry = (name: string, n: number) => JSON.stringify(name).length + JSON.stringify({ [H]: n }).length + 2;
  const budgeted = (kind: 'queue' | 'tenant', owner: string) => kind === 'queue' && owner === 'capped';

  it('keeps everything, rounded to the millisecond of GPU time, when it fits', () => {
    const { usage: out, dropped } = storableGpuUsage(usage, budgeted);
    expect(dropped).toBe(0);
    expect(out).toEqual({ at: H + 60_000, queues: { big: { [H]: 7200 }, small: { [H]: 10 }, capped: { [H]: 1 } }, tenants: { acme: { [H]: 7211 } } });
  });

  it.each<[string, number, string[]]>([
    // room for the budgeted queue and the two largest: capped (budget), then acme 7211 s, big 7200 s; small (10 s) left out
    ['three owners', 47 + entry('capped', 1) + entry('acme', 7211) + entry('big', 7200), ['capped', 'acme', 'big']],
    // room for one: the budgeted queue, however little it used
    ['one owner', 47 + entry('capped', 1), ['capped']],
    // room for none
    ['none', 47, []],
  ])('under a bound of %s, keeps the budgeted owner first, then the most used', (_case, maxBytes, kept) => {
    const { usage: out, dropped } = storableGpuUsage(usage, budgeted, maxBytes);
    const owners = [...Object.keys(out.queues), ...Object.keys(out.tenants)];
    expect(owners.sort()).toEqual([...kept].sort());
    expect(dropped).toBe(4 - kept.length);
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(maxBytes);
  });
});
