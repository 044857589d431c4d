/** Turns every thrown error into the API's error body with its stable code and status. */
import { ApiError, ErrorCode } from '@batchapi/api';
import { CasConflictError, FencedError, IdempotencyConflictError, OutcomeUnknownError, StoreUnavailableError } from '@batchapi/store';
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { Logger } from 'pino';

@Catch()
export class ApiErrorFilter implements ExceptionFilter {
  constructor(private readonly log: Logger) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse();
    const e = toApiError(err);
    if (e.code === ErrorCode.Internal) this.log.error({ err }, 'unhandled error');
    if (e.details.retryAfterSeconds !== undefined) reply.header('Retry-After', String(e.details.retryAfterSeconds));
    reply.status(e.status).send(e.toBody());
  }
}

/** Maps store, framework and parser errors to API errors; unknown errors become `internal`. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const stored = storeApiError(err);
  if (stored) return stored;
  const code = (err as { code?: string })?.code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ApiError(ErrorCode.PayloadTooLarge, 'the request body is over the size limit', { field: '(body)' });
  if (code === 'FST_ERR_BAD_URL' || code === 'FST_ERR_MAX_PARAM_LENGTH')
    return new ApiError(ErrorCode.InvalidArgument, 'the request path is malformed or too long', { field: 'path' });
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ApiError(ErrorCode.InvalidArgument, 'send the body as application/json', { field: '(body)' });
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new ApiError(ErrorCode.InvalidArgument, 'the body is not valid JSON', { field: '(body)' });
  }
  if (err instanceof HttpException) {
    // Nest's Fastify adapter wraps Fastify's own errors (e.g. an unsupported Content-Type): map the original.
    if (err.cause !== undefined) {
      const inner = toApiError(err.cause);
      if (inner.code !== ErrorCode.Internal) return inner;
    }
    const status = err.getStatus();
    if (status === 415) return new ApiError(ErrorCode.InvalidArgument, 'send the body as application/json', { field: '(body)' });
    if (status === 404) return new ApiError(ErrorCode.NotFound, 'no such route');
    if (status === 413) return new ApiError(ErrorCode.PayloadTooLarge, 'the request body is over the size limit', { field: '(body)' });
    if (status === 400) return new ApiError(ErrorCode.InvalidArgument, err.message, { field: '(body)' });
  }
  const status = (err as { statusCode?: number })?.statusCode;
  if (status === 413) return new ApiError(ErrorCode.PayloadTooLarge, 'the request body is over the size limit', { field: '(body)' });
  if (status === 400) return new ApiError(ErrorCode.InvalidArgument, (err as Error).message, { field: '(body)' });
  return new ApiError(ErrorCode.Internal, 'internal error; it was logged');
}

/**
 * The API error a store error answers, with the advice the store leaves out: the one place
 * store failures become status codes. `undefined` when `err` is not a store error.
 */
export function storeApiError(err: unknown): ApiError | undefined {
  if (err instanceof StoreUnavailableError)
    return new ApiError(ErrorCode.Unavailable, `${err.message}; retry later`, { retryAfterSeconds: err.retryAfterSeconds });
  if (err instanceof OutcomeUnknownError) {
    return new ApiError(ErrorCode.Unavailable, `${err.message}; read the record again, or retry with the same Idempotency-Key`, {
      retryAfterSeconds: err.retryAfterSeconds,
    });
  }
  if (err instanceof IdempotencyConflictError) {
    if (err.reason === 'raced') return new ApiError(ErrorCode.Conflict, `${err.message}; retry it`, { field: 'Idempotency-Key' });
    return new ApiError(ErrorCode.IdempotencyConflict, `${err.message}; use a new Idempotency-Key`, {
      field: 'Idempotency-Key',
      ...(err.id ? { id: err.id } : {}),
    });
  }
  if (err instanceof CasConflictError) return new ApiError(ErrorCode.Conflict, `${err.message}; retry`, err.id ? { id: err.id } : {});
  // A leader's write reaches a client only through a call that raced a leadership change: the new leader answers.
  if (err instanceof FencedError) return new ApiError(ErrorCode.Unavailable, `${err.message}; retry later`, { retryAfterSeconds: 1 });
  return undefined;
}
