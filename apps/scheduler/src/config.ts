/** The scheduler's own settings: their schema over the environment (`SCHEDULER_ENV`) and the parsed `SchedulerConfig`. */
import { NameSchema, ResourcePriceName } from '@batchapi/api';
import { ConfigError, configFromEnv, envNumber, envString, parseEnv } from '@batchapi/runtime';
import {
  DEFAULT_DOMAIN_SCORE_WEIGHT,
  DEFAULT_TOPOLOGY_LEVELS,
  parseTopologyLevels,
  type PriorityAging,
  SETTINGS_BOUNDS,
  type RepeatLimit,
  type ResourcePrices,
  type TopologyLevel,
  TopologyLevelsError,
} from '@batchapi/scheduling';
import { z } from 'zod';

/** `BATCH_TOPOLOGY_LEVELS` when unset: `DEFAULT_TOPOLOGY_LEVELS`. */
export const DEFAULT_TOPOLOGY_LEVELS_SETTING = DEFAULT_TOPOLOGY_LEVELS.map((l) => (l.label ? `${l.name}=${l.label}` : l.name)).join(',');
const MAX_TOPOLOGY_LEVELS = SETTINGS_BOUNDS.topologyLevels;

/** The variables of a scheduler replica beyond every service's (docs/configuration.md, "scheduler"). */
export const SCHEDULER_ENV = z.object({
  BATCH_USAGE_HALF_LIFE: envNumber({
    default: 3600,
    min: 0,
    int: false,
    unit: 'seconds',
    doc: 'Half-life of the usage history fair share counts; 0 counts only what queues hold now.',
  }),
  BATCH_PRIORITY_AGING_PER_HOUR: envNumber({
    default: 0,
    min: 0,
    int: false,
    unit: 'priority points per hour',
    doc: "Priority aging: points added to waiting work's effective priority per hour it waits (at most 1000000), for queues without their own priorityAgingPerHour; 0 turns aging off.",
  }),
  BATCH_PRIORITY_AGING_MAX: envNumber({
    default: 0,
    min: 0,
    unit: 'priority points',
    doc: 'Priority aging: most points aging adds (at most 2000), for queues without their own priorityAgingMax. A job that waits catches up with work ΔP higher only if this is ≥ ΔP.',
  }),
  BATCH_PREEMPT_EXEMPT_TIME: envNumber({
    default: 60,
    min: 0,
    unit: 'seconds',
    doc: 'Thrash damping: a task bound less than this long ago is never preempted for higher-priority work (Slurm PreemptExemptTime).',
  }),
  BATCH_RECLAIM_EXEMPT_TIME: envNumber({
    default: 0,
    min: 0,
    unit: 'seconds',
    doc: 'Thrash damping: a borrowed task bound less than this long ago is never reclaimed by its lender; 0 reclaims at once.',
  }),
  BATCH_PREEMPT_REPEAT_LIMIT: envNumber({
    default: 3,
    min: 0,
    unit: 'preemptions',
    doc: 'Thrash damping: a job stopped (preempted or reclaimed) in this many cycles within BATCH_PREEMPT_REPEAT_WINDOW is not stopped again until the oldest leaves the window; 0 turns it off.',
  }),
  BATCH_PREEMPT_REPEAT_WINDOW: envNumber({
    default: 600,
    min: 1,
    unit: 'seconds',
    doc: 'Thrash damping: the window of BATCH_PREEMPT_REPEAT_LIMIT.',
  }),
  BATCH_FAIR_SHARE_PRICES: envString({
    default: '',
    type: 'list of resource=price',
    blankIsUnset: true,
    check: (v) => pricesProblem(v),
    doc: 'GPU-model-priced fair share: what fair share charges per core (`cpu`), GiB (`memory`), GPU (`gpu`) or GPU of a model (`gpu:H100`), e.g. `gpu:H100=4,gpu:A100=2.5,gpu:T4=0.5`; the priced resources count as their cost in the dominant share. Queues may set their own `prices`. Empty: plain DRF. At most 64 entries.',
  }),
  BATCH_BACKFILL_RESERVATIONS: envNumber({
    default: 1,
    min: 0,
    unit: 'reservations',
    doc: 'Backfill: most blocked pieces of work (first in queue order) that get a reservation each cycle — the nodes where they start soonest, which other work may use only if its timeoutSeconds ends it before (at most 100). 1 is EASY backfill; 0 turns reservations off.',
  }),
  BATCH_BACKFILL_RUNTIME_ESTIMATE: envNumber({
    default: 3600,
    min: 1,
    unit: 'seconds',
    doc: 'Backfill: how long a running task without timeoutSeconds is assumed to run, for queues not in BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES (at most 2592000). A task past it counts as ending now: the reservation waits for it.',
  }),
  BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES: envString({
    default: '',
    type: 'list of queue=seconds',
    blankIsUnset: true,
    check: (v) => estimatesProblem(v),
    doc: 'Backfill: per-queue runtime estimates of tasks without timeoutSeconds, e.g. `train=86400,dev=600`, over BATCH_BACKFILL_RUNTIME_ESTIMATE. At most 256 entries, each 1 to 2592000 seconds.',
  }),
  BATCH_PLACEMENT_WINDOW: envNumber({
    default: 0,
    min: 0,
    int: false,
    unit: 'seconds',
    doc: 'The batching window: scheduling cycles start at most this often (at most 10), so work that arrives meanwhile is packed together with what arrived beside it instead of one job at a time — fewer nodes used when many small jobs arrive over time, for at most this much more wait per job. 0: a cycle as soon as anything changed.',
  }),
  BATCH_TOPOLOGY_LEVELS: envString({
    default: DEFAULT_TOPOLOGY_LEVELS_SETTING,
    type: 'list of level=label, top first',
    blankIsUnset: true,
    check: (v) => topologyProblem(v),
    doc: "Topology-aware placement: the levels of the node tree, top first, each `name=label key` (a node's domain at that level is its label's value); the last may be a bare name, the node itself. A job's `topology.required` / `preferred` names one of them. At most 8 levels.",
  }),
  BATCH_TOPOLOGY_SCORE_WEIGHT: envNumber({
    default: DEFAULT_DOMAIN_SCORE_WEIGHT,
    min: 0,
    int: false,
    unit: 'score weight',
    doc: "Topology-aware placement: weight of the domain score, which sends work without a topology to the fullest domain of the lowest labelled level (rack) it fits in, so whole racks stay free for gangs that require one (at most 100; the packing scores count about 1 per GPU). 0 turns it off; it does nothing while no node has the level's label.",
  }),
  BATCH_CONSOLIDATION_NODES_PER_PASS: envNumber({
    default: 0,
    min: 0,
    unit: 'nodes',
    doc: 'Consolidation: most nodes one pass empties (at most 100) — the least-used nodes whose every task may move and fits, by the placement itself, in the room left on the other nodes in use; they are cordoned with a drain deadline of now (their tasks are stopped and requeued), and the cordon is lifted once the node is empty. Passes run only while no work that a node could run waits. 0 turns consolidation off.',
  }),
  BATCH_CONSOLIDATION_NODE_FRACTION: envNumber({
    default: 0.1,
    min: 0,
    int: false,
    unit: 'fraction of the nodes in use',
    doc: 'Consolidation: most nodes one pass empties, as a fraction of the nodes in use (at most 1; at least one node a pass), beside BATCH_CONSOLIDATION_NODES_PER_PASS: the disruption budget.',
  }),
  BATCH_CONSOLIDATION_MAX_TASK_AGE: envNumber({
    default: 600,
    min: 0,
    unit: 'seconds',
    doc: 'Consolidation: a task bound longer ago than this is never moved (at most 604800): a move restarts it, so this bounds the work lost per task. Batch work that ends frees its room by itself; moving old tasks cost more node-hours than it saved in the consolidation scenario (docs/scheduler.md). 0 moves tasks of any age (long-running services).',
  }),
  BATCH_CONSOLIDATION_REPACK_MAX_MOVES: envNumber({
    default: 0,
    min: 0,
    unit: 'tasks',
    doc: "Consolidation: re-pack when a pass can empty no node whole — windows of interchangeable nodes are packed afresh by the placement, and only the moves that empty a node (its tasks to their new nodes, what those give up to theirs) are taken; when no window does, ejection chains (a node's tasks moved to others, each giving up one or two smaller tasks to make room). Checked by the placement with each moved task's planned node nominated; the nodes emptied are cordoned as consolidation's, the other moved tasks asked to stop. This is the most tasks one such pass stops per node it empties (at most 10000): with BATCH_CONSOLIDATION_NODES_PER_PASS=1 the most a pass stops, with more nodes a pass k nodes emptied allow k times this. 0 turns re-pack off. Needs BATCH_CONSOLIDATION_NODES_PER_PASS > 0; gangs, do-not-disrupt jobs and fractional GPUs never move.",
  }),
  BATCH_DEFRAGMENT_MAX_MOVES: envNumber({
    default: 0,
    min: 0,
    unit: 'tasks',
    doc: "Defragmentation for waiting work: when a waiting job fits on no node though some node would hold it if a few of its running tasks moved (a 4-GPU job while every 8-GPU node has 1–3 GPUs free), a pass (every 10 s) asks the fewest such tasks to stop — of a priority at most the job's, past the exempt time, within BATCH_CONSOLIDATION_MAX_TASK_AGE, never a gang, a do-not-disrupt job or a fractional GPU — and nominates their new nodes and the freed node for the job, all checked by the placement. This is the most tasks one pass stops (at most 1000); one job is served a pass. 0 turns it off. Independent of BATCH_CONSOLIDATION_NODES_PER_PASS.",
  }),
  BATCH_CONSOLIDATE_AFTER: envNumber({
    default: 300,
    min: 0,
    unit: 'seconds',
    doc: 'Consolidation: a node whose newest task was bound less than this long ago is not emptied (at most 86400); tasks bound within BATCH_PREEMPT_EXEMPT_TIME and jobs at their preemption repeat limit or labelled batchapi.io/do-not-disrupt=true are never moved.',
  }),
});

/** A scheduler replica's settings, as read from its environment. */
export interface SchedulerConfig {
  /** Half-life of the usage history, in milliseconds (`BATCH_USAGE_HALF_LIFE`, in seconds). @default 3600000 */
  usageHalfLifeMs: number;
  /** The process lease TTL, in seconds (`BATCH_LEASE_TTL`, every service's): nodes are lost after it. @default 5 */
  leaseTtlSeconds: number;
  /** Cluster-wide priority aging (`BATCH_PRIORITY_AGING_PER_HOUR`, `BATCH_PRIORITY_AGING_MAX`). @default off */
  aging: PriorityAging;
  /** Preemption exempt time, in milliseconds (`BATCH_PREEMPT_EXEMPT_TIME`, in seconds). @default 60000 */
  protectMs: number;
  /** Reclaim exempt time, in milliseconds (`BATCH_RECLAIM_EXEMPT_TIME`, in seconds). @default 0 */
  reclaimProtectMs: number;
  /** The repeat limit (`BATCH_PREEMPT_REPEAT_LIMIT`, `BATCH_PREEMPT_REPEAT_WINDOW` in seconds). @default 3 in 600000 ms */
  repeat: RepeatLimit;
  /** Cluster-wide fair-share prices (`BATCH_FAIR_SHARE_PRICES`). @default none (plain DRF) */
  prices?: ResourcePrices;
  /** Backfill with reservations (`BATCH_BACKFILL_*`). @default 1 reservation, 3600 s estimate for every queue */
  backfill: BackfillConfig;
  /** Topology levels, top first (`BATCH_TOPOLOGY_LEVELS`). @default block, rack (labels `topology.batchapi.io/block`, `/rack`), host (the node) */
  topology: TopologyLevel[];
  /** Weight of the domain score (`BATCH_TOPOLOGY_SCORE_WEIGHT`); 0 = off. @default 4 */
  domainScoreWeight: number;
  /** The batching window, in milliseconds (`BATCH_PLACEMENT_WINDOW`, in seconds). @default 0: off */
  batchWindowMs: number;
  /**
   * Consolidation (`BATCH_CONSOLIDATION_NODES_PER_PASS`, `_NODE_FRACTION`, `_MAX_TASK_AGE` and
   * `BATCH_CONSOLIDATE_AFTER` in seconds): nodes per pass (0 = off), their fraction of the nodes in
   * use, the oldest task moved (0 = any) and the idle time a node needs, in milliseconds.
   * @default off: 0 nodes, 0.1, 600000 ms, 300000 ms
   */
  consolidation: {
    maxNodesPerPass: number;
    maxNodeFraction: number;
    consolidateAfterMs: number;
    maxTaskAgeMs: number;
    repackMaxMoves: number;
    /** Defragmentation for waiting work (`BATCH_DEFRAGMENT_MAX_MOVES`): most tasks a pass stops, 0 = off. @default 0 */
    defragmentMaxMoves: number;
  };
}

function topologyProblem(text: string): string | undefined {
  try {
    if (parseTopologyLevels(text).length > MAX_TOPOLOGY_LEVELS) return `must have at most ${MAX_TOPOLOGY_LEVELS} levels`;
    return undefined;
  } catch (err) {
    if (err instanceof TopologyLevelsError) return err.problem;
    throw err;
  }
}

/** Backfill settings as configured. */
export interface BackfillConfig {
  /** Most reservations per cycle (`BATCH_BACKFILL_RESERVATIONS`); 0 = off. @default 1 */
  maxReservations: number;
  /** Runtime estimate of a task without `timeoutSeconds`, in seconds (`BATCH_BACKFILL_RUNTIME_ESTIMATE`). @default 3600 */
  runtimeSeconds: number;
  /** Per-queue estimates over it, in seconds (`BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES`). @default {} */
  queueRuntimeSeconds: Record<string, number>;
}

const MAX_ESTIMATES = SETTINGS_BOUNDS.queueEstimates;
const MAX_ESTIMATE_SECONDS = SETTINGS_BOUNDS.estimateSeconds;

/** `queue=seconds` pairs, comma-separated: the estimates, or a message saying what is wrong. */
export function parseRuntimeEstimates(text: string): Record<string, number> | string {
  const out: Record<string, number> = {};
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length > MAX_ESTIMATES) return `must have at most ${MAX_ESTIMATES} entries`;
  for (const e of entries) {
    const m = /^([^=\s]+)\s*=\s*(\S+)$/.exec(e);
    if (!m) return `must be queue=seconds pairs such as train=86400 (got "${e}")`;
    if (!NameSchema.safeParse(m[1]).success) return `names "${m[1]}", which is not a queue name (lower-case letters, digits and "-", at most 63)`;
    const seconds = Number(m[2]);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_ESTIMATE_SECONDS)
      return `must give each queue a whole number of seconds from 1 to ${MAX_ESTIMATE_SECONDS} (got "${m[2]}" for ${m[1]})`;
    out[m[1]] = seconds;
  }
  return out;
}

function estimatesProblem(text: string): string | undefined {
  const r = parseRuntimeEstimates(text);
  return typeof r === 'string' ? r : undefined;
}

const MAX_PRICES = SETTINGS_BOUNDS.prices;

/** `resource=price` pairs, comma-separated: the prices, or a message saying what is wrong. */
export function parsePrices(text: string): ResourcePrices | string {
  const out: Record<string, number> = {};
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length > MAX_PRICES) return `must have at most ${MAX_PRICES} entries`;
  for (const e of entries) {
    const m = /^([^=\s]+)\s*=\s*(\S+)$/.exec(e);
    if (!m) return `must be resource=price pairs such as gpu:H100=4 (got "${e}")`;
    if (!ResourcePriceName.test(m[1])) return `names an unknown resource "${m[1]}"; use cpu, memory, gpu, gpu:<model> or domain/name`;
    const price = Number(m[2]);
    if (!Number.isFinite(price) || price < 0 || price > SETTINGS_BOUNDS.price)
      return `must give each resource a price from 0 to ${SETTINGS_BOUNDS.price} (got "${m[2]}" for ${m[1]})`;
    out[m[1]] = price;
  }
  return out;
}

function pricesProblem(text: string): string | undefined {
  const r = parsePrices(text);
  return typeof r === 'string' ? r : undefined;
}

/** The settings from the environment, defaults for what is unset; a bad value throws `ConfigError` naming the variable. */
export function schedulerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SchedulerConfig {
  const e = parseEnv(SCHEDULER_ENV, env);
  const problems = [
    ...(e.BATCH_PRIORITY_AGING_PER_HOUR > SETTINGS_BOUNDS.agingPerHour
      ? [`BATCH_PRIORITY_AGING_PER_HOUR must be at most ${SETTINGS_BOUNDS.agingPerHour}`]
      : []),
    ...(e.BATCH_PRIORITY_AGING_MAX > SETTINGS_BOUNDS.agingMax
      ? [`BATCH_PRIORITY_AGING_MAX must be at most ${SETTINGS_BOUNDS.agingMax} (the whole priority range)`]
      : []),
    ...(e.BATCH_BACKFILL_RESERVATIONS > SETTINGS_BOUNDS.maxReservations
      ? [`BATCH_BACKFILL_RESERVATIONS must be at most ${SETTINGS_BOUNDS.maxReservations}`]
      : []),
    ...(e.BATCH_PLACEMENT_WINDOW > 10 ? ['BATCH_PLACEMENT_WINDOW must be at most 10'] : []),
    ...(e.BATCH_TOPOLOGY_SCORE_WEIGHT > SETTINGS_BOUNDS.domainScoreWeight
      ? [`BATCH_TOPOLOGY_SCORE_WEIGHT must be at most ${SETTINGS_BOUNDS.domainScoreWeight}`]
      : []),
    ...(e.BATCH_BACKFILL_RUNTIME_ESTIMATE > MAX_ESTIMATE_SECONDS ? [`BATCH_BACKFILL_RUNTIME_ESTIMATE must be at most ${MAX_ESTIMATE_SECONDS}`] : []),
    ...(e.BATCH_CONSOLIDATION_NODES_PER_PASS > 100 ? ['BATCH_CONSOLIDATION_NODES_PER_PASS must be at most 100'] : []),
    ...(e.BATCH_CONSOLIDATION_NODE_FRACTION > 1 ? ['BATCH_CONSOLIDATION_NODE_FRACTION must be at most 1'] : []),
    ...(e.BATCH_CONSOLIDATE_AFTER > 86_400 ? ['BATCH_CONSOLIDATE_AFTER must be at most 86400'] : []),
    ...(e.BATCH_CONSOLIDATION_MAX_TASK_AGE > 604_800 ? ['BATCH_CONSOLIDATION_MAX_TASK_AGE must be at most 604800'] : []),
    ...(e.BATCH_CONSOLIDATION_REPACK_MAX_MOVES > 10_000 ? ['BATCH_CONSOLIDATION_REPACK_MAX_MOVES must be at most 10000'] : []),
    ...(e.BATCH_DEFRAGMENT_MAX_MOVES > 1_000 ? ['BATCH_DEFRAGMENT_MAX_MOVES must be at most 1000'] : []),
    // A node is emptied only when its newest task is BATCH_CONSOLIDATE_AFTER old and none is older than
    // the age bound (nor within the exempt time): a bound at or below either leaves no node to empty.
    ...(e.BATCH_CONSOLIDATION_NODES_PER_PASS > 0 &&
    e.BATCH_CONSOLIDATION_MAX_TASK_AGE > 0 &&
    e.BATCH_CONSOLIDATION_MAX_TASK_AGE <= Math.max(e.BATCH_CONSOLIDATE_AFTER, e.BATCH_PREEMPT_EXEMPT_TIME)
      ? [
          `BATCH_CONSOLIDATION_MAX_TASK_AGE (${e.BATCH_CONSOLIDATION_MAX_TASK_AGE} s) must be 0 (any age) or over BATCH_CONSOLIDATE_AFTER (${e.BATCH_CONSOLIDATE_AFTER} s) and BATCH_PREEMPT_EXEMPT_TIME (${e.BATCH_PREEMPT_EXEMPT_TIME} s): no node could ever be emptied`,
        ]
      : []),
  ];
  if (problems.length) throw new ConfigError(problems);
  return {
    usageHalfLifeMs: e.BATCH_USAGE_HALF_LIFE * 1000,
    leaseTtlSeconds: configFromEnv(env).leaseTtlSeconds,
    aging: { perHour: e.BATCH_PRIORITY_AGING_PER_HOUR, max: e.BATCH_PRIORITY_AGING_MAX },
    protectMs: e.BATCH_PREEMPT_EXEMPT_TIME * 1000,
    reclaimProtectMs: e.BATCH_RECLAIM_EXEMPT_TIME * 1000,
    repeat: { maxPreemptions: e.BATCH_PREEMPT_REPEAT_LIMIT, windowMs: e.BATCH_PREEMPT_REPEAT_WINDOW * 1000 },
    ...(e.BATCH_FAIR_SHARE_PRICES ? { prices: parsePrices(e.BATCH_FAIR_SHARE_PRICES) as ResourcePrices } : {}),
    topology: parseTopologyLevels(e.BATCH_TOPOLOGY_LEVELS),
    domainScoreWeight: e.BATCH_TOPOLOGY_SCORE_WEIGHT,
    batchWindowMs: Math.round(e.BATCH_PLACEMENT_WINDOW * 1000),
    consolidation: {
      maxNodesPerPass: e.BATCH_CONSOLIDATION_NODES_PER_PASS,
      maxNodeFraction: e.BATCH_CONSOLIDATION_NODE_FRACTION,
      consolidateAfterMs: e.BATCH_CONSOLIDATE_AFTER * 1000,
      maxTaskAgeMs: e.BATCH_CONSOLIDATION_MAX_TASK_AGE * 1000,
      repackMaxMoves: e.BATCH_CONSOLIDATION_REPACK_MAX_MOVES,
      defragmentMaxMoves: e.BATCH_DEFRAGMENT_MAX_MOVES,
    },
    backfill: {
      maxReservations: e.BATCH_BACKFILL_RESERVATIONS,
      runtimeSeconds: e.BATCH_BACKFILL_RUNTIME_ESTIMATE,
      queueRuntimeSeconds: e.BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES
        ? (parseRuntimeEstimates(e.BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES) as Record<string, number>)
        : {},
    },
  };
}
