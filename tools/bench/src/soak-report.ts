/**
 * The pure parts of `bench soak`: its options and their defaults, Prometheus text and histogram
 * quantiles, the periodic line, the verdict of each target and the summary table. No I/O, no
 * clock: the soak run (soak.ts) passes in what it measured.
 */

/** Options of `bench soak`, as given (`--name value`); unset ones take their defaults (`resolveSoakOptions`). */
export interface SoakOptionsInput {
  /** One-task jobs to submit. @default 200000 */ jobs?: number;
  /** Jobs per second offered. @default 500 */ rate?: number;
  /** Cap on the whole run, in minutes (at most 60). @default enough for `jobs` at `rate` plus the drain, at most 60 */ minutes?: number;
  /** Jobs per `POST /v1/jobs:batch` (1–1000). @default rate / 4, at most 1000 */ chunk?: number;
  /** `POST /v1/jobs:batch` requests in flight at once. @default 8 */ concurrency?: number;
  /** Simulated nodes (32 cores each; a task asks 100m). @default 50 */ nodes?: number;
  /** Array jobs submitted along the way. @default 3 */ arrays?: number;
  /** Tasks of each array job. @default 1000 */ arrayTasks?: number;
  /** Workflows (a → b, c) submitted along the way. @default 2 */ workflows?: number;
  /** Seconds each task "runs" on its simulated node. @default 1 */ taskSeconds?: number;
  /** `BATCH_ARCHIVE_AFTER` of the cluster, in seconds. @default 5 */ archiveAfter?: number;
  /** Samples per second of each read (`GET /v1/jobs`, `…/tasks`, `/v1/queues`). @default 2 */ readsPerSecond?: number;
  /** Seconds between periodic lines. @default 10 */ every?: number;
}

/** Options of `bench soak` with every default applied. */
export type SoakOptions = Required<SoakOptionsInput> & {
  /** Seconds kept at the end of the cap for the drain: submitting stops this long before the cap. */
  drainSeconds: number;
};

/** The longest run `--minutes` may ask for. */
export const MAX_SOAK_MINUTES = 60;

/**
 * Applies the defaults and checks the options; throws an Error naming the option.
 * The default cap is the submit time (`jobs / rate`) × 1.5 plus 3 minutes for start and drain, at most 60 minutes.
 */
export function resolveSoakOptions(i: SoakOptionsInput): SoakOptions {
  const jobs = i.jobs ?? 200_000;
  const rate = i.rate ?? 500;
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error('--jobs must be a whole number ≥ 1');
  if (!(rate > 0)) throw new Error('--rate must be > 0 (jobs per second)');
  const chunk = i.chunk ?? Math.min(1000, Math.max(1, Math.round(rate / 4)));
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > 1000) throw new Error('--chunk must be a whole number from 1 to 1000 (jobs per POST /v1/jobs:batch)');
  const concurrency = i.concurrency ?? 8;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error('--concurrency must be a whole number ≥ 1');
  const minutes = i.minutes ?? Math.min(MAX_SOAK_MINUTES, Math.ceil(((jobs / rate) * 1.5 + 180) / 60));
  if (!(minutes > 0) || minutes > MAX_SOAK_MINUTES) throw new Error(`--minutes must be > 0 and at most ${MAX_SOAK_MINUTES}`);
  const every = i.every ?? 10;
  if (!(every > 0)) throw new Error('--every must be > 0 (seconds between lines)');
  return {
    jobs,
    rate,
    minutes,
    chunk,
    concurrency,
    nodes: i.nodes ?? 50,
    arrays: i.arrays ?? 3,
    arrayTasks: i.arrayTasks ?? 1000,
    workflows: i.workflows ?? 2,
    taskSeconds: i.taskSeconds ?? 1,
    archiveAfter: i.archiveAfter ?? 5,
    readsPerSecond: i.readsPerSecond ?? 2,
    every,
    // a quarter of the cap, at most 2 minutes: long enough for the last jobs to run and be archived
    drainSeconds: Math.min(120, minutes * 15),
  };
}

/**
 * The value of each sample of `name` in a Prometheus text exposition, summed over its labels
 * when `labels` is not given; only samples whose labels include `labels` otherwise.
 */
export function promValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).some(([k, v]) => have[k] !== v)) continue;
    sum = (sum ?? 0) + Number(m[4]);
  }
  return sum;
}

/** A histogram's cumulative buckets: `le` (seconds; Infinity for `+Inf`) and the count at or below it. */
export type Buckets = Array<{ le: number; count: number }>;

/** The cumulative buckets of histogram `name` in a Prometheus text exposition, by ascending `le`. */
export function promBuckets(text: string, name: string): Buckets {
  const out: Buckets = [];
  const re = new RegExp(`^${name}_bucket\\{(?:[^}]*,)?le="([^"]+)"[^}]*\\}\\s+(\\S+)`);
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (m) out.push({ le: m[1] === '+Inf' ? Infinity : Number(m[1]), count: Number(m[2]) });
  }
  return out.sort((a, b) => a.le - b.le);
}

/** `now − before`, bucket by bucket: the observations between two scrapes. */
export function bucketDelta(now: Buckets, before: Buckets | undefined): Buckets {
  return now.map((b) => ({ le: b.le, count: b.count - (before?.find((x) => x.le === b.le)?.count ?? 0) }));
}

/** The share (0–1) of a histogram's observations at or below `le`, one of its bounds; NaN without observations. */
export function shareAtOrBelow(buckets: Buckets, le: number): number {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  const at = buckets.find((b) => b.le === le);
  return total > 0 && at ? at.count / total : NaN;
}

/**
 * The q-quantile (0–1) of a histogram as Prometheus' `histogram_quantile` estimates it: linear
 * within the bucket it falls in (the first bucket starts at 0); the highest finite bound when it
 * falls in `+Inf`; NaN without observations.
 */
export function histogramQuantile(buckets: Buckets, q: number): number {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower;
      return b.count === below ? b.le : lower + ((b.le - lower) * (rank - below)) / (b.count - below);
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}

/** What one periodic sample saw. */
export interface SoakSample {
  /** Seconds since the load began. */
  elapsedS: number;
  /** One-task jobs sent at least once, and accepted (201, or 200 for a retry of an accepted one). */
  submitted: number;
  accepted: number;
  /** 429 and 503 answers so far (whole requests and single entries). */
  refused429: number;
  refused503: number;
  /** etcd's database file, and the part of it in use, in bytes. */
  etcdDbBytes?: number;
  etcdDbInUseBytes?: number;
  /** etcd's current revision (`etcd_debugging_mvcc_current_revision`): every write since the start adds one. */
  etcdRevision?: number;
  /** Resident memory of each process of the cluster by name, in bytes (services and etcd). */
  rssBytes: Record<string, number | undefined>;
  /** V8 heap in use of each service by name (`nodejs_heap_size_used_bytes`), in bytes: what RSS holds that is not garbage yet to be collected. */
  heapUsedBytes?: Record<string, number | undefined>;
  /** `jobs/` keys in etcd (live and finished jobs not yet archived). */
  liveJobs?: number;
  /** Rows of history's `jobs` table. */
  archivedJobs?: number;
  /** Finished jobs waiting for the archiver, as of its last pass (`batch_archive_pending_jobs`). */
  archivePending?: number;
  /** p99 of the archive lag (end → history row) of the jobs archived since the last line, seconds, and how many they were. */
  archiveLagP99S?: number;
  archivedSinceLast?: number;
  /** Share of the jobs the archiver removed since the last line within 10 s of their end (`batch_archive_lag_seconds`, whose bucket bounds include 10). */
  archiveLagUnder10s?: number;
  /** p99 of each read over the samples since the last line, ms, and how many were taken. */
  readP99Ms: Record<ReadName, number>;
  reads: number;
}

/** The reads sampled under the load. */
export const READS = ['jobs', 'tasks', 'queues'] as const;
export type ReadName = (typeof READS)[number];
/** What each read asks for, as printed. */
export const READ_PATHS: Record<ReadName, string> = { jobs: 'GET /v1/jobs?limit=50', tasks: 'GET /v1/jobs/:id/tasks', queues: 'GET /v1/queues' };

const MiB = 2 ** 20;
const mib = (b: number | undefined) => (b === undefined ? '?' : (b / MiB).toFixed(b < 10 * MiB ? 1 : 0));
const int = (n: number | undefined) => (n === undefined ? '?' : Math.round(n).toLocaleString('en-US'));
const ms = (x: number) => (Number.isNaN(x) ? '-' : x < 10 ? x.toFixed(1) : Math.round(x).toString());
const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : `${(x * 100).toFixed(1)}%`);
const secs = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));

/** The periodic line: one sample, every figure named, sizes in MiB, times in ms unless marked s. */
export function formatSample(s: SoakSample): string {
  const rss = Object.entries(s.rssBytes)
    .map(([name, b]) => `${name} ${mib(b)}`)
    .join(' ');
  return (
    `soak ${Math.round(s.elapsedS)}s: submitted ${int(s.submitted)} accepted ${int(s.accepted)} (429×${s.refused429} 503×${s.refused503})` +
    ` | etcd db ${mib(s.etcdDbBytes)} MiB (in use ${mib(s.etcdDbInUseBytes)}, revision ${int(s.etcdRevision)})` +
    ` | rss MiB ${rss}` +
    (s.heapUsedBytes
      ? ` | heap used MiB ${Object.entries(s.heapUsedBytes)
          .map(([name, b]) => `${name} ${mib(b)}`)
          .join(' ')}`
      : '') +
    ` | jobs live ${int(s.liveJobs)} archived ${int(s.archivedJobs)} awaiting archive ${int(s.archivePending)}` +
    ` | archive lag p99 ${secs(s.archiveLagP99S)} s of ${int(s.archivedSinceLast)}, ≤ 10 s ${pct(s.archiveLagUnder10s)}` +
    ` | p99 ms list ${ms(s.readP99Ms.jobs)} tasks ${ms(s.readP99Ms.tasks)} queues ${ms(s.readP99Ms.queues)} (${s.reads} reads)`
  );
}

/** What the whole run measured, for the summary. */
export interface SoakFigures {
  /** The largest etcd database seen, and the last, in bytes. */
  etcdDbPeakBytes?: number;
  etcdDbFinalBytes?: number;
  /** etcd revisions (transactions: one writes many keys) over the run per accepted one-task job, arrays' and workflows' included. */
  etcdRevisionsPerJob?: number;
  /** The largest RSS seen of each service (not etcd), in bytes. */
  serviceRssPeakBytes: Record<string, number | undefined>;
  /** Archive lag p99 over every archived job, seconds, and where it comes from. */
  archiveLagP99S?: number;
  archiveLagSource: string;
  /** p99 of each read over the run, ms, and how many answered 2xx. */
  readP99Ms: Record<ReadName, number>;
  readCounts: Record<ReadName, number>;
  /** Accepted jobs found neither in history nor in etcd. */
  lost: number;
  /** Accepted jobs (one-task and arrays) found, whatever their phase, and those not `Succeeded`. */
  accepted: number;
  notSucceeded: number;
  /** Workflows accepted, and those not `Succeeded`. */
  workflows: number;
  workflowsNotSucceeded: number;
  /** Whether the accounting covered every accepted job (false: the run was cut short before it). */
  verified: boolean;
}

/** One row of the summary: what it measures, the target, the figure, PASS/MISS (or blank without a target). */
export interface SummaryRow {
  figure: string;
  target: string;
  measured: string;
  verdict: 'PASS' | 'MISS' | '';
}

const verdict = (ok: boolean | undefined): SummaryRow['verdict'] => (ok === undefined ? '' : ok ? 'PASS' : 'MISS');
/** Targets of issue 20 ("Measured, in a benchmark"). */
export const SOAK_TARGETS = { etcdDbBytes: 256 * MiB, serviceRssBytes: 300 * MiB, archiveLagP99S: 10, listP99Ms: 100, lost: 0 };

/** The summary's rows: each target of the issue beside the measured figure, and the figures without a target. A figure not measured is a MISS. */
export function summaryRows(f: SoakFigures): SummaryRow[] {
  const t = SOAK_TARGETS;
  const within = (x: number | undefined, max: number, strict = false) => x !== undefined && !Number.isNaN(x) && (strict ? x < max : x <= max);
  const rows: SummaryRow[] = [
    {
      figure: 'etcd DB size, peak',
      target: `≤ ${mib(t.etcdDbBytes)} MiB`,
      measured: `${mib(f.etcdDbPeakBytes)} MiB (final ${mib(f.etcdDbFinalBytes)} MiB)`,
      verdict: verdict(within(f.etcdDbPeakBytes, t.etcdDbBytes)),
    },
    {
      figure: 'etcd revisions per job',
      target: '—',
      measured: f.etcdRevisionsPerJob === undefined ? '?' : f.etcdRevisionsPerJob.toFixed(1),
      verdict: '',
    },
  ];
  for (const [name, b] of Object.entries(f.serviceRssPeakBytes))
    rows.push({
      figure: `RSS ${name}, peak`,
      target: `≤ ${mib(t.serviceRssBytes)} MiB`,
      measured: `${mib(b)} MiB`,
      verdict: verdict(within(b, t.serviceRssBytes)),
    });
  rows.push({
    figure: 'archive lag p99',
    target: `< ${t.archiveLagP99S} s`,
    measured: `${secs(f.archiveLagP99S)} s (${f.archiveLagSource})`,
    verdict: verdict(within(f.archiveLagP99S, t.archiveLagP99S, true)),
  });
  for (const r of READS)
    rows.push({
      figure: `${READ_PATHS[r]} p99`,
      target: r === 'jobs' ? `< ${t.listP99Ms} ms` : '—',
      measured: `${ms(f.readP99Ms[r])} ms (${f.readCounts[r]} reads)`,
      verdict: r === 'jobs' ? verdict(within(f.readP99Ms[r], t.listP99Ms, true)) : '',
    });
  rows.push({
    figure: 'lost jobs',
    target: `${t.lost}`,
    measured: f.verified ? `${f.lost} of ${int(f.accepted)} accepted` : `not verified (run cut short)`,
    verdict: verdict(f.verified && f.lost === t.lost),
  });
  rows.push({
    figure: 'jobs not Succeeded',
    target: '0',
    measured: f.verified ? `${f.notSucceeded}` : 'not verified',
    verdict: verdict(f.verified && f.notSucceeded === 0),
  });
  rows.push({
    figure: 'workflows not Succeeded',
    target: '0',
    measured: f.verified ? `${f.workflowsNotSucceeded} of ${f.workflows}` : 'not verified',
    verdict: verdict(f.verified && f.workflowsNotSucceeded === 0),
  });
  return rows;
}

/** The summary as a Markdown table (what docs/benchmarks.md shows). */
export function formatSummary(rows: SummaryRow[]): string {
  const lines = ['| figure | target | measured | |', '|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.figure} | ${r.target} | ${r.measured} | ${r.verdict} |`);
  return lines.join('\n');
}

/**
 * Tallies accepted job ids against history's rows and etcd's live jobs, both by id in byte order
 * (`COLLATE "C"`; ids are ASCII, so JavaScript's default sort gives the same order).
 * `history` yields (id, phase) ascending, an id twice when it was archived twice.
 */
export class Accounting {
  lost = 0;
  succeeded = 0;
  /** Phases of found jobs that are not `Succeeded`, with their counts. */
  readonly otherPhases: Record<string, number> = {};
  /** Accepted jobs still in etcd (with a terminal phase or not). */
  stillLive = 0;
  /** History rows whose id occurs more than once. */
  duplicates = 0;
  /** History rows for jobs not accepted by this run (workflow steps). */
  others = 0;
  private i = 0;
  private last?: string;

  /** @param accepted - accepted ids, sorted ascending; @param live - phase of each job still in etcd */
  constructor(
    private readonly accepted: readonly string[],
    private readonly live: ReadonlyMap<string, string>,
  ) {}

  /** One history row, in id order. */
  row(id: string, phase: string): void {
    if (id === this.last) {
      this.duplicates++;
      return;
    }
    this.last = id;
    while (this.i < this.accepted.length && this.accepted[this.i] < id) this.missing(this.accepted[this.i++]);
    if (this.i < this.accepted.length && this.accepted[this.i] === id) {
      this.i++;
      this.found(phase);
    } else this.others++;
  }

  /** After the last row: every accepted id left is live or lost. */
  finish(): this {
    while (this.i < this.accepted.length) this.missing(this.accepted[this.i++]);
    return this;
  }

  get notSucceeded(): number {
    return Object.values(this.otherPhases).reduce((a, b) => a + b, 0);
  }

  private missing(id: string): void {
    const phase = this.live.get(id);
    if (phase === undefined) this.lost++;
    else {
      this.stillLive++;
      this.found(phase);
    }
  }

  private found(phase: string): void {
    if (phase === 'Succeeded') this.succeeded++;
    else this.otherPhases[phase] = (this.otherPhases[phase] ?? 0) + 1;
  }
}

/** etcd writes per accepted job over the run: (last revision − first revision) / accepted; undefined without two revisions or a job. */
export function revisionsPerJob(samples: ReadonlyArray<Pick<SoakSample, 'etcdRevision'>>, accepted: number): number | undefined {
  const revs = samples.map((s) => s.etcdRevision).filter((r): r is number => r !== undefined);
  if (revs.length < 2 || accepted <= 0) return undefined;
  return (revs[revs.length - 1] - revs[0]) / accepted;
}
