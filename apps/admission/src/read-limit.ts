/**
 * Read rate limits: every `GET` under `/v1` spends a token of its caller's bucket on this
 * replica — one bucket per tenant for tenants' tokens, and a separate, larger one per
 * operator tenant for operators' tokens, so neither starves the other. Past the bucket the
 * answer is 429 `read_rate_exceeded` with `Retry-After`, before the route reads anything.
 *
 * Kept in the replica's memory, not in etcd like the submit buckets: a read costs this
 * replica's event loop and etcd reads, and taking shared tokens would add an etcd write per
 * chunk of reads. With R replicas behind a balancer a tenant may read up to R times the rate.
 */
import { ApiError, ErrorCode, type Principal } from '@batchapi/api';
import { type BucketLimit, type BucketRecord, refill } from '@batchapi/store';
import { CLOCK, type Clock, systemClock } from '@batchapi/runtime';
import { type CanActivate, type ExecutionContext, Inject, Injectable, Optional } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AUTH, TokenAuthenticator } from './auth';
import { Readers } from './inputs-readers';

/** Read budgets per admission replica. A rate of 0 turns that limit off. */
export interface ReadLimits {
  /** Reads per second of one tenant's tokens (`BATCH_READS_PER_SECOND`). @default 50 */
  tenantRate: number;
  /** Reads a tenant may make at once before its rate holds it (`BATCH_READ_BURST`). @default 100 */
  tenantBurst: number;
  /** Reads per second of one operator tenant's tokens (`BATCH_OPERATOR_READS_PER_SECOND`). @default 500 */
  operatorRate: number;
  /** Reads an operator tenant may make at once (`BATCH_OPERATOR_READ_BURST`). @default 1000 */
  operatorBurst: number;
}

/** Token buckets of reads, one per tenant and one per operator tenant. */
export class ReadLimiter {
  private readonly buckets = new Map<string, BucketRecord>();

  constructor(readonly limits: ReadLimits) {}

  /** Spends one read of the principal's bucket, or throws 429 `read_rate_exceeded` with the seconds until one is there. */
  take(p: Principal, now: number): void {
    const operator = p.role === 'operator';
    const limit: BucketLimit = operator
      ? { rate: this.limits.operatorRate, burst: this.limits.operatorBurst }
      : { rate: this.limits.tenantRate, burst: this.limits.tenantBurst };
    if (!(limit.rate > 0)) return;
    const id = `${p.role}/${p.tenant}`;
    const tokens = refill(this.buckets.get(id), limit, now);
    if (tokens < 1) {
      throw new ApiError(
        ErrorCode.ReadRateExceeded,
        `${operator ? 'operator' : 'tenant'} ${p.tenant} is over its read limit of ${limit.rate}/s (burst ${limit.burst}) on this replica; retry after Retry-After seconds, or follow changes with /events instead of polling`,
        { id: p.tenant, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / limit.rate)) },
      );
    }
    this.buckets.set(id, { tokens: tokens - 1, at: now });
  }
}

/** Injection token of the `ReadLimiter`. */
export const READ_LIMITER = Symbol('ReadLimiter');
/** Injection token of the callback counting refusals by limit (`batch_admission_reads_refused_total`). */
export const READS_REFUSED = Symbol('ReadsRefused');

/**
 * Applies the read limit to every `GET` (and `HEAD`) route under `/v1` (a global guard, so a
 * route added later is covered too). A request without a valid token passes through: the
 * route answers it 401 without reading anything.
 */
@Injectable()
export class ReadRateGuard implements CanActivate {
  constructor(
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Inject(READ_LIMITER) private readonly limiter: ReadLimiter,
    @Inject(READS_REFUSED) private readonly refused: (limit: 'reads_per_second') => void,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
    /** Tells a step's inputs token's tenant. @default none: such reads are not limited */
    @Optional() private readonly readers?: Readers,
  ) {}

  canActivate(ctx: ExecutionContext): boolean {
    if (ctx.getType() !== 'http') return true;
    const req = ctx.switchToHttp().getRequest<FastifyRequest>();
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !req.routeOptions.url?.startsWith('/v1/')) return true;
    let principal: Principal;
    try {
      // a step's inputs token reads on its tenant's budget
      principal = this.readers?.inputsTenant(req.headers.authorization, this.clock.now()) ?? this.auth.authenticate(req.headers.authorization);
    } catch {
      return true;
    }
    try {
      this.limiter.take(principal, this.clock.now());
    } catch (err) {
      this.refused('reads_per_second');
      throw err;
    }
    return true;
  }
}
