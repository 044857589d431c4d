/**
 * The archiver: one quota replica, elected as `archiver`, moves finished jobs out of etcd into
 * the history store (PostgreSQL) — a batch at a time, each job once it has been finished for
 * `afterMs` (like Slurm's MinJobAge) and is not a step of a workflow still running. Each pass:
 * read the batch (job, groups, results) → upsert it into history in one transaction → remove it
 * from etcd, fenced by the leader key and comparing each job's revision. A crash or a lost fence
 * between the two leaves the jobs in etcd; the next pass archives them again (history upserts
 * by job id): nothing lost, nothing archived twice. History down: the pass fails, etcd keeps the
 * finished jobs, and the next pass tries again (`BatchArchiveBacklog` alerts on the backlog).
 */
import { type HistoryStore, isUnavailable } from '@batchapi/history';
import {
  CLOCK,
  type Clock,
  FAILPOINTS,
  failpoint,
  HISTORY,
  SERVICE,
  serveElectedRole,
  type ServiceContext,
  sleepUnlessAborted,
  systemClock,
} from '@batchapi/runtime';
import {
  type ArchiveBacklog,
  archivableJobs,
  archivableJobsAmong,
  IDEMPOTENCY_HANDOVER_MS,
  archivableWorkflows,
  type Leadership,
  type Versioned,
  putArchiveBacklog,
  putRuntimeEstimates,
  readArchiveBatch,
  removeArchived,
  removeArchivedWorkflows,
} from '@batchapi/store';
import { inSpan, Metric } from '@batchapi/telemetry';
import type { JobRecord } from '@batchapi/api';
import { FinishedJobs } from './finished-jobs';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Counter, Gauge, Histogram } from 'prom-client';

/** Tuning of the archiver. */
export interface ArchiveTuning {
  /** A finished job leaves etcd this long after it finished, in milliseconds (`BATCH_ARCHIVE_AFTER`, seconds). @default 60000 */
  afterMs: number;
  /**
   * Longest pause between passes when the last one left nothing ready, in milliseconds. With the
   * finished jobs' index the archiver wakes sooner, when the next finished job becomes ready.
   * @default 5000
   */
  intervalMs: number;
  /** Shortest pause between passes that were not full, in milliseconds: jobs ready meanwhile go together in one batch. @default 1000 */
  minPauseMs: number;
  /** Most jobs archived per pass (one history transaction). @default 500 */
  batchSize: number;
  /** History is kept this long, in milliseconds (`BATCH_HISTORY_RETENTION`, days): older months are dropped whole. @default 90 days */
  historyRetentionMs: number;
  /** How often the archiver applies history retention, in milliseconds. @default 3600000 */
  retentionEveryMs: number;
  /** Idempotency records in history are dropped this long after their submit, in milliseconds (`BATCH_IDEMPOTENCY_TTL`, seconds). @default 86400000 */
  idempotencyTtlMs: number;
  /**
   * An archived job's idempotency record stays in etcd this long after it was archived, in
   * milliseconds; must exceed admission's `IDEMPOTENCY_LOOKUP_MAX_MS` (12 s) many times over (tests shorten it).
   * @default IDEMPOTENCY_HANDOVER_MS (120000)
   */
  idempotencyHandoverMs: number;
  /**
   * Runtime estimates learned from the history for the scheduler's backfill (`runtime-estimates`):
   * every `everyMs` (ms), per queue the `quantile` of its succeeded task attempts' run times over
   * the last `windowMs` (ms), for queues with at least `minSamples` of them.
   * @default every 15 minutes, p90 over 7 days, at least 20 attempts
   */
  runtimeEstimates: { everyMs: number; windowMs: number; quantile: number; minSamples: number };
}

export const DEFAULT_ARCHIVE: ArchiveTuning = {
  afterMs: 60_000,
  intervalMs: 5_000,
  minPauseMs: 1_000,
  batchSize: 500,
  historyRetentionMs: 90 * 86_400_000,
  retentionEveryMs: 3_600_000,
  idempotencyTtlMs: 86_400_000,
  idempotencyHandoverMs: IDEMPOTENCY_HANDOVER_MS,
  runtimeEstimates: { everyMs: 900_000, windowMs: 7 * 86_400_000, quantile: 0.9, minSamples: 20 },
};
export const ARCHIVE_TUNING = Symbol('ArchiveTuning');

/**
 * Most batches archived from one listing of etcd's jobs: listing them all costs as much as a few
 * batches, so a pass reads once for up to 20 batches (10,000 jobs at the default batch size).
 * A job changed since the listing is kept by its removal's compare and archived by a later pass.
 */
const PASS_BATCHES = 20;

/**
 * How often a pass lists every job instead of reading the finished jobs' index, in milliseconds:
 * 10 minutes. The index comes from a watch; this bounds how long a job it missed could stay.
 */
export const FULL_LISTING_EVERY_MS = 600_000;

/**
 * How long the archiver waits after a pass that was not full, in milliseconds: until the first
 * job that finished after the pass's cutoff (`now − afterMs`) is ready — `next + afterMs − now` —
 * but at least `minPauseMs` (so ready jobs gather into batches) and at most `intervalMs`. Jobs
 * at or before the cutoff that the pass kept (steps of a running workflow) do not make it wake
 * sooner. `next` undefined (none finished since the cutoff, or no index): `intervalMs`.
 */
export function pauseAfterPass(now: number, next: number | undefined, t: Pick<ArchiveTuning, 'afterMs' | 'intervalMs' | 'minPauseMs'>): number {
  if (next === undefined) return t.intervalMs;
  return Math.min(t.intervalMs, Math.max(t.minPauseMs, next + t.afterMs - now));
}

/** After a failed runtime estimate, the next try comes this much later, in milliseconds (not `everyMs`). */
const ESTIMATE_RETRY_MS = 60_000;

/** Idempotency records (and kept blobs) of history dropped per statement by retention. */
const IDEMPOTENCY_DROP_BATCH = 10_000;

/** The backlog count is written again at least this often when unchanged, in milliseconds (admission trusts a count for 5 minutes). */
export const BACKLOG_REFRESH_MS = 60_000;

@Injectable()
export class ArchiverService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  private leadership?: Leadership;
  private readonly m: { archived: Counter; workflows: Counter; lag: Histogram; pending: Gauge; oldest: Gauge; failures: Counter; dropped: Counter };
  /** The backlog count last written to etcd, and when (CLOCK_MONOTONIC ms). */
  private published?: { finished: number; atMono: number };
  /** When the archiver last listed every job (CLOCK_MONOTONIC ms); the first pass of a process does. */
  private listedAt = Number.NEGATIVE_INFINITY;
  /** When retention last ran (CLOCK_MONOTONIC ms); it runs on the first pass of a term, then every `retentionEveryMs`. */
  private retainedAt = Number.NEGATIVE_INFINITY;
  /** When runtime estimates were last learned or tried (CLOCK_MONOTONIC ms); on the first pass of a term, then every `runtimeEstimates.everyMs` (a minute after a failure). */
  private estimatedAt = Number.NEGATIVE_INFINITY;
  /** The estimate under way, if any. */
  private estimating?: Promise<void>;

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    @Inject(HISTORY) private readonly history: HistoryStore,
    @Inject(ARCHIVE_TUNING) private readonly tuning: ArchiveTuning,
    /** What a job's age is measured against (wall time: records keep wall timestamps). @default systemClock */
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
    /** The finished jobs' index (kept from the admitter's jobs informer). @default none: every pass lists every job */
    @Optional() private readonly finished?: FinishedJobs,
  ) {
    const registers = [ctx.registry];
    this.m = {
      archived: new Counter({ name: Metric.archiveJobs, help: 'Finished jobs moved from etcd to the history store', registers }),
      workflows: new Counter({ name: Metric.archiveWorkflows, help: 'Finished workflows moved from etcd to the history store', registers }),
      lag: new Histogram({
        name: Metric.archiveLag,
        help: "Seconds from a job's end to its removal from etcd by the archiver",
        buckets: [1, 5, 10, 30, 60, 120, 300, 900, 3600],
        registers,
      }),
      pending: new Gauge({ name: Metric.archivePending, help: 'Finished jobs etcd still holds, as of the last archiver pass', registers }),
      oldest: new Gauge({
        name: Metric.archiveOldest,
        help: 'Age of the oldest finished job etcd still holds, as of the last archiver pass (0 when none)',
        registers,
      }),
      failures: new Counter({ name: Metric.archiveFailures, help: 'Archiver passes that failed, by reason', labelNames: ['reason'], registers }),
      dropped: new Counter({ name: Metric.historyPartitionsDropped, help: 'Monthly history partitions dropped by retention', registers }),
    };
  }

  onApplicationBootstrap(): void {
    this.loop = serveElectedRole(this.ctx, 'archiver', this.abort.signal, {
      elected: (l) => {
        this.leadership = l;
        // a new term publishes its first count and estimates at once
        this.published = undefined;
        this.estimatedAt = Number.NEGATIVE_INFINITY;
      },
      lead: (l) => this.archiveWhileLeader(l),
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.abort.abort();
    await this.leadership?.resign();
    await this.loop?.catch(() => undefined);
    await this.estimating;
    await this.history.close();
  }

  private async archiveWhileLeader(leadership: Leadership): Promise<void> {
    const { log } = this.ctx;
    while (!this.abort.signal.aborted && leadership.held()) {
      let full = false;
      let passedAt: number | undefined;
      // Beside the passes, not in their way: a slow estimate (a week of tasks on a large cluster) must not hold up archiving.
      this.estimating ??= this.estimateRuntimes(leadership).finally(() => (this.estimating = undefined));
      try {
        await this.retain();
        passedAt = this.clock.now();
        full = await this.pass(leadership, passedAt);
        await this.passWorkflows(leadership);
        if (!(await leadership.verify())) return;
      } catch (err) {
        passedAt = undefined;
        const reason = isUnavailable(err) ? 'history_unavailable' : 'error';
        this.m.failures.inc({ reason });
        log.warn({ err: (err as Error).message, reason }, 'archive pass failed; finished jobs stay in etcd until the next one');
      }
      // A full batch: more are ready, go on at once; else wait for the next job to be ready.
      if (!full) await sleepUnlessAborted(this.pauseAfter(passedAt), this.abort.signal);
    }
  }

  /**
   * Now and then, learns each queue's runtime estimate from the history and stores them fenced at
   * `runtime-estimates` for the scheduler. A failure is logged and counted; archiving goes on, and
   * the next pass tries again.
   */
  private async estimateRuntimes(leadership: Leadership): Promise<void> {
    const t = this.tuning.runtimeEstimates;
    const mono = this.clock.monotonic();
    if (mono - this.estimatedAt < t.everyMs) return;
    // the next try: after `everyMs`, or a minute after a failure
    this.estimatedAt = mono;
    try {
      const at = this.clock.now();
      const from = at - t.windowMs;
      const rows = await this.history.runtimeEstimates({ from, to: at, quantile: t.quantile, minSamples: t.minSamples });
      const queues = Object.fromEntries(rows.map((r) => [r.queue, { seconds: Math.round(r.seconds * 1000) / 1000, samples: r.samples }]));
      if (!(await putRuntimeEstimates(this.ctx.store, leadership.fence(), { at, from, quantile: t.quantile, queues })))
        this.estimatedAt = Number.NEGATIVE_INFINITY;
    } catch (err) {
      this.estimatedAt = mono - t.everyMs + Math.min(t.everyMs, ESTIMATE_RETRY_MS);
      const reason = isUnavailable(err) ? 'history_unavailable' : 'error';
      this.m.failures.inc({ reason });
      this.ctx.log.warn({ err: (err as Error).message, reason }, 'learning runtime estimates failed; the scheduler keeps the last ones');
    }
  }

  /** History retention, now and then: drops the months older than `historyRetentionMs` (whole partitions). */
  private async retain(): Promise<void> {
    const mono = this.clock.monotonic();
    if (mono - this.retainedAt < this.tuning.retentionEveryMs) return;
    this.retainedAt = mono;
    const dropped = await this.history.dropHistoryBefore(this.clock.now() - this.tuning.historyRetentionMs);
    this.m.dropped.inc(dropped.length);
    if (dropped.length) this.ctx.log.info({ dropped: dropped.map((p) => p.name) }, 'history retention dropped old months');
    // Blobs in the history database (kept logs) as old as the history dropped, in batches; an S3 bucket's own lifecycle rule ages its objects.
    const blobsBefore = this.clock.now() - this.tuning.historyRetentionMs;
    for (let n = IDEMPOTENCY_DROP_BATCH; n === IDEMPOTENCY_DROP_BATCH && !this.abort.signal.aborted;) {
      n = await this.history.dropBlobsBefore(blobsBefore, IDEMPOTENCY_DROP_BATCH);
    }
    // Idempotency records of archived jobs past the key TTL, in batches.
    const keysBefore = this.clock.now() - this.tuning.idempotencyTtlMs;
    for (let n = IDEMPOTENCY_DROP_BATCH; n === IDEMPOTENCY_DROP_BATCH && !this.abort.signal.aborted;) {
      n = await this.history.dropIdempotencyBefore(keysBefore, IDEMPOTENCY_DROP_BATCH);
    }
  }

  /**
   * Finished workflows, once finished for `afterMs`: into history, then out of etcd (fenced, each
   * only if unchanged). Their step jobs leave etcd by the job passes once the workflow is gone.
   */
  private async passWorkflows(leadership: Leadership): Promise<void> {
    const { store } = this.ctx;
    const ready = await archivableWorkflows(store, this.clock.now(), this.tuning.afterMs, this.tuning.batchSize);
    if (ready.length === 0) return;
    await this.history.archiveWorkflows(ready.map((w) => w.value));
    this.m.workflows.inc((await removeArchivedWorkflows(store, leadership.fence(), ready)).length);
  }

  /**
   * Tells admission how many finished jobs etcd holds (`archive/backlog`; it pauses submits past
   * its limit), fenced by the leader key: when the count changed, or every `BACKLOG_REFRESH_MS`
   * so that admission sees it is fresh. Counted before the history is written, so a history that
   * is down still has its backlog counted.
   */
  private async publishBacklog(leadership: Leadership, backlog: ArchiveBacklog): Promise<void> {
    const mono = this.clock.monotonic();
    if (this.published && this.published.finished === backlog.finished && mono - this.published.atMono < BACKLOG_REFRESH_MS) return;
    if (await putArchiveBacklog(this.ctx.store, leadership.fence(), backlog)) this.published = { finished: backlog.finished, atMono: mono };
  }

  /**
   * One pass: lists etcd's jobs once and archives those ready, a batch (`batchSize`) at a time,
   * up to `PASS_BATCHES` batches while the leadership holds. Returns true when it stopped with
   * more ready (the next pass starts at once).
   */
  private async pass(leadership: Leadership, now: number): Promise<boolean> {
    const limit = this.tuning.batchSize * PASS_BATCHES;
    const ready = await this.readyJobs(now, limit);
    this.m.pending.set(ready.finished);
    await this.publishBacklog(leadership, {
      finished: ready.finished,
      ...(ready.oldestFinishedAt !== undefined ? { oldestFinishedAt: ready.oldestFinishedAt } : {}),
      at: now,
    });
    this.m.oldest.set(ready.oldestFinishedAt === undefined ? 0 : Math.max(0, (now - ready.oldestFinishedAt) / 1000));
    for (let i = 0; i < ready.jobs.length && leadership.held() && !this.abort.signal.aborted; i += this.tuning.batchSize) {
      await this.archiveBatch(leadership, ready.jobs.slice(i, i + this.tuning.batchSize));
    }
    return ready.jobs.length === limit;
  }

  /** The pause after a pass that was not full (`pauseAfterPass`); the longest one after a failed pass or without the index. */
  private pauseAfter(passedAt: number | undefined): number {
    const next = passedAt !== undefined && this.finished?.ready ? this.finished.firstFinishedAfter(passedAt - this.tuning.afterMs) : undefined;
    return pauseAfterPass(this.clock.now(), next, this.tuning);
  }

  /**
   * The jobs ready to archive and the backlog's figures: from the finished jobs' index (the
   * candidates read from etcd), or by listing every job when the index is not synced or a full
   * listing is due (every `FULL_LISTING_EVERY_MS`, in case the index missed a job).
   */
  private async readyJobs(now: number, limit: number): Promise<{ jobs: Array<Versioned<JobRecord>>; finished: number; oldestFinishedAt?: number }> {
    const mono = this.clock.monotonic();
    if (!this.finished?.ready || mono - this.listedAt >= FULL_LISTING_EVERY_MS) {
      this.listedAt = mono;
      return archivableJobs(this.ctx.store, now, this.tuning.afterMs, limit);
    }
    const candidates = this.finished.finishedBefore(now - this.tuning.afterMs, limit);
    return { jobs: await archivableJobsAmong(this.ctx.store, candidates, now, this.tuning.afterMs), ...this.finished.stats() };
  }

  /** One batch: its groups and results read, written to history in one transaction, then removed from etcd (fenced). */
  private async archiveBatch(leadership: Leadership, jobs: ReadonlyArray<Versioned<JobRecord>>): Promise<void> {
    const { store } = this.ctx;
    await inSpan('archive.batch', { attributes: { 'batch.archive.jobs': jobs.length } }, async () => {
      const entries = await readArchiveBatch(store, jobs);
      await this.history.archiveJobs(
        entries.map((e) => ({
          job: e.job.value,
          groups: e.groups.map((g) => g.value),
          results: e.results.map((r) => r.value),
          ...(e.idempotency
            ? {
                idempotency: {
                  keyDigest: e.job.value.idempotencyDigest!,
                  requestHash: e.idempotency.value.requestHash,
                  createdAt: e.idempotency.value.createdAt,
                },
              }
            : {}),
        })),
      );
      failpoint(FAILPOINTS.ArchiverAfterHistoryWrite);
      // Granted after history holds the keys: their etcd copies outlive every lookup that missed them there.
      const keyLease = entries.some((e) => e.idempotency) ? await store.grantExpiringLease(Math.ceil(this.tuning.idempotencyHandoverMs / 1000)) : undefined;
      const removed = await removeArchived(store, leadership.fence(), entries, keyLease);
      this.m.archived.inc(removed.jobs.length);
      const at = this.clock.now();
      const gone = new Set(removed.jobs);
      for (const e of entries) if (gone.has(e.job.value.id)) this.m.lag.observe(Math.max(0, (at - e.job.value.finishedAt!) / 1000));
      if (removed.kept)
        this.ctx.log.info({ kept: removed.kept }, 'archived jobs changed or the fence was lost before removal; a later pass archives them again');
    });
  }
}
