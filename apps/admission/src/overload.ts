/**
 * Load shedding for submits. Past its capacity an admission replica answers new submits 503
 * `overloaded` with `Retry-After` at once — a few microseconds each — instead of queueing
 * them: a queued submit that its client gives up on (and sends again) is work done twice,
 * and under an open-loop load the queue then only grows (a nemesis run at the box's capacity
 * saw both replicas stop answering within seconds and never recover). Shed requests cost
 * nothing downstream, so the cluster keeps completing what it accepted.
 *
 * Two signals, either of which sheds:
 * - the delay of the replica's event loop — the longest it was behind within the last second,
 *   or is behind right now: a replica starved of CPU answers late whatever its queue. (A p99 of
 *   event-loop delay samples missed a stall: one second blocked is one sample among a hundred.)
 * - how long etcd is taking to take submits — the *least* time from a submit reaching the
 *   commit to its answer among those answered within the last second (CoDel's standing-queue
 *   test: a burst passes, only a second in which every commit was slow sheds). When etcd is slow
 *   (a slow disk, an election, a store at its limit) a replica that kept taking submits would
 *   hold up to its in-flight cap of them for seconds each, add their reads to the slow etcd, and
 *   answer clients near their deadline; shed, they retry after the commit time instead. With no
 *   submit answered in the window there is no evidence and nothing is shed: the submits already
 *   in flight drain within the committer's wait, and the next ones measure etcd again.
 *
 * (Submits in flight are capped by the submit throttle, `BATCH_MAX_INFLIGHT_SUBMITS`.) Reads,
 * cancels and operator calls are never shed here (reads have their own limit).
 */
import { ApiError, ErrorCode } from '@batchapi/api';
import { type CanActivate, type ExecutionContext, Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';

/** Capacity of one admission replica for submits. */
export interface OverloadLimits {
  /** Event-loop delay (the longest within the last second, or now), in ms, past which submits are shed (`BATCH_MAX_EVENT_LOOP_DELAY_MS`). 0 turns it off. @default 2000 */
  maxLoopDelayMs: number;
  /**
   * Commit latency, in ms, past which submits are shed: the least time a submit took from the
   * commit queue to its answer among those answered within the last second
   * (`BATCH_MAX_COMMIT_LATENCY_MS`). 0 turns it off. @default 2000
   */
  maxCommitLatencyMs: number;
}

/** What a replica measures of its own load, in ms. */
export interface ReplicaLoad {
  /** How far behind its event loop is (see `SubmitLoad.loopDelayMs`). */
  loopDelayMs: number;
  /** The least commit time of the submits answered within the last second; 0 when none was (see `SubmitLoad.commitLatencyMs`). */
  commitLatencyMs: number;
}

/** Why a submit is shed. */
export type ShedReason = 'event_loop_delay' | 'commit_latency';

/** Why a submit is shed, or undefined to take it. Pure: the caller passes the replica's state. A limit is passed when strictly exceeded. */
export function shedReason(limits: OverloadLimits, load: ReplicaLoad): ShedReason | undefined {
  if (limits.maxLoopDelayMs > 0 && load.loopDelayMs > limits.maxLoopDelayMs) return 'event_loop_delay';
  if (limits.maxCommitLatencyMs > 0 && load.commitLatencyMs > limits.maxCommitLatencyMs) return 'commit_latency';
  return undefined;
}

/** How often the event loop's delay is sampled, in milliseconds. */
const TICK_MS = 20;
/** How far back a delay still counts, in milliseconds. */
const WINDOW_MS = 1000;

/** The replica's submit load: how far behind its event loop has been lately. */
export class SubmitLoad implements OnModuleDestroy {
  /** Each tick's lateness (ms) with when it ran (ms, `performance.now`), the last second's. */
  private readonly samples: Array<{ at: number; lateMs: number }> = [];
  /** Each answered submit's commit time (ms) with when it was answered (ms, `performance.now`), the last second's. */
  private readonly commits: Array<{ at: number; ms: number }> = [];
  private lastTick = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly limits: OverloadLimits,
    private readonly onShed: (reason: string) => void = () => undefined,
  ) {
    this.timer = setInterval(() => {
      const now = performance.now();
      this.samples.push({ at: now, lateMs: Math.max(0, now - this.lastTick - TICK_MS) });
      this.lastTick = now;
      while (this.samples.length && this.samples[0].at < now - WINDOW_MS) this.samples.shift();
    }, TICK_MS);
    this.timer.unref();
  }

  /**
   * How far behind the event loop is, in ms: the longest lateness of a tick within the last second,
   * or, when the next tick is overdue right now (the loop was just blocked and this request runs
   * before the tick), how overdue it is.
   */
  get loopDelayMs(): number {
    const now = performance.now();
    let worst = Math.max(0, now - this.lastTick - TICK_MS);
    for (const s of this.samples) if (s.at >= now - WINDOW_MS && s.lateMs > worst) worst = s.lateMs;
    return worst;
  }

  /** Records one submit's time from the commit queue to its answer, in ms (`SubmitCommitterOptions.onAnswered`). @param now when it was answered, on `performance.now` */
  observeCommit(latencyMs: number, now = performance.now()): void {
    this.commits.push({ at: now, ms: latencyMs });
    while (this.commits.length && this.commits[0].at < now - WINDOW_MS) this.commits.shift();
  }

  /** The least commit time, in ms, of the submits answered within the last second; 0 when none was. */
  commitLatencyMs(now = performance.now()): number {
    let least = Infinity;
    for (const c of this.commits) if (c.at >= now - WINDOW_MS && c.ms < least) least = c.ms;
    return least === Infinity ? 0 : least;
  }

  /** Takes a submit, or throws 503 `overloaded`. */
  enter(): void {
    const load = { loopDelayMs: this.loopDelayMs, commitLatencyMs: this.commitLatencyMs() };
    const reason = shedReason(this.limits, load);
    if (!reason) return;
    this.onShed(reason);
    const why =
      reason === 'event_loop_delay'
        ? `its event loop was ${Math.round(load.loopDelayMs)} ms behind`
        : `etcd took at least ${Math.round(load.commitLatencyMs)} ms to commit each submit in the last second`;
    throw new ApiError(
      ErrorCode.Overloaded,
      `this admission replica is over its capacity for submits (${why}); retry after Retry-After seconds, on any replica`,
      // a retry sooner than a commit takes only adds to the queue
      { retryAfterSeconds: reason === 'commit_latency' ? Math.max(1, Math.ceil(load.commitLatencyMs / 1000)) : 1 },
    );
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }
}

/** Injection token of the replica's `SubmitLoad`. */
export const SUBMIT_LOAD = Symbol('SubmitLoad');

/** Routes whose requests are submits (shed under overload). */
const SUBMIT_ROUTES = new Set(['/v1/jobs', '/v1/jobs::batch', '/v1/jobs:batch', '/v1/jobs/:id/resubmit', '/v1/workflows']);

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
