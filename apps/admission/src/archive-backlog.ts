/**
 * Backpressure on the archive backlog: when the history store is down or slow, finished jobs
 * stay in etcd; past a limit, admission pauses new submits (503 `overloaded`, Retry-After) so
 * that etcd does not fill up with history while the archiver cannot move it. The count is the
 * archiver's (`archive/backlog`, written each pass, fenced by its leader key); a count older than
 * `staleMs` is not trusted either way — no archiver is counting, and the alert on the backlog
 * (`BatchArchiveBacklog`) is what tells an operator — so it refuses nothing.
 */
import { ApiError, ErrorCode } from '@batchapi/api';
import type { ArchiveBacklog, EtcdStore, Informer } from '@batchapi/store';

/** Limits of the backlog gate. */
export interface BacklogLimits {
  /** Finished jobs etcd may hold before submits pause (`BATCH_ARCHIVE_BACKLOG_LIMIT`); 0 turns the gate off. @default 100000 */
  maxFinished: number;
  /** A count older than this is ignored, in milliseconds. @default 300000 */
  staleMs: number;
}

/** A count older than this is not trusted: 5 minutes (60 archiver passes of the default 5 s). */
export const DEFAULT_BACKLOG_STALE_MS = 300_000;

/** Seconds a refused submit is told to wait. */
export const BACKLOG_RETRY_AFTER_SECONDS = 30;

/**
 * Why a submit is refused at `now` given the archiver's last count, or undefined to admit it.
 *   refuse ⇔ maxFinished > 0 ∧ count fresh (now − at < staleMs) ∧ finished ≥ maxFinished
 */
export function backlogRefusal(backlog: ArchiveBacklog | undefined, limits: BacklogLimits, now: number): string | undefined {
  if (limits.maxFinished <= 0 || !backlog || now - backlog.at >= limits.staleMs) return undefined;
  if (backlog.finished < limits.maxFinished) return undefined;
  const oldest = backlog.oldestFinishedAt === undefined ? '' : `, the oldest finished ${Math.round((now - backlog.oldestFinishedAt) / 1000)} s ago`;
  return `etcd holds ${backlog.finished} finished jobs waiting for the history store (limit ${limits.maxFinished}${oldest}): submits pause until the archiver catches up`;
}

/** Injection token of the replica's `BacklogGate`. */
export const BACKLOG_GATE = Symbol('BacklogGate');

/** The archiver's count as this replica last saw it (a watch on `archive/backlog`), and the check of a submit against it. */
export class BacklogGate {
  private backlog?: ArchiveBacklog;
  private informer?: Informer;

  constructor(private readonly limits: BacklogLimits) {}

  /** Starts watching the count (nothing when the gate is off). */
  async start(store: EtcdStore): Promise<void> {
    if (this.limits.maxFinished <= 0) return;
    const key = store.keys.archiveBacklog();
    this.informer = await store.inform<ArchiveBacklog>(key, {
      onSync: (items) => {
        this.backlog = items.find((kv) => kv.key === key)?.value;
      },
      onEvent: (ev) => {
        if (ev.key === key) this.backlog = ev.type === 'put' ? ev.value : undefined;
      },
    });
  }

  async stop(): Promise<void> {
    await this.informer?.stop();
  }

  /**
   * @throws ApiError overloaded (503, Retry-After 30 s) when the backlog is past the limit
   */
  check(now: number): void {
    const why = backlogRefusal(this.backlog, this.limits, now);
    if (why) throw new ApiError(ErrorCode.Overloaded, why, { retryAfterSeconds: BACKLOG_RETRY_AFTER_SECONDS });
  }
}
