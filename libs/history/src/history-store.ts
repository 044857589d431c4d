/**
 * The history of finished work in PostgreSQL: what the archiver writes when a job leaves etcd,
 * and what the API reads once it is no longer live. Writes are idempotent upserts in one
 * transaction per batch, so an archiver that crashed between its insert and its etcd delete
 * archives the same jobs again harmlessly. Reads are index range scans paged by opaque cursors.
 *
 * Rows go in as one JSON parameter per statement (`json_to_recordset`): a batch of any size is a
 * fixed handful of statements with no 65,535-parameter limit, and nothing is spliced into SQL.
 */
import {
  type FailureReason,
  type GroupStatus,
  type JobPhase,
  type JobRecord,
  type LabelRequirement,
  type TaskResult,
  type TaskState,
  WORKFLOW_LABEL,
  type WorkflowRecord,
} from '@batchapi/api';
import pg from 'pg';
import { InvalidHistoryRequestError, asHistoryError, isTransientConflict } from './errors';
import { dropPartitionsBefore, type HistoryPartition, writeIntoMonths } from './partitions';
import { type BlobInfo, dropBlobsBefore, getBlob, listBlobs, putBlob } from './blobs';
import { findStepCache, recordStepCache, type StepCacheBounds, type StepCacheEntry } from './step-cache';
import {
  MAX_USAGE_GROUPS,
  type RuntimeEstimateQuery,
  type RuntimeEstimateRow,
  runtimeEstimateSql,
  type UsageQuery,
  type UsageRow,
  usageRow,
  usageSql,
  type UsageSqlRow,
} from './usage';

/** A finished job as the archiver reads it from etcd: its record, every group status of every attempt, its results. */
export interface ArchivedJob {
  /** The job, in a terminal phase: `finishedAt` is required (it is the partition key). */
  job: JobRecord;
  /** Every group of the job (`groups/{jobId}/…`), all attempts: one task row per (index, attempt). */
  groups: GroupStatus[];
  /** What its tasks returned (`results/{jobId}/…`). */
  results: TaskResult[];
  /** The idempotency record of its submit, when it had a key: kept for retries after the job left etcd. @default none */
  idempotency?: ArchivedIdempotency;
}

/** The idempotency record of an archived job's submit. Times are epoch milliseconds. */
export interface ArchivedIdempotency {
  /** sha256 of the client's Idempotency-Key. */
  keyDigest: string;
  /** sha256 of the canonical request. */
  requestHash: string;
  createdAt: number;
}

/** One attempt of one task of a finished job, as `listTasks` returns it. Times are epoch milliseconds. */
export interface TaskAttempt {
  jobId: string;
  index: number;
  attempt: number;
  node: string;
  state: TaskState;
  /** Set on `Failed`. */
  reason?: FailureReason;
  exitCode?: number;
  signal?: string;
  /** When the scheduler bound the attempt's group to its node. */
  boundAt?: number;
  startedAt?: number;
  endedAt?: number;
  /** The `gpu.model` of its node, for an attempt with GPUs. */
  gpuModel?: string;
}

/** Filters of `listJobs`; every given filter must hold (AND). */
export interface JobHistoryFilter {
  tenant?: string;
  queue?: string;
  /** One phase or any of several. @default any */
  phase?: JobPhase | readonly JobPhase[];
  /** Labels the job carries with exactly these values (others may be there too). @default none */
  labels?: Record<string, string>;
  /** A label selector's requirements (`parseLabelSelector`), all of which must hold. @default none */
  selector?: readonly LabelRequirement[];
  /** Submitted at or after this time, epoch milliseconds. @default no bound */
  submittedFrom?: number;
  /** Submitted before this time, epoch milliseconds. @default no bound */
  submittedBefore?: number;
  /** The job's name starts with this (case-sensitive). @default none */
  namePrefix?: string;
  /** Finished at or after this time, epoch milliseconds. @default no bound */
  finishedFrom?: number;
  /** Finished before this time, epoch milliseconds. @default no bound */
  finishedBefore?: number;
  /** Steps of this workflow (its `batch.workflow` label). @default none */
  workflowId?: string;
}

/** Paging of a list: the cursor of the previous page's answer and a page size. */
export interface PageRequest {
  /** `nextCursor` of the previous page; absent for the first page. */
  cursor?: string;
  /** Most items in the page, 1 to `MAX_PAGE_SIZE`. @default DEFAULT_PAGE_SIZE (100) */
  limit?: number;
}

/** Default page size of the history's lists. */
export const DEFAULT_PAGE_SIZE = 100;
/** Largest page size of the history's lists. */
export const MAX_PAGE_SIZE = 1000;

/** Options of a `HistoryStore`. */
export interface HistoryStoreOptions {
  /** Task or result rows per INSERT statement when archiving (a million-task job is written in slices of this many). @default 5000 */
  rowsPerStatement?: number;
}

/** Options of the connection pool `HistoryStore.connect` makes. */
export interface HistoryPoolOptions {
  /** Most connections open at once. @default 10 */
  maxConnections?: number;
  /** How long to wait for a connection before the call fails with `HistoryUnavailableError`, in milliseconds. @default 5000 */
  connectTimeoutMs?: number;
  /** Server-side limit of one statement, in milliseconds (past it the call fails with `HistoryUnavailableError`). @default 30000 */
  statementTimeoutMs?: number;
  /** How long an idle connection stays open, in milliseconds. @default 10000 */
  idleTimeoutMs?: number;
}

/**
 * A pool for the history: with timeouts, so that a PostgreSQL that is down or stuck fails calls
 * instead of hanging them, and an error listener, so that a connection lost while idle (a server
 * restart) is dropped from the pool instead of crashing the process.
 */
export function createHistoryPool(url: string, opts: HistoryPoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.maxConnections ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: opts.idleTimeoutMs ?? 10000,
    statement_timeout: opts.statementTimeoutMs ?? 30000,
  });
  pool.on('error', () => undefined);
  return pool;
}

/** The key of one `{tenant, keyDigest}` in `HistoryStore.getIdempotencyMany`'s answer. */
export function idempotencyLookupKey(tenant: string, keyDigest: string): string {
  return `${tenant}\u0000${keyDigest}`;
}

const JOB_COLUMNS = `id, tenant, queue, name, phase, reason_code, reason_message, labels, spec, pending, succeeded, failed, cancelled, tasks,
  workflow_id, traceparent, created_at, queued_at, started_at, finished_at, cancel_requested_at`;
const JOB_TYPES = `id text, tenant text, queue text, name text, phase text, reason_code text, reason_message text, labels jsonb, spec jsonb,
  pending jsonb, succeeded integer, failed integer, cancelled integer, tasks integer, workflow_id text, traceparent text,
  created_at timestamptz, queued_at timestamptz, started_at timestamptz, finished_at timestamptz, cancel_requested_at timestamptz`;
const TASK_COLUMNS = 'job_id, finished_at, index, attempt, node, state, exit_code, reason, signal, bound_at, started_at, ended_at, gpu_model';
const TASK_TYPES = `job_id text, finished_at timestamptz, index integer, attempt integer, node text, state text, exit_code integer, reason text,
  signal text, bound_at timestamptz, started_at timestamptz, ended_at timestamptz, gpu_model text`;

/** `col = EXCLUDED.col` for every column but the key: a re-archived row takes the newer copy. */
const updateAll = (columns: string, key: string[]) =>
  columns
    .split(',')
    .map((c) => c.trim())
    .filter((c) => !key.includes(c))
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(', ');

const UPSERT_JOBS = `INSERT INTO jobs (${JOB_COLUMNS})
  SELECT ${JOB_COLUMNS} FROM json_to_recordset($1::json) AS r(${JOB_TYPES})
  ON CONFLICT (id, finished_at) DO UPDATE SET ${updateAll(JOB_COLUMNS, ['id', 'finished_at'])}`;
const UPSERT_TASKS = `INSERT INTO tasks (${TASK_COLUMNS})
  SELECT ${TASK_COLUMNS} FROM json_to_recordset($1::json) AS r(${TASK_TYPES})
  ON CONFLICT (job_id, finished_at, index, attempt) DO UPDATE SET ${updateAll(TASK_COLUMNS, ['job_id', 'finished_at', 'index', 'attempt'])}`;
// A key's first submit wins: a re-archived job never changes which job its key names.
const UPSERT_IDEMPOTENCY = `INSERT INTO idempotency (tenant, key_digest, job_id, request_hash, created_at)
  SELECT tenant, key_digest, job_id, request_hash, created_at FROM json_to_recordset($1::json)
    AS r(tenant text, key_digest text, job_id text, request_hash text, created_at timestamptz)
  ON CONFLICT (tenant, key_digest) DO NOTHING`;
const UPSERT_RESULTS = `INSERT INTO results (job_id, finished_at, index, attempt, value, ref)
  SELECT job_id, finished_at, index, attempt, value, ref FROM json_to_recordset($1::json)
    AS r(job_id text, finished_at timestamptz, index integer, attempt integer, value jsonb, ref jsonb)
  ON CONFLICT (job_id, finished_at, index) DO UPDATE SET attempt = EXCLUDED.attempt, value = EXCLUDED.value, ref = EXCLUDED.ref`;
const UPSERT_WORKFLOWS = `INSERT INTO workflows (id, tenant, queue, name, phase, record, created_at, finished_at)
  SELECT id, tenant, queue, name, phase, record, created_at, finished_at FROM json_to_recordset($1::json)
    AS r(id text, tenant text, queue text, name text, phase text, record jsonb, created_at timestamptz, finished_at timestamptz)
  ON CONFLICT (id, finished_at) DO UPDATE SET tenant = EXCLUDED.tenant, queue = EXCLUDED.queue, name = EXCLUDED.name, phase = EXCLUDED.phase,
    record = EXCLUDED.record, created_at = EXCLUDED.created_at`;

/** The WHERE terms of a job filter; `p` adds a parameter and returns its placeholder. */
function jobFilter(filter: JobHistoryFilter, p: (v: unknown) => string): string[] {
  const where: string[] = [];
  if (filter.tenant !== undefined) where.push(`tenant = ${p(filter.tenant)}`);
  if (filter.queue !== undefined) where.push(`queue = ${p(filter.queue)}`);
  if (typeof filter.phase === 'string') where.push(`phase = ${p(filter.phase)}`);
  else if (filter.phase) where.push(`phase = ANY (${p(filter.phase)}::text[])`);
  if (filter.labels && Object.keys(filter.labels).length > 0) where.push(`labels @> ${p(JSON.stringify(filter.labels))}::jsonb`);
  if (filter.namePrefix) where.push(`name LIKE ${p(`${filter.namePrefix.replace(/[\\%_]/g, '\\$&')}%`)}`);
  if (filter.finishedFrom !== undefined) where.push(`finished_at >= ${p(isoTime(filter.finishedFrom, 'finishedFrom'))}::timestamptz`);
  if (filter.finishedBefore !== undefined) where.push(`finished_at < ${p(isoTime(filter.finishedBefore, 'finishedBefore'))}::timestamptz`);
  if (filter.workflowId !== undefined) where.push(`workflow_id = ${p(filter.workflowId)}`);
  if (filter.submittedFrom !== undefined) where.push(`created_at >= ${p(isoTime(filter.submittedFrom, 'submittedFrom'))}::timestamptz`);
  if (filter.submittedBefore !== undefined) where.push(`created_at < ${p(isoTime(filter.submittedBefore, 'submittedBefore'))}::timestamptz`);
  for (const r of filter.selector ?? []) where.push(selectorSql(r, p));
  return where;
}

/**
 * One selector requirement as SQL over the `labels` column. A one-value `in` is containment
 * (`@>`), which the GIN index serves; `notin` and `absent` also hold where the key is missing,
 * as in Kubernetes.
 */
function selectorSql(r: LabelRequirement, p: (v: unknown) => string): string {
  switch (r.op) {
    case 'exists':
      return `labels ? ${p(r.key)}`;
    case 'absent':
      return `NOT (labels ? ${p(r.key)})`;
    case 'in':
      return r.values.length === 1
        ? `labels @> ${p(JSON.stringify({ [r.key]: r.values[0] }))}::jsonb`
        : `labels ->> ${p(r.key)} = ANY (${p(r.values)}::text[])`;
    case 'notin':
      return `coalesce(labels ->> ${p(r.key)} <> ALL (${p(r.values)}::text[]), true)`;
  }
}

/**
 * Finished jobs, their task attempts and results, and finished workflows, in PostgreSQL. Every
 * method fails with `HistoryUnavailableError` when PostgreSQL cannot be reached, and with
 * `InvalidHistoryRequestError` for an input it refuses before sending anything.
 */
export class HistoryStore {
  private readonly rowsPerStatement: number;

  /**
   * @param pool - the connection pool (see `createHistoryPool`); the store owns it from now on: `close()` ends it
   * @param options - see `HistoryStoreOptions`
   */
  constructor(
    private readonly pool: pg.Pool,
    options: HistoryStoreOptions = {},
  ) {
    this.rowsPerStatement = options.rowsPerStatement ?? 5000;
  }

  /** A store over a new pool to `url` (see `createHistoryPool`). The schema must be migrated (`migrate`). */
  static connect(url: string, options: HistoryStoreOptions & HistoryPoolOptions = {}): HistoryStore {
    return new HistoryStore(createHistoryPool(url, options), options);
  }

  /**
   * Writes finished jobs with their task attempts and results, in one transaction: all of the
   * batch or none of it. Idempotent: a job already archived (same id and `finishedAt`) is
   * overwritten by the copy given, so archiving a batch twice leaves one row per job, task
   * attempt and result. Creates the months' partitions first when they are missing. Meant for
   * batches of up to ~500 jobs; a job's tasks may be millions (written in slices).
   * @throws InvalidHistoryRequestError when a job has no `finishedAt`
   */
  async archiveJobs(batch: readonly ArchivedJob[]): Promise<void> {
    // The last copy of a job in the batch wins: one statement may not upsert one row twice.
    const byId = new Map<string, ArchivedJob>();
    batch.forEach((a, i) => {
      if (typeof a.job.finishedAt !== 'number') {
        throw new InvalidHistoryRequestError(`job ${a.job.id} has no finishedAt: only finished jobs are archived`, `batch[${i}].job.finishedAt`);
      }
      byId.set(a.job.id, a);
    });
    if (byId.size === 0) return;
    const jobs = [...byId.values()].sort((a, b) => (a.job.id < b.job.id ? -1 : 1));
    const jobRows = jobs.map((a) => jobRow(a.job));
    const tasks = jobs.flatMap((a) => taskRows(a.job, a.groups));
    const results = jobs.flatMap((a) => resultRows(a.job, a.results));
    const keys = jobs.flatMap((a) =>
      a.idempotency
        ? [
            {
              tenant: a.job.tenant,
              key_digest: a.idempotency.keyDigest,
              job_id: a.job.id,
              request_hash: a.idempotency.requestHash,
              created_at: iso(a.idempotency.createdAt),
            },
          ]
        : [],
    );
    await this.run('archiving jobs', async () => {
      await writeIntoMonths(
        this.pool,
        jobs.map((a) => a.job.finishedAt!),
        async (client) => {
          await client.query(UPSERT_JOBS, [JSON.stringify(jobRows)]);
          for (const slice of slices(tasks, this.rowsPerStatement)) await client.query(UPSERT_TASKS, [JSON.stringify(slice)]);
          for (const slice of slices(results, this.rowsPerStatement)) await client.query(UPSERT_RESULTS, [JSON.stringify(slice)]);
          if (keys.length) await client.query(UPSERT_IDEMPOTENCY, [JSON.stringify(keys)]);
        },
      );
    });
  }

  /**
   * The idempotency records of many keys in one statement (a submit's lookups batched): each
   * `{tenant, keyDigest}` asked maps, by `idempotencyLookupKey`, to its record; keys with none
   * are absent from the map.
   */
  async getIdempotencyMany(
    keys: ReadonlyArray<{ tenant: string; keyDigest: string }>,
  ): Promise<Map<string, { jobId: string; requestHash: string; createdAt: number }>> {
    const out = new Map<string, { jobId: string; requestHash: string; createdAt: number }>();
    if (!keys.length) return out;
    const { rows } = await this.run('reading idempotency records', () =>
      this.pool.query<{ tenant: string; key_digest: string; job_id: string; request_hash: string; created_at: Date }>(
        `SELECT i.tenant, i.key_digest, i.job_id, i.request_hash, i.created_at
           FROM idempotency i JOIN unnest($1::text[], $2::text[]) AS k(tenant, key_digest)
             ON i.tenant = k.tenant AND i.key_digest = k.key_digest`,
        [keys.map((k) => k.tenant), keys.map((k) => k.keyDigest)],
      ),
    );
    for (const r of rows)
      out.set(idempotencyLookupKey(r.tenant, r.key_digest), { jobId: r.job_id, requestHash: r.request_hash, createdAt: r.created_at.getTime() });
    return out;
  }

  /**
   * The idempotency record of tenant `tenant`'s key digest `keyDigest` among archived jobs:
   * the job its first submit made, and that submit's request hash; undefined when none.
   */
  async getIdempotency(tenant: string, keyDigest: string): Promise<{ jobId: string; requestHash: string; createdAt: number } | undefined> {
    const { rows } = await this.run('reading an idempotency record', () =>
      this.pool.query<{ job_id: string; request_hash: string; created_at: Date }>(
        'SELECT job_id, request_hash, created_at FROM idempotency WHERE tenant = $1 AND key_digest = $2',
        [tenant, keyDigest],
      ),
    );
    const r = rows[0];
    return r && { jobId: r.job_id, requestHash: r.request_hash, createdAt: r.created_at.getTime() };
  }

  /**
   * Idempotency retention: deletes the records of submits made before `before` (epoch ms), at most
   * `max` per call, oldest first; returns how many it deleted (call again while it returns `max`).
   */
  async dropIdempotencyBefore(before: number, max = 10_000): Promise<number> {
    const { rowCount } = await this.run('dropping old idempotency records', () =>
      this.pool.query(
        `DELETE FROM idempotency WHERE (tenant, key_digest) IN (
          SELECT tenant, key_digest FROM idempotency WHERE created_at < $1::timestamptz ORDER BY created_at LIMIT $2)`,
        [isoTime(before, 'before'), max],
      ),
    );
    return rowCount ?? 0;
  }

  /** Stores blob `info.key` (see `BlobInfo`), replacing any blob of that key, in one transaction. */
  putBlob(info: BlobInfo, body: Buffer): Promise<void> {
    return this.run('writing a blob', () => putBlob(this.pool, info, body));
  }

  /** Blob `key` with its bytes; undefined when none. */
  getBlob(key: string): Promise<{ info: BlobInfo; body: Buffer } | undefined> {
    return this.run('reading a blob', () => getBlob(this.pool, key));
  }

  /** The blobs whose key starts with `prefix`, in key order (bytewise), at most `limit` (1 to 1000). */
  listBlobs(prefix: string, limit = 100): Promise<BlobInfo[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new InvalidHistoryRequestError(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${limit}`, 'limit');
    }
    return this.run('listing blobs', () => listBlobs(this.pool, prefix, limit));
  }

  /** Blob retention: deletes the blobs put before `before` (epoch ms), at most `max` per call, oldest first; returns how many (call again while it returns `max`). */
  dropBlobsBefore(before: number, max = 10_000): Promise<number> {
    return this.run('dropping old blobs', () => dropBlobsBefore(this.pool, before, max));
  }

  /**
   * History retention: drops every month of history that ended before `before` (epoch ms; the
   * month holding it is kept) — whole partitions, never rows (see `dropPartitionsBefore`).
   */
  dropHistoryBefore(before: number): Promise<HistoryPartition[]> {
    return dropPartitionsBefore(this.pool, before);
  }

  /** The archived record of job `id`, as it was in etcd when it was archived; undefined when the history does not have it. */
  async getJob(id: string): Promise<JobRecord | undefined> {
    const { rows } = await this.run('reading a job', () =>
      this.pool.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = $1 ORDER BY finished_at DESC LIMIT 1`, [id]),
    );
    return rows[0] && jobRecord(rows[0]);
  }

  /**
   * Archived jobs matching `filter`, most recently finished first (ties by id, descending;
   * `ascending`: earliest first), a page at a time: pass the answer's `nextCursor` back for the
   * next page (or `after`, the (finishedAt, id) of the last job seen); it is absent on the last
   * page. The cursor is the last item's (finishedAt, id), so jobs archived between two pages
   * never make an item of a later page repeat or go missing.
   * @throws InvalidHistoryRequestError for a cursor this method did not make or a limit out of range
   */
  async listJobs(
    filter: JobHistoryFilter & PageRequest & { ascending?: boolean; after?: { finishedAt: number; id: string } } = {},
  ): Promise<{ jobs: JobRecord[]; nextCursor?: string }> {
    const limit = pageSize(filter.limit);
    const params: unknown[] = [];
    const p = (v: unknown) => `$${params.push(v)}`;
    const where = jobFilter(filter, p);
    let after = filter.after;
    if (filter.cursor !== undefined) {
      const [finishedAt, id] = decodeCursor(
        filter.cursor,
        (v): v is [number, string] => v.length === 2 && Number.isSafeInteger(v[0]) && typeof v[1] === 'string',
      );
      after = { finishedAt, id };
    }
    const dir = filter.ascending ? 'ASC' : 'DESC';
    if (after !== undefined) {
      where.push(`(finished_at, id) ${filter.ascending ? '>' : '<'} (${p(isoTime(after.finishedAt, 'after.finishedAt'))}::timestamptz, ${p(after.id)})`);
    }
    const sql = `SELECT ${JOB_COLUMNS} FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY finished_at ${dir}, id ${dir} LIMIT ${p(limit + 1)}`;
    const { rows } = await this.run('listing jobs', () => this.pool.query<JobRow>(sql, params));
    const jobs = rows.slice(0, limit).map(jobRecord);
    const last = jobs[jobs.length - 1];
    return rows.length > limit ? { jobs, nextCursor: encodeCursor([last.finishedAt!, last.id]) } : { jobs };
  }

  /**
   * Archived jobs matching `filter` in job id order (bytes, as etcd orders keys; `descending`:
   * the reverse), the ids after `afterId` in that order (exclusive), at most
   * `limit` (1 to `MAX_PAGE_SIZE`): the order etcd lists live jobs in, so the API can merge both
   * into one list paged by the last id — a job archived between two pages keeps its place.
   * @throws InvalidHistoryRequestError for a limit out of range
   */
  async listJobsById(filter: JobHistoryFilter & { afterId?: string; limit?: number; descending?: boolean } = {}): Promise<JobRecord[]> {
    const limit = pageSize(filter.limit);
    const params: unknown[] = [];
    const p = (v: unknown) => `$${params.push(v)}`;
    const where = jobFilter(filter, p);
    // Byte order (COLLATE "C"), as etcd orders keys, whatever the database's collation.
    if (filter.afterId !== undefined) where.push(`id COLLATE "C" ${filter.descending ? '<' : '>'} ${p(filter.afterId)}`);
    const sql = `SELECT ${JOB_COLUMNS} FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY id COLLATE "C" ${filter.descending ? 'DESC' : 'ASC'} LIMIT ${p(limit)}`;
    const { rows } = await this.run('listing jobs by id', () => this.pool.query<JobRow>(sql, params));
    return rows.map(jobRecord);
  }

  /**
   * Usage summed by `q.groupBy` over the task attempts that ended in `[q.from, q.to)` (see
   * `usage.ts` for the arithmetic), the groups with the most GPU-hours then CPU-hours first;
   * `truncated` when more than `MAX_USAGE_GROUPS` groups had usage.
   * @throws InvalidHistoryRequestError for a window that is empty, reversed or over 400 days
   */
  async usage(q: UsageQuery): Promise<{ rows: UsageRow[]; truncated: boolean }> {
    const { sql, params } = usageSql(q);
    const { rows } = await this.run('summing usage', () => this.pool.query<UsageSqlRow>(sql, params));
    return { rows: rows.slice(0, MAX_USAGE_GROUPS).map(usageRow), truncated: rows.length > MAX_USAGE_GROUPS };
  }

  /**
   * Per queue, the `q.quantile` of its succeeded task attempts' run times that ended in
   * `[q.from, q.to)`, in seconds, for queues with at least `q.minSamples` of them (see
   * `runtimeEstimateSql`); the queues with the most attempts first, at most `MAX_RUNTIME_ESTIMATE_QUEUES`.
   * @throws InvalidHistoryRequestError for a window that is empty, reversed or over 400 days, or a quantile outside (0, 1)
   */
  async runtimeEstimates(q: RuntimeEstimateQuery): Promise<RuntimeEstimateRow[]> {
    const { sql, params } = runtimeEstimateSql(q);
    const { rows } = await this.run('estimating runtimes', () => this.pool.query<{ queue: string; seconds: number | string; samples: number }>(sql, params));
    return rows.map((r) => ({ queue: r.queue, seconds: Number(r.seconds), samples: r.samples }));
  }

  /**
   * The task attempts of archived job `jobId`, one row per (index, attempt), by index then
   * attempt, a page at a time; only those in `state` when given (e.g. `Failed`: which tasks
   * failed, and why). Empty when the history does not have the job. Continue with the answer's
   * `nextCursor`, or with `after`: the (index, attempt) of the last row seen.
   * @throws InvalidHistoryRequestError for a cursor this method did not make or a limit out of range
   */
  async listTasks(
    jobId: string,
    opts: { state?: TaskState | readonly TaskState[]; after?: { index: number; attempt: number } } & PageRequest = {},
  ): Promise<{ tasks: TaskAttempt[]; nextCursor?: string }> {
    const limit = pageSize(opts.limit);
    const params: unknown[] = [jobId];
    const p = (v: unknown) => `$${params.push(v)}`;
    // Pinning the job's finished_at confines the scan to its partition and lets the primary key give the order.
    const where = ['job_id = $1', 'finished_at = (SELECT max(finished_at) FROM jobs WHERE id = $1)'];
    if (typeof opts.state === 'string') where.push(`state = ${p(opts.state)}`);
    else if (opts.state) where.push(`state = ANY (${p(opts.state)}::text[])`);
    if (opts.cursor !== undefined) {
      const [index, attempt] = decodeCursor(opts.cursor, (v): v is [number, number] => v.length === 2 && v.every((n) => Number.isSafeInteger(n)));
      where.push(`(index, attempt) > (${p(index)}::integer, ${p(attempt)}::integer)`);
    } else if (opts.after !== undefined) {
      where.push(`(index, attempt) > (${p(opts.after.index)}::integer, ${p(opts.after.attempt)}::integer)`);
    }
    const sql = `SELECT ${TASK_COLUMNS} FROM tasks WHERE ${where.join(' AND ')} ORDER BY index, attempt LIMIT ${p(limit + 1)}`;
    const { rows } = await this.run('listing tasks', () => this.pool.query<TaskRow>(sql, params));
    const tasks = rows.slice(0, limit).map(taskAttempt);
    const last = tasks[tasks.length - 1];
    return rows.length > limit ? { tasks, nextCursor: encodeCursor([last.index, last.attempt]) } : { tasks };
  }

  /**
   * What the tasks of archived job `jobId` returned, by index, a page at a time (only tasks that
   * returned something). Empty when the history does not have the job.
   * @throws InvalidHistoryRequestError for a cursor this method did not make or a limit out of range
   */
  async listResults(jobId: string, page: PageRequest = {}): Promise<{ results: TaskResult[]; nextCursor?: string }> {
    const limit = pageSize(page.limit);
    const params: unknown[] = [jobId];
    const p = (v: unknown) => `$${params.push(v)}`;
    const where = ['job_id = $1', 'finished_at = (SELECT max(finished_at) FROM jobs WHERE id = $1)'];
    if (page.cursor !== undefined) {
      const [index] = decodeCursor(page.cursor, (v): v is [number] => v.length === 1 && Number.isSafeInteger(v[0]));
      where.push(`index > ${p(index)}::integer`);
    }
    const sql = `SELECT index, attempt, value, ref FROM results WHERE ${where.join(' AND ')} ORDER BY index LIMIT ${p(limit + 1)}`;
    const { rows } = await this.run('listing results', () =>
      this.pool.query<{ index: number; attempt: number; value: unknown; ref: TaskResult['ref'] | null }>(sql, params),
    );
    const results: TaskResult[] = rows
      .slice(0, limit)
      .map((r) => (r.ref ? { index: r.index, attempt: r.attempt, ref: r.ref } : { index: r.index, attempt: r.attempt, value: r.value }));
    return rows.length > limit ? { results, nextCursor: encodeCursor([results[results.length - 1].index]) } : { results };
  }

  /**
   * Writes finished workflows, in one transaction; idempotent as `archiveJobs` (by id and
   * `finishedAt`). Their step jobs are archived by `archiveJobs`.
   * @throws InvalidHistoryRequestError when a workflow has no `finishedAt`
   */
  async archiveWorkflows(batch: readonly WorkflowRecord[]): Promise<void> {
    const byId = new Map<string, WorkflowRecord>();
    batch.forEach((w, i) => {
      if (typeof w.finishedAt !== 'number') {
        throw new InvalidHistoryRequestError(`workflow ${w.id} has no finishedAt: only finished workflows are archived`, `batch[${i}].finishedAt`);
      }
      byId.set(w.id, w);
    });
    if (byId.size === 0) return;
    const rows = [...byId.values()].map((w) => ({
      id: w.id,
      tenant: w.tenant,
      queue: w.queue,
      name: w.name,
      phase: w.phase,
      record: w,
      created_at: iso(w.createdAt),
      finished_at: iso(w.finishedAt),
    }));
    await this.run('archiving workflows', async () => {
      await writeIntoMonths(
        this.pool,
        rows.map((r) => Date.parse(r.finished_at!)),
        (client) => client.query(UPSERT_WORKFLOWS, [JSON.stringify(rows)]),
      );
    });
  }

  /** The archived record of workflow `id`; undefined when the history does not have it. */
  async getWorkflow(id: string): Promise<WorkflowRecord | undefined> {
    const { rows } = await this.run('reading a workflow', () =>
      this.pool.query<{ record: WorkflowRecord }>('SELECT record FROM workflows WHERE id = $1 ORDER BY finished_at DESC LIMIT 1', [id]),
    );
    return rows[0]?.record;
  }

  /**
   * Archived workflows, most recently finished first, one tenant's when given, one template's runs
   * (its `batch.template` label) when given, at most `limit` (1 to `MAX_PAGE_SIZE`).
   */
  async listWorkflows(filter: { tenant?: string; template?: string; limit?: number } = {}): Promise<WorkflowRecord[]> {
    const limit = pageSize(filter.limit);
    const params: unknown[] = [];
    const p = (v: unknown) => `$${params.push(v)}`;
    const terms: string[] = [];
    if (filter.tenant !== undefined) terms.push(`tenant = ${p(filter.tenant)}`);
    // the expression of the workflows_template_finished_idx index
    if (filter.template !== undefined) terms.push(`(record -> 'labels' ->> 'batch.template') = ${p(filter.template)}`);
    const where = terms.length ? `WHERE ${terms.join(' AND ')}` : '';
    const sql = `SELECT record FROM workflows ${where} ORDER BY finished_at DESC, id DESC LIMIT ${p(limit)}`;
    const { rows } = await this.run('listing workflows', () => this.pool.query<{ record: WorkflowRecord }>(sql, params));
    return rows.map((r) => r.record);
  }

  /**
   * The step cache's entry of `tenant` and `key` (a hex SHA-256) created at or after `notBefore`
   * (epoch ms); undefined when there is none (or it expired).
   */
  async findStepCache(tenant: string, key: string, notBefore: number): Promise<StepCacheEntry | undefined> {
    return this.run('reading the step cache', () => findStepCache(this.pool, tenant, key, notBefore));
  }

  /** Records a step cache entry and evicts its tenant's expired and oldest entries past `bounds.maxEntries`, in one transaction. */
  async recordStepCache(entry: StepCacheEntry, bounds: StepCacheBounds): Promise<void> {
    await this.run('recording a step cache entry', () => recordStepCache(this.pool, entry, bounds));
  }

  /** Ends the pool's connections; the store cannot be used after. */
  async close(): Promise<void> {
    await this.pool.end();
  }

  /**
   * Runs `fn` — one statement, or writes in one transaction, or idempotent upserts, so it may run
   * again — again after a transient conflict (`isTransientConflict`: a deadlock PostgreSQL broke
   * by aborting it), up to `CONFLICT_RETRIES` times; maps an unavailable server to `HistoryUnavailableError`.
   */
  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let retries = 0; ; retries++) {
      try {
        return await fn();
      } catch (err) {
        if (retries < CONFLICT_RETRIES && isTransientConflict(err)) {
          // 20, 40, 80 ms, jittered by up to half: the other side of the conflict gets to finish first
          await new Promise((r) => setTimeout(r, 20 * 2 ** retries * (1 + Math.random() / 2)));
          continue;
        }
        throw asHistoryError(err, what);
      }
    }
  }
}

/**
 * Times a history call runs again after a transient conflict (a deadlock or serialization
 * failure), after 20, 40 and 80 ms. (cockatiel, the retry library the project pins, is an ES
 * module that this CommonJS build and jest cannot load.)
 */
export const CONFLICT_RETRIES = 3;

/** A row of `jobs` as node-postgres returns it (timestamptz → Date, jsonb → parsed). */
interface JobRow {
  id: string;
  tenant: string;
  queue: string;
  name: string;
  phase: JobPhase;
  reason_code: string | null;
  reason_message: string | null;
  labels: Record<string, string>;
  spec: JobRecord['spec'];
  pending: JobRecord['pending'];
  succeeded: number;
  failed: number;
  cancelled: number;
  tasks: number;
  workflow_id: string | null;
  traceparent: string | null;
  created_at: Date;
  queued_at: Date | null;
  started_at: Date | null;
  finished_at: Date;
  cancel_requested_at: Date | null;
}

interface TaskRow {
  job_id: string;
  index: number;
  attempt: number;
  node: string;
  state: TaskState;
  exit_code: number | null;
  reason: FailureReason | null;
  signal: string | null;
  bound_at: Date | null;
  started_at: Date | null;
  ended_at: Date | null;
  gpu_model: string | null;
}

function jobRow(job: JobRecord) {
  return {
    id: job.id,
    tenant: job.tenant,
    queue: job.queue,
    name: job.spec.name,
    phase: job.phase,
    reason_code: job.reason?.code ?? null,
    reason_message: job.reason?.message ?? null,
    labels: job.spec.labels ?? {},
    spec: job.spec,
    pending: job.pending ?? [],
    succeeded: job.counts.succeeded,
    failed: job.counts.failed,
    cancelled: job.counts.cancelled,
    tasks: job.spec.tasks,
    workflow_id: job.spec.labels?.[WORKFLOW_LABEL] ?? null,
    traceparent: job.traceparent ?? null,
    created_at: iso(job.createdAt),
    queued_at: iso(job.queuedAt),
    started_at: iso(job.startedAt),
    finished_at: iso(job.finishedAt),
    cancel_requested_at: iso(job.cancelRequestedAt),
  };
}

/**
 * One row per (index, attempt) of the job's groups. A group is `[start, end)` of the job on one
 * node at one attempt, its `tasks[i]` the status of task `start + i`. Should two groups hold
 * the same task at the same attempt, the one bound last wins.
 */
function taskRows(job: JobRecord, groups: readonly GroupStatus[]) {
  const rows = new Map<string, { boundAt: number; row: ReturnType<typeof taskRow> }>();
  for (const g of groups) {
    for (let i = 0; i < g.tasks.length && g.start + i < g.end; i++) {
      const key = `${g.start + i}/${g.attempt}`;
      const prior = rows.get(key);
      if (!prior || prior.boundAt <= g.boundAt) rows.set(key, { boundAt: g.boundAt, row: taskRow(job, g, i) });
    }
  }
  return [...rows.values()].map((r) => r.row);
}

function taskRow(job: JobRecord, g: GroupStatus, i: number) {
  const t = g.tasks[i];
  return {
    job_id: job.id,
    finished_at: iso(job.finishedAt),
    index: g.start + i,
    attempt: g.attempt,
    node: g.node,
    state: t.state,
    exit_code: t.exitCode ?? null,
    reason: t.reason ?? null,
    signal: t.signal ?? null,
    bound_at: iso(g.boundAt),
    started_at: iso(t.startedAt),
    ended_at: iso(t.finishedAt),
    gpu_model: g.gpuModel ?? null,
  };
}

function resultRows(job: JobRecord, results: readonly TaskResult[]) {
  const byIndex = new Map(results.map((r) => [r.index, r]));
  return [...byIndex.values()].map((r) => ({
    job_id: job.id,
    finished_at: iso(job.finishedAt),
    index: r.index,
    attempt: r.attempt,
    value: r.value ?? null,
    ref: r.ref ?? null,
  }));
}

function jobRecord(r: JobRow): JobRecord {
  const job: JobRecord = {
    id: r.id,
    tenant: r.tenant,
    queue: r.queue,
    spec: r.spec,
    phase: r.phase,
    pending: r.pending,
    counts: { succeeded: r.succeeded, failed: r.failed, cancelled: r.cancelled },
    createdAt: r.created_at.getTime(),
    finishedAt: r.finished_at.getTime(),
  };
  if (r.reason_code !== null) job.reason = { code: r.reason_code, message: r.reason_message ?? '' };
  if (r.traceparent !== null) job.traceparent = r.traceparent;
  if (r.queued_at) job.queuedAt = r.queued_at.getTime();
  if (r.started_at) job.startedAt = r.started_at.getTime();
  if (r.cancel_requested_at) job.cancelRequestedAt = r.cancel_requested_at.getTime();
  return job;
}

function taskAttempt(r: TaskRow): TaskAttempt {
  const t: TaskAttempt = { jobId: r.job_id, index: r.index, attempt: r.attempt, node: r.node, state: r.state };
  if (r.reason !== null) t.reason = r.reason;
  if (r.exit_code !== null) t.exitCode = r.exit_code;
  if (r.signal !== null) t.signal = r.signal;
  if (r.bound_at) t.boundAt = r.bound_at.getTime();
  if (r.started_at) t.startedAt = r.started_at.getTime();
  if (r.ended_at) t.endedAt = r.ended_at.getTime();
  if (r.gpu_model !== null) t.gpuModel = r.gpu_model;
  return t;
}

/** Epoch milliseconds as an ISO-8601 UTC string (exact: timestamptz keeps microseconds); null when absent. */
function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function isoTime(ms: number, field: string): string {
  if (!Number.isFinite(ms)) throw new InvalidHistoryRequestError(`${field} must be a time in epoch milliseconds, got ${ms}`, field);
  return new Date(ms).toISOString();
}

function pageSize(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new InvalidHistoryRequestError(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${limit}`, 'limit');
  }
  return limit;
}

/** A cursor is the sort key of the last item of a page, as base64url JSON: opaque to callers, checked on the way back. */
function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeCursor<T extends unknown[]>(cursor: string, valid: (v: unknown[]) => v is T): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value) || !valid(value)) {
    throw new InvalidHistoryRequestError(
      'cursor is not one this list returned: pass the nextCursor of the previous page unchanged, or none for the first page',
      'cursor',
    );
  }
  return value;
}

function* slices<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
