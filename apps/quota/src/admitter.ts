/**
 * Moves submitted jobs into their queue. Watches jobs, tenants and queues; each submitted
 * job is admitted (`Queued`) or refused (`Rejected` with a reason) by compare-and-swap, so
 * several quota replicas can run at once and a job is decided exactly once.
 */
import type { JobRecord, Queue, Tenant } from '@batchapi/api';
import { CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import { admissionRefusal } from '@batchapi/scheduling';
import { type Informer, mirrorByName, updateJobs, type WatchEvent } from '@batchapi/store';
import { inSpan } from '@batchapi/telemetry';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Counter } from 'prom-client';

@Injectable()
export class Admitter implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly tenants = new Map<string, Tenant>();
  private readonly queues = new Map<string, Queue>();
  private readonly submitted = new Set<string>();
  private informers: Informer[] = [];
  private synced = false;
  private running?: Promise<void>;
  private readonly decided: Counter;

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    /** What the time of each decision (`queuedAt`, `finishedAt`) comes from. @default systemClock */
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {
    this.decided = new Counter({
      name: 'batch_quota_decisions_total',
      help: 'Submitted jobs decided by the quota service',
      labelNames: ['decision'],
      registers: [ctx.registry],
    });
    ctx.readiness = { check: () => this.synced, reason: () => 'caches not synced' };
  }

  async onApplicationBootstrap(): Promise<void> {
    const { store } = this.ctx;
    this.informers.push(
      await store.inform<Tenant>(
        store.keys.tenants(),
        mirrorByName(this.tenants, () => this.kick()),
      ),
    );
    this.informers.push(
      await store.inform<Queue>(
        store.keys.queues(),
        mirrorByName(this.queues, () => this.kick()),
      ),
    );
    this.informers.push(
      await store.inform<JobRecord>(store.keys.jobs(), {
        onSync: (items) => {
          this.submitted.clear();
          for (const kv of items) if (kv.value.phase === 'Submitted') this.submitted.add(kv.value.id);
          this.kick();
        },
        onEvent: (ev: WatchEvent<JobRecord>) => {
          const id = store.keys.jobIdOfJob(ev.key);
          if (id === undefined) return;
          if (ev.type === 'put' && ev.value?.phase === 'Submitted') this.submitted.add(id);
          else this.submitted.delete(id);
          this.kick();
        },
      }),
    );
    this.synced = true;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
    await this.running;
  }

  /** Decides every submitted job; one pass at a time, another pass if more arrived meanwhile. */
  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.decideAll().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }
  private again = false;

  /** Decides the submitted jobs in batches: one read and one transaction per 60 jobs. */
  private async decideAll(): Promise<void> {
    const ids = [...this.submitted];
    for (let i = 0; i < ids.length; i += 60) {
      const batch = ids.slice(i, i + 60);
      try {
        const decided = await updateJobs(this.ctx.store, batch, (job) => this.decision(job, this.clock.now()));
        for (const id of batch) this.submitted.delete(id);
        for (const job of decided) {
          await inSpan(
            'quota.admit',
            { parent: job.traceparent, attributes: { 'batch.job.id': job.id, 'batch.queue': job.queue, 'batch.decision': job.phase } },
            () => undefined,
          );
          this.decided.inc({ decision: job.phase });
        }
      } catch (err) {
        this.ctx.log.warn({ err: (err as Error).message, jobs: batch.length }, 'admission decisions failed; will retry');
        setTimeout(() => this.kick(), 500);
        return;
      }
    }
  }

  /** Queued, or Rejected with the reason; undefined once decided. Pure given the caches. */
  private decision(job: JobRecord, now: number): JobRecord | undefined {
    if (job.phase !== 'Submitted') return undefined;
    const refusal = admissionRefusal(job, this.tenants.get(job.tenant), this.queues.get(job.queue), this.queues.values());
    return refusal ? { ...job, phase: 'Rejected', reason: refusal, pending: [], finishedAt: now } : { ...job, phase: 'Queued', queuedAt: now };
  }
}
