/**
 * What the executor uploads of an attempt's log when the attempt ends: the file (after the
 * rotated `.1` part, when the log rotated), its last `capBytes` at most, with a line at the end
 * saying what was left out, gzip-compressed.
 */
import { open, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { BlobContent } from './blob-store';

const gzipAsync = promisify(gzip);

/** Most bytes of one log kept in the blob store by default: 8 MiB (before compression). */
export const DEFAULT_LOG_CAP_BYTES = 8 * 1024 * 1024;

/** The content of an uploaded log. */
export const LOG_CONTENT: BlobContent = { contentType: 'text/plain; charset=utf-8', contentEncoding: 'gzip' };

/** A captured log: the compressed bytes, and how many bytes of the log were written and kept. */
export interface CapturedLog {
  body: Buffer;
  /** Bytes the attempt wrote that are still on disk (the rotated part and the current file). */
  writtenBytes: number;
  /** Bytes kept (the tail), before compression and the note. */
  keptBytes: number;
}

/** The last `max` bytes of `path` and its size; empty when the file is absent. */
async function tailOf(path: string, max: number): Promise<{ bytes: Buffer; size: number }> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return { bytes: Buffer.alloc(0), size: 0 };
  }
  const n = Math.min(size, max);
  const fh = await open(path, 'r');
  try {
    const bytes = Buffer.alloc(n);
    const { bytesRead } = await fh.read(bytes, 0, n, size - n);
    return { bytes: bytes.subarray(0, bytesRead), size };
  } finally {
    await fh.close();
  }
}

/**
 * Captures log `path` for upload: its rotated part `path.1` then `path`, the last `capBytes` of
 * them, and when anything was left out a last line `[batch: …]` that says how much and why.
 * Undefined when neither file exists (the attempt never started).
 * @param capBytes - most bytes kept, before compression. @default DEFAULT_LOG_CAP_BYTES (8 MiB)
 * @param rotated - whether the executor's rotation dropped output before `path.1` (it keeps one rotated part)
 */
export async function captureLog(path: string, capBytes = DEFAULT_LOG_CAP_BYTES): Promise<CapturedLog | undefined> {
  const current = await tailOf(path, capBytes);
  const older = await tailOf(`${path}.1`, Math.max(0, capBytes - current.bytes.length));
  const exists =
    current.size > 0 ||
    older.size > 0 ||
    (await stat(path).then(
      () => true,
      () => false,
    ));
  if (!exists) return undefined;
  const kept = Buffer.concat([older.bytes, current.bytes]);
  const written = older.size + current.size;
  const notes: string[] = [];
  if (written > kept.length) {
    notes.push(`[batch: this log was ${written} bytes; only its last ${kept.length} are kept here (the cap of uploaded logs is ${capBytes} bytes)]`);
  }
  if (older.size > 0) notes.push('[batch: the log rotated on its node; output before its last rotation is not kept]');
  const tail = notes.length ? Buffer.from(`${kept.length && kept[kept.length - 1] !== 0x0a ? '\n' : ''}${notes.join('\n')}\n`) : Buffer.alloc(0);
  return { body: await gzipAsync(Buffer.concat([kept, tail])), writtenBytes: written, keptBytes: kept.length };
}
