/**
 * The finished jobs etcd holds, by when they finished: an index the quota service keeps from the
 * jobs informer it already runs (the admitter's), so the archiver finds the jobs ready to leave
 * etcd without listing and parsing every job each pass (a listing every 5 s of ~70,000 jobs was
 * most of quota's and much of etcd's CPU under a steady 1,000 submits/s). The index only names
 * candidates: the archiver reads each from etcd and removes it by compare-and-swap, so an index
 * that lags or errs can delay an archive, never make a wrong one; and the archiver still lists
 * every job now and then (`FULL_LISTING_EVERY_MS`) in case the index missed one.
 */
import { type JobRecord, TERMINAL_PHASES } from '@batchapi/api';
import { Injectable } from '@nestjs/common';

@Injectable()
export class FinishedJobs {
  /** Finished job id → its `finishedAt` (epoch ms). */
  private readonly finishedAt = new Map<string, number>();
  private synced = false;

  /** Whether the index holds a full listing (the informer synced at least once). */
  get ready(): boolean {
    return this.synced;
  }

  /** Replaces the index with a listing's jobs. */
  sync(jobs: Iterable<JobRecord>): void {
    this.finishedAt.clear();
    for (const j of jobs) this.put(j.id, j);
    this.synced = true;
  }

  /** A job was written (`job` its new value) or deleted (`job` undefined). */
  put(id: string, job: JobRecord | undefined): void {
    if (job && TERMINAL_PHASES.has(job.phase) && job.finishedAt !== undefined) this.finishedAt.set(id, job.finishedAt);
    else this.finishedAt.delete(id);
  }

  /** How many finished jobs etcd holds, and when the oldest finished (undefined when none). */
  stats(): { finished: number; oldestFinishedAt?: number } {
    let oldest: number | undefined;
    for (const at of this.finishedAt.values()) if (oldest === undefined || at < oldest) oldest = at;
    return { finished: this.finishedAt.size, ...(oldest !== undefined ? { oldestFinishedAt: oldest } : {}) };
  }

  /** The earliest `finishedAt` (epoch ms) later than `after`; undefined when no job finished after it. */
  firstFinishedAfter(after: number): number | undefined {
    let first: number | undefined;
    for (const at of this.finishedAt.values()) if (at > after && (first === undefined || at < first)) first = at;
    return first;
  }

  /** The ids of jobs finished at or before `before` (epoch ms), oldest first, at most `max`. */
  finishedBefore(before: number, max: number): string[] {
    const out: Array<[string, number]> = [];
    for (const [id, at] of this.finishedAt) if (at <= before) out.push([id, at]);
    return out
      .sort((a, b) => a[1] - b[1])
      .slice(0, max)
      .map(([id]) => id);
  }
}
