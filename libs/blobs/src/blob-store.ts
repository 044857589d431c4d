/**
 * The blob store: bytes that must outlive the node that made them — a task attempt's stdout and
 * stderr first (large results and `working_dir` packages later). One interface, two
 * implementations: the history database (`PostgresBlobStore`, the default where a history store
 * runs) and S3-compatible object storage (`S3BlobStore`).
 */
import type { BlobInfo } from '@batchapi/history';

export type { BlobInfo } from '@batchapi/history';

/** How a blob's bytes are to be read. */
export interface BlobContent {
  /** e.g. `text/plain; charset=utf-8` */
  contentType: string;
  /** `gzip` when the bytes are gzip-compressed (a reader inflates them), else `identity`. */
  contentEncoding: 'gzip' | 'identity';
}

/** A blob as read: its metadata and bytes (as stored: compressed when `info.contentEncoding` is gzip). */
export interface StoredBlob {
  info: BlobInfo;
  body: Buffer;
}

/** Where blobs are kept; every method may throw the implementation's unavailable error (`BlobStoreUnavailableError`, `HistoryUnavailableError`). */
export interface BlobStore {
  /** `postgres` or `s3`, for logs and metrics. */
  readonly kind: 'postgres' | 's3';
  /** Stores `body` under `key`, replacing any blob of that key whole (a reader sees the old or the new one). */
  put(key: string, body: Buffer, content: BlobContent, now: number): Promise<void>;
  /** Blob `key`; undefined when there is none. */
  get(key: string): Promise<StoredBlob | undefined>;
  /** The blobs whose key starts with `prefix`, in key order (bytewise), at most `limit` (1 to 1000). */
  list(prefix: string, limit: number): Promise<BlobInfo[]>;
  /** Releases connections; the store cannot be used after. */
  close(): Promise<void>;
}

/** Most keys one `list` returns. */
export const MAX_BLOB_LIST = 1000;

/** Which log of a task attempt. */
export type LogStream = 'stdout' | 'stderr';

/**
 * Key of a task attempt's log: `logs/{jobId}/{index}/{attempt}/{stream}`, the index and attempt
 * zero-padded (10 and 6 digits) so that key order is numeric order and the latest attempt of a
 * task is the last key under `logsOfTask`.
 */
export function logKey(jobId: string, index: number, attempt: number, stream: LogStream): string {
  return `${logsOfTask(jobId, index)}${String(attempt).padStart(6, '0')}/${stream}`;
}

/** Prefix of every log of one task, all attempts. */
export function logsOfTask(jobId: string, index: number): string {
  return `logs/${jobId}/${String(index).padStart(10, '0')}/`;
}

/** Key of a task attempt's result kept in the blob store (over `MAX_RESULT_BYTES`): `results/{jobId}/{index}/{attempt}`, zero-padded as logs. */
export function resultKey(jobId: string, index: number, attempt: number): string {
  return `results/${jobId}/${String(index).padStart(10, '0')}/${String(attempt).padStart(6, '0')}`;
}

/** How a kept result is stored: its JSON, gzip-compressed. */
export const RESULT_CONTENT: BlobContent = { contentType: 'application/json', contentEncoding: 'gzip' };

/** The attempt and stream a log key names; undefined for another key. */
export function parseLogKey(key: string): { jobId: string; index: number; attempt: number; stream: LogStream } | undefined {
  const m = /^logs\/([^/]+)\/(\d{10})\/(\d{6})\/(stdout|stderr)$/.exec(key);
  return m ? { jobId: m[1], index: Number(m[2]), attempt: Number(m[3]), stream: m[4] as LogStream } : undefined;
}
