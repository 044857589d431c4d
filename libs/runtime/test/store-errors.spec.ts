/**
 * What a client sees of each store error: the status, code, Retry-After and advice the HTTP
 * filter answers, and the same code over an internal call. The store's errors carry no HTTP
 * status of their own; this mapping is the only place they get one.
 */
import type { ArgumentsHost } from '@nestjs/common';
import type { Logger } from 'pino';
import { firstValueFrom } from 'rxjs';
import { CasConflictError, IdempotencyConflictError, OutcomeUnknownError, ReapFencedError, StoreUnavailableError } from '@batchapi/store';
import { ApiErrorFilter, rpcError, RpcApiErrorFilter } from '../src';

const log = { error: () => undefined } as unknown as Logger;

/** Runs `err` through the HTTP filter and returns what the reply got. */
function answer(err: unknown): { status: number; retryAfter?: string; body: { error: Record<string, unknown> } } {
  const out: { status: number; retryAfter?: string; body: { error: Record<string, unknown> } } = { status: 0, body: { error: {} } };
  const reply = {
    header: (name: string, value: string) => {
      if (name === 'Retry-After') out.retryAfter = value;
      return reply;
    },
    status: (status: number) => {
      out.status = status;
      return reply;
    },
    send: (body: { error: Record<string, unknown> }) => {
      out.body = body;
      return reply;
    },
  };
  const host = { switchToHttp: () => ({ getResponse: () => reply }) } as unknown as ArgumentsHost;
  new ApiErrorFilter(log).catch(err, host);
  return out;
}

/** The answers clients already know: a 503 says when to retry (Retry-After, in seconds), a 409 does not. */
const unavailable = (retryAfterSeconds: number) => ({ status: 503, code: 'unavailable', retryAfter: String(retryAfterSeconds) });
const conflict = (code: 'conflict' | 'idempotency_conflict') => ({ status: 409, code, retryAfter: undefined });

describe('store errors as the API answers them', () => {
  it.each([
    // name, error, the answer (status, code, Retry-After), details and advice the body carries
    [
      'a store that did not answer',
      new StoreUnavailableError('the store is unavailable (GRPCUnavailableError: down)', new Error('14 UNAVAILABLE: down')),
      unavailable(1),
      { message: 'the store is unavailable (GRPCUnavailableError: down); retry later', retryAfterSeconds: 1 },
    ],
    [
      'a store that asks for a longer wait',
      new StoreUnavailableError('the store did not take the submit within 2000 ms', undefined, 5),
      unavailable(5),
      { message: 'the store did not take the submit within 2000 ms; retry later', retryAfterSeconds: 5 },
    ],
    [
      'a write whose answer was lost',
      new OutcomeUnknownError(new Error('4 DEADLINE_EXCEEDED')),
      unavailable(1),
      {
        message:
          'the store did not answer whether a write was applied (Error: 4 DEADLINE_EXCEEDED); read the record again, or retry with the same Idempotency-Key',
        retryAfterSeconds: 1,
      },
    ],
    [
      'a record that kept changing',
      new CasConflictError('job j-1 changed on each of 16 compare-and-swap attempts', 'j-1'),
      conflict('conflict'),
      { message: 'job j-1 changed on each of 16 compare-and-swap attempts; retry', id: 'j-1' },
    ],
    [
      'an idempotency key used with another request',
      new IdempotencyConflictError('the idempotency key was already used for job j-1 with a different request', 'differentRequest', 'j-1'),
      conflict('idempotency_conflict'),
      {
        message: 'the idempotency key was already used for job j-1 with a different request; use a new Idempotency-Key',
        field: 'Idempotency-Key',
        id: 'j-1',
      },
    ],
    [
      'a submit that raced another on its idempotency key',
      new IdempotencyConflictError('the submit raced with another on its idempotency key', 'raced'),
      conflict('conflict'),
      { message: 'the submit raced with another on its idempotency key; retry it', field: 'Idempotency-Key' },
    ],
    [
      'a fenced write of a former leader',
      new ReapFencedError('n-1'),
      unavailable(1),
      { message: 'reaping node n-1 stopped: this scheduler is no longer the leader; retry later', retryAfterSeconds: 1 },
    ],
  ])('answers %s with the status, code and Retry-After clients already know', async (_, err, { status, code, retryAfter }, body) => {
    const http = answer(err);
    expect(http.status).toBe(status);
    expect(http.retryAfter).toBe(retryAfter);
    expect(http.body).toEqual({ error: { code, ...body } });
    // An internal call carries the same code and details back to its caller.
    const reply = await firstValueFrom(new RpcApiErrorFilter(log).catch(err, {} as ArgumentsHost)).catch((e: unknown) => e);
    const back = rpcError(reply);
    expect(back.status).toBe(status);
    expect(back.toBody()).toEqual({ error: { code, ...body } });
  });

  it("leaves an error that is not the store's to the general mapping (internal)", () => {
    const http = answer(new Error('boom'));
    expect(http).toMatchObject({ status: 500, body: { error: { code: 'internal' } } });
    expect(http.retryAfter).toBeUndefined();
  });
});
