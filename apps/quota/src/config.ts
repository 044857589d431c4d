/** The quota service's own settings: their schema over the environment (`QUOTA_ENV`) and the parsed `QuotaConfig`. */
import { envNumber, envString, historyUrlFromEnv, parseEnv } from '@batchapi/runtime';
import { DEFAULT_RETENTION } from '@batchapi/store';
import { z } from 'zod';
import { type ArchiveTuning, DEFAULT_ARCHIVE } from './archiver.service';
import type { RetentionTuning } from './retention.service';
import { DEFAULT_STEP_CACHE, type StepCacheTuning } from './workflow-controller';

/** The variables of a quota replica (docs/configuration.md, "quota"). */
export const QUOTA_ENV = z.object({
  BATCH_CLUSTER_CONFIG: envString({
    type: 'path',
    defaultText: 'none: tenant `default` with queue `default`',
    doc: 'JSON file of the tenants and queues to create or update at start.',
  }),
  BATCH_JOB_RETENTION: envNumber({
    default: DEFAULT_RETENTION.jobRetentionMs / 1000,
    min: 0,
    int: false,
    unit: 'seconds',
    doc: 'How long a finished job, its tasks and logs index are kept before retention deletes them.',
  }),
  BATCH_IDEMPOTENCY_TTL: envNumber({
    default: DEFAULT_RETENTION.idempotencyTtlMs / 1000,
    min: 0,
    int: false,
    unit: 'seconds',
    doc: 'How long an idempotency key is remembered: a submit sent again within it returns the first job.',
  }),
  BATCH_ARCHIVE_AFTER: envNumber({
    default: DEFAULT_ARCHIVE.afterMs / 1000,
    min: 0,
    int: false,
    unit: 'seconds',
    doc: 'With `BATCH_HISTORY_URL`: how long after it finished a job is moved from etcd to the history store.',
  }),
  BATCH_HISTORY_RETENTION: envNumber({
    default: DEFAULT_ARCHIVE.historyRetentionMs / 86_400_000,
    min: 1,
    unit: 'days',
    doc: 'With `BATCH_HISTORY_URL`: how long history is kept; older months are dropped whole (a month more at most).',
  }),
  BATCH_STEP_CACHE_TTL: envNumber({
    default: DEFAULT_STEP_CACHE.ttlMs / 1000,
    min: 1,
    int: false,
    unit: 'seconds',
    doc: 'With `BATCH_HISTORY_URL`: how long after it succeeded a memoized workflow step (`cache: true`) can be reused; keep it under `BATCH_HISTORY_RETENTION`.',
  }),
  BATCH_STEP_API_URL: envString({
    type: 'URL',
    blankIsUnset: true,
    defaultText: "a live admission replica's URL (its member record)",
    check: (v) => (/^https?:\/\/[^\s/]+(\/\S*)?$/.test(v) ? undefined : 'must be an http:// or https:// URL'),
    doc: "The API address a workflow step that reads other steps' outputs is given as `BATCH_API` (unless its env sets one): the admission Service's address as the step's tasks reach it.",
  }),
  BATCH_STEP_CACHE_MAX_ENTRIES: envNumber({
    default: DEFAULT_STEP_CACHE.maxEntries,
    min: 1,
    unit: 'entries',
    doc: 'With `BATCH_HISTORY_URL`: most step cache entries one tenant keeps; past it the oldest are evicted.',
  }),
});

/** A quota replica's settings, as read from its environment. */
export interface QuotaConfig {
  /** Cluster config file (`BATCH_CLUSTER_CONFIG`). @default none: `DEFAULT_CLUSTER` */
  clusterConfigFile?: string;
  /** History retention (`BATCH_JOB_RETENTION`, `BATCH_IDEMPOTENCY_TTL`, in seconds). @default 7 days / 24 h, a pass every 60 s */
  retention: RetentionTuning;
  /** History store URL (`BATCH_HISTORY_URL`): set, the elected archiver moves finished jobs there. @default none (no archiving) */
  historyUrl?: string;
  /** Archiving (`BATCH_ARCHIVE_AFTER`, seconds) and history retention (`BATCH_HISTORY_RETENTION`, days). @default 60 s after the end, batches of 500, the next pass when the next job is ready (at least 1 s, at most 5 s after the last); 90 days, applied hourly */
  archive: ArchiveTuning;
  /** The step cache (`BATCH_STEP_CACHE_TTL`, seconds; `BATCH_STEP_CACHE_MAX_ENTRIES`). @default 7 days, 10,000 entries per tenant */
  stepCache: StepCacheTuning;
  /** The API address steps read their inputs from (`BATCH_STEP_API_URL`). @default a live admission replica's member record URL */
  stepApiUrl?: string;
}

/** Pause between retention passes, in milliseconds (not configurable by a variable). */
const RETENTION_INTERVAL_MS = 60_000;

/** The settings from the environment, defaults for what is unset; a bad value throws `ConfigError` naming the variable. */
export function quotaConfigFromEnv(env: NodeJS.ProcessEnv = process.env): QuotaConfig {
  const e = parseEnv(QUOTA_ENV, env);
  return {
    clusterConfigFile: e.BATCH_CLUSTER_CONFIG || undefined,
    retention: {
      ...DEFAULT_RETENTION,
      intervalMs: RETENTION_INTERVAL_MS,
      jobRetentionMs: e.BATCH_JOB_RETENTION * 1000,
      idempotencyTtlMs: e.BATCH_IDEMPOTENCY_TTL * 1000,
    },
    ...historyUrlFromEnv(env),
    archive: {
      ...DEFAULT_ARCHIVE,
      afterMs: e.BATCH_ARCHIVE_AFTER * 1000,
      historyRetentionMs: e.BATCH_HISTORY_RETENTION * 86_400_000,
      idempotencyTtlMs: e.BATCH_IDEMPOTENCY_TTL * 1000,
    },
    stepCache: { ttlMs: e.BATCH_STEP_CACHE_TTL * 1000, maxEntries: e.BATCH_STEP_CACHE_MAX_ENTRIES },
    ...(e.BATCH_STEP_API_URL ? { stepApiUrl: e.BATCH_STEP_API_URL } : {}),
  };
}
