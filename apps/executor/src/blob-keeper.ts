/**
 * Keeps what an ended attempt leaves past its node, in the blob store. Its logs: uploads stdout and stderr
 * (`captureLog`: the tail up to the cap, gzip) before the attempt's end is reported, so a reader
 * who learns that the attempt ended finds its log in the store. An upload that fails or takes
 * longer than `timeoutMs` is counted and logged, never retried and never holds the report back
 * longer than that: the log stays on the node (served from there while the node lives). Its result
 * when over the inline cap (`MAX_RESULT_BYTES`): checked to be JSON, gzip-compressed, uploaded, and
 * referenced by size and SHA-256 (`keepResult`); a result the store did not keep fails the attempt
 * `NodeError` (run again), since nothing else holds it.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { ResultRef } from '@batchapi/api';
import { type BlobStore, captureLog, LOG_CONTENT, logKey, type LogStream, RESULT_CONTENT, resultKey } from '@batchapi/blobs';
import type { Clock } from '@batchapi/runtime';
import { Metric } from '@batchapi/telemetry';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';

const gzipAsync = promisify(gzip);

/** Longest an ended attempt's log upload holds back its report, in milliseconds. */
export const LOG_UPLOAD_TIMEOUT_MS = 10_000;

/** Settings of a `BlobKeeper`. */
export interface BlobKeeperOptions {
  /** Most bytes of one log uploaded, before compression (`BATCH_LOG_UPLOAD_MAX_BYTES`); the tail is kept. @default 8388608 (8 MiB) */
  capBytes: number;
  /** Longest an upload may hold back the attempt's report, in milliseconds. @default LOG_UPLOAD_TIMEOUT_MS (10000) */
  timeoutMs?: number;
}

export class BlobKeeper {
  private readonly uploads: Counter;
  private readonly seconds: Histogram;

  constructor(
    private readonly blobs: BlobStore,
    private readonly opts: BlobKeeperOptions,
    private readonly clock: Clock,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.uploads = new Counter({
      name: Metric.executorLogUploads,
      help: "Attempts' logs uploaded to the blob store when the attempt ended, by outcome (ok, failed, timeout, absent)",
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.seconds = new Histogram({
      name: Metric.executorLogUploadSeconds,
      help: "Seconds to capture and upload an ended attempt's two logs",
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers: [registry],
    });
  }

  /** Uploads the attempt's stdout and stderr (`paths`); resolves when both are kept, failed, or `timeoutMs` passed. */
  async keep(jobId: string, index: number, attempt: number, paths: Record<LogStream, string>): Promise<void> {
    const started = this.clock.monotonic();
    const upload = Promise.all(
      (['stdout', 'stderr'] as const).map(async (stream) => {
        const captured = await captureLog(paths[stream], this.opts.capBytes);
        if (!captured) return 'absent' as const;
        await this.blobs.put(logKey(jobId, index, attempt, stream), captured.body, LOG_CONTENT, this.clock.now());
        return 'ok' as const;
      }),
    ).then(
      (outcomes) => (outcomes.includes('ok') ? 'ok' : 'absent'),
      (err: Error) => {
        this.log.warn({ err: err.message, job: jobId, index, attempt }, "could not keep an attempt's log in the blob store; it stays on this node");
        return 'failed' as const;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.opts.timeoutMs ?? LOG_UPLOAD_TIMEOUT_MS)));
    const outcome = await Promise.race([upload, timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.log.warn({ job: jobId, index, attempt }, "keeping an attempt's log took too long; its end is reported without waiting");
    this.uploads.inc({ outcome });
    this.seconds.observe((this.clock.monotonic() - started) / 1000);
  }

  /**
   * Keeps the result file `file` (over the inline cap) in the blob store: its reference, or
   * undefined when the file is not JSON (ignored, as an inline result is). Throws when the store
   * did not answer.
   */
  async keepResult(jobId: string, index: number, attempt: number, file: string): Promise<ResultRef | undefined> {
    const bytes = await readFile(file);
    try {
      JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      this.log.warn({ job: jobId, index, err: (err as Error).message }, 'task result is not valid JSON; ignored');
      return undefined;
    }
    await this.blobs.put(resultKey(jobId, index, attempt), await gzipAsync(bytes), RESULT_CONTENT, this.clock.now());
    return { sizeBytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
  }
}
