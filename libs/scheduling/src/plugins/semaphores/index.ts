/**
 * Named semaphores and mutexes as the scheduler applies them (issue 17): a task starts only when
 * it can take its units of every semaphore its job names (`limits`) and every mutex (`locks`,
 * capacity 1), and holds them until its attempt ends. Applied where pending work is made (the
 * snapshot builder, after `maxRunning`), so every later phase sees only the tasks that hold
 * their units.
 *
 * What is held is never stored: it is counted from the live jobs' records,
 *   held(s) = Σ over live jobs j naming s: inFlight(j) × units(j, s)
 * with `inFlight` the tasks bound or running (`tasksInFlight`, as `maxRunning` counts). A task
 * leaves `pending` in the bind transaction, which compares its job's revision, and reaches a
 * terminal counter (or `pending` again, for a retry or after its node was declared lost, TTL +
 * grace) in the report that gives its room back. The scheduler starts a cycle only once its
 * cache holds its own last writes, so its count is never below what etcd holds: a unit is
 * never handed out twice, and a crash leaks none (there is no counter to leak).
 *
 * Units go to waiting work in priority order (effective, so aging moves work up), then submit
 * time, then job id (Argo's semaphore order). Work first in line that finds too few units keeps
 * the free ones for itself: later work, even with a smaller request, takes none of that semaphore
 * until it started — else a stream of 1-unit tasks would starve a 4-unit one forever. Work that
 * no node could ever run (selector, taints, resource kinds: `feasible`) takes and keeps nothing,
 * so it never holds a semaphore up for the rest. A gang takes units for all its tasks or none. Pure.
 */
import {
  GLOBAL_SEMAPHORE_PREFIX,
  type JobRecord,
  namesSemaphores,
  type SemaphoreDemand,
  semaphoreDemands,
  type SemaphoreRecord,
  semaphoreRecordId,
  type SemaphoreView,
  type WhyJob,
} from '@batchapi/api';
import type { PendingWork } from '../../snapshot';
import { tasksInFlight } from '../max-running';

/** One semaphore or mutex as a cycle counts it. */
export interface SemaphoreCount {
  /** The resolved id (`<tenant>/<name>`, `global/<name>`, `mutex:`-prefixed for locks). */
  id: string;
  /** The name jobs write. */
  name: string;
  /** Its tenant; absent for a `global/…` one. */
  tenant?: string;
  mutex: boolean;
  /** Units handed out at once: 1 for a mutex, the record's capacity, or undefined when no record exists. */
  capacity: number | undefined;
  /** Units held by bound or running tasks. */
  held: number;
  /** Units held, by job. */
  holders: Map<string, number>;
  /** Units granted to waiting work by this snapshot (taken from `capacity − held`). */
  granted: number;
  /** Tasks of waiting work that found no units. */
  waitingTasks: number;
  /** Submit time of the oldest work that found no units (epoch ms); absent when none waits. */
  waitingSince?: number;
  /** When the longest-running job holding units started (its `startedAt`, else when it was queued; epoch ms); absent when none holds. */
  holdingSince?: number;
  description?: string;
}

/** Why a job's placeable tasks wait for units: the first of its semaphores that held them back. */
export interface SemaphoreWait {
  id: string;
  name: string;
  mutex: boolean;
  /** Undefined when the semaphore does not exist. */
  capacity: number | undefined;
  /** Units held by running tasks (of other jobs, and of this one) when the grant was made. */
  held: number;
  /** Units each task of the job asks for. */
  units: number;
  /** Placeable tasks that found no units. */
  waiting: number;
  /** The jobs holding the most units, most first (at most `MAX_LISTED_HOLDERS`). */
  holders: string[];
}

/** Most holders a wait or a view names. */
export const MAX_LISTED_HOLDERS = 20;

/**
 * Counts every semaphore and mutex: capacities from `records`, holdings from every live job's
 * bound or running tasks (see the module header). A mutex appears once a job names it.
 */
export function countSemaphores(
  jobs: Iterable<Pick<JobRecord, 'id' | 'tenant' | 'pending' | 'counts' | 'spec'> & Partial<Pick<JobRecord, 'createdAt' | 'queuedAt' | 'startedAt'>>>,
  records: Iterable<SemaphoreRecord>,
): Map<string, SemaphoreCount> {
  const out = new Map<string, SemaphoreCount>();
  for (const r of records) {
    const id = semaphoreRecordId(r);
    out.set(id, {
      id,
      name: r.name,
      ...(r.tenant !== undefined ? { tenant: r.tenant } : {}),
      mutex: false,
      capacity: r.capacity,
      held: 0,
      holders: new Map(),
      granted: 0,
      waitingTasks: 0,
      ...(r.description !== undefined ? { description: r.description } : {}),
    });
  }
  for (const j of jobs) {
    const demands = semaphoreDemands(j);
    if (demands.length === 0) continue;
    const inFlight = tasksInFlight(j);
    for (const d of demands) {
      const c = countOf(out, d, j.tenant);
      if (inFlight === 0) continue;
      c.held += inFlight * d.units;
      c.holders.set(j.id, (c.holders.get(j.id) ?? 0) + inFlight * d.units);
      const since = j.startedAt ?? j.queuedAt ?? j.createdAt;
      if (since !== undefined && (c.holdingSince === undefined || since < c.holdingSince)) c.holdingSince = since;
    }
  }
  return out;
}

function countOf(counts: Map<string, SemaphoreCount>, d: SemaphoreDemand, tenant: string): SemaphoreCount {
  let c = counts.get(d.id);
  if (!c) {
    const global = d.name.startsWith(GLOBAL_SEMAPHORE_PREFIX);
    c = {
      id: d.id,
      name: d.name,
      ...(global ? {} : { tenant }),
      mutex: d.mutex,
      capacity: d.mutex ? 1 : undefined,
      held: 0,
      holders: new Map(),
      granted: 0,
      waitingTasks: 0,
    };
    counts.set(d.id, c);
  }
  return c;
}

/** True while a job's bound or running tasks hold semaphore or mutex units: the scheduler's cache keeps such jobs though they wait for no node. */
export function holdsSemaphores(j: Pick<JobRecord, 'tenant' | 'pending' | 'counts' | 'spec'>): boolean {
  return namesSemaphores(j.spec) && tasksInFlight(j) > 0;
}

/** The order units are handed out in: higher (effective) priority, then older, then job id. */
export function grantOrder(a: PendingWork, b: PendingWork): number {
  return b.priority - a.priority || a.createdAt - b.createdAt || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0);
}

/**
 * Hands units to waiting work in `grantOrder`, taking them from `counts` (which it changes:
 * `granted`, `waitingTasks`): each work keeps the tasks every one of its semaphores has room for,
 *   tasks' = min(tasks, min over its semaphores s of ⌊(capacity(s) − held(s) − granted(s)) / units⌋)
 * (0 for a gang that cannot have them all, and for a semaphore that does not exist), and
 * `semaphoreWait` is set on it when that held some back. Work naming no semaphore is returned as
 * it is. Returns the work in its given order, held-back tasks removed.
 */
export function grantSemaphores(
  work: readonly PendingWork[],
  jobs: ReadonlyMap<string, Pick<WhyJob, 'tenant' | 'spec'>>,
  counts: Map<string, SemaphoreCount>,
  feasible: (w: PendingWork) => boolean = () => true,
): PendingWork[] {
  const granted = new Map<PendingWork, PendingWork>();
  const asking = work.filter((w) => {
    const j = jobs.get(w.jobId);
    return j !== undefined && namesSemaphores(j.spec) && feasible(w);
  });
  for (const w of [...asking].sort(grantOrder)) granted.set(w, grantOne(w, jobs.get(w.jobId)!, counts, true));
  return work.map((w) => granted.get(w) ?? w);
}

/**
 * `w` limited to the units left in `counts` for a job of `tenant` and `spec` (see
 * `grantSemaphores`); with `take`, the units it keeps are taken.
 */
export function grantOne(w: PendingWork, job: Pick<WhyJob, 'tenant' | 'spec'>, counts: Map<string, SemaphoreCount>, take = false): PendingWork {
  const demands = semaphoreDemands(job);
  if (demands.length === 0) return w;
  let room = w.tasks;
  let first: { d: SemaphoreDemand; c: SemaphoreCount } | undefined;
  const short = new Set<string>();
  for (const d of demands) {
    const c = countOf(counts, d, job.tenant);
    const free = c.capacity === undefined ? 0 : Math.max(0, c.capacity - c.held - c.granted);
    const fits = Math.floor(free / d.units);
    if (fits < w.tasks) short.add(d.id);
    if (fits < room) {
      room = fits;
      first = { d, c };
    }
  }
  if (w.gang && room < w.tasks) room = 0;
  if (take)
    for (const d of demands) {
      const c = counts.get(d.id)!;
      c.granted += room * d.units;
      if (room >= w.tasks) continue;
      c.waitingTasks += w.tasks - room;
      if (c.waitingSince === undefined || w.createdAt < c.waitingSince) c.waitingSince = w.createdAt;
      // Too few units here: what is left of this semaphore waits for this work (see the header).
      if (short.has(d.id) && c.capacity !== undefined) c.granted = Math.max(c.granted, c.capacity - c.held);
    }
  // Fewer than asked means some semaphore had fewer (a gang's room drops to 0 only then): `first` is it.
  if (room >= w.tasks || !first) return w;
  const blocking = first;
  return {
    ...w,
    tasks: room,
    semaphoreWait: {
      id: blocking.c.id,
      name: blocking.d.name,
      mutex: blocking.d.mutex,
      capacity: blocking.c.capacity,
      held: blocking.c.held,
      units: blocking.d.units,
      waiting: w.tasks - room,
      holders: topHolders(blocking.c.holders).map(([id]) => id),
    },
  };
}

function topHolders(holders: ReadonlyMap<string, number>): Array<[string, number]> {
  return [...holders].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, MAX_LISTED_HOLDERS);
}

/**
 * The why-pending line of work that waits for units, or undefined:
 * "waiting for semaphore db/warehouse-conn (4/4 units held by jobs a, b): 3 tasks wait".
 */
export function semaphoreWaitMessage(w: Pick<PendingWork, 'semaphoreWait'>): string | undefined {
  const s = w.semaphoreWait;
  if (!s) return undefined;
  const waiting = `${s.waiting} task${s.waiting === 1 ? ' waits' : 's wait'}`;
  if (s.capacity === undefined)
    return `waiting for semaphore ${s.name}, which does not exist: create it (batch semaphore put ${s.name} --capacity N, or PUT /v1/semaphores/${encodeURIComponent(s.name)}); ${waiting}`;
  const by = s.holders.length ? ` by job${s.holders.length === 1 ? '' : 's'} ${s.holders.join(', ')}` : ' by work granted before it';
  if (s.mutex) return `waiting for lock ${s.name} (held${by}): ${waiting}`;
  const each = s.units > 1 ? `; each task needs ${s.units}` : '';
  return `waiting for semaphore ${s.name} (${Math.min(s.held, s.capacity)}/${s.capacity} units held${by}${each}): ${waiting}`;
}

/** What `GET /v1/semaphores` shows of each count, by name. */
export function semaphoreViews(counts: ReadonlyMap<string, SemaphoreCount>): SemaphoreView[] {
  return [...counts.values()]
    .filter((c) => c.capacity !== undefined || c.held > 0 || c.waitingTasks > 0)
    .map((c): SemaphoreView => ({
      name: c.name,
      ...(c.tenant !== undefined ? { tenant: c.tenant } : {}),
      mutex: c.mutex,
      capacity: c.capacity ?? 0,
      held: c.held,
      holders: topHolders(c.holders).map(([jobId, units]) => ({ jobId, units })),
      waitingTasks: c.waitingTasks,
      ...(c.description !== undefined ? { description: c.description } : {}),
    }))
    .sort((a, b) => (a.tenant ?? '').localeCompare(b.tenant ?? '') || a.name.localeCompare(b.name) || Number(a.mutex) - Number(b.mutex));
}

/** Most lock series `semaphoreSeries` gives (locks have no record, so their names are the users'; only awaited ones, oldest wait first). */
export const MAX_LOCK_SERIES = 100;

/** One semaphore as the scheduler's metrics show it. */
export interface SemaphoreSeries {
  /** Labels: its name, its tenant (`global` for a shared one), `semaphore` or `lock`. */
  labels: { semaphore: string; tenant: string; kind: 'semaphore' | 'lock' };
  capacity: number;
  held: number;
  waitingTasks: number;
  /** Seconds the oldest waiting work has waited at `now`; 0 when none waits. */
  oldestWaitSeconds: number;
  /** Seconds since the longest-running holder started at `now`; 0 when none holds. */
  oldestHoldSeconds: number;
}

/**
 * The series of the semaphore metrics at `now`: every semaphore with a record, and the locks that
 * work waits for (at most `MAX_LOCK_SERIES`, the longest waits first) — a lock's name is chosen
 * by whoever submits, so locks only held are not exported, bounding the series.
 */
export function semaphoreSeries(counts: ReadonlyMap<string, SemaphoreCount>, now: number): SemaphoreSeries[] {
  const age = (since: number | undefined) => (since === undefined ? 0 : Math.max(0, (now - since) / 1000));
  const one = (c: SemaphoreCount): SemaphoreSeries => ({
    labels: { semaphore: c.name, tenant: c.tenant ?? 'global', kind: c.mutex ? 'lock' : 'semaphore' },
    capacity: c.capacity ?? 0,
    held: c.held,
    waitingTasks: c.waitingTasks,
    oldestWaitSeconds: age(c.waitingSince),
    oldestHoldSeconds: age(c.holdingSince),
  });
  const all = [...counts.values()];
  const locks = all
    .filter((c) => c.mutex && c.waitingTasks > 0)
    .sort((a, b) => (a.waitingSince ?? now) - (b.waitingSince ?? now))
    .slice(0, MAX_LOCK_SERIES);
  return [...all.filter((c) => !c.mutex && c.capacity !== undefined), ...locks].map(one);
}
