/**
 * Named simulation scenarios for the scheduling policies (`npm run -s bench -- simulate
 * --scenario NAME`): each builds its inputs, runs `simulate` with and without the policy,
 * and returns the figures and the bound the settings imply, so a test and a person read the
 * same numbers.
 */
import { agingCatchUpMs, type PriorityAging, type RepeatLimit, type ResourcePrices } from '@batchapi/scheduling';
import { parseNodes, parseQueues, parseWorkload } from './inputs';
import { type SimPreemption, simulate } from './simulate';
import { topologyScenario } from './topology-scenario';
import { consolidationScenario } from './consolidation-scenario';
import { defragmentScenario } from './defragment-scenario';

const lines = (xs: object[]) => xs.map((x) => JSON.stringify(x)).join('\n');

/** Settings of the aging scenario. */
export interface AgingScenarioOptions {
  /** Cores of the one node (= task slots). @default 4 */
  slots?: number;
  /** Seconds each task runs. @default 60 */
  taskSeconds?: number;
  /** A priority-10 one-core job every this many seconds (faster than the cluster serves them). @default 12 */
  everySeconds?: number;
  /** How long the stream lasts, in seconds. @default 7200 */
  streamSeconds?: number;
  /** When the priority-0 job is submitted (the cluster full, a backlog waiting), in seconds. @default 300 */
  lowAt?: number;
  /** @default 60 points an hour, at most 1000 */
  aging?: PriorityAging;
}

/** What the aging scenario measured. */
export interface AgingScenarioResult {
  scenario: 'aging';
  settings: { slots: number; taskSeconds: number; everySeconds: number; streamSeconds: number; aging: PriorityAging };
  /** Seconds after which the low job ranks with fresh priority-10 work. */
  catchUpSeconds: number;
  /** Higher-priority jobs that can ever start before it: those submitted before `lowAt + catchUpSeconds`. */
  ahead: number;
  /** The bound on its wait: ceil((ahead + 1) / slots) × taskSeconds, in seconds. */
  boundSeconds: number;
  /** Its measured wait with aging, and without (null: never started). */
  waitSeconds: number | null;
  waitWithoutAgingSeconds: number | null;
  holds: boolean;
}

/**
 * A priority-0 job behind a steady stream of priority-10 jobs that keeps the cluster full (5 a
 * minute against 4 served). Without aging it starts only when the stream ends and its backlog
 * drains. With aging it ranks with fresh priority-10 work after `catchUp = ceil(10 h / perHour)`
 * and ahead of everything submitted later (equal rank: older first), so at most `ahead` jobs
 * start before it; every slot starts a task at least once per `taskSeconds` (each task ends
 * within that), hence
 *   wait ≤ ceil((ahead + 1) / slots) × taskSeconds.
 */
export function agingScenario(o: AgingScenarioOptions = {}): AgingScenarioResult {
  const slots = o.slots ?? 4;
  const taskSeconds = o.taskSeconds ?? 60;
  const every = o.everySeconds ?? 12;
  const streamSeconds = o.streamSeconds ?? 7200;
  const lowAt = o.lowAt ?? 300;
  const aging = o.aging ?? { perHour: 60, max: 1000 };
  const nodes = parseNodes(lines([{ name: 'n', capacity: { cpu: String(slots), memory: '64Gi' } }]));
  const stream = Array.from({ length: Math.floor(streamSeconds / every) }, (_, i) => ({
    name: `hi-${i}`,
    submitAt: i * every,
    resources: { cpu: '1' },
    duration: taskSeconds,
    priority: 10,
  }));
  const workload = parseWorkload(lines([...stream, { name: 'low', submitAt: lowAt, resources: { cpu: '1' }, duration: taskSeconds, priority: 0 }]));
  const startOfLow = (withAging: boolean): number | null => {
    let at: number | null = null;
    simulate(nodes, workload, {
      ...(withAging ? { aging } : {}),
      onStart: (t, jobId) => {
        if (jobId.endsWith(':low')) at ??= t;
      },
    });
    return at === null ? null : at - lowAt;
  };
  const catchUpMs = agingCatchUpMs(0, 10, aging);
  const catchUpSeconds = catchUpMs === undefined ? Infinity : catchUpMs / 1000;
  const ahead = stream.filter((s) => s.submitAt < lowAt + catchUpSeconds).length;
  const boundSeconds = Math.ceil((ahead + 1) / slots) * taskSeconds;
  const waitSeconds = startOfLow(true);
  return {
    scenario: 'aging',
    settings: { slots, taskSeconds, everySeconds: every, streamSeconds, aging },
    catchUpSeconds,
    ahead,
    boundSeconds,
    waitSeconds,
    waitWithoutAgingSeconds: startOfLow(false),
    holds: waitSeconds !== null && waitSeconds <= boundSeconds,
  };
}

/** Settings of the churn scenario. */
export interface ChurnScenarioOptions {
  /** Nodes of 8 cores. @default 2 */
  nodes?: number;
  /** Minutes of alternating bursts. @default 30 */
  minutes?: number;
  /** Seconds between a burst of queue a and the next of b. @default 30 */
  offsetSeconds?: number;
  /** Seconds each task runs. @default 50 */
  taskSeconds?: number;
  /** One-core tasks of each burst. @default all the cores */
  tasksPerBurst?: number;
  /** Thrash damping of the damped run. @default 60 s exempt time (preemption and reclaim), 2 preemptions in 10 minutes */
  damping?: { protectSeconds: number; repeat?: RepeatLimit };
}

/** Figures of one run of the churn scenario. */
export interface ChurnRun {
  stops: number;
  /** Stops per minute over the whole run, and the most in any minute (the sliding window starting at a stop). */
  perMinute: number;
  peakPerMinute: number;
  completed: number;
  makespan: number | null;
}

/** What the churn scenario measured. */
export interface ChurnScenarioResult {
  scenario: 'churn';
  settings: { nodes: number; slots: number; minutes: number; damping: NonNullable<ChurnScenarioOptions['damping']> };
  undamped: ChurnRun;
  damped: ChurnRun;
  /** slots × 60 / protectSeconds: a task must run the exempt time before it may be stopped, so one slot yields one stop per exempt time at most. */
  boundPerMinute: number;
  holds: boolean;
}

/**
 * Two queues of one cohort, 8 cores of nominal quota each, reclaiming from each other: every
 * 2 minutes queue a bursts 16 one-core tasks of 90 s, and 60 s later queue b does the same.
 * Each burst borrows the other queue's idle half; the other's next burst reclaims it, and the
 * stopped tasks, requeued, borrow again the moment room frees — to be reclaimed again. The
 * damped run protects tasks for the exempt time and stops no job more than k times a window.
 */
export function churnScenario(o: ChurnScenarioOptions = {}): ChurnScenarioResult {
  const nodeCount = o.nodes ?? 2;
  const minutes = o.minutes ?? 30;
  const offset = o.offsetSeconds ?? 30;
  const taskSeconds = o.taskSeconds ?? 50;
  const burst = o.tasksPerBurst ?? nodeCount * 8;
  const damping = o.damping ?? { protectSeconds: 60, repeat: { maxPreemptions: 2, windowMs: 600_000 } };
  const slots = nodeCount * 8;
  const nodes = parseNodes(lines(Array.from({ length: nodeCount }, (_, i) => ({ name: `n${i}`, capacity: { cpu: '8', memory: '64Gi' } }))));
  const half = String(slots / 2);
  const queues = parseQueues(
    JSON.stringify({
      queues: [
        { name: 'a', cohort: 'c', nominal: { cpu: half } },
        { name: 'b', cohort: 'c', nominal: { cpu: half } },
      ],
    }),
  );
  const bursts = Array.from({ length: Math.floor(minutes / 2) }, (_, k) => [
    { name: `a-${k}`, queue: 'a', submitAt: 120 * k, tasks: burst, resources: { cpu: '1' }, duration: taskSeconds },
    { name: `b-${k}`, queue: 'b', submitAt: 120 * k + offset, tasks: burst, resources: { cpu: '1' }, duration: taskSeconds },
  ]).flat();
  const workload = parseWorkload(lines(bursts));
  const run = (preemption: SimPreemption): ChurnRun => {
    const times: number[] = [];
    const r = simulate(nodes, workload, { queues, preemption, onStop: (t) => times.push(t) });
    let peak = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (times[j] < times[i] - 59.999) j++;
      peak = Math.max(peak, i - j + 1);
    }
    const span = (r.makespan ?? minutes * 60) / 60;
    return { stops: times.length, perMinute: Math.round((times.length / span) * 100) / 100, peakPerMinute: peak, completed: r.completed, makespan: r.makespan };
  };
  const undamped = run({ protectSeconds: 0, reclaimProtectSeconds: 0 });
  const damped = run({ protectSeconds: damping.protectSeconds, reclaimProtectSeconds: damping.protectSeconds, repeat: damping.repeat });
  const boundPerMinute = damping.protectSeconds > 0 ? Math.floor((slots * 60) / damping.protectSeconds) : Infinity;
  return {
    scenario: 'churn',
    settings: { nodes: nodeCount, slots, minutes, damping },
    undamped,
    damped,
    boundPerMinute,
    holds: damped.peakPerMinute <= boundPerMinute,
  };
}

/** What the priced fair-share scenario measured. */
export interface PricedScenarioResult {
  scenario: 'priced';
  prices: ResourcePrices;
  /** Cores of the shared CPU pool each queue got when both asked at once, without prices and with them. */
  plain: Record<string, number>;
  priced: Record<string, number>;
}

/**
 * GPU-model-priced fair share: queue a runs 1 of 4 H100, queue b 6 of 16 T4 (GPU only, for
 * good); then both ask for the 16 cores of a shared CPU pool at once (40 cores in all). Plain DRF
 * shares each GPU model pool apart: a = 1/4 = 0.25 of the H100s, b = 6/16 = 0.375 of the T4s,
 * so a counts as the smaller user and takes most of the pool. Priced (H100 4, T4 0.5 per GPU;
 * capacity 4×4 + 16×0.5 = 24): a's one H100 costs more than b's six T4s, a = 4/24 = 0.167 against
 * b = 3/24 = 0.125, so b places first, and the pool ends shared evenly.
 */
export function pricedScenario(prices: ResourcePrices = { 'gpu:H100': 4, 'gpu:T4': 0.5 }): PricedScenarioResult {
  const nodes = parseNodes(
    lines([
      { name: 'h100', capacity: { cpu: '8', memory: '64Gi', gpu: 4 }, labels: { 'gpu.model': 'H100' } },
      { name: 't4', capacity: { cpu: '16', memory: '64Gi', gpu: 16 }, labels: { 'gpu.model': 'T4' } },
      { name: 'cpu-0', capacity: { cpu: '8', memory: '64Gi' }, labels: { pool: 'cpu' } },
      { name: 'cpu-1', capacity: { cpu: '8', memory: '64Gi' }, labels: { pool: 'cpu' } },
    ]),
  );
  const workload = parseWorkload(
    lines([
      { name: 'a-h100', queue: 'a', tasks: 1, resources: { gpu: 1 }, selector: { 'gpu.model': 'H100' }, duration: null },
      { name: 'b-t4', queue: 'b', tasks: 6, resources: { gpu: 1 }, selector: { 'gpu.model': 'T4' }, duration: null },
      { name: 'a-cpu', queue: 'a', submitAt: 1, tasks: 16, resources: { cpu: '1' }, selector: { pool: 'cpu' }, duration: 100 },
      { name: 'b-cpu', queue: 'b', submitAt: 1, tasks: 16, resources: { cpu: '1' }, selector: { pool: 'cpu' }, duration: 100 },
    ]),
  );
  const queues = parseQueues(JSON.stringify({ queues: [{ name: 'a' }, { name: 'b' }] }));
  const pool = (p?: ResourcePrices): Record<string, number> => {
    const got: Record<string, number> = { a: 0, b: 0 };
    simulate(nodes, workload, {
      queues,
      ...(p ? { prices: p } : {}),
      onStart: (t, jobId, n) => {
        if (t === 1 && jobId.endsWith('-cpu')) got[jobId.endsWith(':a-cpu') ? 'a' : 'b'] += n;
      },
    });
    return got;
  };
  return { scenario: 'priced', prices, plain: pool(), priced: pool(prices) };
}

/** Settings of the backfill scenario. */
export interface BackfillScenarioOptions {
  /** Nodes of 8 GPUs. @default 8 (64 GPUs) */
  nodes?: number;
  /** A 1-GPU job every this many seconds. @default 6 */
  everySeconds?: number;
  /** How long the stream lasts, in seconds. @default 14400 */
  streamSeconds?: number;
  /** Each 1-GPU job runs a duration drawn from [minSeconds, timeoutSeconds] (seeded), and declares `timeoutSeconds`. @default 100 and 600 */
  minSeconds?: number;
  timeoutSeconds?: number;
  /** When the gang (every GPU of the cluster: one 8-GPU task per node) is submitted, and how long it runs, in seconds. @default 1800 and 1800 */
  gangAt?: number;
  gangSeconds?: number;
  /** Seed of the durations. @default 16 */
  seed?: number;
}

/** Figures of one run of the backfill scenario. */
export interface BackfillRun {
  /** Seconds the gang waited (null: never started). */
  gangWaitSeconds: number | null;
  /** Mean and largest wait of the 1-GPU jobs, in seconds. */
  smallMeanWaitSeconds: number;
  smallMaxWaitSeconds: number;
  /** Time-weighted share of the GPUs allocated until the last task ended, and that instant. */
  gpuAllocation: number;
  makespan: number | null;
  /** Time-weighted share of the GPUs allocated while the stream lasts ([0, streamSeconds]). */
  streamGpuAllocation: number;
  /** GPU-hours left idle while the gang waited (64 GPUs × its wait − what ran then): the cost of draining for it. */
  idleGpuHoursWhileGangWaited: number;
}

/** What the backfill scenario measured. */
export interface BackfillScenarioResult {
  scenario: 'backfill';
  settings: Required<BackfillScenarioOptions>;
  /** Offered load of the stream: tasks × mean duration / (interval × GPUs). */
  offeredLoad: number;
  withoutReservations: BackfillRun;
  withReservations: BackfillRun;
  /**
   * The bound with a reservation: once the gang is first among blocked work, every GPU it needs
   * is free by the largest timeout of what runs (nothing unbounded or longer backfills in), so
   * it waits at most `timeoutSeconds` plus the one-GPU jobs' head start (those submitted before it
   * and still waiting, each at most `timeoutSeconds` more — none here below full load): we
   * check `gangWait ≤ 2 × timeoutSeconds`.
   */
  boundSeconds: number;
  holds: boolean;
}

/** The backfill scenario's settings when not given (see `BackfillScenarioOptions`). */
export const DEFAULT_BACKFILL_SCENARIO: Required<BackfillScenarioOptions> = {
  nodes: 8,
  everySeconds: 6,
  streamSeconds: 14_400,
  minSeconds: 100,
  timeoutSeconds: 600,
  gangAt: 1800,
  gangSeconds: 1800,
  seed: 16,
};

/**
 * EASY backfill for a big gang in a stream of 1-GPU jobs: 8 nodes × 8 GPUs, a 1-GPU job every 6 s
 * for 4 hours running 100–600 s (mean 350 s: 350 / 6 = 58 GPUs busy on average, 91% of 64), each
 * declaring `timeoutSeconds: 600`; at 1,800 s a gang of 8 × 8 GPUs (the whole cluster) arrives.
 * Without reservations the 1-GPU jobs behind it take every GPU as it frees, and the gang waits
 * until the stream ends. With one reservation it holds the nodes as they drain (work ending
 * before its start still backfills) and starts within the longest timeout.
 */
export function backfillScenario(o: BackfillScenarioOptions = {}): BackfillScenarioResult {
  const settings: Required<BackfillScenarioOptions> = { ...DEFAULT_BACKFILL_SCENARIO, ...o };
  const { nodes: nodeCount, everySeconds: every, streamSeconds, minSeconds, timeoutSeconds, gangAt, gangSeconds } = settings;
  const gpus = nodeCount * 8;
  const nodes = parseNodes(lines(Array.from({ length: nodeCount }, (_, i) => ({ name: `gpu-${i}`, capacity: { cpu: '64', memory: '512Gi', gpu: 8 } }))));
  let x = settings.seed >>> 0 || 1;
  const random = () => (x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0) / 2 ** 32;
  const stream = Array.from({ length: Math.floor(streamSeconds / every) }, (_, i) => ({
    name: `one-${i}`,
    submitAt: i * every,
    resources: { cpu: '1', gpu: 1 },
    duration: Math.round(minSeconds + random() * (timeoutSeconds - minSeconds)),
    timeoutSeconds,
  }));
  const gang = { name: 'gang', submitAt: gangAt, tasks: nodeCount, gang: true, resources: { cpu: '8', gpu: 8 }, duration: gangSeconds };
  const workload = parseWorkload(lines([...stream, gang]));
  const submitted = new Map(workload.map((s) => [`${s.line}:${s.name}`, s.submitAt]));
  const run = (withReservations: boolean): BackfillRun => {
    let gangStart: number | null = null;
    const waits: number[] = [];
    // GPU-seconds allocated over [from, to), from the allocation after each cycle (constant until the next).
    const steps: Array<[number, number]> = [];
    const allocatedBetween = (from: number, to: number) =>
      steps.reduce((sum, [t, gpus], i) => {
        const end = Math.min(to, i + 1 < steps.length ? steps[i + 1][0] : Infinity);
        return sum + Math.max(0, end - Math.max(from, t)) * gpus;
      }, 0);
    const r = simulate(nodes, workload, {
      ...(withReservations ? { backfill: { maxReservations: 1 } } : {}),
      onCycle: (t, held) => {
        let gpus = 0;
        for (const v of held.values()) gpus += (v.gpu ?? 0) / 1000;
        if (steps.length && steps[steps.length - 1][0] === t) steps[steps.length - 1][1] = gpus;
        else steps.push([t, gpus]);
      },
      onStart: (t, jobId) => {
        if (jobId.endsWith(':gang')) gangStart ??= t;
        else waits.push(t - submitted.get(jobId)!);
      },
    });
    return {
      gangWaitSeconds: gangStart === null ? null : gangStart - gangAt,
      smallMeanWaitSeconds: Math.round((waits.reduce((a, b) => a + b, 0) / Math.max(1, waits.length)) * 10) / 10,
      smallMaxWaitSeconds: Math.max(0, ...waits),
      gpuAllocation: r.allocation.gpu,
      makespan: r.makespan,
      streamGpuAllocation: Math.round((allocatedBetween(0, streamSeconds) / (streamSeconds * gpus)) * 10_000) / 10_000,
      idleGpuHoursWhileGangWaited: gangStart === null ? 0 : Math.round(((gpus * (gangStart - gangAt) - allocatedBetween(gangAt, gangStart)) / 3600) * 10) / 10,
    };
  };
  const meanSeconds = stream.reduce((n, s) => n + s.duration, 0) / stream.length;
  const withReservations = run(true);
  const boundSeconds = 2 * timeoutSeconds;
  return {
    scenario: 'backfill',
    settings,
    offeredLoad: Math.round((meanSeconds / every / gpus) * 1000) / 1000,
    withoutReservations: run(false),
    withReservations,
    boundSeconds,
    holds: withReservations.gangWaitSeconds !== null && withReservations.gangWaitSeconds <= boundSeconds,
  };
}

/** The scenarios by name. */
export const SCENARIOS = {
  aging: () => agingScenario(),
  churn: () => churnScenario(),
  priced: () => pricedScenario(),
  backfill: () => backfillScenario(),
  topology: () => topologyScenario(),
  consolidation: () => consolidationScenario(),
  defragment: () => defragmentScenario(),
  'defragment-gang': () => defragmentScenario({ bigJobs: 0, gangs: 6, smallJobs: 620 }),
} as const;
