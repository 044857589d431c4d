/**
 * The topology scenario (`npm run -s bench -- simulate --scenario topology`): a rack-structured
 * GPU cluster under a stream of 1-GPU jobs and 8/16/32-GPU gangs, run with gangs without
 * `topology`, with `preferred: rack`, with `required: rack` — and `required: rack` again without
 * the domain score, with backfill reservations, and with preemption — measuring the share of
 * gangs placed within one rack, GPU allocation, the gangs' waits and where preemption stopped tasks.
 */
import type { JobTopology } from '@batchapi/api';
import { DEFAULT_TOPOLOGY_LEVELS } from '@batchapi/scheduling';
import { parseNodes, parseWorkload } from './inputs';
import { type SimulationOptions, simulate } from './simulate';

const lines = (xs: object[]) => xs.map((x) => JSON.stringify(x)).join('\n');

/** Settings of the topology scenario. */
export interface TopologyScenarioOptions {
  /** Blocks of the cluster. @default 2 */
  blocks?: number;
  /** Racks per block. @default 2 */
  racksPerBlock?: number;
  /** Nodes of 8 GPUs per rack. @default 4 (32 GPUs a rack) */
  nodesPerRack?: number;
  /** A 1-GPU job every this many seconds, running 60–600 s (seeded). @default 5 */
  everySeconds?: number;
  /** A gang every this many seconds, of 8, 16 then 32 GPUs in turn (tasks of 4 GPUs), running 300–900 s (seeded). @default 240 */
  gangEverySeconds?: number;
  /** How long the stream lasts, in seconds. @default 28800 (8 h) */
  streamSeconds?: number;
  /** Seed of the durations. @default 16 */
  seed?: number;
}

/** Figures of one run. */
export interface TopologyRun {
  /** Gangs whose tasks all landed in one rack, of the gangs that started. */
  gangsInOneRack: number;
  /** Racks a started gang spans, on average. */
  meanRacksPerGang: number;
  gangsStarted: number;
  gangsNeverStarted: number;
  /** Gang waits (submit to start) of the gangs that started, in seconds: median and 99th percentile (nearest rank). */
  gangWaitP50Seconds: number;
  gangWaitP99Seconds: number;
  /** The same for the 32-GPU gangs (a whole rack). */
  bigGangWaitP50Seconds: number;
  bigGangWaitP99Seconds: number;
  /** Mean wait of the 1-GPU jobs, in seconds. */
  smallMeanWaitSeconds: number;
  /** Time-weighted share of the GPUs allocated while the stream lasts ([0, streamSeconds]). */
  streamGpuAllocation: number;
  /** With preemption: tasks stopped, and the most racks the victims of one gang were in (1: always one rack). */
  preempted?: number;
  victimRacksPerGangMax?: number;
}

/** What the topology scenario measured. */
export interface TopologyScenarioResult {
  scenario: 'topology';
  settings: Required<TopologyScenarioOptions>;
  gpus: number;
  /** Offered load of the stream: GPU-seconds asked per second over the GPUs. */
  offeredLoad: number;
  withoutTopology: TopologyRun;
  preferredRack: TopologyRun;
  requiredRack: TopologyRun;
  /** `required: rack` with the domain score off (`BATCH_TOPOLOGY_SCORE_WEIGHT=0`). */
  requiredRackNoDomainScore: TopologyRun;
  /** `required: rack` with backfill: one reservation a cycle, held within one rack. */
  requiredRackBackfill: TopologyRun;
  /** The same without the domain score: the reservation alone against `requiredRackNoDomainScore`. */
  requiredRackBackfillNoDomainScore: TopologyRun;
  /** `required: rack` with preemption, the gangs at priority 1. */
  requiredRackPreemption: TopologyRun;
  /** With `required: rack`, every started gang is within one rack (with backfill and preemption too), and each gang's victims are in one rack. */
  holds: boolean;
}

/** The topology scenario's settings when not given. */
export const DEFAULT_TOPOLOGY_SCENARIO: Required<TopologyScenarioOptions> = {
  blocks: 2,
  racksPerBlock: 2,
  nodesPerRack: 4,
  everySeconds: 5,
  gangEverySeconds: 240,
  streamSeconds: 28_800,
  seed: 16,
};

const GANG_GPUS = [8, 16, 32] as const;
const GPUS_PER_GANG_TASK = 4;

/** Nearest-rank percentile of `xs` (0 when empty). */
function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** How one run of the scenario differs from the plain one (the gangs' `topology` aside). */
export interface TopologyVariant {
  /** Backfill with one reservation a cycle (`BATCH_BACKFILL_RESERVATIONS=1`). @default off */
  backfill?: boolean;
  /** Preemption on, the gangs at priority 1 over the 1-GPU jobs' 0 (60 s exempt time, 100 victims a queue a minute). @default off */
  preemption?: boolean;
  /** Weight of the domain score (`BATCH_TOPOLOGY_SCORE_WEIGHT`); 0 turns it off. @default the live default */
  domainScoreWeight?: number;
}

/** The cluster and workload of the scenario: built once, run many times. */
interface TopologyWorld {
  settings: Required<TopologyScenarioOptions>;
  nodes: ReturnType<typeof parseNodes>;
  rackOf: Map<string, string>;
  gpus: number;
  small: Array<{ name: string; submitAt: number; resources: object; duration: number; timeoutSeconds: number }>;
  gangs: Array<{ name: string; submitAt: number; tasks: number; gang: true; gangGpus: number; resources: object; duration: number; timeoutSeconds: number }>;
  offered: number;
}

/**
 * Blocks × racks × nodes of 8 GPUs labelled `topology.batchapi.io/block` and `/rack` (2 × 2 × 4 × 8 =
 * 128 GPUs, 32 a rack); a 1-GPU job every 5 s (mean 330 s: 66 GPUs busy) and a gang every 240 s
 * (8, 16, 32 GPUs in turn as tasks of 4 GPUs, mean 600 s: 47 GPUs busy) — 88% of the GPUs
 * offered. Each job's `timeoutSeconds` is the longest it may run (600 s and 900 s): the bound
 * backfill trusts; no task runs into it.
 */
function topologyWorld(o: TopologyScenarioOptions): TopologyWorld {
  const settings: Required<TopologyScenarioOptions> = { ...DEFAULT_TOPOLOGY_SCENARIO, ...o };
  const { blocks, racksPerBlock, nodesPerRack, everySeconds, gangEverySeconds, streamSeconds } = settings;
  const [blockLabel, rackLabel] = DEFAULT_TOPOLOGY_LEVELS.map((l) => l.label!);
  const nodeLines: object[] = [];
  const rackOf = new Map<string, string>();
  for (let b = 0; b < blocks; b++)
    for (let r = 0; r < racksPerBlock; r++)
      for (let n = 0; n < nodesPerRack; n++) {
        const rack = `b${b}-r${r}`;
        const name = `${rack}-n${n}`;
        rackOf.set(name, rack);
        nodeLines.push({ name, capacity: { cpu: '64', memory: '512Gi', gpu: 8 }, labels: { [blockLabel]: `b${b}`, [rackLabel]: rack } });
      }
  const nodes = parseNodes(lines(nodeLines));
  const gpus = nodes.length * 8;
  let x = settings.seed >>> 0 || 1;
  const random = () => (x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0) / 2 ** 32;
  const small = Array.from({ length: Math.floor(streamSeconds / everySeconds) }, (_, i) => ({
    name: `one-${i}`,
    submitAt: i * everySeconds,
    resources: { cpu: '1', gpu: 1 },
    duration: Math.round(60 + random() * 540),
    timeoutSeconds: 600,
  }));
  const gangs = Array.from({ length: Math.floor(streamSeconds / gangEverySeconds) }, (_, i) => ({
    name: `gang-${GANG_GPUS[i % 3]}-${i}`,
    submitAt: i * gangEverySeconds + 1,
    tasks: GANG_GPUS[i % 3] / GPUS_PER_GANG_TASK,
    gang: true as const,
    gangGpus: GANG_GPUS[i % 3],
    resources: { cpu: '4', gpu: GPUS_PER_GANG_TASK },
    duration: Math.round(300 + random() * 600),
    timeoutSeconds: 900,
  }));
  const offered = (small.reduce((n, s) => n + s.duration, 0) + gangs.reduce((n, g) => n + g.gangGpus * g.duration, 0)) / streamSeconds / gpus;
  return { settings, nodes, rackOf, gpus, small, gangs, offered };
}

/** One run: the gangs with `topology` (none: without), and the variant's settings. */
function runTopology(world: TopologyWorld, topology: JobTopology | undefined, v: TopologyVariant = {}): TopologyRun {
  const { nodes, rackOf, small, gangs, gpus } = world;
  const { streamSeconds } = world.settings;
  const workload = parseWorkload(
    lines([...small, ...gangs.map(({ gangGpus: _, ...g }) => ({ ...g, ...(topology ? { topology } : {}), ...(v.preemption ? { priority: 1 } : {}) }))]),
  );
  const submitted = new Map(workload.map((s) => [`${s.line}:${s.name}`, s.submitAt]));
  const gangStart = new Map<string, { at: number; racks: Set<string> }>();
  const smallWaits: number[] = [];
  const steps: Array<[number, number]> = [];
  const victimRacks = new Map<string, Set<string>>();
  let preempted = 0;
  const opts: SimulationOptions = {
    ...(v.backfill ? { backfill: { maxReservations: 1 } } : {}),
    ...(v.preemption ? { preemption: {} } : {}),
    ...(v.domainScoreWeight !== undefined ? { domainScoreWeight: v.domainScoreWeight } : {}),
    onCycle: (t, held) => {
      let g = 0;
      for (const h of held.values()) g += (h.gpu ?? 0) / 1000;
      if (steps.length && steps[steps.length - 1][0] === t) steps[steps.length - 1][1] = g;
      else steps.push([t, g]);
    },
    onStart: (t, jobId, _tasks, node) => {
      if (!jobId.includes(':gang-')) {
        // A preempted 1-GPU job starts again: its wait is to its first start.
        if (!smallStarted.has(jobId)) smallWaits.push(t - submitted.get(jobId)!);
        smallStarted.add(jobId);
        return;
      }
      const s = gangStart.get(jobId) ?? { at: t, racks: new Set<string>() };
      s.racks.add(rackOf.get(node)!);
      gangStart.set(jobId, s);
    },
    onStop: (_t, victim) => {
      preempted++;
      const r = victimRacks.get(victim.forJob) ?? new Set<string>();
      r.add(rackOf.get(victim.task.node)!);
      victimRacks.set(victim.forJob, r);
    },
  };
  const smallStarted = new Set<string>();
  simulate(nodes, workload, opts);
  const allocated = steps.reduce((sum, [t, g], i) => {
    const end = Math.min(streamSeconds, i + 1 < steps.length ? steps[i + 1][0] : Infinity);
    return sum + Math.max(0, end - Math.min(t, streamSeconds)) * g;
  }, 0);
  const waits = [...gangStart].map(([id, s]) => s.at - submitted.get(id)!);
  const bigWaits = [...gangStart].filter(([id]) => id.includes(':gang-32-')).map(([id, s]) => s.at - submitted.get(id)!);
  const started = gangStart.size;
  const oneRack = [...gangStart.values()].filter((s) => s.racks.size === 1).length;
  const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
  return {
    gangsInOneRack: round(oneRack / Math.max(1, started), 3),
    meanRacksPerGang: round([...gangStart.values()].reduce((n, s) => n + s.racks.size, 0) / Math.max(1, started), 2),
    gangsStarted: started,
    gangsNeverStarted: gangs.length - started,
    gangWaitP50Seconds: percentile(waits, 50),
    gangWaitP99Seconds: percentile(waits, 99),
    bigGangWaitP50Seconds: percentile(bigWaits, 50),
    bigGangWaitP99Seconds: percentile(bigWaits, 99),
    smallMeanWaitSeconds: round(smallWaits.reduce((a, b) => a + b, 0) / Math.max(1, smallWaits.length), 1),
    streamGpuAllocation: round(allocated / (streamSeconds * gpus), 4),
    ...(v.preemption ? { preempted, victimRacksPerGangMax: Math.max(0, ...[...victimRacks.values()].map((r) => r.size)) } : {}),
  };
}

/** One run of the scenario's cluster and workload with `topology` on the gangs and the variant's settings (for measuring settings beside the scenario). */
export function topologyRun(o: TopologyScenarioOptions, topology: JobTopology | undefined, v: TopologyVariant = {}): TopologyRun {
  return runTopology(topologyWorld(o), topology, v);
}

/**
 * The scenario's runs on one cluster and workload: gangs without `topology`, with `preferred:
 * rack`, with `required: rack` (no reservations, no preemption: one that does not fit waits and
 * later work goes around it); then `required: rack` again without the domain score, with backfill
 * (one reservation a cycle) with and without the domain score, and with preemption (gangs at priority 1).
 */
export function topologyScenario(o: TopologyScenarioOptions = {}): TopologyScenarioResult {
  const world = topologyWorld(o);
  const required: JobTopology = { required: 'rack' };
  const requiredRack = runTopology(world, required);
  const requiredRackBackfill = runTopology(world, required, { backfill: true });
  const requiredRackPreemption = runTopology(world, required, { preemption: true });
  return {
    scenario: 'topology',
    settings: world.settings,
    gpus: world.gpus,
    offeredLoad: Math.round(world.offered * 1000) / 1000,
    withoutTopology: runTopology(world, undefined),
    preferredRack: runTopology(world, { preferred: 'rack' }),
    requiredRack,
    requiredRackNoDomainScore: runTopology(world, required, { domainScoreWeight: 0 }),
    requiredRackBackfill,
    requiredRackBackfillNoDomainScore: runTopology(world, required, { backfill: true, domainScoreWeight: 0 }),
    requiredRackPreemption,
    holds:
      [requiredRack, requiredRackBackfill, requiredRackPreemption].every((r) => r.gangsInOneRack === 1 && r.gangsStarted > 0) &&
      requiredRackPreemption.victimRacksPerGangMax === 1,
  };
}
