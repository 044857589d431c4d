/**
 * Load shedding for submits. Past its capacity an admission replica answers new submits 503
 * `overloaded` with `Retry-After` at once — a few microseconds each — instead of queueing
 * them: a queued submit that its client gives up on (and sends again) is work done twice,
 * and under an open-loop load the queue then only grows (a nemesis run at the box's capacity
 * saw both replicas stop answering within seconds and never recover). Shed requests cost
 * nothing downstream, so the cluster keeps completing what it accepted.
 *
 * The signal is the delay of the replica's event loop (p99 over the last second): a replica
 * starved of CPU answers late whatever its queue. (Submits in flight are capped by the submit
 * throttle, `BATCH_MAX_INFLIGHT_SUBMITS`.) Reads, cancels and operator calls are never shed here
 * (reads have their own limit).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { ApiError, ErrorCode } from '@batchapi/api';
import { type CanActivate, type ExecutionContext, Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';

/** Capacity of one admission replica for submits. */
export interface OverloadLimits {
  /** Event-loop delay, p99 over the last second, in ms, past which submits are shed (`BATCH_MAX_EVENT_LOOP_DELAY_MS`). 0 turns it off. @default 2000 */
  maxLoopDelayMs: number;
}

/** Why a submit is shed, or undefined to take it. Pure: the caller passes the replica's state. */
export function shedReason(limits: OverloadLimits, loopDelayMs: number): 'event_loop_delay' | undefined {
  return limits.maxLoopDelayMs > 0 && loopDelayMs > limits.maxLoopDelayMs ? 'event_loop_delay' : undefined;
}

/** The replica's submit load: its event loop's recent delay. */
export class SubmitLoad implements OnModuleDestroy {
  /** p99 event-loop delay of the last full second, ms. */
  loopDelayMs = 0;
  private readonly histogram: IntervalHistogram;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly limits: OverloadLimits,
    private readonly onShed: (reason: string) => void = () => undefined,
  ) {
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
    this.histogram.enable();
    this.timer = setInterval(() => {
      this.loopDelayMs = this.histogram.percentile(99) / 1e6;
      this.histogram.reset();
    }, 1000);
    this.timer.unref();
  }

  /** Takes a submit, or throws 503 `overloaded`. */
  enter(): void {
    const reason = shedReason(this.limits, this.loopDelayMs);
    if (!reason) return;
    this.onShed(reason);
    throw new ApiError(
      ErrorCode.Overloaded,
      `this admission replica is over its capacity for submits (its event loop is ${Math.round(this.loopDelayMs)} ms behind); retry after Retry-After seconds, on any replica`,
      { retryAfterSeconds: 1 },
    );
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}

/** Injection token of the replica's `SubmitLoad`. */
export const SUBMIT_LOAD = Symbol('SubmitLoad');

/** Routes whose requests are submits (shed under overload). */
const SUBMIT_ROUTES = new Set(['/v1/jobs', '/v1/jobs::batch', '/v1/jobs:batch', '/v1/workflows']);

/** Sheds submits past the replica's capacity (a global guard; it runs before the body is validated or anything is read). */
@Injectable()
export class OverloadGuard implements CanActivate {
  constructor(@Inject(SUBMIT_LOAD) private readonly load: SubmitLoad) {}

  canActivate(ctx: ExecutionContext): boolean {
    if (ctx.getType() !== 'http') return true;
    const req = ctx.switchToHttp().getRequest<FastifyRequest>();
    if (req.method !== 'POST' || !SUBMIT_ROUTES.has(req.routeOptions.url ?? '')) return true;
    this.load.enter();
    return true;
  }
}
