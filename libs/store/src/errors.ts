/**
 * The store's errors: what went wrong with etcd or with a compare-and-swap, said in the store's
 * terms. None of them is an HTTP error and none tells a user what to do: the API maps them to
 * its status codes and advice in one place (`toApiError` in libs/runtime). Each has a stable
 * `code` to branch on besides `instanceof`.
 */
import { CodedError } from '@batchapi/api';

/** Every error the store throws about etcd or its records. */
export abstract class StoreError extends CodedError {}

/**
 * etcd did not answer a call that certainly did not apply: a read past its deadline and
 * retries, every member's circuit open, a write that never left, a lease not granted, or a
 * submit that waited too long for its turn. Retryable: nothing was written.
 */
export class StoreUnavailableError extends StoreError {
  readonly code = 'store_unavailable';
  /**
   * @param message - what did not answer, e.g. `the store is unavailable (GRPCUnavailableError: …)`
   * @param cause - the client's error, if any
   * @param retryAfterSeconds - how long a caller should wait before trying again, in seconds. @default 1
   */
  constructor(message: string, cause?: unknown, retryAfterSeconds = 1) {
    super(message, { cause, retryAfterSeconds });
  }
}

/**
 * A write was sent but its answer was lost (deadline exceeded, member unavailable or
 * connection reset after sending…): it may or may not have committed, and may still commit.
 * Never a refusal: re-read what was written (look for your own token), or retry an
 * idempotent operation later.
 */
export class OutcomeUnknownError extends StoreError {
  readonly code = 'outcome_unknown';
  /** @param cause - the client's error that lost the answer; a caller should wait 1 s (`retryAfterSeconds`) before reading again or retrying */
  constructor(cause: unknown) {
    super(`the store did not answer whether a write was applied (${describeError(cause)})`, { cause, retryAfterSeconds: 1 });
  }
}

/**
 * A compare-and-swap lost: the record was made or changed by another writer meanwhile (a
 * record under a new id already exists, a record changed on every one of `MAX_CAS_ATTEMPTS`
 * tries, the record an idempotency key names is gone). Nothing of the write was applied.
 */
export class CasConflictError extends StoreError {
  readonly code = 'cas_conflict';
  /**
   * @param message - what conflicted, e.g. `job j-1 kept changing over 16 compare-and-swap attempts`
   * @param id - id of the record concerned, if one
   */
  constructor(
    message: string,
    readonly id?: string,
  ) {
    super(message);
  }
}

/**
 * A submit's idempotency key is taken: by a submit with another request body
 * (`differentRequest`, the key can never succeed), or by a concurrent submit whose record was
 * not readable yet (`raced`, a retry finds it). Nothing of this submit was written.
 */
export class IdempotencyConflictError extends StoreError {
  readonly code = 'idempotency_conflict';
  /**
   * @param message - the conflict, e.g. `the idempotency key was already used for job j-1 with a different request`
   * @param reason - `differentRequest` or `raced` (see the class)
   * @param id - id of the record the key names, when known
   */
  constructor(
    message: string,
    readonly reason: 'differentRequest' | 'raced',
    readonly id?: string,
  ) {
    super(message);
  }
}

/**
 * A write fenced by leadership was refused because the fence no longer holds: this process is
 * not the leader any more and a newer one does the work. Nothing was written. Its message says
 * what was refused, e.g. `reaping node n-1 stopped: this scheduler is no longer the leader`.
 */
export class FencedError extends StoreError {
  readonly code = 'fenced';
}

/** `Name: message` of a client error, for the message of an error that wraps it. */
export function describeError(err: unknown): string {
  return `${(err as Error)?.constructor?.name ?? 'Error'}: ${(err as Error)?.message ?? err}`;
}

/**
 * A submit's idempotency key names a job that etcd no longer holds (it finished and was
 * archived, or retention deleted it). A 409 `conflict` unless the caller finds the job in the
 * history store and answers with it.
 */
export class IdempotentJobGoneError extends CasConflictError {
  constructor(readonly jobId: string) {
    super(`job ${jobId} of this idempotency key is no longer live`, jobId);
  }
}
