/**
 * Backpressure on submits: per-tenant token buckets (requests and tasks per second) shared by
 * every admission replica through etcd, a cap on the tasks waiting in each queue, and a
 * bound on the submits one replica handles at once. Each refusal is a 429 or 503 with
 * `Retry-After` and a code that names the limit; nothing is queued without bound.
 */
import { ApiError, ErrorCode, type JobRecord, type Queue, type Tenant, TERMINAL_PHASES, countTasks } from '@batchapi/api';
import { type BucketLimit, type EtcdStore, type Informer, takeTokens, type WatchEvent } from '@batchapi/store';

/** Tuning of the submit throttles. */
export interface ThrottleTuning {
  /** Share of a second's tokens a replica takes from the shared bucket at once, in seconds of rate. @default 0.1 */
  chunkSeconds: number;
  /** Tokens a replica took but did not spend expire after this long, in milliseconds. @default 1000 */
  holdMs: number;
  /** Most submits one replica handles at once before answering 503 `overloaded` (`BATCH_MAX_INFLIGHT_SUBMITS`); 0 turns it off. @default 256 */
  maxInflight: number;
}

/** The tuning that is not configured by a variable (`maxInflight` comes from `BATCH_MAX_INFLIGHT_SUBMITS`, see `admissionConfigFromEnv`). */
export const DEFAULT_THROTTLE: Omit<ThrottleTuning, 'maxInflight'> = { chunkSeconds: 0.1, holdMs: 1000 };

/** The limit that refused a submit: the label of `batch_admission_throttled_total`. */
/** Injection token of overrides of `DEFAULT_THROTTLE` (tests, embedders). */
export const THROTTLE_TUNING = Symbol('ThrottleTuning');

export type ThrottleLimit = 'submits_per_second' | 'tasks_per_second' | 'queue_pending_tasks' | 'inflight';

export class SubmitThrottle {
  private readonly local = new Map<string, { tokens: number; until: number; emptyUntil: number }>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private inflight = 0;

  constructor(
    private readonly store: EtcdStore,
    private readonly pending: PendingTasks,
    private readonly tuning: ThrottleTuning,
    private readonly refused: (limit: ThrottleLimit) => void,
  ) {}

  /**
   * Runs `submit` if the replica is not saturated and the tenant's buckets and the queue's
   * pending cap allow `tasks` more tasks; else throws the 429/503.
   */
  async admit<T>(tenant: Tenant, queue: Queue, tasks: number, now: number, submit: () => Promise<T>): Promise<T> {
    if (this.tuning.maxInflight > 0 && this.inflight >= this.tuning.maxInflight) {
      this.refused('inflight');
      throw new ApiError(
        ErrorCode.Overloaded,
        `this admission replica is handling ${this.inflight} submits at once (its most); retry after Retry-After seconds, on any replica`,
        { retryAfterSeconds: 1 },
      );
    }
    this.inflight++;
    try {
      const max = queue.maxPendingTasks;
      if (max !== undefined && this.pending.of(queue.name) + tasks > max) {
        this.refused('queue_pending_tasks');
        throw new ApiError(ErrorCode.QueueFull, `queue ${queue.name} holds ${this.pending.of(queue.name)} waiting tasks; its cap is ${max}`, {
          field: 'queue',
          id: queue.name,
          retryAfterSeconds: 5,
        });
      }
      const l = tenant.limits;
      if (l?.submitsPerSecond) {
        await this.spend(
          tenant.name,
          'submits',
          { rate: l.submitsPerSecond, burst: l.submitBurst ?? Math.max(1, Math.ceil(l.submitsPerSecond)) },
          1,
          now,
          'submits_per_second',
          ErrorCode.SubmitRateExceeded,
        );
      }
      if (l?.tasksPerSecond) {
        const limit = { rate: l.tasksPerSecond, burst: l.taskBurst ?? Math.max(1, Math.ceil(l.tasksPerSecond)) };
        // A job larger than the burst waits for a full bucket rather than never fitting.
        await this.spend(tenant.name, 'tasks', limit, Math.min(tasks, limit.burst), now, 'tasks_per_second', ErrorCode.TaskRateExceeded);
      }
      return await submit();
    } finally {
      this.inflight--;
    }
  }

  /** Spends `want` tokens of a tenant's bucket, topping up the local chunk from etcd when short; one take per bucket at a time. */
  private spend(tenant: string, kind: string, limit: BucketLimit, want: number, now: number, name: ThrottleLimit, code: ErrorCode): Promise<void> {
    const id = `${tenant}/${kind}`;
    const chunk = Math.max(want, Math.ceil(limit.rate * this.tuning.chunkSeconds));
    const refuse = (retryAfterMs: number) => {
      this.refused(name);
      return new ApiError(code, `tenant ${tenant} is over its ${kind} limit of ${limit.rate}/s (burst ${limit.burst})`, {
        field: 'tenant',
        id: tenant,
        retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)),
      });
    };
    const run = async () => {
      let l = this.local.get(id);
      if (!l || l.until < now) l = { tokens: 0, until: now + this.tuning.holdMs, emptyUntil: l?.emptyUntil ?? 0 };
      this.local.set(id, l);
      if (l.tokens >= want) {
        l.tokens -= want;
        return;
      }
      // The shared bucket was short a moment ago: it cannot have refilled before then (other
      // replicas only take), so refuse without asking etcd again.
      if (now < l.emptyUntil) throw refuse(l.emptyUntil - now);
      const need = want - l.tokens;
      const t = await takeTokens(this.store, this.store.keys.bucket(tenant, kind), limit, need, chunk, now);
      if (t.granted === 0) {
        l.emptyUntil = now + t.retryAfterMs;
        throw refuse(t.retryAfterMs);
      }
      l.tokens += t.granted - want;
      l.until = now + this.tuning.holdMs;
      // The bucket gave less than a chunk: it is about empty. Ask again once a chunk can be
      // there, so a storm costs about one etcd take per chunk, not one per request.
      if (t.granted < chunk) l.emptyUntil = now + ((chunk - t.granted) / limit.rate) * 1000;
    };
    // Fast path: refused locally without waiting behind a take under way.
    const known = this.local.get(id);
    if (known && known.tokens < want && now < known.emptyUntil) return Promise.reject(refuse(known.emptyUntil - now));
    const next = (this.chains.get(id) ?? Promise.resolve()).catch(() => undefined).then(run);
    this.chains.set(id, next);
    void next
      .finally(() => {
        if (this.chains.get(id) === next) this.chains.delete(id);
      })
      .catch(() => undefined);
    return next;
  }
}

/**
 * Tasks waiting in each queue (unfinished jobs' pending ranges), kept current by a watch on
 * jobs — only while some queue has a pending-task cap, so clusters without caps do not pay
 * for decoding every job change in admission.
 */
export class PendingTasks {
  private readonly byJob = new Map<string, { queue: string; tasks: number }>();
  private readonly byQueue = new Map<string, number>();
  private informer?: Informer;
  private starting?: Promise<void>;

  /** Starts or stops watching as `needed` says (some queue has `maxPendingTasks`). */
  async watchWhile(store: EtcdStore, needed: boolean): Promise<void> {
    await this.starting;
    if (needed && !this.informer) {
      this.starting = this.start(store);
      await this.starting;
      this.starting = undefined;
    } else if (!needed && this.informer) {
      const i = this.informer;
      this.informer = undefined;
      await i.stop();
      this.byJob.clear();
      this.byQueue.clear();
    }
  }

  async start(store: EtcdStore): Promise<void> {
    this.informer = await store.inform<JobRecord>(store.keys.jobs(), {
      onSync: (items) => {
        this.byJob.clear();
        this.byQueue.clear();
        for (const kv of items) this.set(store.keys.jobIdOfJob(kv.key), kv.value);
      },
      onEvent: (ev: WatchEvent<JobRecord>) => this.set(store.keys.jobIdOfJob(ev.key), ev.type === 'put' ? ev.value : undefined),
    });
  }

  stop(): Promise<void> | undefined {
    return this.informer?.stop();
  }

  /** Tasks waiting in the queue now, as watched. */
  of(queue: string): number {
    return this.byQueue.get(queue) ?? 0;
  }

  /** Counts what a job has waiting (`id` undefined: the key was no job's, nothing to count). */
  private set(id: string | undefined, job: JobRecord | undefined): void {
    if (id === undefined) return;
    const prev = this.byJob.get(id);
    if (prev) this.byQueue.set(prev.queue, (this.byQueue.get(prev.queue) ?? 0) - prev.tasks);
    const tasks = job && !TERMINAL_PHASES.has(job.phase) ? countTasks(job.pending) : 0;
    if (job && tasks > 0) {
      this.byJob.set(id, { queue: job.queue, tasks });
      this.byQueue.set(job.queue, (this.byQueue.get(job.queue) ?? 0) + tasks);
    } else this.byJob.delete(id);
  }
}
