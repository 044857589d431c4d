/**
 * `bench soak`: many separate one-task jobs (plus a few arrays and workflows) at a steady rate
 * through the local cluster with a real PostgreSQL history and simulated nodes, to see whether
 * etcd and the services stay flat while finished jobs move to history (issue 20, "Measured, in a
 * benchmark"). Every `--every` seconds one line: submitted/accepted, etcd's database size, each
 * process's RSS, live vs archived jobs, archive lag p99 and the p99 of three reads sampled under the
 * load. At the end it drains (bounded), accounts for every accepted job and prints the issue's
 * targets beside the figures, PASS or MISS: it measures, it does not assert.
 *
 * The cluster gets `BATCH_ARCHIVE_AFTER` through this process's environment, which the local
 * cluster hands to its services; the services' pids come from the cluster's lock file.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobRecord } from '@batchapi/api';
import { LocalCluster, postgresDataDir } from '@batchapi/cli';
import { createHistoryPool } from '@batchapi/history';
import { EtcdStore } from '@batchapi/store';
import { Pool } from 'undici';
import { percentile, progress, rng } from './rng';
import {
  Accounting,
  type Buckets,
  bucketDelta,
  formatSample,
  formatSummary,
  histogramQuantile,
  promBuckets,
  shareAtOrBelow,
  promValue,
  type ReadName,
  READS,
  resolveSoakOptions,
  type SoakFigures,
  type SoakOptionsInput,
  type SoakSample,
  revisionsPerJob,
  summaryRows,
} from './soak-report';
import { BatchSubmitter } from './soak-submit';

/** Options of `benchSoak`: the command's options, and where its lines go. */
export interface SoakRunOptions extends SoakOptionsInput {
  /** Where the periodic lines and the summary go. @default stderr */
  print?: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

export async function benchSoak(input: SoakRunOptions): Promise<Record<string, unknown>> {
  const o = resolveSoakOptions(input);
  const print = input.print ?? progress;
  const t0 = performance.now();
  const deadline = t0 + o.minutes * 60_000;
  const abort = new AbortController();
  let cluster: LocalCluster | undefined;
  const onSignal = () => {
    if (abort.signal.aborted) cluster?.kill();
    else {
      print('soak: interrupted: stopping the cluster (again to kill it)');
      abort.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const dir = mkdtempSync(join(tmpdir(), 'batch-soak-'));
  const closers: Array<() => Promise<unknown>> = [];
  try {
    print(
      `soak: ${o.jobs} one-task jobs at ${o.rate}/s in chunks of ${o.chunk} (${o.concurrency} in flight), ${o.arrays} arrays of ${o.arrayTasks}, ` +
        `${o.workflows} workflows; ${o.nodes} simulated nodes; BATCH_ARCHIVE_AFTER ${o.archiveAfter} s; cap ${o.minutes} min`,
    );
    cluster = await startCluster(o.nodes, o.archiveAfter, dir, abort.signal);
    const c = cluster;
    if (!c.historyUrl) throw new Error('soak needs the history store: PostgreSQL did not start (see "no history" above); install Debian\'s postgresql');
    const store = new EtcdStore({ endpoints: c.etcd!.endpoints, callTimeoutMs: 10_000 });
    closers.push(() => store.close());
    const sql = createHistoryPool(c.historyUrl, { maxConnections: 2, statementTimeoutMs: 300_000 });
    closers.push(() => sql.end());
    const pids = clusterPids(dir);
    const auth = { authorization: `Bearer ${c.tenantToken}`, 'content-type': 'application/json' };

    const job = { name: 'soak', tasks: 1, command: ['true'], resources: { cpu: '100m', memory: '64Mi' }, env: { BATCH_SIM_SECONDS: String(o.taskSeconds) } };
    const run = Date.now().toString(36);
    const submitter = new BatchSubmitter({
      url: c.apiUrl,
      token: c.tenantToken,
      jobs: o.jobs,
      rate: o.rate,
      chunk: o.chunk,
      concurrency: o.concurrency,
      job: () => ({ ...job, labels: { bench: 'soak' } }),
      key: (i) => `soak-${run}-${i}`,
    });
    closers.push(() => submitter.close());
    const api = new Pool(c.apiUrl, { connections: 4, headersTimeout: 10_000, bodyTimeout: 10_000 });
    closers.push(() => api.close());

    // Reads under the load: each of the three in turn, `readsPerSecond` of each per second.
    const rand = rng(20);
    const readMs: Record<ReadName, number[]> = { jobs: [], tasks: [], queues: [] };
    const windowMs: Record<ReadName, number[]> = { jobs: [], tasks: [], queues: [] };
    const readErrors: Record<string, number> = {};
    let loadDone = false;
    let sampling = true;
    const reader = (async () => {
      for (let k = 0; sampling && !abort.signal.aborted; k++) {
        const which = READS[k % READS.length];
        const id = which === 'tasks' ? submitter.randomAcceptedId(rand) : undefined;
        const path = which === 'jobs' ? '/v1/jobs?limit=50' : which === 'queues' ? '/v1/queues' : id ? `/v1/jobs/${id}/tasks` : undefined;
        const begin = performance.now();
        if (path) {
          const status = await api.request({ path, method: 'GET', headers: auth }).then(
            async (r) => (await r.body.text(), r.statusCode),
            () => 0,
          );
          const took = performance.now() - begin;
          if (status >= 200 && status < 300) {
            readMs[which].push(took);
            windowMs[which].push(took);
          } else readErrors[`${which} ${status || 'network'}`] = (readErrors[`${which} ${status || 'network'}`] ?? 0) + 1;
        }
        await sleep(1000 / (o.readsPerSecond * READS.length) - (performance.now() - begin));
      }
    })();

    // The periodic line.
    const loadStart = performance.now();
    const samples: SoakSample[] = [];
    let lagBefore: Buckets | undefined;
    let reads = 0;
    let sampledAt = Date.now();
    /** The longest archive lag seen so far, seconds: how far back the next line looks for the ends of jobs archived since. */
    let longestLagS = o.archiveAfter;
    const sample = async (): Promise<SoakSample> => {
      // Jobs archived since the last line, found by the index on their end (no index on archived_at): those
      // that ended since the last line minus the longest lag seen so far plus a minute, so a growing lag is still seen.
      const since = sampledAt;
      sampledAt = Date.now();
      const [etcdMetrics, quotaMetrics, liveJobs, archived, lagRow] = await Promise.all([
        text(`${c.etcd!.endpoints[0]}/metrics`),
        text(`${c.urls.get('quota')}/metrics`),
        store.client
          .getAll()
          .prefix(store.keys.jobs())
          .count()
          .catch(() => undefined),
        sql.query<{ n: string }>('SELECT count(*) AS n FROM jobs').then(
          (r) => Number(r.rows[0].n),
          () => undefined,
        ),
        sql
          .query<{ p99: number | null; max: number | null; n: number }>(
            `SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM archived_at - finished_at))::float8 AS p99,
                    max(extract(epoch FROM archived_at - finished_at))::float8 AS max, count(*)::int AS n
               FROM jobs WHERE finished_at > $1 AND archived_at > $2`,
            [new Date(since - (longestLagS + 60) * 1000), new Date(since)],
          )
          .then(
            (r) => r.rows[0],
            () => undefined,
          ),
      ]);
      const lag = quotaMetrics ? promBuckets(quotaMetrics, 'batch_archive_lag_seconds') : [];
      const heaps = await Promise.all(
        [...c.urls].map(async ([name, url]) => {
          const m = name === 'quota' ? quotaMetrics : await text(`${url}/metrics`);
          return [name, m ? promValue(m, 'nodejs_heap_size_used_bytes') : undefined] as const;
        }),
      );
      const s: SoakSample = {
        elapsedS: (performance.now() - loadStart) / 1000,
        submitted: submitter.submitted,
        accepted: submitter.accepted,
        refused429: submitter.refused429,
        refused503: submitter.refused503,
        etcdDbBytes: etcdMetrics ? promValue(etcdMetrics, 'etcd_mvcc_db_total_size_in_bytes') : undefined,
        etcdDbInUseBytes: etcdMetrics ? promValue(etcdMetrics, 'etcd_mvcc_db_total_size_in_use_in_bytes') : undefined,
        etcdRevision: etcdMetrics ? promValue(etcdMetrics, 'etcd_debugging_mvcc_current_revision') : undefined,
        rssBytes: Object.fromEntries(pids.map((p) => [p.name, rssOf(p.pid)])),
        heapUsedBytes: Object.fromEntries(heaps),
        liveJobs,
        archivedJobs: archived,
        archivePending: quotaMetrics ? promValue(quotaMetrics, 'batch_archive_pending_jobs') : undefined,
        archiveLagP99S: lagRow?.p99 ?? undefined,
        archivedSinceLast: lagRow?.n,
        archiveLagUnder10s: lag.length ? shareAtOrBelow(bucketDelta(lag, lagBefore), 10) : undefined,
        readP99Ms: {
          jobs: percentile(sorted(windowMs.jobs), 99),
          tasks: percentile(sorted(windowMs.tasks), 99),
          queues: percentile(sorted(windowMs.queues), 99),
        },
        reads: windowMs.jobs.length + windowMs.tasks.length + windowMs.queues.length,
      };
      if (lag.length) lagBefore = lag;
      longestLagS = Math.max(longestLagS, lagRow?.max ?? 0);
      reads += s.reads;
      for (const r of READS) windowMs[r] = [];
      samples.push(s);
      print(formatSample(s));
      return s;
    };
    const sampler = (async () => {
      for (let n = 1; sampling && !abort.signal.aborted; n++) {
        await sleepUntil(loadStart + n * o.every * 1000, () => !sampling || abort.signal.aborted);
        if (sampling && !abort.signal.aborted) await sample();
      }
    })();

    // A few arrays and workflows along the way: the k-th when that share of the one-task jobs is sent.
    const arrayIds: string[] = [];
    const workflowIds: string[] = [];
    const extras = (async () => {
      const plan = [
        ...Array.from({ length: o.arrays }, (_, k) => ({ kind: 'array' as const, k, at: Math.floor((o.jobs * (k + 1)) / (o.arrays + 1)) })),
        ...Array.from({ length: o.workflows }, (_, k) => ({ kind: 'workflow' as const, k, at: Math.floor((o.jobs * (2 * k + 1)) / (2 * o.workflows)) })),
      ].sort((a, b) => a.at - b.at);
      for (const p of plan) {
        while (submitter.submitted < p.at && !abort.signal.aborted && performance.now() < deadline && !loadDone) await sleep(100);
        if (abort.signal.aborted || performance.now() >= deadline) return;
        const sim = { resources: { cpu: '100m', memory: '64Mi' }, command: ['true'], env: { BATCH_SIM_SECONDS: String(o.taskSeconds) } };
        const body =
          p.kind === 'array'
            ? { name: 'soak-array', tasks: o.arrayTasks, ...sim, labels: { bench: 'soak' } }
            : {
                name: 'soak-workflow',
                steps: [
                  { name: 'a', dependsOn: [], job: { tasks: 10, ...sim } },
                  { name: 'b', dependsOn: ['a'], job: { tasks: 10, ...sim } },
                  { name: 'c', dependsOn: ['a'], job: { tasks: 10, ...sim } },
                ],
              };
        const id = await submitOne(
          api,
          auth,
          p.kind === 'array' ? '/v1/jobs' : '/v1/workflows',
          body,
          `soak-${run}-${p.kind}-${p.k}`,
          deadline,
          abort.signal,
          submitter,
        );
        if (id) (p.kind === 'array' ? arrayIds : workflowIds).push(id);
      }
    })();

    const sendSeconds = await submitter.run(deadline - o.drainSeconds * 1000, abort.signal);
    const loadSeconds = (performance.now() - loadStart) / 1000;
    loadDone = true;
    await extras;
    print(
      `soak: load done in ${loadSeconds.toFixed(0)} s: ${submitter.accepted}/${o.jobs} accepted, ${arrayIds.length} arrays, ${workflowIds.length} workflows; draining`,
    );

    // Drain: until etcd holds no job and no workflow (all archived), or the cap.
    let drained = false;
    while (!abort.signal.aborted && performance.now() < deadline) {
      const [jobs, workflows] = await Promise.all([
        store.client.getAll().prefix(store.keys.jobs()).count(),
        store.client.getAll().prefix(store.keys.workflows()).count(),
      ]).catch(() => [1, 1]);
      if (jobs === 0 && workflows === 0) {
        drained = true;
        break;
      }
      await sleep(1000);
    }
    const drainSeconds = (performance.now() - loadStart) / 1000 - loadSeconds;
    sampling = false;
    await sampler;
    await reader;
    const last = abort.signal.aborted ? undefined : await sample();

    // Accounting: every accepted job in history or still in etcd, and its phase.
    let accounting: Accounting | undefined;
    const workflowPhases: Record<string, number> = {};
    let lagP99S: number | undefined;
    let lagWithinTarget: number | undefined;
    if (!abort.signal.aborted) {
      print('soak: accounting for every accepted job (history by id, then etcd)');
      const accepted = [...submitter.ids.filter((x): x is string => x !== undefined), ...arrayIds].sort();
      const live = new Map((await store.listAll<JobRecord>(store.keys.jobs())).items.map((j) => [j.value.id, j.value.phase] as const));
      accounting = new Accounting(accepted, live);
      for (let after = ''; ;) {
        const { rows } = await sql.query<{ id: string; phase: string }>(
          'SELECT id, phase FROM jobs WHERE id COLLATE "C" > $1 ORDER BY id COLLATE "C", finished_at LIMIT 20000',
          [after],
        );
        for (const r of rows) accounting.row(r.id, r.phase);
        if (rows.length < 20000) break;
        after = rows[rows.length - 1].id;
      }
      accounting.finish();
      for (const id of workflowIds) {
        const phase = await api.request({ path: `/v1/workflows/${id}`, method: 'GET', headers: auth }).then(
          async (r) => (r.statusCode === 200 ? ((await r.body.json()) as { phase: string }).phase : (await r.body.text(), `HTTP ${r.statusCode}`)),
          () => 'unreachable',
        );
        workflowPhases[phase] = (workflowPhases[phase] ?? 0) + 1;
      }
      const lag = await sql.query<{ p99: number | null; within: number | null }>(
        `SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM archived_at - finished_at))::float8 AS p99,
                avg((archived_at - finished_at < interval '10 seconds')::int)::float8 AS within FROM jobs`,
      );
      lagP99S = lag.rows[0].p99 ?? undefined;
      lagWithinTarget = lag.rows[0].within ?? undefined;
    }

    // The summary.
    const services = pids.filter((p) => !p.name.startsWith('etcd')).map((p) => p.name);
    const peak = (f: (s: SoakSample) => number | undefined) =>
      samples.reduce<number | undefined>((m, s) => (f(s) === undefined ? m : Math.max(m ?? 0, f(s)!)), undefined);
    const histogramP99 = lagBefore ? histogramQuantile(lagBefore, 0.99) : undefined;
    const histogramUnder10s = lagBefore ? shareAtOrBelow(lagBefore, 10) : NaN;
    const figures: SoakFigures = {
      etcdDbPeakBytes: peak((s) => s.etcdDbBytes),
      etcdDbFinalBytes: last?.etcdDbBytes ?? samples[samples.length - 1]?.etcdDbBytes,
      etcdRevisionsPerJob: revisionsPerJob(samples, submitter.accepted),
      serviceRssPeakBytes: Object.fromEntries(services.map((n) => [n, peak((s) => s.rssBytes[n])])),
      archiveLagP99S: lagP99S ?? histogramP99,
      archiveLagSource:
        lagP99S !== undefined
          ? `end → history row over all ${last?.archivedJobs ?? '?'} archived jobs, ${((lagWithinTarget ?? 0) * 100).toFixed(2)}% under 10 s; ` +
            `batch_archive_lag_seconds: ${(histogramUnder10s * 100).toFixed(2)}% ≤ 10 s`
          : 'estimated from batch_archive_lag_seconds',
      readP99Ms: { jobs: percentile(sorted(readMs.jobs), 99), tasks: percentile(sorted(readMs.tasks), 99), queues: percentile(sorted(readMs.queues), 99) },
      readCounts: { jobs: readMs.jobs.length, tasks: readMs.tasks.length, queues: readMs.queues.length },
      lost: accounting?.lost ?? NaN,
      accepted: accounting ? submitter.accepted + arrayIds.length : 0,
      notSucceeded: accounting?.notSucceeded ?? NaN,
      workflows: workflowIds.length,
      workflowsNotSucceeded: workflowIds.length - (workflowPhases.Succeeded ?? 0),
      verified: accounting !== undefined,
    };
    const rows = summaryRows(figures);
    print(
      `soak summary: ${o.jobs} jobs offered at ${o.rate}/s; ${submitter.submitted} sent in ${sendSeconds.toFixed(0)} s ` +
        `(${Math.round(submitter.submitted / sendSeconds)}/s), ${submitter.accepted} accepted, 429×${submitter.refused429}, 503×${submitter.refused503}, ` +
        `${submitter.networkErrors} network errors, refused for good ${JSON.stringify(submitter.rejected)}; ` +
        `drain ${abort.signal.aborted ? 'skipped (interrupted)' : drained ? `done in ${drainSeconds.toFixed(0)} s` : `not done within the cap (${drainSeconds.toFixed(0)} s)`}`,
    );
    print(formatSummary(rows));
    if (abort.signal.aborted) throw new Error('soak: interrupted');
    return {
      bench: 'soak',
      options: o,
      sendSeconds: round(sendSeconds),
      achievedRate: Math.round(submitter.submitted / sendSeconds),
      submitted: submitter.submitted,
      accepted: submitter.accepted,
      refused429: submitter.refused429,
      refused503: submitter.refused503,
      networkErrors: submitter.networkErrors,
      rejected: submitter.rejected,
      notSent: submitter.unsent,
      arrays: arrayIds.length,
      workflows: workflowPhases,
      drained,
      drainSeconds: round(drainSeconds),
      reads,
      readErrors,
      accounting: accounting && {
        lost: accounting.lost,
        succeeded: accounting.succeeded,
        otherPhases: accounting.otherPhases,
        stillLive: accounting.stillLive,
        duplicates: accounting.duplicates,
        workflowStepJobs: accounting.others,
      },
      archiveLagWithin10s: lagWithinTarget,
      summary: rows,
      samples: samples.map((s) => ({ ...s, elapsedS: Math.round(s.elapsedS) })),
    };
  } finally {
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

/** The local cluster with `BATCH_ARCHIVE_AFTER` set: its services take this process's environment. */
async function startCluster(nodes: number, archiveAfter: number, dir: string, signal: AbortSignal): Promise<LocalCluster> {
  const saved = process.env.BATCH_ARCHIVE_AFTER;
  process.env.BATCH_ARCHIVE_AFTER = String(archiveAfter);
  try {
    return await LocalCluster.start({ dataDir: dir, executors: 0, simulatedNodes: nodes, history: true, signal, onStep: (s) => progress(`soak: ${s}`) });
  } finally {
    if (saved === undefined) delete process.env.BATCH_ARCHIVE_AFTER;
    else process.env.BATCH_ARCHIVE_AFTER = saved;
  }
}

/** The services' and etcd's pids, from the cluster's lock file (PostgreSQL left out: its server is many processes). */
export function clusterPids(dir: string): Array<{ name: string; pid: number }> {
  const lock = JSON.parse(readFileSync(join(dir, 'cluster.lock.json'), 'utf8')) as { processes: Array<{ name: string; pid: number }> };
  return lock.processes.filter((p) => p.name !== 'postgres').map(({ name, pid }) => ({ name, pid }));
}

/** Resident memory of a process in bytes (`VmRSS` of /proc/<pid>/status); undefined when it is gone. */
function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function text(url: string): Promise<string | undefined> {
  return fetch(url, { signal: AbortSignal.timeout(5000) }).then(
    (r) => (r.ok ? r.text() : undefined),
    () => undefined,
  );
}

async function sleepUntil(at: number, stop: () => boolean): Promise<void> {
  while (performance.now() < at && !stop()) await sleep(Math.min(250, at - performance.now()));
}

/** One submit (`POST /v1/jobs` or `/v1/workflows`) sent until answered 201/200, honouring Retry-After; the id, or undefined. */
async function submitOne(
  api: Pool,
  headers: Record<string, string>,
  path: string,
  body: unknown,
  key: string,
  deadline: number,
  signal: AbortSignal,
  counts: { refused429: number; refused503: number },
): Promise<string | undefined> {
  while (!signal.aborted && performance.now() < deadline) {
    const r = await api.request({ path, method: 'POST', headers: { ...headers, 'idempotency-key': key }, body: JSON.stringify(body) }).then(
      async (res) => ({ status: res.statusCode, retryAfter: Number(res.headers['retry-after']) || 1, text: await res.body.text() }),
      () => ({ status: 0, retryAfter: 1, text: '' }),
    );
    if (r.status === 201 || r.status === 200) return (JSON.parse(r.text) as { id: string }).id;
    if (r.status === 429) counts.refused429++;
    if (r.status === 503) counts.refused503++;
    if (r.status !== 0 && r.status !== 429 && r.status !== 503) {
      progress(`soak: ${path} answered ${r.status}: ${r.text.slice(0, 300)}`);
      return undefined;
    }
    await sleep(r.retryAfter * 1000);
  }
  return undefined;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
