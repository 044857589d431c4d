/**
 * Error codes a user can see. Each has one HTTP status; the code is stable API,
 * the message is for people and may change.
 */
export const ErrorCode = {
  InvalidArgument: 'invalid_argument',
  /** A workflow's steps depend on each other in a cycle. */
  WorkflowCycle: 'workflow_cycle',
  PayloadTooLarge: 'payload_too_large',
  Unauthenticated: 'unauthenticated',
  PermissionDenied: 'permission_denied',
  NotFound: 'not_found',
  UnknownTenant: 'unknown_tenant',
  UnknownQueue: 'unknown_queue',
  ExceedsQuota: 'exceeds_quota',
  /** The job names a container `image` and no live node runs images (none carries `CONTAINER_RUNTIME_LABEL`): it would never run. */
  NoContainerRuntime: 'no_container_runtime',
  /** A gang job's `maxRunning` is below its task count: its tasks must all start together, so it could never start. */
  MaxRunningBelowGang: 'max_running_below_gang',
  /** A job names a `workingDir` its tenant never uploaded (or one the blob store no longer keeps): upload it, then submit. */
  UnknownWorkingDir: 'unknown_working_dir',
  /** A job's `limits` names a semaphore its tenant (or `global/`) does not have: create it with `PUT /v1/semaphores/{name}`, then submit. */
  UnknownSemaphore: 'unknown_semaphore',
  /** A task of the job asks for more units of a semaphore than its capacity: it could never start. */
  ExceedsSemaphore: 'exceeds_semaphore',
  /** A workflow step's `inputs` names a step the workflow does not have (or the step itself): name a step of the same workflow. */
  UnknownInputStep: 'unknown_input_step',
  /** An uploaded body is not the package its digest names (its tar's SHA-256 differs, or it is not gzip). */
  DigestMismatch: 'digest_mismatch',
  IdempotencyConflict: 'idempotency_conflict',
  /** A workflow run that is still running or that succeeded cannot be retried (`POST /v1/workflows/{id}/retry`): only a finished run that did not succeed can. */
  WorkflowNotRetryable: 'workflow_not_retryable',
  Conflict: 'conflict',
  /** A workflow template's body names `{{params.<name>}}` it does not declare, or a run of it gives a parameter it does not declare. */
  UnknownParameter: 'unknown_parameter',
  /** A run of a workflow template gives no value for a parameter that has no default. */
  MissingParameter: 'missing_parameter',
  RateLimited: 'rate_limited',
  /** The tenant's submit requests per second (token bucket) are spent. */
  SubmitRateExceeded: 'submit_rate_exceeded',
  /** The tenant's tasks per second (token bucket) are spent. */
  TaskRateExceeded: 'task_rate_exceeded',
  /** The queue holds its most pending tasks. */
  QueueFull: 'queue_full',
  /** The caller's reads per second (token bucket, per admission replica) are spent. */
  ReadRateExceeded: 'read_rate_exceeded',
  /** The tenant has its most event streams open at once. */
  TooManyStreams: 'too_many_streams',
  /** An event stream was closed because its client stopped reading (final `stream-closed` event). */
  SlowConsumer: 'slow_consumer',
  Unavailable: 'unavailable',
  /** This admission replica is past its capacity for submits (too many at once, or its event loop is behind): retry after `Retry-After`. */
  Overloaded: 'overloaded',
  Internal: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** HTTP status for each code. */
export const statusOf: Record<ErrorCode, number> = {
  invalid_argument: 400,
  workflow_cycle: 400,
  payload_too_large: 413,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  unknown_tenant: 422,
  unknown_queue: 422,
  exceeds_quota: 422,
  no_container_runtime: 422,
  max_running_below_gang: 422,
  unknown_working_dir: 422,
  unknown_semaphore: 422,
  exceeds_semaphore: 422,
  unknown_input_step: 422,
  digest_mismatch: 400,
  idempotency_conflict: 409,
  workflow_not_retryable: 409,
  conflict: 409,
  unknown_parameter: 422,
  missing_parameter: 422,
  rate_limited: 429,
  submit_rate_exceeded: 429,
  task_rate_exceeded: 429,
  queue_full: 429,
  read_rate_exceeded: 429,
  too_many_streams: 429,
  slow_consumer: 429,
  unavailable: 503,
  overloaded: 503,
  internal: 500,
};

/** The JSON body of every error answer: `{"error": {...}}`. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** Dotted path of the offending request field, when one field is at fault. */
  field?: string;
  /** The id (job, tenant, queue...) the error concerns. */
  id?: string;
  /** Seconds after which a retry may succeed (429, 503). */
  retryAfterSeconds?: number;
}

/**
 * Base of the libraries' own errors (the store's, the history's): not errors meant for the
 * caller — the API maps them to its codes and advice — but each with a stable `code` to branch on
 * besides `instanceof`, and its concrete class's name as `name`.
 */
export abstract class CodedError extends Error {
  /** Stable identifier of the failure, e.g. `store_unavailable`. */
  abstract readonly code: string;
  /** Seconds after which trying again may succeed; unset when trying again as is cannot help. */
  readonly retryAfterSeconds?: number;

  /**
   * @param message - what went wrong, in the library's terms
   * @param options - `cause`: the underlying error, if any; `retryAfterSeconds`: see the property
   */
  constructor(message: string, options: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, 'cause' in options ? { cause: options.cause } : undefined);
    // the concrete class's name (`StoreUnavailableError`…), as `Error` does for its own
    this.name = new.target.name;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** An error meant for the caller: carries a stable code, a status and the field or id at fault. */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: { field?: string; id?: string; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = statusOf[code];
  }

  toBody(): { error: ErrorBody } {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }

  static fromBody(status: number, body: unknown): ApiError {
    const e = (body as { error?: ErrorBody } | undefined)?.error;
    if (e && typeof e.code === 'string' && e.code in statusOfCode) {
      const { code, message, ...details } = e;
      return new ApiError(code, message, details);
    }
    // No error envelope (e.g. a proxy answered): the closest code for the status.
    const byStatus: Record<number, ErrorCode> = {
      400: 'invalid_argument',
      401: 'unauthenticated',
      403: 'permission_denied',
      404: 'not_found',
      409: 'conflict',
      413: 'payload_too_large',
      429: 'rate_limited',
      502: 'unavailable',
      503: 'unavailable',
      504: 'unavailable',
    };
    return new ApiError(byStatus[status] ?? ErrorCode.Internal, `HTTP ${status}: ${JSON.stringify(body)}`);
  }
}
const statusOfCode: Record<string, number> = Object.fromEntries(Object.values(ErrorCode).map((c) => [c, statusOf[c]]));
