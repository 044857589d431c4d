/**
 * The step cache's rows (`step_cache`): memoized workflow steps, found by tenant and cache key.
 * Bounded per tenant — each record evicts that tenant's expired entries and, past the limit, its
 * oldest — so the table holds at most `maxEntries` rows per tenant. Time is passed in.
 */
import type pg from 'pg';
import { InvalidHistoryRequestError } from './errors';
import { inTransaction } from './transaction';

/** An entry of the step cache: which job's results a step of this key reuses. Times are epoch milliseconds. */
export interface StepCacheEntry {
  tenant: string;
  /** The step's cache key (`stepCacheKey`: hex SHA-256). */
  key: string;
  /** The job that produced the results. */
  jobId: string;
  /** The run and the step the job was. */
  workflowId: string;
  step: string;
  /** When the step succeeded: the entry expires a TTL after it. */
  createdAt: number;
}

/** How the cache is bounded. */
export interface StepCacheBounds {
  /** Entries created before this time (epoch ms) are expired: never found, and deleted by the next record of their tenant. */
  notBefore: number;
  /** Most entries one tenant keeps; past it the oldest are deleted. At least 1. */
  maxEntries: number;
}

const KEY = /^[0-9a-f]{64}$/;

/** The entry of `tenant` and `key` created at or after `notBefore`; undefined when none. */
export async function findStepCache(pool: pg.Pool, tenant: string, key: string, notBefore: number): Promise<StepCacheEntry | undefined> {
  if (!KEY.test(key)) throw new InvalidHistoryRequestError(`a step cache key is a hex SHA-256, got ${JSON.stringify(key.slice(0, 80))}`, 'key');
  const { rows } = await pool.query<{ job_id: string; workflow_id: string; step: string; created_at: Date }>(
    'SELECT job_id, workflow_id, step, created_at FROM step_cache WHERE tenant = $1 AND cache_key = $2 AND created_at >= $3',
    [tenant, key, new Date(notBefore).toISOString()],
  );
  const r = rows[0];
  return r && { tenant, key, jobId: r.job_id, workflowId: r.workflow_id, step: r.step, createdAt: r.created_at.getTime() };
}

/**
 * Records `entry` (a newer entry of the same key replaces the older: the cache names the latest
 * success), then deletes the tenant's expired entries and those past `maxEntries`, oldest first,
 * in one transaction. Idempotent: recording one entry twice leaves one row.
 */
export async function recordStepCache(pool: pg.Pool, entry: StepCacheEntry, bounds: StepCacheBounds): Promise<void> {
  if (!KEY.test(entry.key)) throw new InvalidHistoryRequestError('a step cache key is a hex SHA-256', 'key');
  if (!Number.isInteger(bounds.maxEntries) || bounds.maxEntries < 1) {
    throw new InvalidHistoryRequestError(`maxEntries must be a whole number of at least 1, got ${bounds.maxEntries}`, 'maxEntries');
  }
  await inTransaction(pool, async (client) => {
    await client.query(
      `INSERT INTO step_cache (tenant, cache_key, job_id, workflow_id, step, created_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (tenant, cache_key) DO UPDATE SET job_id = EXCLUDED.job_id, workflow_id = EXCLUDED.workflow_id, step = EXCLUDED.step,
         created_at = EXCLUDED.created_at WHERE step_cache.created_at <= EXCLUDED.created_at`,
      [entry.tenant, entry.key, entry.jobId, entry.workflowId, entry.step, new Date(entry.createdAt).toISOString()],
    );
    await client.query('DELETE FROM step_cache WHERE tenant = $1 AND created_at < $2', [entry.tenant, new Date(bounds.notBefore).toISOString()]);
    await client.query(
      `DELETE FROM step_cache WHERE tenant = $1 AND cache_key IN (
         SELECT cache_key FROM step_cache WHERE tenant = $1 ORDER BY created_at DESC, cache_key DESC OFFSET $2)`,
      [entry.tenant, bounds.maxEntries],
    );
  });
}
