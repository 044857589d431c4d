/**
 * The retention loop: one quota replica, elected as `retention`, deletes expired history
 * every pass (fenced by its leader key); the others stand by.
 */
import { CLOCK, type Clock, SERVICE, serveElectedRole, type ServiceContext, sleepUnlessAborted, systemClock } from '@batchapi/runtime';
import { collectHistory, type Leadership, type RetentionPolicy } from '@batchapi/store';
import { Metric } from '@batchapi/telemetry';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Counter } from 'prom-client';

/** Retention settings of the quota service. */
export interface RetentionTuning extends RetentionPolicy {
  /** Pause between passes, in milliseconds. @default 60000 */
  intervalMs: number;
}
export const RETENTION_TUNING = Symbol('RetentionTuning');

@Injectable()
export class RetentionService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  private leadership?: Leadership;
  private readonly deleted: Counter;

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    @Inject(RETENTION_TUNING) private readonly tuning: RetentionTuning,
    /** What a record's age is measured against (wall time: records keep wall timestamps). @default systemClock */
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {
    this.deleted = new Counter({
      name: Metric.retentionDeleted,
      help: 'History records deleted by retention, by kind (job, group, idempotency)',
      labelNames: ['kind'],
      registers: [ctx.registry],
    });
  }

  onApplicationBootstrap(): void {
    this.loop = this.run();
  }

  async onApplicationShutdown(): Promise<void> {
    this.abort.abort();
    await this.leadership?.resign();
    await this.loop?.catch(() => undefined);
  }

  private run(): Promise<void> {
    return serveElectedRole(this.ctx, 'retention', this.abort.signal, {
      elected: (l) => {
        this.leadership = l;
      },
      lead: (l) => this.collectWhileLeader(l),
    });
  }

  /** One pass a minute while leading; stops when the fence is gone. */
  private async collectWhileLeader(leadership: Leadership): Promise<void> {
    const { store, log } = this.ctx;
    while (!this.abort.signal.aborted && leadership.held()) {
      try {
        const r = await collectHistory(store, leadership.fence(), this.tuning, this.clock.now());
        this.deleted.inc({ kind: 'job' }, r.jobs);
        this.deleted.inc({ kind: 'group' }, r.groups);
        this.deleted.inc({ kind: 'idempotency' }, r.idempotency);
        if (r.jobs + r.idempotency > 0) log.info(r, 'retention deleted expired history');
        if (!(await leadership.verify())) return;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'retention pass failed; will retry');
      }
      await sleepUnlessAborted(this.tuning.intervalMs, this.abort.signal);
    }
  }
}
