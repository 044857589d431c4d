/** The benchmark runner: `npm run -s bench -- NAME [--option value]`. Last stdout line: one JSON object. */
import { join } from 'node:path';
import { ARRIVALS, type Arrival, benchAlibaba } from './alibaba';
import { benchArray } from './array';
import { benchBacklog } from './backlog';
import { benchConsole } from './console';
import { benchE2e } from './e2e';
import { benchFailover } from './failover';
import { benchFairShare } from './fairshare';
import { benchLatency } from './latency';
import { benchOverload } from './overload';
import { benchPacking } from './packing';
import { benchPipelines } from './pipelines';
import { progress } from './rng';
import { benchScheduling } from './scheduling';
import { benchSoak } from './soak';
import { benchTracing } from './tracing';
import { SCENARIOS } from '@batchapi/simulation';

const DATA = join(__dirname, '../../../../shared/data');

function options(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z][a-zA-Z-]*)$/.exec(args[i]);
    if (!m) throw new Error(`unexpected argument ${args[i]}; options look like --name value`);
    out[m[1]] = args[++i] ?? '';
  }
  return out;
}

function num(o: Record<string, string>, name: string, def: number): number {
  if (o[name] === undefined) return def;
  const n = Number(o[name]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number`);
  return n;
}

/** An option without a default here (the benchmark applies its own). */
function optional(o: Record<string, string>, name: string): number | undefined {
  return o[name] === undefined ? undefined : num(o, name, 0);
}

/** A switch: on/off, true/false or 1/0. */
function onOff(o: Record<string, string>, name: string, def: boolean): boolean {
  const v = o[name];
  if (v === undefined) return def;
  if (['on', 'true', '1'].includes(v)) return true;
  if (['off', 'false', '0'].includes(v)) return false;
  throw new Error(`--${name} must be on or off`);
}

const BENCHES: Record<string, (o: Record<string, string>) => Record<string, unknown> | Promise<Record<string, unknown>>> = {
  scheduling: (o) =>
    benchScheduling({
      cpuNodes: num(o, 'cpu-nodes', 9000),
      gpuNodes: num(o, 'gpu-nodes', 1000),
      tasks: num(o, 'tasks', 500_000),
      singleJobs: num(o, 'single-jobs', 100_000),
      scanSingles: onOff(o, 'scan-singles', false),
      repeat: num(o, 'repeat', 3),
      baselineTasks: num(o, 'baseline-tasks', 2000),
      seed: num(o, 'seed', 42),
    }),
  alibaba: (o) => {
    const arrival = o.arrival as Arrival | undefined;
    if (arrival !== undefined && !ARRIVALS.includes(arrival)) throw new Error(`--arrival must be one of ${ARRIVALS.join(', ')}`);
    return benchAlibaba({ data: o.data ?? DATA, trace: o.trace ?? 'default', arrival });
  },
  packing: (o) => benchPacking({ data: o.data ?? DATA, seed: num(o, 'seed', 7) }),
  latency: (o) =>
    benchLatency({
      rate: num(o, 'rate', 1000),
      seconds: num(o, 'seconds', 60),
      nodes: num(o, 'nodes', 1000),
      warmup: num(o, 'warmup', 10),
      history: num(o, 'history', 1) !== 0,
    }),
  tracing: (o) => benchTracing({ iterations: num(o, 'iterations', 100_000) }),
  failover: (o) => benchFailover({ ttl: num(o, 'ttl', 5), nodes: num(o, 'nodes', 500), everyMs: num(o, 'every-ms', 20) }),
  fairshare: (o) =>
    benchFairShare({
      workloads: num(o, 'workloads', 15_000),
      queues: num(o, 'queues', 30),
      cohorts: num(o, 'cohorts', 5),
      nodes: num(o, 'nodes', 100),
      seed: num(o, 'seed', 11),
    }),
  overload: (o) =>
    benchOverload({
      rate: num(o, 'rate', 2000),
      seconds: num(o, 'seconds', 10),
      limit: num(o, 'limit', 200),
      nodes: num(o, 'nodes', 200),
      warmup: num(o, 'warmup', 10),
    }),
  array: (o) =>
    benchArray({ tasks: num(o, 'tasks', 100_000), nodes: num(o, 'nodes', 1000), taskSeconds: num(o, 'task-seconds', 1), timeout: num(o, 'timeout', 300) }),
  backlog: (o) =>
    benchBacklog({
      jobs: num(o, 'jobs', 5000),
      nodes: num(o, 'nodes', 100),
      seconds: num(o, 'seconds', 20),
      seed: num(o, 'seed', 11),
      profile: o.profile,
      maxJobs: o['max-jobs'] === undefined ? undefined : num(o, 'max-jobs', 0),
    }),
  soak: (o) =>
    benchSoak({
      jobs: num(o, 'jobs', 200_000),
      rate: num(o, 'rate', 500),
      minutes: optional(o, 'minutes'),
      chunk: optional(o, 'chunk'),
      concurrency: optional(o, 'concurrency'),
      nodes: optional(o, 'nodes'),
      arrays: optional(o, 'arrays'),
      arrayTasks: optional(o, 'array-tasks'),
      workflows: optional(o, 'workflows'),
      taskSeconds: optional(o, 'task-seconds'),
      archiveAfter: optional(o, 'archive-after'),
      readsPerSecond: optional(o, 'reads-per-second'),
      every: optional(o, 'every'),
    }),
  // issue 17: many workflow runs at once; --task-seconds takes "2" or a range "1-3", --history on|off
  pipelines: (o) =>
    benchPipelines({
      runs: num(o, 'runs', 1000),
      steps: num(o, 'steps', 20),
      fanout: num(o, 'fanout', 100),
      nodes: optional(o, 'nodes'),
      seed: num(o, 'seed', 17),
      taskSeconds: o['task-seconds'],
      history: onOff(o, 'history', false),
      concurrency: optional(o, 'concurrency'),
      timeout: optional(o, 'timeout'),
    }),
  console: (o) => benchConsole({ rows: num(o, 'rows', 1000), rate: num(o, 'rate', 10), seconds: num(o, 'seconds', 20) }),
  e2e: (o) => benchE2e({ nodes: num(o, 'nodes', 10_000), tasks: num(o, 'tasks', 1_000_000), timeout: num(o, 'timeout', 300) }),
  // The policy scenarios of libs/simulation (docs/scheduler.md): --scenario aging | churn | priced | backfill | topology | consolidation | defragment | defragment-gang.
  simulate: (o) => {
    const run = SCENARIOS[o.scenario as keyof typeof SCENARIOS];
    if (!run) throw new Error(`--scenario must be one of ${Object.keys(SCENARIOS).join(', ')}`);
    return { ...run() };
  },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || !BENCHES[name]) {
    process.stderr.write(`usage: npm run -s bench -- NAME [--option value]\nbenchmarks: ${Object.keys(BENCHES).join(', ')}\n`);
    return 2;
  }
  const started = Date.now();
  const result = await BENCHES[name](options(rest));
  progress(`${name}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.stdout.write(`${JSON.stringify({ ...result, machine: machine() })}\n`);
  return 0;
}

function machine() {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const os = require('node:os') as typeof import('node:os');
  return { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version };
}
