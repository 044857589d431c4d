/**
 * Blobs in the history database: a blob's metadata in `blobs`, its bytes in chunks of
 * `BLOB_CHUNK_BYTES` in `blob_chunks` (migration 6). What `@batchapi/blobs`' PostgreSQL blob
 * store reads and writes; the SQL stays here, with the rest of the history's.
 */
import type pg from 'pg';
import { InvalidHistoryRequestError } from './errors';
import { inTransaction } from './transaction';

/** Bytes of one chunk row: 1 MiB. */
export const BLOB_CHUNK_BYTES = 1024 * 1024;
/** Longest blob key, in characters. */
export const MAX_BLOB_KEY_LENGTH = 512;

/** A stored blob's metadata. */
export interface BlobInfo {
  key: string;
  /** e.g. `text/plain; charset=utf-8` */
  contentType: string;
  /** `gzip` when the bytes are gzip-compressed, else `identity`. */
  contentEncoding: 'gzip' | 'identity';
  /** Bytes stored (compressed, when gzip). */
  sizeBytes: number;
  /** When it was put, epoch ms. */
  createdAt: number;
}

export function checkBlobKey(key: string): void {
  if (key.length === 0 || key.length > MAX_BLOB_KEY_LENGTH || key.includes('\0')) {
    throw new InvalidHistoryRequestError(`a blob key must be 1 to ${MAX_BLOB_KEY_LENGTH} characters without NUL, got ${key.length}`, 'key');
  }
}

/** Replaces blob `info.key` with `body`, in one transaction. */
export async function putBlob(pool: pg.Pool, info: BlobInfo, body: Buffer): Promise<void> {
  checkBlobKey(info.key);
  await inTransaction(pool, async (client) => {
    await client.query('DELETE FROM blobs WHERE key = $1', [info.key]);
    await client.query('INSERT INTO blobs (key, content_type, content_encoding, size_bytes, created_at) VALUES ($1, $2, $3, $4, $5)', [
      info.key,
      info.contentType,
      info.contentEncoding,
      body.length,
      new Date(info.createdAt).toISOString(),
    ]);
    // an empty blob is one empty chunk
    const chunks = Math.max(1, Math.ceil(body.length / BLOB_CHUNK_BYTES));
    for (let seq = 0; seq < chunks; seq++) {
      await client.query('INSERT INTO blob_chunks (key, seq, data) VALUES ($1, $2, $3)', [
        info.key,
        seq,
        body.subarray(seq * BLOB_CHUNK_BYTES, (seq + 1) * BLOB_CHUNK_BYTES),
      ]);
    }
  });
}

interface BlobRow {
  key: string;
  content_type: string;
  content_encoding: 'gzip' | 'identity';
  size_bytes: string;
  created_at: Date;
}
const infoOf = (r: BlobRow): BlobInfo => ({
  key: r.key,
  contentType: r.content_type,
  contentEncoding: r.content_encoding,
  sizeBytes: Number(r.size_bytes),
  createdAt: r.created_at.getTime(),
});

/** Blob `key` with its bytes (one statement: one snapshot, never a blob half replaced); undefined when none. */
export async function getBlob(pool: pg.Pool, key: string): Promise<{ info: BlobInfo; body: Buffer } | undefined> {
  checkBlobKey(key);
  const { rows } = await pool.query<BlobRow & { data: Buffer }>(
    `SELECT b.key, b.content_type, b.content_encoding, b.size_bytes, b.created_at, c.data
     FROM blobs b JOIN blob_chunks c ON c.key = b.key WHERE b.key = $1 ORDER BY c.seq`,
    [key],
  );
  if (rows.length === 0) return undefined;
  return { info: infoOf(rows[0]), body: Buffer.concat(rows.map((r) => r.data)) };
}

/** The blobs whose key starts with `prefix`, in key order, at most `limit`. */
export async function listBlobs(pool: pg.Pool, prefix: string, limit: number): Promise<BlobInfo[]> {
  checkBlobKey(prefix);
  // a prefix range instead of LIKE: no escaping of % and _, and the primary key's index serves it
  const { rows } = await pool.query<BlobRow>(
    `SELECT key, content_type, content_encoding, size_bytes, created_at FROM blobs
     WHERE key >= $1 AND key < $1 || chr(1114111) ORDER BY key LIMIT $2`,
    [prefix, limit],
  );
  return rows.map(infoOf);
}

/** Deletes the blobs put before `before` (epoch ms), at most `max`, oldest first; returns how many. */
export async function dropBlobsBefore(pool: pg.Pool, before: number, max: number): Promise<number> {
  const { rowCount } = await pool.query(
    'DELETE FROM blobs WHERE key IN (SELECT key FROM blobs WHERE created_at < $1::timestamptz ORDER BY created_at LIMIT $2)',
    [new Date(before).toISOString(), max],
  );
  return rowCount ?? 0;
}
