/**
 * One scheduling cycle: snapshot (the one builder, from the cache) → `scheduleSteps` (pure,
 * `libs/scheduling`: bound, place, plan, post-filter) → `EtcdPlanner.apply` (fenced CAS). The
 * cycle yields to the event loop between the synchronous steps, so no stretch of it grows with
 * the backlog (the process lease's keep-alive runs on this loop).
 */
import {
  buildSnapshot,
  type ClusterSnapshot,
  DEFAULT_MAX_JOBS_PER_CYCLE,
  drainDue,
  drainStops,
  type HeldPreemption,
  type Plan,
  type RepeatLimit,
  type Reservation,
  scheduleSteps,
  type SemaphoreCount,
  type SnapshotOptions,
  type ScheduleOptions,
  type Victim,
} from '@batchapi/scheduling';
import type { EtcdStore, Leadership } from '@batchapi/store';
import type { ResourceVector } from '@batchapi/api';
import type { CycleVersions, SchedulerCache } from './cache';
import { EtcdPlanner, tasksBound } from './planner';

export { DEFAULT_MAX_JOBS_PER_CYCLE } from '@batchapi/scheduling';

/** The cluster-wide settings the snapshot applies: priority aging and fair-share prices (queues may override both), topology levels and the domain score's weight; and the nodes the leader's last re-pack nominated. */
export type SnapshotPolicy = Pick<SnapshotOptions, 'aging' | 'prices' | 'topology' | 'domainScoreWeight' | 'nominated' | 'nominatedSince'>;

/** The snapshot a cycle decides on, and the revisions its writes compare. */
export interface CycleView {
  snapshot: ClusterSnapshot;
  versions: CycleVersions;
}

/**
 * The cache as a snapshot at `now` (wall time, ms since the epoch: the cycle's instant, read once
 * by its caller). `history` is each queue's decayed past usage (see `decayUsage`); fair share
 * orders queues by what they hold now plus it.
 */
export function takeSnapshot(cache: SchedulerCache, now: number, history?: ReadonlyMap<string, ResourceVector>, policy: SnapshotPolicy = {}): CycleView {
  const { state, versions } = cache.state();
  return { snapshot: buildSnapshot(state, now, { history, ...policy }), versions };
}

/**
 * Drains: on a cordoned node past its drain deadline, every task still running is asked to stop
 * (SIGTERM, grace, SIGKILL) and requeued at its next attempt. Fenced. Returns the tasks asked.
 */
export async function drainNodes(store: EtcdStore, cache: SchedulerCache, leadership: Leadership, now: number): Promise<number> {
  const cordons = [...cache.cordons.items.values()].map((c) => c.value);
  if (!drainDue(cordons, now)) return 0;
  const stops = drainStops(
    [...cache.bindings.items.values()].map((b) => b.value),
    new Map(cordons.map((c) => [c.node, c])),
    now,
  ).map((s) => ({ ...s, cause: 'drain' as const }));
  if (stops.length === 0) return 0;
  await new EtcdPlanner(store, leadership).apply(emptyPlan(now, { stops }));
  return stops.length;
}

function emptyPlan(at: number, part: Partial<Plan>): Plan {
  return {
    at,
    binds: [],
    stops: [],
    gangFailures: [],
    preempted: [],
    reclaimed: [],
    placements: [],
    unplaced: [],
    considered: 0,
    deferred: 0,
    cursor: 0,
    ...part,
  };
}

/** Tuning of the preemption phase. */
export interface PreemptionTuning {
  /** A task bound less than this long ago is never preempted, in milliseconds. @default 60000 */
  protectMs: number;
  /** Victims a queue may lose per minute. @default 100 */
  perQueuePerMinute: number;
  /** A borrowed task bound less than this long ago is never reclaimed, in milliseconds (`BATCH_RECLAIM_EXEMPT_TIME`). @default 0 */
  reclaimProtectMs?: number;
  /** A job stopped this often within the window is not stopped again (`BATCH_PREEMPT_REPEAT_LIMIT`, `_WINDOW`). @default off */
  repeat?: RepeatLimit;
}

/** What a cycle did. */
export interface CycleOutcome {
  placed: number;
  /** Victims asked to stop (by queue), when the cycle could place nothing. */
  preempted?: Victim[];
  /** Borrowed tasks asked to stop so that their lenders get their quota back. */
  reclaimed?: Victim[];
  /** Work preemption would have made room for, had thrash damping not protected the victims. */
  held?: HeldPreemption[];
  units: number;
  refused: number;
  txns: number;
  revision: bigint;
  /** Pending jobs this cycle considered (at most `maxJobs`). */
  considered: number;
  /** Pending jobs this cycle did not consider (over `maxJobsPerCycle`): the next cycle should come soon. */
  deferred: number;
  /** Where the next cycle's rotating window over the deferred work starts (see `boundWork`). */
  cursor: number;
  /** The longest synchronous step of the cycle (snapshot, bound, place, plan, post-filter; it yields between them), in milliseconds. */
  longestPhaseMs: number;
  /** Room held for blocked work from its expected start (backfill). @default [] */
  reservations?: Reservation[];
  /** The semaphores and locks as the cycle's snapshot counted them (for the metrics). @default none */
  semaphores?: ReadonlyMap<string, SemaphoreCount>;
  /** When the first retry still backing off becomes placeable, epoch ms (see `ClusterSnapshot.nextEligibleAt`). @default none backing off */
  nextEligibleAt?: number;
}

/** The per-cycle bound on pending work (see `boundWork`). */
export interface BacklogBound {
  /** Most pending jobs one cycle considers. */
  maxJobs: number;
  /** Start of the rotating window: the previous cycle's `cursor`. @default 0 */
  cursor?: number;
}

/**
 * Lets timers and I/O run between a cycle's steps (the lease keep-alive, its self-fence check,
 * watch events): `setImmediate` runs after the pending I/O callbacks and expired timers.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Runs one cycle: snapshot, the pure steps with a yield after each, then the plan applied. */
export async function runCycle(
  store: EtcdStore,
  cache: SchedulerCache,
  leadership: Leadership,
  now: number,
  maxTasks = 100_000,
  preemption?: ScheduleOptions['preemption'],
  history?: ReadonlyMap<string, ResourceVector>,
  backlog: BacklogBound = { maxJobs: DEFAULT_MAX_JOBS_PER_CYCLE },
  policy: SnapshotPolicy = {},
  placement: Pick<ScheduleOptions, 'backfill' | 'batchWindowMs'> = {},
): Promise<CycleOutcome> {
  let longestPhaseMs = 0;
  let started = performance.now();
  const { snapshot, versions } = takeSnapshot(cache, now, history, policy);
  const steps = scheduleSteps(snapshot, { maxTasks, preemption, backlog, ...placement });
  let plan: Plan;
  for (;;) {
    const r = steps.next();
    longestPhaseMs = Math.max(longestPhaseMs, performance.now() - started);
    if (r.done) {
      plan = r.value;
      break;
    }
    await yieldToEventLoop();
    started = performance.now();
  }
  const applied = await new EtcdPlanner(store, leadership, versions).apply(plan);
  const base = {
    preempted: plan.preempted,
    reclaimed: plan.reclaimed,
    held: plan.held ?? [],
    reservations: plan.reservations ?? [],
    semaphores: snapshot.semaphores,
    considered: plan.considered,
    deferred: plan.deferred,
    cursor: plan.cursor,
    longestPhaseMs,
    ...(snapshot.nextEligibleAt !== undefined ? { nextEligibleAt: snapshot.nextEligibleAt } : {}),
  };
  const result = applied.bind;
  if (!result) return { placed: 0, units: 0, refused: 0, txns: 0, revision: 0n, ...base };
  // A transaction's answer was lost or the store failed: the plan stopped (what was not sent is
  // refused). The cycle fails visibly; the caches show what landed and the next cycle decides again.
  if (result.interrupted) throw result.interrupted;
  return {
    placed: tasksBound(result),
    units: plan.binds.length,
    refused: result.refused.length,
    txns: result.txns,
    revision: BigInt(result.revision),
    ...base,
  };
}
