/**
 * The pure parts of `bench pipelines`: its options, the seeded DAG of each run, the makespan's
 * lower bounds, step-start latency from the records the cluster keeps, and the summary with a
 * verdict per target. No I/O, no clock: the run (pipelines.ts) passes in what it read.
 */
import { percentile, rng } from './rng';
import { bucketDelta, histogramQuantile, promBuckets, promValue } from './soak-report';

/** Options of `bench pipelines`, as given; unset ones take their defaults (`resolvePipelinesOptions`). */
export interface PipelinesOptionsInput {
  /** Workflow runs submitted at once. @default 1000 */ runs?: number;
  /** Steps of each run (at least 2: the fan-out map and its fan-in). @default 20 */ steps?: number;
  /** Tasks of each run's fan-out map step. @default 100 */ fanout?: number;
  /**
   * Simulated nodes (32 cores each; every task asks 100m, so a node runs 320 tasks at once).
   * @default enough for every run's fan-out at once: ceil(runs × fanout / 320), at least 10
   */
  nodes?: number;
  /** Seed of the DAG shapes and durations. @default 17 */ seed?: number;
  /** Simulated duration of a step's tasks, seconds: "2" or a range "1-3" (each step draws one, to 0.1 s). @default "1-3" */ taskSeconds?: string;
  /** Run PostgreSQL beside etcd as the history store (its archiver then waits an hour, so the records stay in etcd to be read). @default false */
  history?: boolean;
  /** Submits in flight at once. @default 16 */ concurrency?: number;
  /** Cap on the wait for every run to end, seconds. @default 1800 */ timeout?: number;
}

/** Options with every default applied. */
export interface PipelinesOptions {
  runs: number;
  steps: number;
  fanout: number;
  nodes: number;
  seed: number;
  /** Smallest and largest simulated duration of a step, seconds. */
  taskSeconds: [number, number];
  history: boolean;
  concurrency: number;
  timeout: number;
}

/** CPU a task asks for, in cores, and what a simulated node has: 320 tasks per node. */
export const TASK_CPU = 0.1;
export const NODE_CPU = 32;
export const TASKS_PER_NODE = Math.round(NODE_CPU / TASK_CPU);
/** Most runs and tasks per map this bench takes (POST /v1/workflows bounds a map's items at 100,000). */
export const MAX_RUNS = 100_000;

/** Applies the defaults and checks the options; throws an Error naming the option. */
export function resolvePipelinesOptions(i: PipelinesOptionsInput): PipelinesOptions {
  const runs = i.runs ?? 1000;
  const steps = i.steps ?? 20;
  const fanout = i.fanout ?? 100;
  const whole = (x: number, min: number, max: number) => Number.isInteger(x) && x >= min && x <= max;
  if (!whole(runs, 1, MAX_RUNS)) throw new Error(`--runs must be a whole number from 1 to ${MAX_RUNS}`);
  if (!whole(steps, 2, 1000)) throw new Error('--steps must be a whole number from 2 to 1000 (a map and its fan-in at least)');
  if (!whole(fanout, 1, 100_000)) throw new Error('--fanout must be a whole number from 1 to 100000');
  const m = /^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?$/.exec(i.taskSeconds ?? '1-3');
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(lo > 0 && hi >= lo && hi <= 3600)) throw new Error('--task-seconds must be seconds ("2") or a range ("1-3"), > 0 and at most 3600');
  const nodes = i.nodes ?? Math.max(10, Math.ceil((runs * fanout) / TASKS_PER_NODE));
  if (!whole(nodes, 1, 20_000)) throw new Error('--nodes must be a whole number from 1 to 20000');
  const concurrency = i.concurrency ?? 16;
  if (!whole(concurrency, 1, 256)) throw new Error('--concurrency must be a whole number from 1 to 256');
  const timeout = i.timeout ?? 1800;
  if (!(timeout > 0)) throw new Error('--timeout must be > 0 (seconds)');
  return { runs, steps, fanout, nodes, seed: i.seed ?? 17, taskSeconds: [lo, hi], history: i.history ?? false, concurrency, timeout };
}

/** One step of a generated run. */
export interface PlannedStep {
  name: string;
  dependsOn: string[];
  /** Tasks of its job: `fanout` for the map step, else 1. */
  tasks: number;
  /** Simulated seconds each of its tasks runs (`BATCH_SIM_SECONDS`). */
  seconds: number;
  kind: 'single' | 'map' | 'fanin';
  /** Its layer: the longest chain of steps before it. */
  layer: number;
}

/**
 * The DAG of one run, from a seed alone: `steps` steps in 3–7 layers (never more than there are
 * steps), every layer at least one step; a step of layer k > 0 depends on one step of layer k − 1
 * and on up to two more of earlier layers (so its layer is its depth). One step of a layer before
 * the last is the fan-out map (`fanout` tasks); one step of the next layer is its fan-in and
 * depends on it. Each step draws its duration in `[lo, hi]` seconds, to 0.1 s. Names are
 * `s00`, `s01`, … in layer order.
 */
export function pipelineDag(seed: number, steps: number, fanout: number, [lo, hi]: readonly [number, number]): PlannedStep[] {
  const rand = rng(seed);
  const pick = (n: number) => Math.floor(rand() * n);
  const layers = Math.min(steps, 3 + pick(5));
  // one step per layer, the rest spread at random
  const perLayer = new Array<number>(layers).fill(1);
  for (let k = layers; k < steps; k++) perLayer[pick(layers)]++;
  const byLayer: number[][] = [];
  const out: PlannedStep[] = [];
  for (let l = 0; l < layers; l++) {
    byLayer.push([]);
    for (let k = 0; k < perLayer[l]; k++) {
      const i = out.length;
      byLayer[l].push(i);
      const seconds = Math.round((lo + rand() * (hi - lo)) * 10) / 10;
      out.push({ name: `s${String(i).padStart(2, '0')}`, dependsOn: [], tasks: 1, seconds: Math.max(0.1, seconds), kind: 'single', layer: l });
    }
  }
  for (let l = 1; l < layers; l++) {
    const earlier = byLayer.slice(0, l).flat();
    for (const i of byLayer[l]) {
      const deps = new Set<number>([byLayer[l - 1][pick(byLayer[l - 1].length)]]);
      const extra = pick(3);
      for (let e = 0; e < extra; e++) deps.add(earlier[pick(earlier.length)]);
      out[i].dependsOn = [...deps].sort((a, b) => a - b).map((d) => out[d].name);
    }
  }
  const mapLayer = pick(layers - 1);
  const map = byLayer[mapLayer][pick(byLayer[mapLayer].length)];
  const fanin = byLayer[mapLayer + 1][pick(byLayer[mapLayer + 1].length)];
  out[map] = { ...out[map], kind: 'map', tasks: fanout };
  const deps = new Set([...out[fanin].dependsOn, out[map].name]);
  out[fanin] = { ...out[fanin], kind: 'fanin', dependsOn: out.filter((s) => deps.has(s.name)).map((s) => s.name) };
  return out;
}

/** The longest chain of simulated durations through a run's steps, seconds (steps in an order where dependencies come first). */
export function criticalPathSeconds(steps: readonly Pick<PlannedStep, 'name' | 'dependsOn' | 'seconds'>[]): number {
  const finish = new Map<string, number>();
  for (const s of steps) finish.set(s.name, Math.max(0, ...s.dependsOn.map((d) => finish.get(d) ?? 0)) + s.seconds);
  return Math.max(0, ...finish.values());
}

/** Task-seconds of a run: each step's tasks × its duration. */
export function taskSecondsOf(steps: readonly Pick<PlannedStep, 'tasks' | 'seconds'>[]): number {
  return steps.reduce((sum, s) => sum + s.tasks * s.seconds, 0);
}

/** What a run contributes to the lower bounds. */
export interface RunBound {
  /** Seconds after the first submit that this run was submitted. */
  submittedAfterS: number;
  criticalPathS: number;
  taskSeconds: number;
}

/** The two lower bounds of the makespan (first submit → last run ended) and which binds. */
export interface LowerBounds {
  /** Latest (submit offset + critical path) over the runs: no run can end sooner. */
  criticalPathS: number;
  /** Total task-seconds / task slots of the fleet: the fleet cannot do the work sooner. */
  resourceS: number;
  binds: 'critical path' | 'resources';
  /** The larger of the two. */
  boundS: number;
}

/** Lower bounds of the makespan given each run's bound and the fleet's task slots. */
export function lowerBounds(runs: readonly RunBound[], slots: number): LowerBounds {
  const criticalPathS = Math.max(0, ...runs.map((r) => r.submittedAfterS + r.criticalPathS));
  const resourceS = runs.reduce((s, r) => s + r.taskSeconds, 0) / slots;
  const binds = resourceS > criticalPathS ? 'resources' : 'critical path';
  return { criticalPathS, resourceS, binds, boundS: Math.max(criticalPathS, resourceS) };
}

/** One step of a finished run as the cluster recorded it. */
export interface StepRecord {
  name: string;
  dependsOn: readonly string[];
  /** When its job ended (`JobRecord.finishedAt`), epoch ms. */
  endedAt?: number;
  /** When its job's first task started (the earliest `startedAt` of its task groups), epoch ms. */
  firstTaskStartedAt?: number;
  /** When the controller created its job (`JobRecord.createdAt`), epoch ms. */
  createdAt?: number;
  /** When quota admitted its job (`JobRecord.queuedAt`), epoch ms. */
  queuedAt?: number;
  /** When the scheduler first bound a task of its job (`JobRecord.startedAt`), epoch ms. */
  boundAt?: number;
}

/** One run as the cluster recorded it. */
export interface RunRecord {
  /** When the workflow was created (`WorkflowRecord.createdAt`), epoch ms. */
  createdAt: number;
  steps: readonly StepRecord[];
}

/** Step-start latencies in milliseconds, and the steps that could not be measured. */
export interface StepLatencies {
  /** Steps with dependencies: first task start − the latest end of its dependencies. */
  afterInputsMs: number[];
  /** Steps without: first task start − the workflow's creation. */
  rootsMs: number[];
  /** Steps whose start or a dependency's end is not recorded (a step that never ran). */
  unmeasured: number;
  /**
   * Where the wait of the steps with dependencies goes, stage by stage (each measured where both
   * of its times are recorded), in ms: inputs ready → job created (the workflow controller),
   * created → queued (quota's admitter), queued → bound (the scheduler), bound → first task
   * started (the node's executor).
   */
  stagesMs: Record<Stage, number[]>;
}

/** The stages of a step's start, in order. */
export const STAGES = ['controller', 'admission', 'scheduler', 'executor'] as const;
export type Stage = (typeof STAGES)[number];
/** What each stage measures, as printed. */
export const STAGE_SPANS: Record<Stage, string> = {
  controller: 'inputs ready → job created (workflow controller)',
  admission: 'job created → queued (quota admitter)',
  scheduler: 'queued → first bind (scheduler)',
  executor: 'first bind → first task started (executor)',
};

/** Step-start latencies of every step of every run, from the records. */
export function stepLatencies(runs: readonly RunRecord[]): StepLatencies {
  const out: StepLatencies = { afterInputsMs: [], rootsMs: [], unmeasured: 0, stagesMs: { controller: [], admission: [], scheduler: [], executor: [] } };
  for (const run of runs) {
    const ended = new Map(run.steps.map((s) => [s.name, s.endedAt]));
    for (const s of run.steps) {
      const ends = s.dependsOn.map((d) => ended.get(d));
      if (s.firstTaskStartedAt === undefined || ends.some((e) => e === undefined)) {
        out.unmeasured++;
        continue;
      }
      if (ends.length === 0) out.rootsMs.push(s.firstTaskStartedAt - run.createdAt);
      else {
        const ready = Math.max(...(ends as number[]));
        out.afterInputsMs.push(s.firstTaskStartedAt - ready);
        const times = [ready, s.createdAt, s.queuedAt, s.boundAt, s.firstTaskStartedAt];
        STAGES.forEach((stage, k) => {
          const [from, to] = [times[k], times[k + 1]];
          if (from !== undefined && to !== undefined) out.stagesMs[stage].push(to - from);
        });
      }
    }
  }
  return out;
}

/** p50, p99 and max of a sample (NaN when empty). */
export interface Spread {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

export function spread(xs: readonly number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.length ? s[s.length - 1] : NaN, n: s.length };
}

/** What the whole run measured, for the summary. */
export interface PipelinesFigures {
  runs: number;
  succeeded: number;
  failed: number;
  /** Runs that did not end within the cap, or whose record is gone. */
  lost: number;
  /** First submit → last run ended, seconds. */
  makespanS: number;
  bounds: LowerBounds;
  /** Each run's (end − submit) / its critical path. */
  runStretch: Spread;
  /** CPU seconds each process used over the run (first submit → last end), by name. */
  cpuSeconds: Record<string, number>;
  wallS: number;
  latency: { afterInputs: Spread; roots: Spread; unmeasured: number; stages: Record<Stage, Spread> };
  /** 1-minute load average at the start and the end of the run. */
  load: [number, number];
  /** What etcd did over the run (`etcdFigures`), when its metrics could be read. */
  etcd?: EtcdFigures;
}

/** What etcd did between two scrapes of its `/metrics`: its work per step, and how long its disk and applies took. */
export interface EtcdFigures {
  /**
   * Requests of more than one operation, reads among them (`etcd_mvcc_txn_total`: etcd 3.5 counts
   * every multi-op request there, and no one-op write), and puts and deletes applied
   * (`etcd_mvcc_put_total`, `etcd_mvcc_delete_total`). Writes are `revisions`.
   */
  txns: number;
  puts: number;
  deletes: number;
  /** Revisions written (`etcd_debugging_mvcc_current_revision`): one per write that changed something. */
  revisions: number;
  /** Bytes etcd sent to its clients (`etcd_network_client_grpc_sent_bytes_total`): watch events are most of them. */
  sentBytes: number;
  /** WAL fsync p50 and p99 (`etcd_disk_wal_fsync_duration_seconds`), in milliseconds; NaN without observations. */
  walFsyncP50Ms: number;
  walFsyncP99Ms: number;
  /** Backend commit p99 (`etcd_disk_backend_commit_duration_seconds`), in milliseconds. */
  backendCommitP99Ms: number;
  /** Watchers behind at the end scrape (`etcd_debugging_mvcc_slow_watcher_total`, a gauge). */
  slowWatchers: number;
  /** The most watchers behind at any progress line's scrape, when sampled. */
  slowWatchersMax?: number;
}

/** `etcdFigures` from the text of two scrapes of etcd's `/metrics`, at the run's start and end. */
export function etcdFigures(before: string, after: string): EtcdFigures {
  const d = (name: string) => (promValue(after, name) ?? 0) - (promValue(before, name) ?? 0);
  const q = (name: string, quantile: number) => histogramQuantile(bucketDelta(promBuckets(after, name), promBuckets(before, name)), quantile) * 1000;
  return {
    txns: d('etcd_mvcc_txn_total'),
    puts: d('etcd_mvcc_put_total'),
    deletes: d('etcd_mvcc_delete_total'),
    revisions: d('etcd_debugging_mvcc_current_revision'),
    sentBytes: d('etcd_network_client_grpc_sent_bytes_total'),
    walFsyncP50Ms: q('etcd_disk_wal_fsync_duration_seconds', 0.5),
    walFsyncP99Ms: q('etcd_disk_wal_fsync_duration_seconds', 0.99),
    backendCommitP99Ms: q('etcd_disk_backend_commit_duration_seconds', 0.99),
    slowWatchers: promValue(after, 'etcd_debugging_mvcc_slow_watcher_total') ?? 0,
  };
}

/** Targets of issue 17 ("Tests and figures"). */
export const PIPELINES_TARGETS = { stepStartP99Ms: 1000 };

export interface PipelinesRow {
  figure: string;
  target: string;
  measured: string;
  verdict: 'PASS' | 'MISS' | '';
}

const s1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const ms = (x: number) => (Number.isFinite(x) ? Math.round(x).toString() : '-');

/** The summary's rows: each figure, its target where the issue sets one, PASS/MISS. */
export function pipelinesRows(f: PipelinesFigures): PipelinesRow[] {
  const b = f.bounds;
  const cpu = (name: string) => f.cpuSeconds[name];
  const rows: PipelinesRow[] = [
    {
      figure: 'makespan (first submit → last run ended)',
      target: `≥ ${s1(b.boundS)} s (bound)`,
      measured: `${s1(f.makespanS)} s = ${s1(f.makespanS / b.boundS)} × the bound`,
      verdict: '',
    },
    { figure: 'lower bound: critical path', target: '—', measured: `${s1(b.criticalPathS)} s${b.binds === 'critical path' ? ' (binds)' : ''}`, verdict: '' },
    {
      figure: 'lower bound: task-seconds / fleet slots',
      target: '—',
      measured: `${s1(b.resourceS)} s${b.binds === 'resources' ? ' (binds)' : ''}`,
      verdict: '',
    },
    {
      figure: 'run duration / its critical path',
      target: '—',
      measured: `p50 ${f.runStretch.p50.toFixed(2)} p99 ${f.runStretch.p99.toFixed(2)} max ${f.runStretch.max.toFixed(2)}`,
      verdict: '',
    },
  ];
  for (const name of Object.keys(f.cpuSeconds))
    rows.push({
      figure: `CPU ${name}${name === 'quota' ? ' (workflow controller)' : ''}`,
      target: '—',
      measured: `${s1(cpu(name))} s (${((cpu(name) / f.wallS) * 100).toFixed(0)}% of a core over ${s1(f.wallS)} s)`,
      verdict: '',
    });
  const l = f.latency.afterInputs;
  rows.push({
    figure: 'step start after its inputs are ready',
    target: `p99 < ${PIPELINES_TARGETS.stepStartP99Ms} ms`,
    measured: `p50 ${ms(l.p50)} p99 ${ms(l.p99)} max ${ms(l.max)} ms (${l.n} steps${f.latency.unmeasured ? `, ${f.latency.unmeasured} unmeasured` : ''})`,
    verdict: l.n > 0 && l.p99 < PIPELINES_TARGETS.stepStartP99Ms ? 'PASS' : 'MISS',
  });
  for (const stage of STAGES) {
    const x = f.latency.stages[stage];
    rows.push({ figure: `… of which ${STAGE_SPANS[stage]}`, target: '—', measured: `p50 ${ms(x.p50)} p99 ${ms(x.p99)} max ${ms(x.max)} ms`, verdict: '' });
  }
  const r = f.latency.roots;
  rows.push({
    figure: 'first step start after submit',
    target: '—',
    measured: `p50 ${ms(r.p50)} p99 ${ms(r.p99)} max ${ms(r.max)} ms (${r.n} steps)`,
    verdict: '',
  });
  rows.push({
    figure: 'runs Succeeded / failed / lost',
    target: `${f.runs} / 0 / 0`,
    measured: `${f.succeeded} / ${f.failed} / ${f.lost}`,
    verdict: f.succeeded === f.runs && f.failed === 0 && f.lost === 0 ? 'PASS' : 'MISS',
  });
  const e = f.etcd;
  if (e) {
    const steps = Math.max(1, f.latency.afterInputs.n + f.latency.roots.n + f.latency.unmeasured);
    const per = (x: number) => (x / steps).toFixed(1);
    rows.push({
      figure: 'etcd: writes per step',
      target: '—',
      measured: `${per(e.revisions)} revisions (writes; ${per(e.puts)} puts, ${per(e.deletes)} deletes; ${per(e.txns)} multi-op requests, reads included) over ${steps} steps; ${(e.sentBytes / steps / 1024).toFixed(1)} KiB sent to clients per step`,
      verdict: '',
    });
    rows.push({
      figure: 'etcd: disk',
      target: '—',
      measured: `WAL fsync p50 ${e.walFsyncP50Ms.toFixed(1)} p99 ${e.walFsyncP99Ms.toFixed(1)} ms; backend commit p99 ${e.backendCommitP99Ms.toFixed(1)} ms; slow watchers at the end ${e.slowWatchers}${e.slowWatchersMax !== undefined ? `, at most ${e.slowWatchersMax} while it ran` : ''}`,
      verdict: '',
    });
  }
  rows.push({ figure: 'load average (1 min), start → end', target: '—', measured: `${f.load[0].toFixed(2)} → ${f.load[1].toFixed(2)}`, verdict: '' });
  return rows;
}

/** The summary as a Markdown table (what docs/benchmarks.md shows). */
export function formatPipelinesSummary(rows: readonly PipelinesRow[]): string {
  const lines = ['| figure | target | measured | |', '|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.figure} | ${r.target} | ${r.measured} | ${r.verdict} |`);
  return lines.join('\n');
}

/** One line per target: its verdict in words. */
export function verdictLines(rows: readonly PipelinesRow[]): string[] {
  return rows.filter((r) => r.verdict).map((r) => `${r.verdict}: ${r.figure}: ${r.measured} (target ${r.target})`);
}

/** CPU seconds from two reads of `/proc/<pid>/stat` (utime + stime in clock ticks); undefined when either is missing. */
export function cpuSecondsBetween(before: number | undefined, after: number | undefined, ticksPerSecond = 100): number | undefined {
  return before === undefined || after === undefined ? undefined : (after - before) / ticksPerSecond;
}

/** utime + stime (clock ticks) from the text of `/proc/<pid>/stat`: fields 14 and 15, counted after the command's closing parenthesis. */
export function cpuTicksOfStat(stat: string): number | undefined {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14 → rest[11], stime field 15 → rest[12]
  const u = Number(rest[11]);
  const s = Number(rest[12]);
  return Number.isFinite(u) && Number.isFinite(s) ? u + s : undefined;
}
