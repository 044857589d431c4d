/**
 * Running caps of queues and tenants (issue 17): `maxRunningTasks` (at most N tasks of a queue,
 * or of all a tenant's queues, bound or running at once) and `gpuHoursPerDay` (a rolling 24-hour
 * budget of GPU-hours). Applied where pending work is made (the snapshot builder, after a job's
 * own `maxRunning` and before semaphores), so every later phase sees only the tasks the caps let
 * start.
 *
 * Running tasks are counted from the live jobs' records, as `maxRunning` and semaphores count:
 *   running(queue)  = Σ over live jobs j of the queue: inFlight(j)
 *   running(tenant) = Σ over the tenant's queues: running(queue)
 * A task leaves `pending` in the bind transaction and reaches a terminal counter (or `pending`
 * again) in the report that frees its node; the leader binds only once its cache holds its own
 * last writes, so its count is never below etcd's and a cap is never exceeded, even across a
 * failover (a new leader counts the same records).
 *
 * Slots go to waiting work in `grantOrder` (effective priority, then submit time, then job id):
 *   room(w) = min(tasks(w), max(queue) − running(queue) − granted(queue), same for the tenant)
 * A gang gets all its tasks or none; a gang first in line that finds too few slots keeps the free
 * ones of the cap that is short (later, smaller work takes none until it started), so a stream of
 * single tasks cannot starve it. Work no node could ever run takes nothing.
 *
 * GPU-hours: the leader adds, as time passes, what each queue's live tasks hold (milli-GPU / 1000
 * × seconds) to hourly buckets of the queue and of its tenant (`advanceGpuUsage`), so an ended
 * attempt's hours are in the buckets and a running one's elapsed part too. An hour's GPU-seconds
 * count until 24 h after the hour began:
 *   used(now) = Σ over buckets b with b.start + 24 h > now: b.gpuSeconds / 3600
 * Work asking for GPUs (`resources.gpu > 0`) waits while used ≥ gpuHoursPerDay of its queue or
 * its tenant; nothing running is stopped, CPU-only work is not held. The budget frees (at least
 * in part) when the oldest counted hour leaves the window: `freesAt = min b.start + 24 h`. Pure:
 * every instant is a parameter.
 */
import { GPU_MILLI, type GpuUsage, type JobRecord, type Queue, type RunningCapView, type Tenant } from '@batchapi/api';
import type { PendingWork } from '../../snapshot';
import { tasksInFlight } from '../max-running';
import { grantOrder } from '../semaphores';

/** Width of one GPU-usage bucket: an hour, in ms. */
export const GPU_USAGE_BUCKET_MS = 3_600_000;
/** The window `gpuHoursPerDay` is a budget over: 24 h, in ms. */
export const GPU_BUDGET_WINDOW_MS = 86_400_000;

/** One queue's or tenant's caps as a cycle counts them. */
export interface CapCount {
  kind: 'queue' | 'tenant';
  name: string;
  /** Its `maxRunningTasks`, when set. */
  maxRunningTasks?: number;
  /** Tasks bound or running. */
  running: number;
  /** Slots granted to waiting work by this snapshot. */
  granted: number;
  /** Tasks of waiting work the caps held back. */
  waitingTasks: number;
  /** Its `gpuHoursPerDay`, when set. */
  gpuHoursPerDay?: number;
  /** GPU-hours used in the window at the snapshot's instant. */
  gpuHoursUsed: number;
  /** When the oldest counted hour leaves the window (epoch ms); absent when nothing is counted. */
  gpuBudgetFreesAt?: number;
}

/** Every queue's and tenant's caps, and which tenant owns each queue. */
export interface RunningCaps {
  queues: Map<string, CapCount>;
  tenants: Map<string, CapCount>;
}

/** Why a job's placeable tasks wait for a cap: the first cap that held them back. */
export interface CapWait {
  kind: 'queue' | 'tenant';
  name: string;
  /** `tasks`: its `maxRunningTasks`; `gpuHours`: its `gpuHoursPerDay`. */
  cap: 'tasks' | 'gpuHours';
  running: number;
  maxRunningTasks?: number;
  gpuHoursUsed: number;
  gpuHoursPerDay?: number;
  gpuBudgetFreesAt?: number;
  /** Placeable tasks held back. */
  waiting: number;
}

/** An empty usage record as of `at`. */
/**
 * Most bytes of JSON the stored GPU usage (`gpu-usage`) may take: under etcd's 1.5 MiB request
 * limit with room for the fence. A day of one owner is up to 24 hours of ~30 bytes, so ~1,400
 * owners fit whole.
 */
export const MAX_STORED_GPU_USAGE_BYTES = 1_000_000;

/**
 * The GPU usage to store (pure): rounded to the millisecond of GPU time, and at most `maxBytes`
 * of JSON. When more owners used GPUs than fit, those with a `gpuHoursPerDay` budget (`budgeted`)
 * are kept first — a successor must go on enforcing them — then the others by GPU-seconds used,
 * most first; the rest are left out (`dropped`: their counts restart from zero after a failover,
 * which only their queue views show).
 */
export function storableGpuUsage(
  usage: GpuUsage,
  budgeted: (kind: 'queue' | 'tenant', owner: string) => boolean,
  maxBytes = MAX_STORED_GPU_USAGE_BYTES,
): { usage: GpuUsage; dropped: number } {
  const round = (hours: Record<string, number>) => Object.fromEntries(Object.entries(hours).map(([h, s]) => [h, Math.round(s * 1000) / 1000]));
  type Entry = { kind: 'queue' | 'tenant'; owner: string; hours: Record<string, number>; bytes: number; kept: boolean; used: number };
  const entries: Entry[] = [];
  for (const [kind, owners] of [
    ['queue', usage.queues],
    ['tenant', usage.tenants],
  ] as const) {
    for (const [owner, raw] of Object.entries(owners)) {
      const hours = round(raw);
      // "owner":{hours}, and a comma
      const bytes = Buffer.byteLength(JSON.stringify(owner)) + Buffer.byteLength(JSON.stringify(hours)) + 2;
      entries.push({ kind, owner, hours, bytes, kept: budgeted(kind, owner), used: Object.values(raw).reduce((a, b) => a + b, 0) });
    }
  }
  entries.sort((a, b) => Number(b.kept) - Number(a.kept) || b.used - a.used || (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
  const out: GpuUsage = { at: usage.at, queues: {}, tenants: {} };
  let bytes = Buffer.byteLength(JSON.stringify(out));
  let dropped = 0;
  for (const e of entries) {
    if (bytes + e.bytes > maxBytes) {
      dropped++;
      continue;
    }
    bytes += e.bytes;
    (e.kind === 'queue' ? out.queues : out.tenants)[e.owner] = e.hours;
  }
  return { usage: out, dropped };
}

export function emptyGpuUsage(at: number): GpuUsage {
  return { at, queues: {}, tenants: {} };
}

/**
 * `usage` advanced to `to`: each queue's `heldMilliGpu` held over `[usage.at, to)` (at most the
 * last 24 h of it) added to the hours it spans, for the queue and for its tenant (`tenantOf`),
 *   bucket(h) += heldMilliGpu / 1000 × |[usage.at, to) ∩ [h, h + 1 h)| / 1000   (GPU-seconds)
 * and hours that left the window at `to` dropped. `usage` itself is not changed.
 */
export function advanceGpuUsage(
  usage: GpuUsage,
  heldMilliGpu: ReadonlyMap<string, number>,
  tenantOf: (queue: string) => string | undefined,
  to: number,
): GpuUsage {
  const out: GpuUsage = { at: Math.max(usage.at, to), queues: cloneBuckets(usage.queues), tenants: cloneBuckets(usage.tenants) };
  for (const [queue, milli] of heldMilliGpu) addInterval(out, queue, tenantOf(queue), milli, usage.at, to);
  prune(out.queues, to);
  prune(out.tenants, to);
  return out;
}

/**
 * `usage` with `milliGpu` held by `queue` (and its `tenant`) over `[from, to)` added, at most the
 * last 24 h before `to` of it (a new leader credits the bindings it finds live since the last
 * stored count this way). `at` and the window are left as they are: `advanceGpuUsage` moves them.
 */
export function addGpuInterval(usage: GpuUsage, queue: string, tenant: string | undefined, milliGpu: number, from: number, to: number): GpuUsage {
  const out: GpuUsage = { at: usage.at, queues: cloneBuckets(usage.queues), tenants: cloneBuckets(usage.tenants) };
  addInterval(out, queue, tenant, milliGpu, from, to);
  return out;
}

function addInterval(out: GpuUsage, queue: string, tenant: string | undefined, milliGpu: number, from: number, to: number): void {
  if (milliGpu <= 0) return;
  for (let start = Math.max(from, to - GPU_BUDGET_WINDOW_MS); start < to;) {
    const hour = Math.floor(start / GPU_USAGE_BUCKET_MS) * GPU_USAGE_BUCKET_MS;
    const end = Math.min(to, hour + GPU_USAGE_BUCKET_MS);
    const gpuSeconds = (milliGpu / GPU_MILLI) * ((end - start) / 1000);
    add(out.queues, queue, hour, gpuSeconds);
    if (tenant !== undefined) add(out.tenants, tenant, hour, gpuSeconds);
    start = end;
  }
}

function add(buckets: Record<string, Record<string, number>>, owner: string, hour: number, gpuSeconds: number): void {
  const b = (buckets[owner] ??= {});
  b[hour] = (b[hour] ?? 0) + gpuSeconds;
}

function prune(buckets: Record<string, Record<string, number>>, now: number): void {
  for (const [owner, hours] of Object.entries(buckets)) {
    for (const h of Object.keys(hours)) if (Number(h) + GPU_BUDGET_WINDOW_MS <= now) delete hours[h];
    if (Object.keys(hours).length === 0) delete buckets[owner];
  }
}

function cloneBuckets(b: Record<string, Record<string, number>>): Record<string, Record<string, number>> {
  return Object.fromEntries(Object.entries(b).map(([k, v]) => [k, { ...v }]));
}

/**
 * GPU-hours of `hours` (GPU-seconds by hour start) still in the window at `now`, and when the
 * oldest of them leaves it (see the module header).
 */
export function gpuHoursAt(hours: Readonly<Record<string, number>> | undefined, now: number): { used: number; freesAt?: number } {
  let seconds = 0;
  let oldest: number | undefined;
  for (const [h, s] of Object.entries(hours ?? {})) {
    const start = Number(h);
    if (start + GPU_BUDGET_WINDOW_MS <= now || start > now || s <= 0) continue;
    seconds += s;
    if (oldest === undefined || start < oldest) oldest = start;
  }
  return { used: seconds / 3600, ...(oldest !== undefined ? { freesAt: oldest + GPU_BUDGET_WINDOW_MS } : {}) };
}

/**
 * Counts every queue's and tenant's caps at `now`: running tasks from `jobs` (live records, see
 * the module header), GPU-hours from `usage`.
 */
export function countCaps(
  jobs: Iterable<Pick<JobRecord, 'queue' | 'tenant' | 'pending' | 'counts' | 'spec'>>,
  queues: Iterable<Queue>,
  tenants: Iterable<Tenant>,
  usage: GpuUsage | undefined,
  now: number,
): RunningCaps {
  const caps: RunningCaps = { queues: new Map(), tenants: new Map() };
  const tenantOfQueue = new Map<string, string>();
  const count = (kind: CapCount['kind'], name: string, owner: { maxRunningTasks?: number; gpuHoursPerDay?: number } | undefined): CapCount => {
    const { used, freesAt } = gpuHoursAt((kind === 'queue' ? usage?.queues : usage?.tenants)?.[name], now);
    return {
      kind,
      name,
      ...(owner?.maxRunningTasks !== undefined ? { maxRunningTasks: owner.maxRunningTasks } : {}),
      running: 0,
      granted: 0,
      waitingTasks: 0,
      ...(owner?.gpuHoursPerDay !== undefined ? { gpuHoursPerDay: owner.gpuHoursPerDay } : {}),
      gpuHoursUsed: used,
      ...(freesAt !== undefined ? { gpuBudgetFreesAt: freesAt } : {}),
    };
  };
  for (const t of tenants) caps.tenants.set(t.name, count('tenant', t.name, t));
  for (const q of queues) {
    caps.queues.set(q.name, count('queue', q.name, q));
    tenantOfQueue.set(q.name, q.tenant);
    if (!caps.tenants.has(q.tenant)) caps.tenants.set(q.tenant, count('tenant', q.tenant, undefined));
  }
  for (const j of jobs) {
    const inFlight = tasksInFlight(j);
    if (inFlight === 0) continue;
    const q = caps.queues.get(j.queue);
    if (q) q.running += inFlight;
    const t = caps.tenants.get(tenantOfQueue.get(j.queue) ?? j.tenant);
    if (t) t.running += inFlight;
  }
  return caps;
}

/** True when `c` limits anything. */
function capped(c: CapCount | undefined): c is CapCount {
  return c !== undefined && (c.maxRunningTasks !== undefined || c.gpuHoursPerDay !== undefined);
}

/** True when some queue or tenant of `caps` sets a cap (else `grantCaps` changes nothing). */
export function anyCap(caps: RunningCaps): boolean {
  for (const c of caps.queues.values()) if (capped(c)) return true;
  for (const c of caps.tenants.values()) if (capped(c)) return true;
  return false;
}

/** The caps that apply to work of `queue`: its own and its tenant's. */
function capsOf(caps: RunningCaps, queue: string, tenantOf: ReadonlyMap<string, string>): CapCount[] {
  const q = caps.queues.get(queue);
  const t = caps.tenants.get(tenantOf.get(queue) ?? '');
  return [q, t].filter(capped);
}

/** Each queue's tenant, as `countCaps` saw the queues. */
export function tenantsOfQueues(queues: Iterable<Queue>): Map<string, string> {
  return new Map([...queues].map((q) => [q.name, q.tenant]));
}

/**
 * Hands cap room to waiting work in `grantOrder`, taking it from `caps` (which it changes:
 * `granted`, `waitingTasks`); see the module header for the arithmetic. Work of uncapped queues
 * and tenants is returned as it is. Returns the work in its given order, held-back tasks removed.
 */
export function grantCaps(
  work: readonly PendingWork[],
  caps: RunningCaps,
  tenantOf: ReadonlyMap<string, string>,
  feasible: (w: PendingWork) => boolean = () => true,
): PendingWork[] {
  const granted = new Map<PendingWork, PendingWork>();
  const asking = work.filter((w) => w.tasks > 0 && capsOf(caps, w.queue, tenantOf).length > 0 && feasible(w));
  for (const w of [...asking].sort(grantOrder)) granted.set(w, capOne(w, caps, tenantOf, true));
  return work.map((w) => granted.get(w) ?? w);
}

/**
 * `w` limited to what the caps of its queue and tenant leave (see `grantCaps`); with `take`, the
 * slots it keeps are taken from `caps`.
 */
export function capOne(w: PendingWork, caps: RunningCaps, tenantOf: ReadonlyMap<string, string>, take = false): PendingWork {
  const applying = capsOf(caps, w.queue, tenantOf);
  if (applying.length === 0 || w.tasks === 0) return w;
  // GPU budget: work asking for GPUs takes nothing while a budget is used up.
  if ((w.resources.gpu ?? 0) > 0) {
    const spent = applying.find((c) => c.gpuHoursPerDay !== undefined && c.gpuHoursUsed >= c.gpuHoursPerDay);
    if (spent) {
      if (take) for (const c of applying) c.waitingTasks += w.tasks;
      return { ...w, tasks: 0, capWait: waitOf(spent, 'gpuHours', w.tasks) };
    }
  }
  let room = w.tasks;
  let first: CapCount | undefined;
  const short: CapCount[] = [];
  for (const c of applying) {
    if (c.maxRunningTasks === undefined) continue;
    const free = Math.max(0, c.maxRunningTasks - c.running - c.granted);
    if (free < w.tasks) short.push(c);
    if (free < room) {
      room = free;
      first = c;
    }
  }
  if (w.gang && room < w.tasks) room = 0;
  // A gang larger than a cap can never start under it: it keeps nothing for itself.
  const couldStart = applying.every((c) => c.maxRunningTasks === undefined || w.tasks <= c.maxRunningTasks);
  if (take)
    for (const c of applying) {
      c.granted += room;
      if (room >= w.tasks) continue;
      c.waitingTasks += w.tasks - room;
      // A gang too big for the slots free now keeps what is left of each cap short of it, so single
      // tasks behind it cannot starve it (see the header). Other work takes what is free and keeps
      // nothing more: the tenant's other queues go on while a capped queue has a backlog.
      if (w.gang && couldStart && short.includes(c) && c.maxRunningTasks !== undefined) c.granted = Math.max(c.granted, c.maxRunningTasks - c.running);
    }
  if (room >= w.tasks || !first) return w;
  return { ...w, tasks: room, capWait: waitOf(first, 'tasks', w.tasks - room) };
}

function waitOf(c: CapCount, cap: CapWait['cap'], waiting: number): CapWait {
  return {
    kind: c.kind,
    name: c.name,
    cap,
    running: c.running,
    ...(c.maxRunningTasks !== undefined ? { maxRunningTasks: c.maxRunningTasks } : {}),
    gpuHoursUsed: c.gpuHoursUsed,
    ...(c.gpuHoursPerDay !== undefined ? { gpuHoursPerDay: c.gpuHoursPerDay } : {}),
    ...(c.gpuBudgetFreesAt !== undefined ? { gpuBudgetFreesAt: c.gpuBudgetFreesAt } : {}),
    waiting,
  };
}

/** GPU-hours as people read them: 3 decimals at most. */
export function roundGpuHours(h: number): number {
  return Math.round(h * 1000) / 1000;
}

/**
 * The why-pending line of work a cap holds back, or undefined:
 * `queue "ml" runs 50 of its 50 tasks (maxRunningTasks): 3 tasks wait`, or
 * `tenant "vision" used 120 of its 100 GPU-hours in the last 24 h (gpuHoursPerDay): 2 tasks wait; budget frees from 2026-12-05T03:00:00.000Z`.
 */
export function capWaitMessage(w: Pick<PendingWork, 'capWait'>): string | undefined {
  const c = w.capWait;
  if (!c) return undefined;
  const waiting = `${c.waiting} task${c.waiting === 1 ? ' waits' : 's wait'}`;
  if (c.cap === 'gpuHours') {
    const frees = c.gpuBudgetFreesAt !== undefined ? `; budget frees from ${new Date(c.gpuBudgetFreesAt).toISOString()}` : '';
    return `${c.kind} "${c.name}" used ${roundGpuHours(c.gpuHoursUsed)} of its ${c.gpuHoursPerDay} GPU-hours in the last 24 h (gpuHoursPerDay): ${waiting}${frees}`;
  }
  const max = c.maxRunningTasks ?? 0;
  if (c.running >= max) return `${c.kind} "${c.name}" runs ${c.running} of its ${max} task${max === 1 ? '' : 's'} (maxRunningTasks): ${waiting}`;
  return `${c.kind} "${c.name}" runs ${c.running} of its ${max} tasks (maxRunningTasks; the rest went to work before it): ${waiting}`;
}

/** One queue's or tenant's caps as `GET /v1/queues` shows them at `now`. */
export function capView(c: CapCount | undefined, now: number): RunningCapView {
  if (!c) return { runningTasks: 0, gpuHoursUsed: 0 };
  const spent = c.gpuHoursPerDay !== undefined && c.gpuHoursUsed >= c.gpuHoursPerDay;
  return {
    runningTasks: c.running,
    ...(c.maxRunningTasks !== undefined ? { maxRunningTasks: c.maxRunningTasks } : {}),
    gpuHoursUsed: roundGpuHours(c.gpuHoursUsed),
    ...(c.gpuHoursPerDay !== undefined ? { gpuHoursPerDay: c.gpuHoursPerDay } : {}),
    ...(spent && c.gpuBudgetFreesAt !== undefined && c.gpuBudgetFreesAt > now ? { gpuBudgetFreesAt: new Date(c.gpuBudgetFreesAt).toISOString() } : {}),
  };
}

/** One queue or tenant as the cap metrics show it. */
export interface CapSeries {
  labels: { scope: 'queue' | 'tenant'; queue: string; tenant: string };
  running: number;
  /** Absent when no cap is set (no series). */
  maxRunningTasks?: number;
  gpuHoursUsed: number;
  /** Absent when no budget is set (no series). */
  gpuHoursPerDay?: number;
}

/** The series of the cap metrics: every queue, and every tenant (with `queue=""`). */
export function capSeries(caps: RunningCaps, tenantOf: ReadonlyMap<string, string>): CapSeries[] {
  const one = (c: CapCount, labels: CapSeries['labels']): CapSeries => ({
    labels,
    running: c.running,
    ...(c.maxRunningTasks !== undefined ? { maxRunningTasks: c.maxRunningTasks } : {}),
    gpuHoursUsed: roundGpuHours(c.gpuHoursUsed),
    ...(c.gpuHoursPerDay !== undefined ? { gpuHoursPerDay: c.gpuHoursPerDay } : {}),
  });
  return [
    ...[...caps.queues.values()].map((c) => one(c, { scope: 'queue', queue: c.name, tenant: tenantOf.get(c.name) ?? '' })),
    ...[...caps.tenants.values()].map((c) => one(c, { scope: 'tenant', queue: '', tenant: c.name })),
  ];
}
