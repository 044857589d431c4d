/**
 * Admission's reads of the history store (archived jobs and workflows): none without one
 * (`BATCH_HISTORY_URL` unset), and PostgreSQL down or slow answered as a 503 `unavailable` with
 * `Retry-After`, never a 404 or a 500.
 */
import { ApiError, ErrorCode } from '@batchapi/api';
import { type HistoryStore, isUnavailable } from '@batchapi/history';

/** A read of the history store; undefined without one. */
export async function fromHistory<T>(history: HistoryStore | undefined, read: (h: HistoryStore) => Promise<T>): Promise<T | undefined> {
  if (!history) return undefined;
  try {
    return await read(history);
  } catch (err) {
    if (isUnavailable(err)) throw new ApiError(ErrorCode.Unavailable, `the history store did not answer: ${(err as Error).message}`, { retryAfterSeconds: 5 });
    throw err;
  }
}
