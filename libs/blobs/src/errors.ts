import { CodedError } from '@batchapi/api';

/**
 * The object store did not answer or refused the call for a reason a retry may fix (network,
 * 5xx, throttling, credentials that expired). Retryable after `retryAfterSeconds`.
 */
export class BlobStoreUnavailableError extends CodedError {
  readonly code = 'blob_store_unavailable';
  /**
   * @param message - what did not answer, e.g. `the object store did not answer PutObject logs/j-1/… (ECONNREFUSED)`
   * @param cause - the client's error
   */
  constructor(message: string, cause?: unknown) {
    super(message, { cause, retryAfterSeconds: 5 });
  }
}
