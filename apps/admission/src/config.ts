/** The admission service's own settings: their schema over the environment (`ADMISSION_ENV`) and the parsed `AdmissionConfig`. */
import { envNumber, envString, historyUrlFromEnv, parseEnv } from '@batchapi/runtime';
import { DEFAULT_WORKING_DIR_MAX_BYTES } from '@batchapi/blobs';
import { z } from 'zod';
import { type BacklogLimits, DEFAULT_BACKLOG_STALE_MS } from './archive-backlog';
import type { EventStreamLimits } from './event-stream';
import type { OverloadLimits } from './overload';
import type { ReadLimits } from './read-limit';

/** Why a trace URL template is refused, or undefined: an http(s) URL of at most 2,048 characters holding `{traceId}`. Pure. */
export function traceUrlProblem(template: string): string | undefined {
  if (template.length > 2048) return 'must be at most 2048 characters';
  if (!template.includes('{traceId}')) return 'must hold {traceId} where the trace id goes';
  let url: URL;
  try {
    url = new URL(template.replaceAll('{traceId}', '0'));
  } catch {
    return 'must be a URL';
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? undefined : 'must be an http or https URL';
}

/** The variables of an admission replica (docs/configuration.md, "admission"). */
export const ADMISSION_ENV = z.object({
  BATCH_TOKENS_FILE: envString({
    type: 'path',
    doc: 'The tokens file: who may call the API, as which tenant and role. Required by `admission` (see docs/architecture.md).',
  }),
  BATCH_TRACE_URL: envString({
    type: 'URL template',
    blankIsUnset: true,
    check: traceUrlProblem,
    doc: "The trace UI's page of one trace, with `{traceId}` where the trace id goes (e.g. `https://jaeger.example.com/trace/{traceId}`): the console links each job's trace id there. Unset: the id is shown without a link.",
  }),
  BATCH_MAX_BODY_BYTES: envNumber({
    min: 1,
    unit: 'bytes',
    defaultText: "1048576 (the runtime's)",
    doc: 'Largest request body; larger requests are answered 413.',
  }),
  BATCH_WORKING_DIR_MAX_BYTES: envNumber({
    default: DEFAULT_WORKING_DIR_MAX_BYTES,
    min: 1,
    unit: 'bytes',
    doc: 'Largest working dir package (`batch submit --working-dir`) accepted, measured as its uncompressed tar; larger uploads are answered 413. Executors accept packages up to their `BATCH_WORKING_DIR_CACHE_BYTES`.',
  }),
  BATCH_MAX_INFLIGHT_SUBMITS: envNumber({
    default: 256,
    min: 0,
    unit: 'submits',
    doc: 'Most submits one replica handles at once before answering 503 `overloaded`; 0 turns the cap off.',
  }),
  BATCH_MAX_EVENT_LOOP_DELAY_MS: envNumber({
    default: 2000,
    min: 0,
    int: false,
    unit: 'ms',
    doc: 'Event-loop delay (the longest within the last second) past which submits are shed 503 `overloaded`; 0 turns it off.',
  }),
  BATCH_MAX_COMMIT_LATENCY_MS: envNumber({
    default: 2000,
    min: 0,
    int: false,
    unit: 'ms',
    doc: 'Commit latency (the least time from the commit queue to the answer among the submits answered in the last second) past which submits are shed 503 `overloaded`; 0 turns it off.',
  }),
  BATCH_READS_PER_SECOND: envNumber({
    default: 50,
    min: 0,
    int: false,
    unit: 'reads/s',
    doc: "Reads per second of one tenant's tokens on one replica; 0 turns the limit off.",
  }),
  BATCH_READ_BURST: envNumber({ default: 100, min: 0, int: false, unit: 'reads', doc: 'Reads a tenant may make at once before its rate holds it.' }),
  BATCH_OPERATOR_READS_PER_SECOND: envNumber({
    default: 500,
    min: 0,
    int: false,
    unit: 'reads/s',
    doc: "Reads per second of one operator tenant's tokens on one replica; 0 turns the limit off.",
  }),
  BATCH_OPERATOR_READ_BURST: envNumber({ default: 1000, min: 0, int: false, unit: 'reads', doc: 'Reads an operator tenant may make at once.' }),
  BATCH_MAX_EVENT_STREAMS: envNumber({
    default: 1000,
    min: 0,
    unit: 'streams',
    doc: 'Most event streams open at once on the replica; then 503 `unavailable`.',
  }),
  BATCH_MAX_EVENT_STREAMS_PER_TENANT: envNumber({
    default: 100,
    min: 0,
    unit: 'streams',
    doc: "Most event streams one tenant's tokens hold open at once on the replica; then 429 `too_many_streams` (operators are held only by `BATCH_MAX_EVENT_STREAMS`).",
  }),
  BATCH_ARCHIVE_BACKLOG_LIMIT: envNumber({
    default: 100_000,
    min: 0,
    unit: 'jobs',
    doc: 'Finished jobs etcd may hold waiting for the history store (as the archiver last counted) before submits pause with 503 `overloaded`; 0 turns the pause off.',
  }),
  BATCH_EVENT_STREAM_STALL_MS: envNumber({
    default: 30_000,
    min: 0,
    unit: 'ms',
    doc: 'How long a view may wait for a client that reads nothing before its stream is closed as a slow consumer.',
  }),
});

/** An admission replica's settings, as read from its environment. */
export interface AdmissionConfig {
  /** Tokens file path (`BATCH_TOKENS_FILE`). @default none: `admission` refuses to start */
  tokensFile?: string;
  /** Largest request body, in bytes (`BATCH_MAX_BODY_BYTES`). @default the runtime's, 1048576 */
  bodyLimit?: number;
  /** Largest working dir package (its tar), in bytes (`BATCH_WORKING_DIR_MAX_BYTES`). @default 104857600 (100 MiB) */
  workingDirMaxBytes: number;
  /** Most submits handled at once (`BATCH_MAX_INFLIGHT_SUBMITS`); 0 turns it off. @default 256 */
  maxInflightSubmits: number;
  /** Shedding of submits (`BATCH_MAX_EVENT_LOOP_DELAY_MS`, `BATCH_MAX_COMMIT_LATENCY_MS`). @default see `OverloadLimits` */
  overload: OverloadLimits;
  /** Read budgets (`BATCH_READS_PER_SECOND`, `BATCH_READ_BURST`, `BATCH_OPERATOR_*`). @default see `ReadLimits` */
  reads: ReadLimits;
  /** Event stream caps and stall timeout (`BATCH_MAX_EVENT_STREAMS*`, `BATCH_EVENT_STREAM_STALL_MS`). @default see `EventStreamLimits` */
  streams: EventStreamLimits;
  /** History store URL (`BATCH_HISTORY_URL`): set, jobs no longer in etcd are read from it. @default none */
  historyUrl?: string;
  /** Pause of submits on the archive backlog (`BATCH_ARCHIVE_BACKLOG_LIMIT`). @default see `BacklogLimits` */
  backlog: BacklogLimits;
  /** The trace UI's page of a trace, `{traceId}` in it (`BATCH_TRACE_URL`), for the console's links. @default none */
  traceUrl?: string;
}

/** The settings from the environment, defaults for what is unset; a bad value throws `ConfigError` naming the variable. */
export function admissionConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AdmissionConfig {
  const e = parseEnv(ADMISSION_ENV, env);
  return {
    tokensFile: e.BATCH_TOKENS_FILE || undefined,
    traceUrl: e.BATCH_TRACE_URL,
    ...historyUrlFromEnv(env),
    bodyLimit: e.BATCH_MAX_BODY_BYTES,
    workingDirMaxBytes: e.BATCH_WORKING_DIR_MAX_BYTES,
    maxInflightSubmits: e.BATCH_MAX_INFLIGHT_SUBMITS,
    overload: { maxLoopDelayMs: e.BATCH_MAX_EVENT_LOOP_DELAY_MS, maxCommitLatencyMs: e.BATCH_MAX_COMMIT_LATENCY_MS },
    reads: {
      tenantRate: e.BATCH_READS_PER_SECOND,
      tenantBurst: e.BATCH_READ_BURST,
      operatorRate: e.BATCH_OPERATOR_READS_PER_SECOND,
      operatorBurst: e.BATCH_OPERATOR_READ_BURST,
    },
    backlog: { maxFinished: e.BATCH_ARCHIVE_BACKLOG_LIMIT, staleMs: DEFAULT_BACKLOG_STALE_MS },
    streams: {
      maxStreams: e.BATCH_MAX_EVENT_STREAMS,
      maxStreamsPerTenant: e.BATCH_MAX_EVENT_STREAMS_PER_TENANT,
      stallMs: e.BATCH_EVENT_STREAM_STALL_MS,
    },
  };
}
