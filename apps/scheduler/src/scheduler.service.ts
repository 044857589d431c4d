/**
 * The scheduler process: keeps its cache warm from watches (leader or standby), campaigns
 * for leadership, and while it leads runs cycles whenever something changed. A refused
 * bind makes it check its fence; once the fence is gone it stops and campaigns again.
 */
import { CLOCK, type Clock, SERVICE, serveElectedRole, type ServiceContext, systemClock } from '@batchapi/runtime';
import {
  allocationsByNode,
  clearDefragmentRecord,
  type Leadership,
  loadGpuUsage,
  loadUsageHistory,
  quarantineNode,
  reapLostNode,
  saveDefragmentRecord,
  saveGpuUsage,
  saveSchedulerSettings,
  saveUsageHistory,
  type UsageHistory,
} from '@batchapi/store';
import { Metric } from '@batchapi/telemetry';
import { type BeforeApplicationShutdown, Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import {
  addGpuInterval,
  advanceGpuUsage,
  allocationRatio,
  capSeries,
  type Defragmenting,
  defragmentRecordOf,
  storedDefragmentation,
  type ClusterSnapshot,
  emptyGpuUsage,
  decayUsage,
  fairShareOf,
  fragmentedGpus,
  lostNodes,
  preemptionBudget,
  recentlyGone,
  type PriorityAging,
  recordPreemptions,
  type ResourcePrices,
  repeatExempt,
  type BackfillConfigRecord,
  type BackfillSettings,
  backfillSettings,
  settingsRecord,
  type ScheduleOptions,
  type SemaphoreCount,
  type SemaphoreSeries,
  semaphoreSeries,
  type TopologyLevel,
  withLearnedRuntimes,
  storableGpuUsage,
  MAX_STORED_GPU_USAGE_BYTES,
} from '@batchapi/scheduling';
import { countTasks, type GpuUsage, type ResourceVector } from '@batchapi/api';
import { DEFAULT_QUARANTINE, recordNodeFailure } from '@batchapi/lifecycle';
import { SchedulerCache } from './cache';
import { drainNodes, type PreemptionTuning, runCycle, type SnapshotPolicy, takeSnapshot } from './cycle';
import {
  addNominations,
  CONSOLIDATION_OFF,
  consolidateNodes,
  type ConsolidationTuning,
  defragmentNodes,
  defragmentNominations,
  type HeldNominations,
  liftConsolidationCordons,
  nominationsInForce,
  nominationsOf,
} from './consolidation';

/** Tuning of the scheduling loop. */
export interface SchedulerTuning {
  /** Pause between cycles when nothing changed, in milliseconds. @default 500 */
  idleMs: number;
  /** Pause between cycles while work arrives, in milliseconds. @default 20 */
  busyMs: number;
  /**
   * A full cycle at least this often though nothing changed, in milliseconds: protection windows,
   * budgets, reservations and aging move with time alone. (A retry's backoff does not wait for it:
   * the cycle runs when the first one ends.) @default 10 × idleMs
   */
  fullCycleMs?: number;
  /**
   * The batching window (`BATCH_PLACEMENT_WINDOW`, seconds), in milliseconds: cycles start at most
   * this often, so work that arrives meanwhile waits for the next one and is packed together with
   * what arrived beside it (the batch fill sees it as one batch) instead of one job at a time. Each
   * job waits at most this long more for its placement. @default 0: a cycle as soon as anything changed
   */
  batchWindowMs?: number;
  /** Most tasks bound per cycle. @default 100000 */
  maxTasksPerCycle: number;
  /**
   * Most pending jobs one cycle considers (the heads of all queues, plus a window rotating over
   * the rest, see `boundWork`), so that a cycle's synchronous phases stay short whatever the
   * backlog: the process lease's keep-alive runs on this event loop. @default 2000
   */
  maxJobsPerCycle: number;
  /**
   * How long a node must have been gone (its executor's lease expired) before its tasks are
   * requeued, in milliseconds: the executor's lease TTL plus a grace, so the executor has
   * certainly killed them on its own clock first (invariant 4). @default lease TTL + 2000
   */
  nodeLostAfterMs: number;
  /** Preemption: protection window and per-queue budget. */
  preemption: PreemptionTuning;
  /** Cluster-wide priority aging (`BATCH_PRIORITY_AGING_*`), for queues without their own settings. @default off */
  aging?: PriorityAging;
  /** Cluster-wide fair-share prices (`BATCH_FAIR_SHARE_PRICES`). @default none (plain DRF) */
  prices?: ResourcePrices;
  /**
   * Backfill with reservations (`BATCH_BACKFILL_*`): most reservations per cycle, the runtime
   * estimate of a task without `timeoutSeconds` and per-queue ones, in seconds. The cycles use it,
   * and it is stored for admission's "why pending" (`scheduler-settings`). @default off when absent
   * (`startScheduler` sets 1 reservation, 3600 s estimates)
   */
  backfill?: BackfillConfigRecord;
  /** Topology levels, top first, that jobs' `topology` names (`BATCH_TOPOLOGY_LEVELS`). @default DEFAULT_TOPOLOGY_LEVELS */
  topology?: readonly TopologyLevel[];
  /** Weight of the domain score for work without `topology` (`BATCH_TOPOLOGY_SCORE_WEIGHT`); 0 turns it off. @default DEFAULT_DOMAIN_SCORE_WEIGHT */
  domainScoreWeight?: number;
  /**
   * Half-life of the usage history fair share counts (`BATCH_USAGE_HALF_LIFE`, seconds), in
   * milliseconds; 0 = only what queues hold now. @default 3600000
   */
  usageHalfLifeMs: number;
  /** How often the leader stores the usage history, in milliseconds. @default 10000 */
  usageSaveMs: number;
  /** Consolidation (`BATCH_CONSOLIDATION_*`, see `consolidation.ts`). @default CONSOLIDATION_OFF: off (cordons a previous leader set are still lifted) */
  consolidation?: ConsolidationTuning;
}

export const SCHEDULER_TUNING = Symbol('SchedulerTuning');

/** A gauge whose series are computed when scraped: `value` of each (none for undefined). */
interface SeriesGauge<T> {
  name: string;
  help: string;
  value: (s: T) => number | undefined;
}

/** Registers a gauge that, at each scrape, resets and sets one series per element of `series()`, labelled by its `labels`. */
function seriesGauge<T extends { labels: Record<string, string> }>(
  registers: Registry[],
  labelNames: string[],
  series: () => Iterable<T>,
  o: SeriesGauge<T>,
): Gauge {
  return new Gauge({
    name: o.name,
    help: o.help,
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const s of series()) {
        const v = o.value(s);
        if (v !== undefined) this.set(s.labels, v);
      }
    },
  });
}

/** A read given up because the term ended. */
const FAILED = Symbol('failed');

@Injectable()
export class SchedulerService implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  readonly cache: SchedulerCache;
  leadership?: Leadership;
  /**
   * Called when a term's caches have reached the revision it was won at, just before its first
   * cycle, with that revision and each cache's (by key prefix). For tests and diagnostics. @default none
   */
  onTermReady?: (term: { wonAt: bigint; caches: Record<string, bigint> }) => void;
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  private lastWriteRevision = 0n;
  /** Revision of the last cycle's stop requests (preemption, reclaim): the next cycle waits until the bindings cache shows them. */
  private lastStopRevision = 0n;
  /** When each node was last reaped with tasks on it (leader-local, within the quarantine window). */
  private readonly nodeLostAt = new Map<string, number[]>();
  /** When this replica first saw each node with live bindings but no node key (ms of CLOCK_MONOTONIC). */
  private missingSince = new Map<string, number>();
  /** When each node was last seen live (CLOCK_MONOTONIC ms), kept by `recentlyGone` for mass losses. */
  private lastLive = new Map<string, number>();
  /** Times of recent preemptions per victim queue (leader-local sliding window of a minute). */
  private readonly preemptedAt = new Map<string, number[]>();
  /** Times of recent stops per victim job, one per cycle (leader-local, within the repeat window). */
  private jobStoppedAt = new Map<string, number[]>();
  /** Decayed usage per queue (see `decayUsage`) and when it was last advanced. */
  private history = { at: 0, usage: new Map<string, ResourceVector>(), savedAt: 0 };
  /** GPU-seconds by hour per queue and tenant (`gpuHoursPerDay`, see `plugins/running-caps`) and when they were last stored. */
  /** `warnedDropped`: the most owners left out of the stored GPU usage that a warning named yet (warned again only when more are). */
  private gpu: { usage: GpuUsage; savedAt: number; warnedDropped: number } = { usage: emptyGpuUsage(0), savedAt: 0, warnedDropped: 0 };
  /** Cycles run as leader, the durations of the last ones (ms) and the longest synchronous slice of any. */
  private readonly stats = { count: 0, recent: [] as number[], longestPhaseMs: 0 };
  /** Start of the next cycle's rotating window over the pending jobs it cannot all consider. */
  private backlogCursor = 0;
  /** When the last consolidation pass was decided (wall ms). */
  private lastConsolidationAt = 0;
  /** The last re-pack's nominated nodes per job, until (wall ms) they lapse. */
  private nominations?: HeldNominations & { leadership: Leadership };
  /** The revision of the stored defragmentation record last asked to be deleted (asked once per version). */
  private clearedDefragmentRevision?: string;
  /** Waiting jobs defragmentation made room for: the node nominated for each and the stops it asked for (shown by why-pending while the job's nomination is unused). */
  private defragmenting = new Map<string, Defragmenting>();
  /** The semaphores and locks as the leader's last cycle counted them (the semaphore gauges read them). */
  private semaphores: ReadonlyMap<string, SemaphoreCount> = new Map();
  private readonly m: {
    isLeader: Gauge;
    cycle: Histogram;
    phase: Histogram;
    deferred: Gauge;
    placements: Counter;
    failed: Counter;
    lastCycle: Gauge;
    pending: Gauge;
    oldest: Gauge;
    preempted: Counter;
    reclaimed: Counter;
    stops: Counter;
    held: Counter;
    reservations: Gauge;
    nodeLost: Counter;
    quarantined: Counter;
    consolidation: Counter;
  };

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    @Inject(SCHEDULER_TUNING) private readonly tuning: SchedulerTuning,
    /** What every wall-clock and monotonic reading of this service comes from. @default systemClock */
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {
    this.cache = new SchedulerCache(ctx.store);
    const registers = [ctx.registry];
    this.m = {
      isLeader: new Gauge({ name: Metric.schedulerIsLeader, help: '1 while this replica holds the fenced leader key', registers }),
      cycle: new Histogram({
        name: Metric.schedulerCycleDuration,
        help: 'Duration of scheduling cycles that placed work',
        buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
        registers,
      }),
      phase: new Histogram({
        name: Metric.schedulerCyclePhase,
        help: 'Longest synchronous phase (snapshot, place, plan) of each cycle: the event loop, and the lease keep-alive on it, waits this long',
        buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers,
      }),
      deferred: new Gauge({
        name: Metric.schedulerDeferredJobs,
        help: 'Pending jobs the last cycle did not consider (over maxJobsPerCycle); later cycles take them in turn',
        registers,
      }),
      placements: new Counter({ name: Metric.schedulerPlacements, help: 'Tasks bound to nodes', registers }),
      failed: new Counter({ name: Metric.schedulerBindsFailed, help: 'Bind units refused, by reason', labelNames: ['reason'], registers }),
      nodeLost: new Counter({
        name: Metric.schedulerNodeLostTasks,
        help: 'Task attempts ended NodeLost when the leader reaped a node gone for lease TTL + grace',
        registers,
      }),
      preempted: new Counter({
        name: Metric.schedulerPreemptions,
        help: 'Tasks asked to stop for higher-priority work, by their queue',
        labelNames: ['queue'],
        registers,
      }),
      stops: new Counter({
        name: Metric.schedulerStops,
        help: 'Running tasks asked to stop, by their queue and reason (preempt, reclaim; consolidation: the tasks of a node cordoned to be emptied; defragment: tasks moved to give a waiting job a node)',
        labelNames: ['queue', 'reason'],
        registers,
      }),
      held: new Counter({
        name: Metric.schedulerPreemptionsHeld,
        help: 'Tasks preemption would have stopped but thrash damping protected, by their queue and reason (exempt-time, repeat-limit)',
        labelNames: ['queue', 'reason'],
        registers,
      }),
      reservations: new Gauge({
        name: Metric.schedulerReservations,
        help: 'Reservations (backfill) the last cycle held for blocked work, by its queue',
        labelNames: ['queue'],
        registers,
      }),
      quarantined: new Counter({
        name: Metric.nodeQuarantined,
        help: 'Nodes taken out of scheduling for repeated node failures, by node and cause',
        labelNames: ['node', 'reason'],
        registers,
      }),
      consolidation: new Counter({
        name: Metric.schedulerConsolidationNodes,
        help: 'Nodes consolidation cordoned to empty (reason cordoned), and its cordons lifted: freed (the node was empty) or timed_out',
        labelNames: ['reason'],
        registers,
      }),
      reclaimed: new Counter({
        name: Metric.quotaReclaimed,
        help: 'Borrowed tasks asked to stop so that a queue below its nominal quota gets it back, by the borrowing queue',
        labelNames: ['queue'],
        registers,
      }),
      lastCycle: new Gauge({ name: Metric.schedulerLastCycle, help: 'Unix time of the last cycle run as leader', registers }),
      // Both computed from the cache when scraped, so they stay current between cycles.
      pending: new Gauge({
        name: Metric.schedulerPendingTasks,
        help: 'Jobs with tasks waiting for placement, as cached',
        registers,
        collect: () => this.m.pending.set([...this.cache.waitingJobs()].length),
      }),
      oldest: new Gauge({
        name: Metric.queueOldestPendingAge,
        help: 'Age of the oldest job with pending tasks, per queue',
        labelNames: ['queue'],
        registers,
        collect: () => this.recordPendingAge(this.clock.now()),
      }),
    };
    this.clusterGauges(registers);
    this.semaphoreGauges(registers);
    this.capGauges(registers);
    ctx.readiness = { check: () => this.cache.synced, reason: () => 'cache not synced' };
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.cache.start();
    this.loop = this.lead();
  }

  /**
   * Hands leadership over first thing on a stop (SIGTERM), before the HTTP server closes: the
   * leader key is deleted (fenced by its create revision), so a standby's next campaign poll wins
   * it instead of waiting out this process's lease TTL, and any write of this replica still in
   * flight fails its fence in etcd.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.abort.abort();
    const held = this.leadership?.held() ?? false;
    await this.leadership?.resign();
    if (held) this.ctx.log.info('resigned scheduler leadership: a standby takes over');
  }

  async onApplicationShutdown(): Promise<void> {
    this.abort.abort();
    await this.leadership?.resign();
    await this.loop?.catch(() => undefined);
    await this.cache.stop();
  }

  private lead(): Promise<void> {
    const { log } = this.ctx;
    return serveElectedRole(this.ctx, 'scheduler', this.abort.signal, {
      elected: (l) => {
        this.leadership = l;
        log.info({ fence: l.createRevision }, 'became scheduler leader');
        this.m.isLeader.set(1);
      },
      lead: (l) => this.cycles(l),
      deposed: () => {
        this.m.isLeader.set(0);
        log.warn('lost scheduler leadership');
      },
    });
  }

  /** Cluster and queue figures, computed from the cache when scraped (every replica, leader or not). */
  private clusterGauges(registers: Registry[]): void {
    // One snapshot serves all the gauges of a scrape: prom-client collects them one after another
    // within microtasks, so the snapshot is dropped on the next turn of the event loop.
    let current: ClusterSnapshot | undefined;
    const snapshot = (): ClusterSnapshot => {
      if (!current) {
        current = this.snapshotAt(this.clock.now());
        setImmediate(() => (current = undefined));
      }
      return current;
    };
    const allocation = new Gauge({
      name: Metric.clusterAllocation,
      help: 'Share of each resource of all nodes that is allocated (0-1)',
      labelNames: ['resource'],
      registers,
      collect: () => {
        allocation.reset();
        for (const [resource, r] of Object.entries(allocationRatio(snapshot().nodes))) allocation.set({ resource }, r);
      },
    });
    const fragmented = new Gauge({
      name: Metric.clusterGpuFragmented,
      help: 'Free GPU devices that no pending GPU request can use',
      registers,
      collect: () => {
        const s = snapshot();
        fragmented.set(fragmentedGpus(s.nodes, s.work));
      },
    });
    const usage = new Gauge({
      name: Metric.queueUsage,
      help: "Resources held by a queue's live tasks (cpu in millicores, memory in bytes, gpu in milli-GPUs)",
      labelNames: ['queue', 'resource'],
      registers,
      collect: () => {
        usage.reset();
        for (const [queue, used] of snapshot().usage) for (const [resource, v] of Object.entries(used)) usage.set({ queue, resource }, v);
      },
    });
    const fairShare = new Gauge({
      name: Metric.queueFairShare,
      help: 'Weighted dominant share of the cluster a queue holds, plus its decayed past usage (0 and up); the lowest places next',
      labelNames: ['queue'],
      registers,
      collect: () => {
        fairShare.reset();
        const s = snapshot();
        for (const q of s.queues) fairShare.set({ queue: q.name }, fairShareOf(q.name, s.fair.usage.get(q.name) ?? {}, s.fair));
      },
    });
    const pendingTasks = new Gauge({
      name: Metric.queuePendingTasks,
      help: 'Tasks waiting for placement, per queue',
      labelNames: ['queue'],
      registers,
      collect: () => {
        pendingTasks.reset();
        for (const j of snapshot().jobs.values()) pendingTasks.inc({ queue: j.queue }, countTasks(j.pending));
      },
    });
    const slo = new Gauge({
      name: Metric.queuePendingAgeSlo,
      help: "How long work may wait in the queue before BatchQueuePendingTooLong fires (the queue's pendingAgeSloSeconds)",
      labelNames: ['queue'],
      registers,
      collect: () => {
        slo.reset();
        for (const q of snapshot().queues) slo.set({ queue: q.name }, q.pendingAgeSloSeconds ?? 3600);
      },
    });
    const nominal = new Gauge({
      name: Metric.queueNominal,
      help: 'Nominal quota of a queue (same units as batch_queue_usage)',
      labelNames: ['queue', 'resource'],
      registers,
      collect: () => {
        nominal.reset();
        for (const q of snapshot().queues) for (const [resource, v] of Object.entries(q.nominal)) nominal.set({ queue: q.name, resource }, v);
      },
    });
  }

  /**
   * The jobs the last defragmentation passes make room for, with the node nominated for each and the
   * stops asked for there, while their nominations last (why-pending claims one only while the job's
   * waiting work still has that node nominated, unused).
   */
  defragmentingAt(now: number): ReadonlyMap<string, Defragmenting> {
    // A standby (or a leader whose term has none) names what the leader stored (`defragmenting`).
    if (!this.leadership?.held())
      return storedDefragmentation(this.cache.storedDefragmenting()?.value, now, this.cache.leaderTerm())?.defragmenting ?? new Map();
    const held = this.nominations?.leadership === this.leadership ? nominationsInForce(this.nominations, now, this.liftAfterMs()) : undefined;
    if (!held) return new Map();
    return new Map([...this.defragmenting].filter(([job]) => held.byJob.has(job)));
  }

  /**
   * The cache as the cycle sees it at `now` (with the usage history fair share counts): for "why
   * pending" and the gauges. On a standby, with the nominations the leader's defragmentation stored.
   */
  snapshotAt(now: number): ClusterSnapshot {
    let policy = this.cyclePolicy(now);
    if (!this.leadership?.held()) {
      const stored = storedDefragmentation(this.cache.storedDefragmenting()?.value, now, this.cache.leaderTerm());
      if (stored) policy = { ...policy, nominated: stored.nominated, nominatedSince: stored.nominatedSince };
    }
    return takeSnapshot(this.cache, now, this.tuning.usageHalfLifeMs > 0 ? this.history.usage : undefined, policy).snapshot;
  }

  /** The cluster-wide settings every snapshot applies (aging, fair-share prices, topology levels, the domain score's weight). */
  private policy(): SnapshotPolicy {
    return {
      aging: this.tuning.aging,
      prices: this.tuning.prices,
      ...(this.tuning.topology ? { topology: this.tuning.topology } : {}),
      ...(this.tuning.domainScoreWeight !== undefined ? { domainScoreWeight: this.tuning.domainScoreWeight } : {}),
    };
  }

  /** The backfill settings of the cycles (for "why pending": the same reservations), with the runtime estimates learned from the history. */
  backfillSettings(): BackfillSettings | undefined {
    return this.tuning.backfill && withLearnedRuntimes(backfillSettings(this.tuning.backfill), this.cache.learnedRuntimes());
  }

  /** The preemption settings a cycle at `now` would use (budgets, exempt time, jobs at their repeat limit), without advancing them: for "why pending". */
  preemptionAt(now: number): NonNullable<ScheduleOptions['preemption']> {
    const p = this.tuning.preemption;
    return {
      budget: preemptionBudget(this.preemptedAt, now, p.perQueuePerMinute).budget,
      protectMs: p.protectMs,
      reclaimProtectMs: p.reclaimProtectMs ?? 0,
      ...(p.repeat ? { exemptJobs: repeatExempt(this.jobStoppedAt, now, p.repeat).exempt } : {}),
    };
  }

  /** Jobs at their repeat limit this cycle (and the stop times still in the window kept). */
  private exemptJobsAt(now: number): ReadonlySet<string> | undefined {
    const limit = this.tuning.preemption.repeat;
    if (!limit) return undefined;
    const { exempt, recent } = repeatExempt(this.jobStoppedAt, now, limit);
    this.jobStoppedAt = recent;
    return exempt;
  }

  /** Cycles run as leader so far, the durations of the last 1,000 (ms), and the longest synchronous phase of any (ms). For benchmarks and tests. */
  cycleStats(): { count: number; recent: readonly number[]; longestPhaseMs: number } {
    return { count: this.stats.count, recent: [...this.stats.recent], longestPhaseMs: this.stats.longestPhaseMs };
  }

  /** Victims each queue may still lose this minute. */
  private preemptionBudget(now: number): Map<string, number> {
    const { budget, recent } = preemptionBudget(this.preemptedAt, now, this.tuning.preemption.perQueuePerMinute);
    for (const [queue, times] of recent) this.preemptedAt.set(queue, times);
    return budget;
  }

  private recordCycle(ms: number, longestPhaseMs: number): void {
    this.stats.count++;
    this.stats.longestPhaseMs = Math.max(this.stats.longestPhaseMs, longestPhaseMs);
    this.stats.recent.push(ms);
    if (this.stats.recent.length > 1000) this.stats.recent.shift();
  }

  /**
   * The semaphore gauges, read when scraped from what the leader's last cycle counted (a standby
   * exports none); ages are computed at the scrape, so they grow between cycles of an idle cluster.
   */
  private semaphoreGauges(registers: Registry[]): void {
    const labelNames = ['semaphore', 'tenant', 'kind'];
    const series = () => semaphoreSeries(this.leadership?.held() ? this.semaphores : new Map(), this.clock.now());
    const gauge = (o: SeriesGauge<SemaphoreSeries>) => seriesGauge(registers, labelNames, series, o);
    gauge({ name: Metric.semaphoreCapacity, help: 'Units a semaphore hands out at once (1 for a lock)', value: (s) => s.capacity });
    gauge({ name: Metric.semaphoreHeld, help: 'Units of a semaphore or lock held by bound or running tasks', value: (s) => s.held });
    gauge({ name: Metric.semaphoreWaiting, help: 'Tasks waiting for units of a semaphore or lock', value: (s) => s.waitingTasks });
    gauge({
      name: Metric.semaphoreOldestWait,
      help: 'Age of the oldest work waiting for units of a semaphore or lock (0: none waits)',
      value: (s) => s.oldestWaitSeconds,
    });
    gauge({
      name: Metric.semaphoreOldestHold,
      help: 'Time since the longest-running job holding units of a semaphore or lock started (0: none holds)',
      value: (s) => s.oldestHoldSeconds,
    });
  }

  /**
   * The running-cap gauges of every queue (`scope="queue"`) and tenant (`scope="tenant"`, `queue=""`),
   * from the cache when scraped; a cap or budget that is not set has no series.
   */
  private capGauges(registers: Registry[]): void {
    const labelNames = ['scope', 'queue', 'tenant'];
    let current: ReturnType<typeof capSeries> | undefined;
    const series = () => {
      if (!current) {
        const s = this.snapshotAt(this.clock.now());
        current = capSeries(s.caps, s.tenantOf);
        setImmediate(() => (current = undefined));
      }
      return current;
    };
    const gauge = (o: SeriesGauge<ReturnType<typeof capSeries>[number]>) => seriesGauge(registers, labelNames, series, o);
    gauge({
      name: Metric.queueCapRunningTasks,
      help: "Tasks bound or running of a queue, or of all a tenant's queues (what maxRunningTasks counts)",
      value: (c) => c.running,
    });
    gauge({ name: Metric.queueMaxRunningTasks, help: 'maxRunningTasks of a queue or tenant (no series when unset)', value: (c) => c.maxRunningTasks });
    gauge({
      name: Metric.queueGpuHoursUsed,
      help: 'GPU-hours a queue or tenant used in the last 24 h (ended attempts and the elapsed part of running ones)',
      value: (c) => c.gpuHoursUsed,
    });
    gauge({ name: Metric.queueGpuHoursPerDay, help: 'gpuHoursPerDay budget of a queue or tenant (no series when unset)', value: (c) => c.gpuHoursPerDay });
  }

  private recordPendingAge(now: number): void {
    const oldest = new Map<string, number>();
    for (const j of this.cache.waitingJobs()) oldest.set(j.queue, Math.min(oldest.get(j.queue) ?? now, j.createdAt));
    this.m.oldest.reset();
    for (const [queue, t] of oldest) this.m.oldest.set({ queue }, (now - t) / 1000);
  }

  /** Phase 0 of every cycle — reap: requeue the tasks of nodes gone for longer than `nodeLostAfterMs` (counted on CLOCK_MONOTONIC, `mono`: a step of the wall clock must not cut the wait short). */
  private async reap(leadership: Leadership, now: number, mono: number): Promise<void> {
    const live = new Set<string>();
    for (const { value: n } of this.cache.nodes.items.values()) live.add(n.name);
    // Nodes with live bindings, or an allocation left after its bindings were reaped (the reap stopped before deleting it: it still counts against its queues).
    const holding = [
      ...[...this.cache.bindings.items.values()].map((b) => b.value.node),
      ...allocationsByNode(this.ctx.store.keys, this.cache.allocs.items.values()).keys(),
    ];
    // Idle nodes gone within twice the wait count toward a mass loss too (a partition of mostly idle nodes).
    const seen = recentlyGone(this.lastLive, live, mono, 2 * this.tuning.nodeLostAfterMs);
    this.lastLive = seen.lastLive;
    const decision = lostNodes(live, holding, this.missingSince, mono, this.tuning.nodeLostAfterMs, undefined, seen.gone);
    this.missingSince = decision.missingSince;
    if (decision.massLoss && decision.lost.length > 0)
      this.ctx.log.warn(
        { missing: decision.missingSince.size, goneIdle: seen.gone.size, live: live.size, lost: decision.lost.length },
        'many nodes lost at once (etcd, the network or a stalled machine rather than the nodes): their tasks are requeued, and the losses count toward no quarantine',
      );
    for (const { node, goneForMs } of decision.lost) {
      try {
        const { groups, tasks } = await reapLostNode(this.ctx.store, leadership.fence(), node, now);
        this.m.nodeLost.inc(tasks);
        this.ctx.log.warn({ node, groups, tasks, goneForMs: Math.round(goneForMs) }, 'node lost: its tasks were requeued');
        this.missingSince.delete(node);
        if (tasks > 0 && !decision.massLoss) await this.nodeLostAgain(leadership, node, now);
      } catch (err) {
        this.ctx.log.warn({ node, err: (err as Error).message }, 'reaping a lost node failed; will retry');
      }
    }
  }

  /**
   * A record the previous leader stored, read again every `idleMs` while reads fail and this term
   * lasts; undefined when none is stored, `FAILED` when the term ended first.
   */
  private async readStored<T>(read: () => Promise<T | undefined>, leading: () => boolean, what: string): Promise<T | undefined | typeof FAILED> {
    for (;;) {
      try {
        return await read();
      } catch (err) {
        this.ctx.log.warn({ err: (err as Error).message }, `could not read the stored ${what}; reading again`);
      }
      if (!leading()) return FAILED;
      await new Promise((r) => setTimeout(r, this.tuning.idleMs));
      if (!leading()) return FAILED;
    }
  }

  /** Takes the usage history the previous leader stored (none: start from what queues hold). */
  private loadHistory(stored: Awaited<ReturnType<typeof loadUsageHistory>>, now: number): void {
    const usage = new Map(Object.entries(stored?.queues ?? {}));
    this.history = { at: stored?.at ?? now, usage, savedAt: now };
    this.advanceHistory(now);
  }

  /** Advances the decayed usage to `now` with what each queue holds. */
  private advanceHistory(now: number): void {
    const dt = now - this.history.at;
    if (dt <= 0) return;
    this.history.usage = decayUsage(this.history.usage, this.cache.queueUsage(), dt, this.tuning.usageHalfLifeMs);
    this.history.at = now;
  }

  /**
   * Takes the GPU usage the previous leader stored and credits the time since it was counted
   * (`at`) to the GPUs of the bindings still live, each from when it was bound: tasks that ended
   * in that gap (a failover's few seconds) are not counted. None stored: counting starts now.
   */
  private loadGpuUsage(stored: Awaited<ReturnType<typeof loadGpuUsage>>, now: number): void {
    let usage = stored ?? emptyGpuUsage(now);
    if (usage.at < now) {
      const tenantOf = this.tenantOfQueue();
      for (const { value: b } of this.cache.bindings.items.values()) {
        const milli = (b.resources.gpu ?? 0) * (b.end - b.start);
        if (milli > 0) usage = addGpuInterval(usage, b.queue, tenantOf.get(b.queue), milli, Math.max(usage.at, b.boundAt), now);
      }
      usage = advanceGpuUsage(usage, new Map(), () => undefined, now);
    }
    this.gpu = { usage, savedAt: now, warnedDropped: this.gpu.warnedDropped };
    this.cache.gpuUsage = usage;
  }

  /** Advances the GPU usage to `now` with the GPUs each queue's live tasks hold (milli-GPU, from the allocations). */
  private advanceGpuUsage(now: number): void {
    if (now <= this.gpu.usage.at) return;
    const held = new Map<string, number>();
    for (const [queue, used] of this.cache.queueUsage()) if ((used.gpu ?? 0) > 0) held.set(queue, used.gpu!);
    const tenantOf = this.tenantOfQueue();
    this.gpu.usage = advanceGpuUsage(this.gpu.usage, held, (q) => tenantOf.get(q), now);
    this.cache.gpuUsage = this.gpu.usage;
  }

  /** Stores the GPU usage as often as the usage history (fenced: a deposed leader's copy is refused). */
  private async saveGpuUsage(leadership: Leadership, now: number): Promise<void> {
    if (now - this.gpu.savedAt < this.tuning.usageSaveMs) return;
    this.gpu.savedAt = now;
    // Rounded to the millisecond of GPU time, and bounded: owners with a GPU-hour budget first, then the most used.
    const queues = new Map([...this.cache.queues.items.values()].map(({ value: q }) => [q.name, q]));
    const tenants = new Map([...this.cache.tenants.items.values()].map(({ value: t }) => [t.name, t]));
    const { usage: stored, dropped } = storableGpuUsage(
      this.gpu.usage,
      (kind, owner) => (kind === 'queue' ? queues.get(owner) : tenants.get(owner))?.gpuHoursPerDay !== undefined,
    );
    if (dropped > this.gpu.warnedDropped) {
      this.gpu.warnedDropped = dropped;
      this.ctx.log.warn(
        { dropped, maxBytes: MAX_STORED_GPU_USAGE_BYTES },
        'GPU usage of more owners than the stored record holds: those without a gpuHoursPerDay budget and least used are not stored (their counts restart after a failover)',
      );
    }
    await saveGpuUsage(this.ctx.store, leadership.fence(), stored).catch((err: Error) =>
      this.ctx.log.warn({ err: err.message }, 'storing GPU usage failed; will retry'),
    );
  }

  private tenantOfQueue(): Map<string, string> {
    return new Map([...this.cache.queues.items.values()].map(({ value: q }) => [q.name, q.tenant]));
  }

  /**
   * Stores this term's placement settings once, for admission's "why pending" when no replica
   * answers (fenced: a deposed leader's copy is refused); tried again at each pass until it lands,
   * since until then admission reads the last leader's.
   */
  private async saveSettings(leadership: Leadership, now: number): Promise<void> {
    if (this.settingsStored) return;
    const record = settingsRecord(this.policy(), this.tuning.backfill, now);
    this.settingsStored = await saveSchedulerSettings(this.ctx.store, leadership.fence(), record).catch((err: Error) => {
      this.ctx.log.warn({ err: err.message }, "storing the scheduler settings failed (admission's own why-pending reads the last stored); will retry");
      return false;
    });
  }
  /** Whether this term's settings are stored (`saveSettings`). */
  private settingsStored = false;

  /** Stores the usage history now and then (fenced: a deposed leader's copy is refused). */
  private async saveHistory(leadership: Leadership, now: number): Promise<void> {
    if (now - this.history.savedAt < this.tuning.usageSaveMs) return;
    this.history.savedAt = now;
    const value: UsageHistory = { at: this.history.at, queues: Object.fromEntries(this.history.usage) };
    await saveUsageHistory(this.ctx.store, leadership.fence(), value).catch((err: Error) =>
      this.ctx.log.warn({ err: err.message }, 'storing usage history failed; will retry'),
    );
  }

  /**
   * Consolidation: lifts its cordons whose nodes are empty, then, at most every `intervalMs` and
   * when on, cordons the nodes a pass chose (their drain is the next loop's `drainNodes`).
   */
  private async consolidate(leadership: Leadership, now: number): Promise<void> {
    const c = this.tuning.consolidation ?? CONSOLIDATION_OFF;
    for (const l of await liftConsolidationCordons(this.ctx.store, this.cache, leadership, now, c.liftAfterMs, this.policy())) {
      this.m.consolidation.inc({ reason: l.reason });
      this.ctx.log.info({ node: l.node, reason: l.reason }, 'consolidation cordon lifted');
    }
    await this.clearDefragmentRecord(leadership, now);
    const defragment = (c.defragmentMaxMoves ?? 0) > 0;
    if ((c.maxNodesPerPass <= 0 && !defragment) || now - this.lastConsolidationAt < c.intervalMs) return;
    // Planned only on caches that hold the last cycle's binds and stops (as a cycle is): a node whose
    // newest bindings were not seen yet must not be chosen. Its cordon compares the allocation too.
    if (!this.cache.caughtUp(this.lastWriteRevision) || this.cache.bindings.revision < this.lastStopRevision) return;
    this.lastConsolidationAt = now;
    // A pass whose stops just landed: consolidation waits for the next interval (its caches then hold them).
    if (defragment && (await this.defragment(leadership, now, c))) return;
    if (c.maxNodesPerPass <= 0) return;
    await this.consolidationPass(leadership, now, c);
  }

  /**
   * One consolidation (and re-pack) pass: the nodes it chose cordoned, a re-pack's other moves asked
   * to stop, and its moved tasks' planned nodes nominated beside the nominations in force.
   */
  private async consolidationPass(leadership: Leadership, now: number, c: ConsolidationTuning): Promise<void> {
    const { cordoned, repacked, complete } = await consolidateNodes(
      this.ctx.store,
      this.cache,
      leadership,
      now,
      c,
      { protectMs: this.tuning.preemption.protectMs, exemptJobs: this.exemptJobsAt(now) },
      // The cycle's view, the nominations in force with it: work a defragmentation nominated waits.
      this.cyclePolicy(now),
    );
    for (const x of cordoned) {
      this.m.consolidation.inc({ reason: 'cordoned' });
      for (const mv of x.moves) this.m.stops.inc({ queue: mv.task.queue, reason: 'consolidation' });
      this.ctx.log.info({ node: x.node, tasks: x.moves.length }, 'consolidation: node cordoned to be emptied, its tasks fit on the other nodes');
    }
    for (const mv of repacked) this.m.stops.inc({ queue: mv.task.queue, reason: 'consolidation' });
    if (repacked.length) this.ctx.log.info({ tasks: repacked.length }, 're-pack: tasks asked to stop on nodes that stay in use, their planned nodes nominated');
    // The moved tasks wait with the nodes the pass planned for them nominated (kept by this leader
    // until the cordons' lift time: a new leader places them as any other work).
    const moves = [...cordoned.flatMap((x) => x.moves), ...repacked];
    // Only a pass whose cordons and stops all landed: the planned room depends on every one of them.
    const nominated = complete ? nominationsOf(moves) : new Map<string, string[]>();
    // Beside the nominations in force (a defragmentation's kept), never over them.
    if (nominated.size > 0) this.nominate(nominated, leadership, now, c);
    // Moves count toward the repeat limit, as preemptions do: a job is not moved again and again.
    if (moves.length && this.tuning.preemption.repeat) this.jobStoppedAt = recordPreemptions(this.jobStoppedAt, moves, now);
  }

  /**
   * Defragmentation for waiting work: a pass on the cycle's view (the nominations in force, so a
   * job already served is not served again), its moved tasks asked to stop; for each job whose
   * stops all landed (etcd read back when unsure), its moved tasks' destinations and its freed node
   * nominated beside the nominations in force. True when any stop landed (the caller then waits).
   */
  private async defragment(leadership: Leadership, now: number, c: ConsolidationTuning): Promise<boolean> {
    const { served, moved, revision } = await defragmentNodes(
      this.ctx.store,
      this.cache,
      leadership,
      now,
      c,
      { protectMs: this.tuning.preemption.protectMs, exemptJobs: this.exemptJobsAt(now) },
      this.cyclePolicy(now),
    );
    // Only what landed (etcd's word when an answer was lost or a transaction refused): counted, recorded, waited for.
    if (moved.length === 0) return false;
    // The next cycle waits until its cache holds the stops, or preemption could pick more victims for the same job.
    if (revision > this.lastStopRevision) this.lastStopRevision = revision;
    for (const mv of moved) this.m.stops.inc({ queue: mv.task.queue, reason: 'defragment' });
    for (const t of served)
      this.ctx.log.info(
        { job: t.jobId, nodes: t.nodes, tasks: t.moves.length },
        'defragmentation: tasks asked to stop to make room for a waiting job, the node nominated for it',
      );
    if (moved.length > served.reduce((n, t) => n + t.moves.length, 0))
      this.ctx.log.warn({ tasks: moved.length }, 'defragmentation: not every stop landed; only the jobs whose stops all landed are nominated');
    // Each served job's moves landed, all of them: its room stands, its nodes are nominated.
    if (served.length > 0) {
      this.nominate(defragmentNominations(served), leadership, now, c);
      for (const t of served)
        this.defragmenting.set(t.jobId, {
          nodes: t.freed,
          stops: t.moves.map(({ task: x }) => ({ jobId: x.jobId, groupStart: x.groupStart, attempt: x.attempt, index: x.index })),
        });
      await this.publishDefragmenting(leadership, now);
    }
    if (this.tuning.preemption.repeat) this.jobStoppedAt = recordPreemptions(this.jobStoppedAt, moved, now);
    return true;
  }

  /**
   * Stores the defragmentation nominations in force (`DefragmentRecord`, fenced) for the standbys'
   * and admission's "why pending". A failure is logged: only that line is missing elsewhere.
   */
  private async publishDefragmenting(leadership: Leadership, now: number): Promise<void> {
    const held = this.nominations;
    const jobs = this.defragmentingAt(now);
    if (!held || jobs.size === 0) return;
    // Each job's nominations lapse on their own (`nominationsInForce`): the record says nothing past the first of them.
    const until = Math.min(...[...jobs.keys()].map((job) => (held.since.get(job) ?? now) + this.liftAfterMs()));
    const record = defragmentRecordOf(jobs, held.byJob, held.since, leadership.createRevision, now, until);
    await saveDefragmentRecord(this.ctx.store, leadership.fence(), record).catch((err: Error) =>
      this.ctx.log.warn({ err: err.message }, 'storing the defragmentation nominations failed; standbys do not name them'),
    );
  }

  /**
   * Deletes the stored defragmentation nominations (fenced) once they say nothing more: another
   * term's, lapsed, or none of their jobs still waits (their tasks placed, the jobs gone).
   */
  private async clearDefragmentRecord(leadership: Leadership, now: number): Promise<void> {
    const stored = this.cache.storedDefragmenting();
    if (!stored) return;
    const raw = stored.value as { term?: unknown; until?: unknown; jobs?: unknown } | null;
    const jobs = Array.isArray(raw?.jobs) ? (raw.jobs as Array<{ jobId?: unknown }>) : [];
    const waits = jobs.some((j) => {
      const job = typeof j?.jobId === 'string' ? this.cache.jobs.items.get(this.ctx.store.keys.job(j.jobId))?.value : undefined;
      return !!job && countTasks(job.pending) > 0;
    });
    const current = raw?.term === leadership.createRevision && typeof raw?.until === 'number' && now < raw.until && waits;
    // Asked once per version: until the cache sees the delete, the next loops see the same record.
    if (current || this.clearedDefragmentRevision === stored.modRevision) return;
    this.clearedDefragmentRevision = stored.modRevision;
    await clearDefragmentRecord(this.ctx.store, leadership.fence(), stored.modRevision).catch((err: Error) => {
      this.clearedDefragmentRevision = undefined;
      this.ctx.log.warn({ err: err.message }, 'deleting the defragmentation nominations failed; will retry');
    });
  }

  /**
   * Adds a pass's nominations beside those in force, each job's lapsing at its own pass's lift time
   * (`addNominations`); a job's new entries replace its old, with their own start (`now`): a binding
   * of the job since then on a nominated node used one, one made before does not.
   */
  private nominate(added: ReadonlyMap<string, readonly string[]>, leadership: Leadership, now: number, c: ConsolidationTuning): void {
    const held = this.nominations?.leadership === leadership ? nominationsInForce(this.nominations, now, c.liftAfterMs) : undefined;
    // What defragmentation made room for, kept only for the jobs whose nominations are still in force.
    for (const job of [...this.defragmenting.keys()]) if (!held?.byJob.has(job)) this.defragmenting.delete(job);
    this.nominations = { ...addNominations(held, added, now, c.liftAfterMs), leadership };
  }

  /** How long a pass's nominations last (its cordons' lift time), ms. */
  private liftAfterMs(): number {
    return (this.tuning.consolidation ?? CONSOLIDATION_OFF).liftAfterMs;
  }

  /** The snapshot settings of a cycle at `now`: the cluster-wide ones, and the last re-pack's nominations while they last. */
  private cyclePolicy(now: number): SnapshotPolicy {
    // They lapse at the cordons' lift time, and with the term that made them (a leader elected again starts afresh).
    if (this.nominations) {
      const inForce = this.leadership === this.nominations.leadership ? nominationsInForce(this.nominations, now, this.liftAfterMs()) : undefined;
      if (inForce !== this.nominations) this.nominations = inForce ? { ...inForce, leadership: this.nominations.leadership } : undefined;
    }
    return { ...this.policy(), ...(this.nominations ? { nominated: this.nominations.byJob, nominatedSince: this.nominations.since } : {}) };
  }

  /** A node that keeps losing its tasks (executor dying or cut off) is quarantined, fenced. */
  private async nodeLostAgain(leadership: Leadership, node: string, now: number): Promise<void> {
    const { times, quarantine } = recordNodeFailure(this.nodeLostAt.get(node) ?? [], now);
    this.nodeLostAt.set(node, times);
    if (!quarantine) return;
    const why = `lost with running tasks ${times.length} times within ${DEFAULT_QUARANTINE.windowMs / 60_000} min (executor dying or cut off from etcd)`;
    if (await quarantineNode(this.ctx.store, leadership.fence(), node, 'node_lost', times.length, why, now)) {
      this.m.quarantined.inc({ node, reason: 'node_lost' });
      this.ctx.log.error({ node, reason: why }, 'node quarantined: taken out of scheduling until an operator uncordons it');
      this.nodeLostAt.delete(node);
    }
  }

  private async cycles(leadership: Leadership): Promise<void> {
    this.missingSince.clear(); // a new leader waits the full time again: later, never earlier
    // Nothing is decided — no reap, no drain, no cycle — until every cache holds the writes of the
    // leaders before this one: they are all at or below the revision this term was won at.
    const wonAt = BigInt(leadership.wonAt);
    const waitStarted = this.clock.monotonic();
    if (!(await this.cache.catchUpTo(wonAt, () => !this.abort.signal.aborted && leadership.held(), this.tuning.idleMs))) return;
    this.ctx.log.info({ wonAt: leadership.wonAt, waitedMs: this.clock.monotonic() - waitStarted }, 'caches caught up with the election revision');
    this.onTermReady?.({ wonAt, caches: this.cache.revisions() });
    // A failed read is not "none stored": the first fenced save would overwrite the stored counts with empty ones.
    const stillLeading = () => !this.abort.signal.aborted && leadership.held();
    const history = await this.readStored(() => loadUsageHistory(this.ctx.store), stillLeading, 'usage history');
    if (history === FAILED) return;
    const gpu = await this.readStored(() => loadGpuUsage(this.ctx.store), stillLeading, 'GPU usage');
    if (gpu === FAILED) return;
    this.settingsStored = false;
    this.loadHistory(history, this.clock.now());
    this.loadGpuUsage(gpu, this.clock.now());
    try {
      await this.leadCycles(leadership);
    } finally {
      // A standby's views count from what the leader stored, not from this term's copy.
      this.cache.gpuUsage = undefined;
    }
  }

  private async leadCycles(leadership: Leadership): Promise<void> {
    let lastCycleAt = 0;
    // When the first retry still backing off becomes placeable (from the last cycle's snapshot).
    let retryAt: number | undefined;
    while (!this.abort.signal.aborted && leadership.held()) {
      // Housekeeping (usage history, GPU usage, reap, drain) is one instant: read the clocks once for all of it.
      const at = this.clock.now();
      this.advanceHistory(at);
      await this.saveHistory(leadership, at);
      this.advanceGpuUsage(at);
      await this.saveGpuUsage(leadership, at);
      await this.saveSettings(leadership, at);
      await this.reap(leadership, at, this.clock.monotonic());
      await drainNodes(this.ctx.store, this.cache, leadership, at).catch((err: Error) =>
        this.ctx.log.warn({ err: err.message }, 'draining failed; will retry'),
      );
      await this.consolidate(leadership, at).catch((err: Error) => this.ctx.log.warn({ err: err.message }, 'consolidation failed; will retry'));
      // A full cycle now and then even without changes: protection windows and budgets expire with time.
      if (at - lastCycleAt > (this.tuning.fullCycleMs ?? this.tuning.idleMs * 10)) this.cache.dirty = true;
      // A retry's backoff ends with no change to any record: that is a change too.
      if (retryAt !== undefined && at >= retryAt) {
        this.cache.dirty = true;
        retryAt = undefined;
      }
      // Nor before the cache shows the stop requests of the last cycle: a cycle that still saw the
      // victims running would ask more of them to stop (a lender got 8 borrowed tasks back for 6).
      if (!this.cache.dirty || !this.cache.caughtUp(this.lastWriteRevision) || this.cache.bindings.revision < this.lastStopRevision) {
        await sleep(this.cache.dirty ? this.tuning.busyMs : this.tuning.idleMs / 10);
        continue;
      }
      // Within the batching window of the last cycle: what arrives meanwhile is placed together at its end.
      const windowLeft = lastCycleAt + (this.tuning.batchWindowMs ?? 0) - this.clock.now();
      if (windowLeft > 0) {
        await sleep(Math.min(windowLeft, this.tuning.idleMs));
        continue;
      }
      this.cache.dirty = false;
      // The cycle decides at one instant; its duration is measured apart, on the process's own timer.
      const now = this.clock.now();
      lastCycleAt = now;
      const started = performance.now();
      try {
        const history = this.tuning.usageHalfLifeMs > 0 ? this.history.usage : undefined;
        const out = await runCycle(
          this.ctx.store,
          this.cache,
          leadership,
          now,
          this.tuning.maxTasksPerCycle,
          {
            budget: this.preemptionBudget(now),
            protectMs: this.tuning.preemption.protectMs,
            reclaimProtectMs: this.tuning.preemption.reclaimProtectMs ?? 0,
            exemptJobs: this.exemptJobsAt(now),
          },
          history,
          { maxJobs: this.tuning.maxJobsPerCycle, cursor: this.backlogCursor },
          this.cyclePolicy(now),
          { ...(this.tuning.backfill ? { backfill: this.backfillSettings()! } : {}), batchWindowMs: this.tuning.batchWindowMs ?? 0 },
        );
        this.backlogCursor = out.cursor;
        retryAt = out.nextEligibleAt;
        if (out.semaphores) this.semaphores = out.semaphores;
        if ((out.preempted?.length ?? 0) + (out.reclaimed?.length ?? 0) > 0) this.lastStopRevision = this.ctx.store.lastCommittedRevision;
        this.m.deferred.set(out.deferred);
        this.m.phase.observe(out.longestPhaseMs / 1000);
        // Work left out of this cycle is considered by the next ones, without waiting for a change.
        if (out.deferred > 0) this.cache.dirty = true;
        for (const [victims, counter] of [
          [out.preempted, this.m.preempted],
          [out.reclaimed, this.m.reclaimed],
        ] as const) {
          for (const v of victims ?? []) {
            this.preemptedAt.set(v.task.queue, [...(this.preemptedAt.get(v.task.queue) ?? []), now]);
            counter.inc({ queue: v.task.queue });
            this.m.stops.inc({ queue: v.task.queue, reason: counter === this.m.preempted ? 'preempt' : 'reclaim' });
          }
        }
        if (this.tuning.preemption.repeat) this.jobStoppedAt = recordPreemptions(this.jobStoppedAt, [...(out.preempted ?? []), ...(out.reclaimed ?? [])], now);
        for (const h of out.held ?? []) for (const t of h.protectedTasks) this.m.held.inc({ queue: t.queue, reason: t.reason });
        this.m.reservations.reset();
        for (const r of out.reservations ?? []) this.m.reservations.inc({ queue: r.queue });
        this.m.lastCycle.set(this.clock.now() / 1000);
        this.recordCycle(performance.now() - started, out.longestPhaseMs);
        if (out.units === 0) {
          if (out.deferred > 0) await sleep(this.tuning.busyMs); // the next window, without spinning
          continue;
        }
        this.m.cycle.observe((performance.now() - started) / 1000);
        this.m.placements.inc(out.placed);
        if (out.revision > this.lastWriteRevision) this.lastWriteRevision = out.revision;
        if (out.refused > 0) {
          this.cache.dirty = true;
          const fenced = !(await leadership.verify().catch(() => false));
          this.m.failed.inc({ reason: fenced ? 'fenced' : 'conflict' }, out.refused);
          if (fenced) leadership.depose();
        }
        await sleep(this.tuning.busyMs);
      } catch (err) {
        this.cache.dirty = true;
        this.m.failed.inc({ reason: 'error' });
        this.ctx.log.warn({ err: (err as Error).message }, 'scheduling cycle failed');
        await sleep(this.tuning.idleMs);
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
