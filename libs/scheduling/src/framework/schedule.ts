/**
 * `schedule(snapshot, options): Plan` — one scheduling cycle's decisions, pure (Nomad's
 * plan/apply): bound the backlog, place (the profile's plugins), turn placements into bind
 * units, then the PostFilters for what stayed pending — gang timeout, reclaim, and, when
 * nothing could be placed, preemption. Nothing is written here; a `Planner` applies the plan
 * (the scheduler's is fenced etcd transactions; `MemoryPlanner` applies it to records in memory).
 */
import { type Binding, eligibleRanges, type JobRecord, type TaskRange, takeTasks, taskGroupOf } from '@batchapi/api';
import { markBound } from '@batchapi/lifecycle';
import { boundWork } from '../backlog';
import { type PlacementResult, placeTasks, type Unplaced } from '../placement';
import { type BackfillSettings, releasesOf, type Reservation } from '../plugins/backfill';
import type { StopRequest } from '../plugins/drain';
import { packingScores } from '../plugins/fragmentation-gradient';
import { expiredGangs, type GangFailure } from '../plugins/gang-timeout';
import { type HeldPreemption, preemptionPass, type RunningTask, type Victim } from '../plugins/preemption';
import { chargeOf, GPU_MODEL_LABEL, type QuotaLedger } from '../plugins/quota/ledger';
import { planReclaim, type QuotaDemand } from '../plugins/reclaim';
import { DEFAULT_DOMAIN_SCORE_WEIGHT, DEFAULT_TOPOLOGY_LEVELS, domainScore, topologyPlacement } from '../plugins/topology';
import type { PendingWork, Placement } from '../snapshot';
import { DEFAULT_PROFILE, type Profile } from './profile';
import type { ClusterSnapshot } from './snapshot-builder';

/** Most pending jobs one cycle considers unless tuned otherwise (see `boundWork`). */
export const DEFAULT_MAX_JOBS_PER_CYCLE = 2000;

/** How long after a stop request a task still counts as on its way out, in milliseconds: longer than any kill grace. */
export const STOPPING_WINDOW_MS = 60_000;

/** Options of one cycle's decisions. */
export interface ScheduleOptions {
  /** The plugins. @default `cycleProfile` of the snapshot (packing and domain scores, its topology levels) */
  profile?: Profile;
  /** Most tasks placed. @default 100000 */
  maxTasks?: number;
  /** Most pending jobs considered, and where the rotating window over the rest starts (see `boundWork`). @default 2000 from 0 */
  backlog?: { maxJobs: number; cursor?: number };
  /** Reclaim and preemption; both off when absent. */
  preemption?: {
    /** Victims each queue may still lose this minute. */
    budget: Map<string, number>;
    /** A task bound less than this long ago is never preempted, in milliseconds (Slurm's PreemptExemptTime). */
    protectMs: number;
    /** A task bound less than this long ago is never reclaimed, in milliseconds. @default 0 */
    reclaimProtectMs?: number;
    /** Jobs preempted too often lately (see `repeatExempt`): neither preempted nor reclaimed. @default none */
    exemptJobs?: ReadonlySet<string>;
  };
  /** Dominant resource fairness between queues. @default true */
  fairShare?: boolean;
  /** Backfill with reservations (see `plugins/backfill`): the expected ends come from the snapshot's live bindings. @default off */
  backfill?: BackfillSettings;
  /** The batching window, in milliseconds: work of one priority created within it is batch-filled together (see `batchFill`). @default 0 */
  batchWindowMs?: number;
}

/** `count` tasks of a job bound: the job after binding, and its new bindings. */
export interface BindIntent {
  jobId: string;
  /** The job after binding (pending ranges removed, phase Running). */
  next: JobRecord;
  bindings: Binding[];
}

/** A stop request and why it is asked. */
export interface PlannedStop extends StopRequest {
  cause: 'preempt' | 'reclaim' | 'drain';
}

/** What a cycle decided. Applied by a `Planner`; nothing in it has been written yet. */
export interface Plan {
  /** The instant it was decided at (the snapshot's `now`, epoch ms): bind and stop times. */
  at: number;
  binds: BindIntent[];
  stops: PlannedStop[];
  gangFailures: GangFailure[];
  /** The victims behind `stops` (for metrics and budgets). */
  preempted: Victim[];
  reclaimed: Victim[];
  /** Work preemption would have made room for, had thrash damping not protected the victims. @default [] */
  held?: HeldPreemption[];
  /** Room held for blocked work from its expected start (backfill); nothing is written for them. @default [] */
  reservations?: Reservation[];
  placements: Placement[];
  unplaced: Unplaced[];
  /** Pending jobs considered and left for later cycles, and the next window's start. */
  considered: number;
  deferred: number;
  cursor: number;
}

/** Applies plans. Every write is fenced and compares what the plan was decided on; a refused part is decided again next cycle. */
export interface Planner<R = unknown> {
  apply(plan: Plan): Promise<R>;
}

/**
 * The cycle's decisions, as a generator that yields between its synchronous phases (bound,
 * place, plan, post-filter) so a caller on an event loop can let timers run; `schedule` runs it
 * through. Returns the plan.
 */
export function* scheduleSteps(s: ClusterSnapshot, opts: ScheduleOptions = {}): Generator<string, Plan, void> {
  const window = boundWork(s.work, opts.backlog?.maxJobs ?? DEFAULT_MAX_JOBS_PER_CYCLE, opts.backlog?.cursor);
  yield 'bound';
  const { ledger, ...placed } = placeSnapshot(s, window.work, opts);
  yield 'place';
  const binds = bindIntents(s, placed.placements);
  yield 'plan';
  const gangFailures = expiredGangs(placed.unplaced, s.jobs, s.now);
  const reclaimed = opts.preemption && placed.unplaced.length ? reclaim(s, ledger, placed.unplaced, opts.preemption) : [];
  const { victims: preempted, held } =
    opts.preemption && placed.placements.length === 0 && placed.unplaced.length ? preempt(s, placed.unplaced, opts.preemption) : { victims: [], held: [] };
  const stops: PlannedStop[] = [...reclaimed.map((v) => stopOf(v, 'reclaim')), ...preempted.map((v) => stopOf(v, 'preempt'))];
  return {
    at: s.now,
    binds,
    stops,
    gangFailures,
    preempted,
    reclaimed,
    held,
    reservations: placed.reservations ?? [],
    placements: placed.placements,
    unplaced: placed.unplaced,
    considered: window.work.length,
    deferred: window.deferred,
    cursor: window.cursor,
  };
}

/**
 * The placement pass of a cycle on `work` (the snapshot's, or a window of it): the profile
 * (default: `cycleProfile`), a fresh quota ledger, fair share.
 * Returns the ledger as placement left it (reclaim continues from it) and the profile used.
 */
export function placeSnapshot(
  s: ClusterSnapshot,
  work: readonly PendingWork[],
  opts: ScheduleOptions = {},
): PlacementResult & { ledger: QuotaLedger; profile: Profile } {
  const ledger = s.ledger();
  const profile = opts.profile ?? cycleProfile(s);
  const placed = placeTasks(work, s.nodes, {
    quota: ledger,
    maxTasks: opts.maxTasks ?? 100_000,
    profile,
    ...(opts.batchWindowMs ? { batchWindow: opts.batchWindowMs } : {}),
    ...(opts.fairShare === false ? {} : { fairShare: s.fair }),
    ...(opts.backfill && opts.backfill.maxReservations > 0
      ? {
          backfill: {
            ...opts.backfill,
            now: s.now,
            releases: releasesOf(s.bindings, s.now, opts.backfill.runtimeSeconds),
            ...(s.topology ? { topology: s.topology } : {}),
          },
        }
      : {}),
  });
  return { ...placed, ledger, profile };
}

/**
 * The profile a cycle runs: the default plugins, scored by packing against the snapshot's request
 * mix and by the domain score on its nodes (when a node has a rack label and the weight is not 0),
 * with the Domain plugin of its topology levels.
 */
export function cycleProfile(s: ClusterSnapshot): Profile {
  const domain = domainScore(s.nodes, s.topology ?? DEFAULT_TOPOLOGY_LEVELS, s.domainScoreWeight ?? DEFAULT_DOMAIN_SCORE_WEIGHT);
  const packing = packingScores(s.shapes);
  return { ...DEFAULT_PROFILE, scores: domain ? [...packing, domain] : packing, ...(s.topology ? { domains: [topologyPlacement(s.topology)] } : {}) };
}

/** One cycle's decisions on `s`, in one synchronous call. */
export function schedule(s: ClusterSnapshot, opts: ScheduleOptions = {}): Plan {
  const steps = scheduleSteps(s, opts);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

function stopOf(v: Victim, cause: PlannedStop['cause']): PlannedStop {
  return { node: v.task.node, jobId: v.task.jobId, start: v.task.groupStart, attempt: v.task.attempt, index: v.task.index, cause };
}

/** Placements → bind units: task ranges taken from each job's eligible pending ranges, in placement order. */
export function bindIntents(s: ClusterSnapshot, placements: readonly Placement[]): BindIntent[] {
  const byJob = new Map<string, Placement[]>();
  for (const p of placements) byJob.set(p.jobId, [...(byJob.get(p.jobId) ?? []), p]);
  const gpuModelOf = new Map(s.nodes.flatMap((n) => (n.labels[GPU_MODEL_LABEL] ? [[n.name, n.labels[GPU_MODEL_LABEL]] as const] : [])));
  const out: BindIntent[] = [];
  for (const [jobId, ps] of byJob) {
    const job = s.jobs.get(jobId)!;
    let pending = eligibleRanges(job.pending, s.now);
    const bindings: Binding[] = [];
    const bound: TaskRange[] = [];
    const usesGpus = (job.spec.resources.gpu ?? 0) > 0;
    for (const p of ps) {
      const gpuModel = usesGpus ? gpuModelOf.get(p.node) : undefined;
      const { taken, rest } = takeTasks(pending, p.count);
      pending = rest;
      bound.push(...taken);
      let offset = 0;
      for (const r of taken) {
        const n = r.end - r.start;
        bindings.push({
          ...taskGroupOf(job, p.node, r, s.now, p.devices.slice(offset, offset + n)),
          ...(gpuModel ? { gpuModel } : {}),
          command: job.spec.command,
          env: job.spec.env,
          ...(job.spec.timeoutSeconds ? { timeoutSeconds: job.spec.timeoutSeconds } : {}),
          ...(job.spec.image ? { image: job.spec.image } : {}),
          ...(job.spec.workingDir ? { workingDir: job.spec.workingDir } : {}),
          ...(job.spec.python ? { python: job.spec.python } : {}),
          ...(job.spec.selector && Object.keys(job.spec.selector).length ? { selector: job.spec.selector } : {}),
          ...(job.spec.items ? { items: job.spec.items.slice(r.start, r.end) } : {}),
        });
        offset += n;
      }
    }
    out.push({ jobId, next: markBound(job, bound, s.now), bindings });
  }
  return out;
}

/**
 * Reclaim for quota-limited work, on the ledger as placement left it. Tasks asked to stop lately
 * are on their way out: what they hold is already coming back. A stopped task of a group that
 * still runs keeps its mark but no longer holds anything (the ledger counts from the nodes'
 * allocations), hence the window.
 */
function reclaim(s: ClusterSnapshot, ledger: QuotaLedger, unplaced: readonly Unplaced[], p: NonNullable<ScheduleOptions['preemption']>): Victim[] {
  const byId = new Map(s.work.map((w) => [w.jobId, w]));
  const demands: QuotaDemand[] = unplaced
    .filter((u) => u.quotaLimited)
    .map((u) => {
      const w = byId.get(u.jobId)!;
      return { jobId: u.jobId, queue: w.queue, charge: w.resources, tasks: u.tasks };
    });
  if (demands.length === 0) return [];
  const running = s.running();
  const chargeFor = (t: RunningTask) => chargeOf(t.resources, s.labels.get(t.node));
  for (const t of running)
    if (t.stopping && t.stopRequestedAt !== undefined && s.now - t.stopRequestedAt < STOPPING_WINDOW_MS) ledger.take(t.queue, chargeFor(t), -1);
  return planReclaim(ledger, demands, running, chargeFor, { budget: p.budget, now: s.now, protectMs: p.reclaimProtectMs ?? 0, exemptJobs: p.exemptJobs });
}

/** Preemption (only in a cycle that could place nothing): the fewest lower-priority tasks for higher-priority work left pending. */
function preempt(
  s: ClusterSnapshot,
  unplaced: readonly Unplaced[],
  p: NonNullable<ScheduleOptions['preemption']>,
): { victims: Victim[]; held: HeldPreemption[] } {
  const none = { victims: [], held: [] };
  const byId = new Map(s.work.map((w) => [w.jobId, w]));
  // Quota-limited work waits for its quota, not for victims; a gang asks for all of its tasks (planPreemption keeps it whole).
  const candidates = unplaced.filter((u) => !u.quotaLimited).map((u) => ({ ...byId.get(u.jobId)!, tasks: u.tasks }));
  if (candidates.length === 0) return none;
  const running = s.running();
  const lowest = running.reduce((m, t) => Math.min(m, t.priority), Infinity);
  if (!candidates.some((w) => (w.basePriority ?? w.priority) > lowest)) return none;
  return preemptionPass(candidates, s.nodes, running, {
    now: s.now,
    protectMs: p.protectMs,
    budget: p.budget,
    exemptJobs: p.exemptJobs,
    ...(s.topology ? { topology: s.topology } : {}),
  });
}
