/**
 * Usage from the history: what `GET /v1/usage` and `batch usage` answer, what chargeback and
 * capacity planning read (Slurm's `sreport`/`sacct`). Every task attempt that ended in the
 * window counts once, with its job's per-task resources for the time it ran:
 *
 *   cpuCoreHours   = Σ run_seconds × cpu_millicores / 1000 / 3600
 *   memoryGiBHours = Σ run_seconds × memory_bytes / 2^30 / 3600
 *   gpuHours       = Σ run_seconds × gpu_milli / 1000 / 3600   (by the node's GPU model with `gpuModel`)
 *   queue wait     = first attempts: bound − job queued, seconds (p50, p99)
 *
 * With a step, each group's hours are also summed step by step: an attempt counts in the step
 * `from + k × step` holding its end (PostgreSQL's `date_bin`), so the steps of a group add up to
 * its totals.
 *
 * Attempts are counted in the window of their end. Only archived jobs are counted: a job still
 * in etcd (running, or finished within `BATCH_ARCHIVE_AFTER`) is not in the history yet.
 */
import { MAX_USAGE_STEPS, type UsageGroupView, type UsagePointView } from '@batchapi/api';
import { InvalidHistoryRequestError } from './errors';

/** What usage is summed by: a job's tenant or queue, its node's GPU model, or one of its labels. */
export type UsageGroupBy = 'tenant' | 'queue' | 'gpuModel' | { label: string };

/** A usage question. Times are epoch milliseconds. */
export interface UsageQuery {
  /** Attempts that ended at or after this time. */
  from: number;
  /** Attempts that ended before this time; at most `MAX_USAGE_WINDOW_MS` after `from`. */
  to: number;
  groupBy: UsageGroupBy;
  /** Only this tenant's jobs. @default every tenant */
  tenant?: string;
  /** Only this queue's jobs. @default every queue */
  queue?: string;
  /** Also sum each group's hours by steps of this many milliseconds from `from`; at most `MAX_USAGE_STEPS` in the window. @default no steps */
  stepMs?: number;
}

/** One group's usage (`UsageGroupView` of the API). Hours are rounded to 1e-6. */
export type UsageRow = UsageGroupView;

/** Longest window of one usage question: 400 days. */
export const MAX_USAGE_WINDOW_MS = 400 * 86_400_000;
/** Most groups in one answer (the busiest first); `truncated` says more were left out. */
export const MAX_USAGE_GROUPS = 1000;

/** The SQL of a usage question and its parameters. */
export function usageSql(q: UsageQuery): { sql: string; params: unknown[] } {
  if (!Number.isFinite(q.from) || !Number.isFinite(q.to)) throw new InvalidHistoryRequestError('from and to must be times in epoch milliseconds', 'from');
  if (q.to <= q.from) throw new InvalidHistoryRequestError('to must be after from', 'to');
  if (q.to - q.from > MAX_USAGE_WINDOW_MS) throw new InvalidHistoryRequestError(`the window is over ${MAX_USAGE_WINDOW_MS / 86_400_000} days`, 'to');
  const params: unknown[] = [];
  const p = (v: unknown) => `$${params.push(v)}`;
  const from = p(new Date(q.from).toISOString());
  const to = p(new Date(q.to).toISOString());
  // A job finishes after each of its attempts ends: its partition key bounds the scan from below.
  const where = [
    `t.finished_at >= ${from}::timestamptz`,
    `j.finished_at >= ${from}::timestamptz`,
    `t.ended_at >= ${from}::timestamptz`,
    `t.ended_at < ${to}::timestamptz`,
  ];
  if (q.tenant !== undefined) where.push(`j.tenant = ${p(q.tenant)}`);
  if (q.queue !== undefined) where.push(`j.queue = ${p(q.queue)}`);
  const key =
    q.groupBy === 'tenant' ? 'j.tenant' : q.groupBy === 'queue' ? 'j.queue' : q.groupBy === 'gpuModel' ? 't.gpu_model' : `j.labels ->> ${p(q.groupBy.label)}`;
  const stepped = q.stepMs !== undefined;
  if (stepped) {
    if (!Number.isInteger(q.stepMs) || q.stepMs! < 1000)
      throw new InvalidHistoryRequestError('the step must be a whole number of milliseconds, at least 1000', 'step');
    if ((q.to - q.from) / q.stepMs! > MAX_USAGE_STEPS) throw new InvalidHistoryRequestError(`the window holds over ${MAX_USAGE_STEPS} steps`, 'step');
  }
  const hours = `sum(run_s * cpu) / 1000 / 3600 AS cpu_core_hours,
      sum(run_s * memory) / 1073741824 / 3600 AS memory_gib_hours,
      sum(run_s * gpu) / 1000 / 3600 AS gpu_hours,
      count(*) AS attempts`;
  // The step an attempt's end falls in, as epoch milliseconds of its start.
  const bucket = stepped
    ? `, extract(epoch FROM date_bin(make_interval(secs => ${p(q.stepMs! / 1000)}::float8), t.ended_at, ${from}::timestamptz)) * 1000 AS bucket`
    : '';
  // Each group's steps, one JSON array [start ms, core-h, GiB-h, GPU-h, attempts] per step, oldest first.
  // (Joined on the key and whether it is null, so that the join hashes: a null key is a group too.)
  const steps = stepped
    ? `, steps AS (
      SELECT key, json_agg(json_build_array(bucket, cpu_core_hours, memory_gib_hours, gpu_hours, attempts) ORDER BY bucket) AS series
      FROM (SELECT key, bucket, ${hours} FROM u GROUP BY key, bucket) b
      GROUP BY key
    )`
    : '';
  const series = stepped ? ', s.series' : '';
  const join = stepped ? `LEFT JOIN steps s ON coalesce(s.key, '') = coalesce(g.key, '') AND (s.key IS NULL) = (g.key IS NULL)` : '';
  const sql = `
    WITH u AS (
      SELECT ${key} AS key, t.state,
        coalesce(extract(epoch FROM t.ended_at - t.started_at), 0) AS run_s,
        coalesce((j.spec -> 'resources' ->> 'cpu')::float8, 0) AS cpu,
        coalesce((j.spec -> 'resources' ->> 'memory')::float8, 0) AS memory,
        coalesce((j.spec -> 'resources' ->> 'gpu')::float8, 0) AS gpu,
        CASE WHEN t.attempt = 1 THEN extract(epoch FROM t.bound_at - j.queued_at) END AS wait_s${bucket}
      FROM tasks t JOIN jobs j ON j.id = t.job_id AND j.finished_at = t.finished_at
      WHERE ${where.join(' AND ')}
    ), g AS (
      SELECT key,
        ${hours},
        count(*) FILTER (WHERE state = 'Succeeded') AS succeeded,
        count(*) FILTER (WHERE state = 'Failed') AS failed,
        count(*) FILTER (WHERE state = 'Preempted') AS preempted,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_s) AS wait_p50,
        percentile_cont(0.99) WITHIN GROUP (ORDER BY wait_s) AS wait_p99
      FROM u
      GROUP BY key
      ORDER BY gpu_hours DESC, cpu_core_hours DESC, key NULLS LAST
      LIMIT ${p(MAX_USAGE_GROUPS + 1)}
    )${steps}
    SELECT g.*${series}
    FROM g ${join}
    ORDER BY g.gpu_hours DESC, g.cpu_core_hours DESC, g.key NULLS LAST`;
  return { sql, params };
}

/** A row of `usageSql`'s answer. */
export interface UsageSqlRow {
  key: string | null;
  cpu_core_hours: number | string | null;
  memory_gib_hours: number | string | null;
  gpu_hours: number | string | null;
  attempts: string | number;
  succeeded: string | number;
  failed: string | number;
  preempted: string | number;
  wait_p50: number | string | null;
  wait_p99: number | string | null;
  /** With a step: [start ms, core-hours, GiB-hours, GPU-hours, attempts] per step, oldest first. */
  series?: Array<[number, number, number, number, number | string]> | null;
}

const round6 = (v: number | string | null) => Math.round(Number(v ?? 0) * 1e6) / 1e6;

/** A row as the API gives it. */
export function usageRow(r: UsageSqlRow): UsageRow {
  const row: UsageRow = {
    key: r.key,
    cpuCoreHours: round6(r.cpu_core_hours),
    memoryGiBHours: round6(r.memory_gib_hours),
    gpuHours: round6(r.gpu_hours),
    attempts: Number(r.attempts),
    succeeded: Number(r.succeeded),
    failed: Number(r.failed),
    preempted: Number(r.preempted),
  };
  if (r.wait_p50 !== null) row.queueWaitP50Seconds = round6(r.wait_p50);
  if (r.wait_p99 !== null) row.queueWaitP99Seconds = round6(r.wait_p99);
  if (r.series !== undefined) row.series = (r.series ?? []).map(usagePoint);
  return row;
}

/** One step of a group's series as the API gives it. */
function usagePoint([start, cpu, memory, gpu, attempts]: [number, number, number, number, number | string]): UsagePointView {
  return {
    start: new Date(Number(start)).toISOString(),
    cpuCoreHours: round6(cpu),
    memoryGiBHours: round6(memory),
    gpuHours: round6(gpu),
    attempts: Number(attempts),
  };
}

/** A runtime-estimate question (see `runtimeEstimateSql`). Times are epoch milliseconds. */
export interface RuntimeEstimateQuery {
  /** Attempts that ended at or after this time. */
  from: number;
  /** Attempts that ended before this time; at most `MAX_USAGE_WINDOW_MS` after `from`. */
  to: number;
  /** The quantile of run times, in (0, 1), e.g. 0.9. */
  quantile: number;
  /** Fewest attempts a queue needs for an estimate (fewer say little about the next one). */
  minSamples: number;
}

/** One queue's learned runtime: the quantile's run time in seconds, and how many attempts it is of. */
export interface RuntimeEstimateRow {
  queue: string;
  seconds: number;
  samples: number;
}

/** Most queues one runtime-estimate question answers (those with the most attempts first). */
export const MAX_RUNTIME_ESTIMATE_QUEUES = 1000;

/**
 * The SQL of a runtime-estimate question: per queue, the `quantile` of the run times (start to
 * end, seconds) of the task attempts that succeeded with an end in `[from, to)` — what a task of
 * the queue is expected to run, for backfill — over queues with at least `minSamples` of them.
 * A failed, preempted or cancelled attempt says nothing of how long the work takes, so only
 * succeeded attempts count.
 */
export function runtimeEstimateSql(q: RuntimeEstimateQuery): { sql: string; params: unknown[] } {
  if (!Number.isFinite(q.from) || !Number.isFinite(q.to)) throw new InvalidHistoryRequestError('from and to must be times in epoch milliseconds', 'from');
  if (q.to <= q.from) throw new InvalidHistoryRequestError('to must be after from', 'to');
  if (q.to - q.from > MAX_USAGE_WINDOW_MS) throw new InvalidHistoryRequestError(`the window is over ${MAX_USAGE_WINDOW_MS / 86_400_000} days`, 'to');
  if (!(q.quantile > 0 && q.quantile < 1)) throw new InvalidHistoryRequestError('the quantile must be between 0 and 1', 'quantile');
  if (!Number.isInteger(q.minSamples) || q.minSamples < 1) throw new InvalidHistoryRequestError('minSamples must be a whole number ≥ 1', 'minSamples');
  const params: unknown[] = [new Date(q.from).toISOString(), new Date(q.to).toISOString(), q.quantile, q.minSamples, MAX_RUNTIME_ESTIMATE_QUEUES];
  // A job finishes after each of its attempts ends: its partition key bounds the scan from below.
  const sql = `
    SELECT j.queue AS queue,
      percentile_cont($3::float8) WITHIN GROUP (ORDER BY extract(epoch FROM t.ended_at - t.started_at)) AS seconds,
      count(*)::int AS samples
    FROM tasks t JOIN jobs j ON j.id = t.job_id AND j.finished_at = t.finished_at
    WHERE t.finished_at >= $1::timestamptz AND j.finished_at >= $1::timestamptz
      AND t.ended_at >= $1::timestamptz AND t.ended_at < $2::timestamptz
      AND t.state = 'Succeeded' AND t.started_at IS NOT NULL AND t.ended_at >= t.started_at
    GROUP BY j.queue
    HAVING count(*) >= $4::int
    ORDER BY count(*) DESC, j.queue
    LIMIT $5::int`;
  return { sql, params };
}
