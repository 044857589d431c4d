/**
 * The elected loop the quota service's controllers share (the workflow and the schedule
 * controller): campaigning for a role on the service's lease (`serveElectedRole`) with an
 * is-leader gauge and a log line at each change of term, a pause between passes that a change cuts
 * short (`wakeUp`), the handling of a failed pass (log it, then ask etcd whether the term still
 * holds), and a stop that wakes the loop, resigns and waits for it. What a pass does stays with
 * each controller.
 */
import { serveElectedRole, type ServiceContext } from '@batchapi/runtime';
import type { Leadership } from '@batchapi/store';
import type { Gauge } from 'prom-client';

/** Which role an `ElectedLoop` serves and how it says so. */
export interface ElectedLoopRole {
  /** The role's leader key, `leaders/{role}`, e.g. `workflows`. */
  role: string;
  /** How log lines name the controller, e.g. `workflow controller`. */
  title: string;
  /** Set to 1 while this replica leads, 0 once deposed (the controller registers it under its own name). */
  isLeader: Gauge;
}

export class ElectedLoop {
  /** The term this replica holds, or held last (none before its first election). */
  leadership?: Leadership;
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  /** Every `pause` under way (a controller's workers may each wait at once). */
  private readonly waking = new Set<() => void>();

  constructor(
    private readonly ctx: ServiceContext,
    private readonly r: ElectedLoopRole,
  ) {}

  /** Campaigns for the role until `stop`, running `lead` through each term won. */
  start(lead: (leader: Leadership) => Promise<void>): void {
    const { log } = this.ctx;
    const { role, title, isLeader } = this.r;
    this.loop = serveElectedRole(this.ctx, role, this.abort.signal, {
      elected: (l) => {
        this.leadership = l;
        log.info({ fence: l.createRevision }, `became ${title} leader`);
        isLeader.set(1);
      },
      lead,
      deposed: () => {
        isLeader.set(0);
        log.warn(`lost ${title} leadership`);
      },
    });
  }

  /** True once `stop` was called. */
  get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  /** True while a pass of `leader`'s term may go on: not stopping, and the term still held. */
  leading(leader: Leadership): boolean {
    return !this.stopping && leader.held();
  }

  /** Waits `ms` milliseconds of real time, or less if `wakeUp` (or `stop`) comes first. */
  async pause(ms: number): Promise<void> {
    let wake!: () => void;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((r) => {
      wake = r;
      this.waking.add(r);
      timer = setTimeout(r, ms).unref();
    });
    clearTimeout(timer); // woken early: no timer left behind per waiter
    this.waking.delete(wake);
  }

  /** Ends every `pause` under way now (a change the leader should act on). */
  wakeUp(): void {
    for (const wake of this.waking) wake();
  }

  /**
   * Ends one `pause` under way now, if any: one change for one of several workers that each take
   * the next piece of work (waking all of them for it, 32 with the workflow controller, costs each
   * a look and a new timer for nothing). A worker busy meanwhile looks for more work before it pauses.
   */
  wakeOne(): void {
    for (const wake of this.waking) {
      // out of the set now: a second change before that worker runs wakes another
      this.waking.delete(wake);
      wake();
      return;
    }
  }

  /**
   * After a failed reconcile: logs it (with `fields`, naming what failed) and returns whether the
   * term may still be held — false only when etcd says it is not (an unanswered check keeps the term).
   */
  async failed(leader: Leadership, err: unknown, fields: Record<string, unknown>, what: string): Promise<boolean> {
    this.ctx.log.warn({ err: (err as Error).message, ...fields }, `${what} failed; will retry`);
    return leader.verify().catch(() => true);
  }

  /** Stops campaigning and leading: wakes a paused loop, resigns a term held, and waits for the loop to end. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.wakeUp();
    await this.leadership?.resign();
    await this.loop?.catch(() => undefined);
  }
}
