/**
 * Moves submitted jobs into their queue. Watches jobs, tenants and queues; each submitted
 * job is admitted (`Queued`) or refused (`Rejected` with a reason) by compare-and-swap, so
 * several quota replicas can run at once and a job is decided exactly once. The workflow
 * controller creates step jobs already admitted when these caches admit them (`admitAtCreate`).
 */
import type { JobRecord, Queue, Tenant } from '@batchapi/api';
import { CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import { admissionRefusal } from '@batchapi/scheduling';
import { type Informer, type InformerHandlers, mirrorByName, updateJobs, type WatchEvent } from '@batchapi/store';
import { inSpan } from '@batchapi/telemetry';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Counter } from 'prom-client';
import { FinishedJobs } from './finished-jobs';
import { StepJobs } from './step-jobs';

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
    /** The finished jobs' index the archiver reads, kept from this informer. @default one of its own */
    @Optional() private readonly finished: FinishedJobs = new FinishedJobs(),
    /** The step jobs' phases the workflow controller reads, kept from this informer. @default one of its own */
    @Optional() private readonly stepJobs: StepJobs = new StepJobs(),
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
        this.recordingDeletes(
          mirrorByName(this.tenants, () => this.kick()),
          'tenant',
        ),
      ),
    );
    this.informers.push(
      await store.inform<Queue>(
        store.keys.queues(),
        this.recordingDeletes(
          mirrorByName(this.queues, () => this.kick()),
          'queue',
        ),
      ),
    );
    this.informers.push(
      await store.inform<JobRecord>(store.keys.jobs(), {
        onSync: (items) => {
          this.submitted.clear();
          for (const kv of items) if (kv.value.phase === 'Submitted') this.submitted.add(kv.value.id);
          this.finished.sync(items.map((kv) => kv.value));
          this.stepJobs.sync(items.map((kv) => kv.value));
          this.kick();
        },
        onEvent: (ev: WatchEvent<JobRecord>) => {
          const id = store.keys.jobIdOfJob(ev.key);
          if (id === undefined) return;
          if (ev.type === 'put' && ev.value?.phase === 'Submitted') this.submitted.add(id);
          else this.submitted.delete(id);
          this.finished.put(id, ev.type === 'put' ? ev.value : undefined);
          this.stepJobs.put(id, ev.type === 'put' ? ev.value : undefined);
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
        const unknown: JobRecord[] = [];
        const decided = await updateJobs(this.ctx.store, batch, (job) => this.decision(job, this.clock.now(), unknown));
        for (const id of batch) this.submitted.delete(id);
        // Jobs naming a tenant or queue these caches lack: the informers may not have delivered it yet
        // (separate watches; a queue made just before its first job). Read them from etcd; decide again.
        if (unknown.length) await this.resolve(unknown);
        for (const job of decided) await this.traceDecision(job);
      } catch (err) {
        this.ctx.log.warn({ err: (err as Error).message, jobs: batch.length }, 'admission decisions failed; will retry');
        setTimeout(() => this.kick(), 500);
        return;
      }
    }
  }

  /**
   * `job` as a pass of this admitter would decide it now, for a job about to be created: `Queued`
   * (with `queuedAt`) when the caches hold its tenant and queue and admit it, else unchanged
   * (`Submitted`, for a pass to decide: it looks up what the caches lack and gives a refusal its
   * reason). The workflow controller creates its step jobs this way, so a step does not wait for a
   * pass of its own after its job is written (`bench pipelines`: that wait was p50 0.4–5.8 s at
   * 300–1,000 runs). Deciding at create time is the same decision from the same caches a pass makes
   * a moment later; the job's create is its only write, so it is still decided exactly once.
   */
  admitAtCreate(job: JobRecord, now: number): JobRecord {
    if (!this.synced || job.phase !== 'Submitted') return job;
    const tenant = this.tenants.get(job.tenant);
    const queue = this.queues.get(job.queue);
    if (!tenant || !queue || admissionRefusal(job, tenant, queue, this.queues.values())) return job;
    return { ...job, phase: 'Queued', queuedAt: now };
  }

  /** Counts and traces a job created already `Queued` (`admitAtCreate`), as a pass does its own decisions. */
  async admittedAtCreate(job: JobRecord): Promise<void> {
    if (job.phase !== 'Queued') return;
    await this.traceDecision(job);
  }

  private async traceDecision(job: JobRecord): Promise<void> {
    await inSpan(
      'quota.admit',
      { parent: job.traceparent, attributes: { 'batch.job.id': job.id, 'batch.queue': job.queue, 'batch.decision': job.phase } },
      () => undefined,
    );
    this.decided.inc({ decision: job.phase });
  }

  /**
   * Looks up in etcd the tenants and queues `jobs` name that the caches lack, adds those found to
   * the caches, and hands the jobs back to be decided again, now knowing what etcd has: a name
   * etcd lacks too is refused on the next pass.
   */
  private async resolve(jobs: readonly JobRecord[]): Promise<void> {
    // still to decide, whatever the reads below do (a failed read is retried with the batch)
    for (const job of jobs) this.submitted.add(job.id);
    this.again = true;
    const { store } = this.ctx;
    for (const job of jobs) {
      const [tenant, queue] = await store.getMany<Tenant | Queue>([store.keys.tenant(job.tenant), store.keys.queue(job.queue)]);
      // A record read before its delete reached the informer must not come back into the cache after it.
      if (tenant && !this.tenants.has(job.tenant) && this.newerThanDelete('tenant', job.tenant, tenant.modRevision))
        this.tenants.set(job.tenant, tenant.value as Tenant);
      if (queue && !this.queues.has(job.queue) && this.newerThanDelete('queue', job.queue, queue.modRevision)) this.queues.set(job.queue, queue.value as Queue);
      this.looked.add(job.id);
    }
  }

  /** The revision of the last delete the informers delivered, per `kind/name` (tenants and queues). */
  private readonly deletedAt = new Map<string, bigint>();

  /** `handlers` that also note each delete's revision (see `resolve`). */
  private recordingDeletes<T>(handlers: InformerHandlers<T>, kind: 'tenant' | 'queue'): InformerHandlers<T> {
    return {
      ...handlers,
      onEvent: (ev) => {
        if (ev.type === 'delete') this.deletedAt.set(`${kind}/${ev.key.slice(ev.key.lastIndexOf('/') + 1)}`, BigInt(ev.modRevision));
        handlers.onEvent(ev);
      },
    };
  }

  /** True unless the informers delivered a delete of `kind/name` at or after `modRevision` (the record read is older than it). */
  private newerThanDelete(kind: 'tenant' | 'queue', name: string, modRevision: string): boolean {
    const deleted = this.deletedAt.get(`${kind}/${name}`);
    return deleted === undefined || BigInt(modRevision) > deleted;
  }
  /** Jobs whose unknown tenant or queue was looked up in etcd: the next decision is final. */
  private readonly looked = new Set<string>();

  /**
   * Queued, or Rejected with the reason; undefined once decided. Pure given the caches. A job
   * naming a tenant or queue the caches lack is left undecided once (added to `unknown`, to be
   * looked up in etcd), then refused if etcd lacks it too.
   */
  private decision(job: JobRecord, now: number, unknown: JobRecord[]): JobRecord | undefined {
    if (job.phase !== 'Submitted') {
      this.looked.delete(job.id);
      return undefined;
    }
    if ((!this.tenants.has(job.tenant) || !this.queues.has(job.queue)) && !this.looked.has(job.id)) {
      unknown.push(job);
      return undefined;
    }
    this.looked.delete(job.id);
    const refusal = admissionRefusal(job, this.tenants.get(job.tenant), this.queues.get(job.queue), this.queues.values());
    return refusal ? { ...job, phase: 'Rejected', reason: refusal, pending: [], finishedAt: now } : { ...job, phase: 'Queued', queuedAt: now };
  }
}
