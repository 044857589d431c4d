/**
 * `bench pipelines`: many workflow runs at once (each a seeded layered DAG with a fan-out map and
 * its fan-in) through the local cluster with simulated nodes (issue 17, "Tests and figures").
 * Prints the makespan against its lower bounds (critical path, and task-seconds over the fleet),
 * the CPU the workflow controller's host (quota) and the scheduler used, and how long a step
 * waits after its inputs are ready until its first task starts, from the times the cluster
 * records: the end of each dependency's job (`finishedAt`) and the earliest `startedAt` of the
 * step job's task groups. It measures, it does not assert.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GroupStatus, JobRecord, WorkflowRecord } from '@batchapi/api';
import { LocalCluster, postgresDataDir } from '@batchapi/cli';
import { EtcdStore } from '@batchapi/store';
import { Pool } from 'undici';
import {
  cpuTicksOfStat,
  criticalPathSeconds,
  formatPipelinesSummary,
  lowerBounds,
  type PipelinesFigures,
  type PipelinesOptionsInput,
  pipelineDag,
  pipelinesRows,
  type PlannedStep,
  resolvePipelinesOptions,
  type RunRecord,
  spread,
  type Spread,
  type Stage,
  STAGES,
  stepLatencies,
  TASK_CPU,
  TASKS_PER_NODE,
  taskSecondsOf,
  verdictLines,
  etcdFigures,
} from './pipelines-report';
import { progress } from './rng';
import { promValue } from './soak-report';
import { clusterPids } from './soak';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
/** Seconds between progress lines. */
const EVERY_S = 5;
/** Records per read of the records at the end: a run's record holds its map's items, and one answer must stay under gRPC's 4 MiB. */
const PAGE = 200;
const TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled']);

/** The `POST /v1/workflows` body of one run. */
function workflowBody(steps: readonly PlannedStep[], run: number): Record<string, unknown> {
  return {
    name: `pipeline-${run}`,
    labels: { bench: 'pipelines' },
    steps: steps.map((s) => ({
      name: s.name,
      dependsOn: s.dependsOn,
      ...(s.kind === 'map' ? { map: { items: Array.from({ length: s.tasks }, (_, k) => k) } } : {}),
      job: {
        ...(s.kind === 'map' ? {} : { tasks: 1 }),
        command: ['true'],
        resources: { cpu: `${Math.round(TASK_CPU * 1000)}m`, memory: '64Mi' },
        env: { BATCH_SIM_SECONDS: String(s.seconds) },
      },
    })),
  };
}

function mapStages(xs: Record<Stage, number[]>): Record<Stage, Spread> {
  return Object.fromEntries(STAGES.map((s) => [s, spread(xs[s])])) as Record<Stage, Spread>;
}

function cpuTicks(pid: number): number | undefined {
  try {
    return cpuTicksOfStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

export async function benchPipelines(input: PipelinesOptionsInput): Promise<Record<string, unknown>> {
  const o = resolvePipelinesOptions(input);
  const print = progress;
  const abort = new AbortController();
  let cluster: LocalCluster | undefined;
  const onSignal = () => {
    if (abort.signal.aborted) cluster?.kill();
    else {
      print('pipelines: interrupted: stopping the cluster (again to kill it)');
      abort.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const dir = mkdtempSync(join(tmpdir(), 'batch-pipelines-'));
  const closers: Array<() => Promise<unknown>> = [];
  const savedArchive = process.env.BATCH_ARCHIVE_AFTER;
  try {
    const plans = Array.from({ length: o.runs }, (_, r) => pipelineDag(o.seed * 1_000_003 + r, o.steps, o.fanout, o.taskSeconds));
    const tasks = plans.reduce((n, p) => n + p.reduce((m, s) => m + s.tasks, 0), 0);
    print(
      `pipelines: ${o.runs} runs of ${o.steps} steps (a map of ${o.fanout} tasks and its fan-in; ${tasks} tasks in all), ` +
        `task ${o.taskSeconds[0]}–${o.taskSeconds[1]} s; ${o.nodes} simulated nodes × ${TASKS_PER_NODE} task slots; history ${o.history ? 'on' : 'off'}; seed ${o.seed}`,
    );
    // with history, the archiver would move finished jobs out of etcd before they are read: it waits an hour
    if (o.history) process.env.BATCH_ARCHIVE_AFTER = '3600';
    cluster = await LocalCluster.start({
      dataDir: dir,
      executors: 0,
      simulatedNodes: o.nodes,
      history: o.history,
      signal: abort.signal,
      onStep: (s) => print(`pipelines: ${s}`),
    });
    const c = cluster;
    const store = new EtcdStore({ endpoints: c.etcd!.endpoints, callTimeoutMs: 30_000 });
    closers.push(() => store.close());
    const pids = clusterPids(dir);
    const api = new Pool(c.apiUrl, { connections: o.concurrency, headersTimeout: 30_000, bodyTimeout: 30_000 });
    closers.push(() => api.close());
    const headers = { authorization: `Bearer ${c.tenantToken}`, 'content-type': 'application/json' };

    // Every run's phase and step phases, from a watch on workflows/.
    const phases = new Map<string, string>();
    const stepCounts = new Map<string, { running: number; done: number }>();
    const seen = (w: WorkflowRecord) => {
      phases.set(w.id, w.phase);
      stepCounts.set(w.id, {
        running: w.steps.filter((s) => s.phase === 'Running').length,
        done: w.steps.filter((s) => s.phase === 'Succeeded' || s.phase === 'Failed' || s.phase === 'Skipped' || s.phase === 'Cancelled').length,
      });
    };
    const informer = await store.inform<WorkflowRecord>(store.keys.workflows(), {
      onSync: (items) => items.forEach((kv) => seen(kv.value)),
      onEvent: (ev) => {
        if (ev.type === 'put' && ev.value) seen(ev.value);
      },
    });
    closers.push(() => informer.stop());

    // etcd's own counters over the run (its writes per step, its disk): read at the start and the end.
    const etcdMetrics = () =>
      fetch(`${c.etcd!.endpoints[0]}/metrics`, { signal: AbortSignal.timeout(2000) }).then(
        (r) => r.text(),
        () => undefined,
      );
    const etcd0 = await etcdMetrics();
    const load0 = loadavg()[0];
    const ticks0 = new Map(pids.map((p) => [p.name, cpuTicks(p.pid)]));
    const first = Date.now();
    const t0 = performance.now();
    const deadline = t0 + o.timeout * 1000;
    const ids: Array<string | undefined> = new Array(o.runs);
    const submittedAt: number[] = new Array(o.runs);
    let next = 0;
    let refused = 0;
    const key = Date.now().toString(36);
    const submitter = async () => {
      while (next < o.runs && !abort.signal.aborted) {
        const r = next++;
        submittedAt[r] = Date.now();
        while (!abort.signal.aborted && performance.now() < deadline) {
          const res = await api
            .request({
              path: '/v1/workflows',
              method: 'POST',
              headers: { ...headers, 'idempotency-key': `pipelines-${key}-${r}` },
              body: JSON.stringify(workflowBody(plans[r], r)),
            })
            .then(
              async (x) => ({ status: x.statusCode, retryAfter: Number(x.headers['retry-after']) || 1, text: await x.body.text() }),
              () => ({ status: 0, retryAfter: 1, text: '' }),
            );
          if (res.status === 200 || res.status === 201) {
            ids[r] = (JSON.parse(res.text) as { id: string }).id;
            break;
          }
          if (res.status !== 0 && res.status !== 429 && res.status !== 503)
            throw new Error(`POST /v1/workflows answered ${res.status}: ${res.text.slice(0, 300)}`);
          refused++;
          await sleep(res.retryAfter * 1000);
        }
      }
    };

    // Progress while it runs.
    let lastTicks = ticks0.get('quota');
    let lastAt = performance.now();
    const quotaPid = pids.find((p) => p.name === 'quota')?.pid;
    // etcd's watchers that fell behind (its gauge, sampled with each progress line): events then reach them late.
    let slowWatchers = NaN;
    let slowWatchersMax: number | undefined; // undefined until a scrape answers
    const line = () => {
      const mine = ids.filter((x): x is string => x !== undefined);
      let ended = 0;
      let succeeded = 0;
      let running = 0;
      let done = 0;
      for (const id of mine) {
        const ph = phases.get(id);
        if (ph && TERMINAL.has(ph)) ended++;
        if (ph === 'Succeeded') succeeded++;
        running += stepCounts.get(id)?.running ?? 0;
        done += stepCounts.get(id)?.done ?? 0;
      }
      const t = quotaPid ? cpuTicks(quotaPid) : undefined;
      const now = performance.now();
      const quotaPct = t !== undefined && lastTicks !== undefined ? ((t - lastTicks) / 100 / ((now - lastAt) / 1000)) * 100 : NaN;
      lastTicks = t;
      lastAt = now;
      print(
        `pipelines ${Math.round((now - t0) / 1000)}s: submitted ${mine.length}/${o.runs} | runs ended ${ended} (Succeeded ${succeeded}) | ` +
          `steps running ${running} done ${done}/${mine.length * o.steps} | quota CPU ${quotaPct.toFixed(0)}% | etcd slow watchers ${slowWatchers} | load ${loadavg()[0].toFixed(2)}`,
      );
      return ended;
    };
    let submitFailed: Error | undefined;
    const submitting = Promise.all(Array.from({ length: o.concurrency }, submitter)).catch((err: Error) => {
      submitFailed = err;
      abort.abort();
    });
    for (let n = 1; !abort.signal.aborted && performance.now() < deadline; n++) {
      await sleep(t0 + n * EVERY_S * 1000 - performance.now());
      const m = await etcdMetrics();
      slowWatchers = m ? (promValue(m, 'etcd_debugging_mvcc_slow_watcher_total') ?? 0) : NaN;
      if (Number.isFinite(slowWatchers)) slowWatchersMax = Math.max(slowWatchersMax ?? 0, slowWatchers);
      if (line() >= o.runs) break;
    }
    await submitting;
    if (submitFailed) throw submitFailed;
    const ticks1 = new Map(pids.map((p) => [p.name, cpuTicks(p.pid)]));
    const load1 = loadavg()[0];
    const etcd1 = await etcdMetrics();
    if (abort.signal.aborted) throw new Error('pipelines: interrupted');

    // The records: every workflow, its step jobs and their task groups, from etcd.
    print('pipelines: reading the records (workflows, step jobs, task groups) from etcd');
    const workflows = new Map((await store.listAll<WorkflowRecord>(store.keys.workflows(), PAGE)).items.map((kv) => [kv.value.id, kv.value]));
    const jobs = new Map((await store.listAll<JobRecord>(store.keys.jobs(), PAGE)).items.map((kv) => [kv.value.id, kv.value]));
    const firstStart = new Map<string, number>();
    for (const kv of (await store.listAll<GroupStatus>(`${store.keys.root}groups/`, PAGE)).items) {
      const g = kv.value;
      for (const t of g.tasks ?? []) if (t.startedAt !== undefined && t.startedAt < (firstStart.get(g.jobId) ?? Infinity)) firstStart.set(g.jobId, t.startedAt);
    }
    const runs: RunRecord[] = [];
    let succeeded = 0;
    let failed = 0;
    let lost = 0;
    let lastEnd = first;
    const stretch: number[] = [];
    const bounds = plans.map((p, r) => ({
      submittedAfterS: (submittedAt[r] - first) / 1000,
      criticalPathS: criticalPathSeconds(p),
      taskSeconds: taskSecondsOf(p),
    }));
    ids.forEach((id, r) => {
      const w = id ? workflows.get(id) : undefined;
      if (!w || !TERMINAL.has(w.phase)) {
        lost++;
        return;
      }
      if (w.phase === 'Succeeded') succeeded++;
      else failed++;
      if (w.finishedAt) {
        lastEnd = Math.max(lastEnd, w.finishedAt);
        stretch.push((w.finishedAt - submittedAt[r]) / 1000 / bounds[r].criticalPathS);
      }
      runs.push({
        createdAt: w.createdAt,
        steps: w.steps.map((s) => ({
          name: s.name,
          dependsOn: s.dependsOn,
          endedAt: s.jobId ? jobs.get(s.jobId)?.finishedAt : undefined,
          firstTaskStartedAt: s.jobId ? firstStart.get(s.jobId) : undefined,
          createdAt: s.jobId ? jobs.get(s.jobId)?.createdAt : undefined,
          queuedAt: s.jobId ? jobs.get(s.jobId)?.queuedAt : undefined,
          boundAt: s.jobId ? jobs.get(s.jobId)?.startedAt : undefined,
        })),
      });
    });
    const lat = stepLatencies(runs);
    const wallS = (performance.now() - t0) / 1000;
    const cpuSeconds: Record<string, number> = {};
    for (const p of pids) {
      const a = ticks0.get(p.name);
      const b = ticks1.get(p.name);
      if (a !== undefined && b !== undefined) cpuSeconds[p.name] = (b - a) / 100;
    }
    const figures: PipelinesFigures = {
      runs: o.runs,
      succeeded,
      failed,
      lost,
      makespanS: (lastEnd - first) / 1000,
      bounds: lowerBounds(bounds, o.nodes * TASKS_PER_NODE),
      runStretch: spread(stretch),
      cpuSeconds,
      wallS,
      latency: { afterInputs: spread(lat.afterInputsMs), roots: spread(lat.rootsMs), unmeasured: lat.unmeasured, stages: mapStages(lat.stagesMs) },
      load: [load0, load1],
      ...(etcd0 && etcd1 ? { etcd: { ...etcdFigures(etcd0, etcd1), ...(slowWatchersMax !== undefined ? { slowWatchersMax } : {}) } } : {}),
    };
    const rows = pipelinesRows(figures);
    print(`pipelines summary: ${o.runs} runs × ${o.steps} steps, fan-out ${o.fanout}, ${o.nodes} nodes, ${refused} submits refused (429/503) and sent again`);
    print(formatPipelinesSummary(rows));
    for (const v of verdictLines(rows)) print(v);
    return { bench: 'pipelines', options: o, tasks, refused, figures, summary: rows };
  } finally {
    if (savedArchive === undefined) delete process.env.BATCH_ARCHIVE_AFTER;
    else process.env.BATCH_ARCHIVE_AFTER = savedArchive;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const close of closers.reverse()) await close().catch(() => undefined);
    if (cluster) {
      const hard = setTimeout(() => cluster?.kill(), 30_000);
      await cluster.stop();
      clearTimeout(hard);
    }
    rmSync(postgresDataDir(dir), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
