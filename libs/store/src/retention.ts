/**
 * Retention: finished jobs, their task-group histories and idempotency records are deleted
 * once they are old enough, so etcd does not grow with history. Run by one elected replica;
 * every delete is fenced by its leader key and compares what it read.
 */
import { type JobRecord, TERMINAL_PHASES } from '@batchapi/api';
import { MAX_TXN_OPS, type Compare, type EtcdStore, type Op } from './etcd';
import type { IdempotencyRecord } from './jobs';

/** How long history is kept. */
export interface RetentionPolicy {
  /** A finished job (and its groups) is deleted this long after it finished, in milliseconds (`BATCH_JOB_RETENTION`, seconds). @default 604800000 (7 days) */
  jobRetentionMs: number;
  /** An idempotency record is deleted this long after its submit, in milliseconds; a retry after that creates a new job. @default 86400000 (24 h) */
  idempotencyTtlMs: number;
  /** Most jobs deleted per pass (bounds one pass's work). @default 1000 */
  maxJobsPerPass: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { jobRetentionMs: 7 * 86_400_000, idempotencyTtlMs: 86_400_000, maxJobsPerPass: 1000 };

/** True when a job finished more than `retentionMs` before `now`. Pure. */
export function isExpired(job: JobRecord, now: number, retentionMs: number): boolean {
  return TERMINAL_PHASES.has(job.phase) && job.finishedAt !== undefined && now - job.finishedAt > retentionMs;
}

/** What one pass deleted. */
export interface RetentionResult {
  jobs: number;
  groups: number;
  idempotency: number;
}

/** One retention pass: deletes expired jobs with their groups, then expired idempotency records. */
export async function collectHistory(store: EtcdStore, fence: Compare, policy: RetentionPolicy, now: number): Promise<RetentionResult> {
  const out: RetentionResult = { jobs: 0, groups: 0, idempotency: 0 };
  const expired = (await store.listAll<JobRecord>(store.keys.jobs())).items
    .filter((j) => isExpired(j.value, now, policy.jobRetentionMs))
    .slice(0, policy.maxJobsPerPass);
  for (const job of expired) {
    // Groups first (a crash in between leaves the job with fewer groups, never groups without a job), then the job if unchanged.
    const groups = (await store.listAll<unknown>(store.keys.groupsOf(job.value.id))).items;
    for (let i = 0; i < groups.length; i += MAX_TXN_OPS - 1) {
      const part = groups.slice(i, i + MAX_TXN_OPS - 1);
      if (
        (
          await store.txn(
            [fence],
            part.map((g): Op => ({ delete: g.key })),
          )
        ).succeeded
      )
        out.groups += part.length;
      else return out; // fence lost
    }
    if ((await store.txn([fence, { key: job.key, modRevision: job.modRevision }], [{ delete: job.key }])).succeeded) out.jobs++;
  }
  const stale = (await store.listAll<IdempotencyRecord>(store.keys.idempotencyAll())).items.filter((r) => now - r.value.createdAt > policy.idempotencyTtlMs);
  for (let i = 0; i < stale.length; i += (MAX_TXN_OPS >> 1) - 1) {
    const part = stale.slice(i, i + (MAX_TXN_OPS >> 1) - 1);
    if (
      (
        await store.txn(
          [fence, ...part.map((r): Compare => ({ key: r.key, modRevision: r.modRevision }))],
          part.map((r): Op => ({ delete: r.key })),
        )
      ).succeeded
    )
      out.idempotency += part.length;
  }
  return out;
}
