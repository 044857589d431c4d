/**
 * The history's errors, said in its own terms as the store's are (libs/store/src/errors.ts): none
 * is an HTTP error; the API maps them to its status codes and advice. Each has a stable `code` to
 * branch on besides `instanceof`.
 */
import { CodedError } from '@batchapi/api';

/** Every error the history throws about PostgreSQL or a request to it. */
export abstract class HistoryError extends CodedError {}

/**
 * PostgreSQL could not be reached or did not answer: connection refused or reset, the pool's
 * connect timeout, the server shutting down or starting up, too many connections, a statement
 * past its timeout. Retryable. A write that failed this way may or may not have committed:
 * every write of the history is idempotent (`archiveJobs` upserts), so retrying it is the answer.
 */
export class HistoryUnavailableError extends HistoryError {
  readonly code = 'history_unavailable';
  /**
   * @param message - what did not answer, e.g. `PostgreSQL is unavailable (Error: connect ECONNREFUSED 127.0.0.1:5432)`
   * @param cause - the driver's error, if any
   * @param retryAfterSeconds - how long a caller should wait before trying again, in seconds. @default 5
   */
  constructor(message: string, cause?: unknown, retryAfterSeconds = 5) {
    super(message, { cause, retryAfterSeconds });
  }
}

/**
 * A request the history refuses before sending anything: a cursor it did not make, a limit out
 * of range, a job without `finishedAt` to archive. Not retryable as is; `field` names the input.
 */
export class InvalidHistoryRequestError extends HistoryError {
  readonly code = 'invalid_history_request';
  /**
   * @param message - what is wrong and what to send instead, e.g. `limit must be an integer from 1 to 1000, got 5000`
   * @param field - the input concerned, e.g. `limit`, `cursor`, `jobs[3].finishedAt`
   */
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** Node's socket errors that mean the server is not there or went away. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);
/**
 * PostgreSQL's SQLSTATEs of the same kind: admin/crash shutdown, cannot connect now (starting
 * up), too many connections, statement timeout (57014 is also a user's cancel, which the history
 * never sends). Class 08 (connection exception) is matched by prefix.
 */
const SERVER_CODES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);
/** node-postgres's own messages when a connection ends or a connect or query times out. */
const DRIVER_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Connection closed/i;

/** Whether `err` means PostgreSQL could not be reached or did not answer (see `HistoryUnavailableError`). */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof HistoryUnavailableError) return true;
  const e = err as { code?: unknown; message?: unknown; errors?: unknown } | undefined;
  if (!e || typeof e !== 'object') return false;
  // a connect to "localhost" tries ::1 and 127.0.0.1 and fails with an AggregateError of both
  if (Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every(isUnavailable)) return true;
  const code = typeof e.code === 'string' ? e.code : '';
  if (NETWORK_CODES.has(code) || SERVER_CODES.has(code) || code.startsWith('08')) return true;
  return typeof e.message === 'string' && DRIVER_MESSAGES.test(e.message);
}

/** `err` as a `HistoryUnavailableError` when it is one (see `isUnavailable`), else `err` itself. */
export function asHistoryError(err: unknown, what: string): unknown {
  if (err instanceof HistoryError || !isUnavailable(err)) return err;
  return new HistoryUnavailableError(`PostgreSQL is unavailable: ${what} failed (${describeError(err)})`, err);
}

/** `Name: message` of a driver error, for the message of an error that wraps it. */
export function describeError(err: unknown): string {
  const e = err as { constructor?: { name?: string }; message?: string; code?: string } | undefined;
  const code = e?.code ? ` [${e.code}]` : '';
  return `${e?.constructor?.name ?? 'Error'}: ${e?.message ?? String(err)}${code}`;
}

/**
 * PostgreSQL's transient conflicts: a deadlock (`40P01`: it aborted this statement's transaction
 * to break a lock cycle, e.g. a history read against the archiver creating next month's partitions)
 * or a serialization failure (`40001`). The statement or transaction can simply run again.
 */
export function isTransientConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === '40P01' || code === '40001';
}
