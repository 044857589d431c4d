/** Submit, query, cancel and logs: the admission side of a job's life. */
import { SUBMIT_LOAD, SubmitLoad } from './overload';
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGunzip, gunzipSync } from 'node:zlib';
import {
  ApiError,
  BulkSubmitSchema,
  canonicalJson,
  CONTAINER_RUNTIME_LABEL,
  countTasks,
  ErrorCode,
  type GroupStatus,
  IdempotencyKeySchema,
  type JobCountsView,
  type JobRecord,
  type JobView,
  type NodeRecord,
  jobView,
  ListJobsQuerySchema,
  ListTasksQuerySchema,
  type TaskView,
  LogsQuerySchema,
  MAX_CANCELLED_TASK_RANGES,
  parseSubmit,
  ResubmitSchema,
  resubmitBody,
  type JobSort,
  parseLabelSelector,
  parseWith,
  type Principal,
  type Queue,
  type ResultRef,
  type TaskResult,
  type Tenant,
  GLOBAL_SEMAPHORE_PREFIX,
  semaphoreId,
  type SemaphoreRecord,
  TERMINAL_PHASES,
  type WhyView,
} from '@batchapi/api';
import type { MirroredValue, StreamSnapshot } from './event-stream';
import { decodeJobPageToken, encodeJobPageToken, isAfter, type JobListCriteria, jobMatcher, jobOrder, mergeJobPages, type SourcePage } from './job-list';
import { liveTaskPage, type TaskCursor } from './task-list';
import { BLOBS, CLOCK, type Clock, HISTORY, SERVICE, type ServiceContext, storeApiError, systemClock } from '@batchapi/runtime';
import { type BlobStore, logKey, logsOfTask, type LogStream, MAX_BLOB_LIST, parseLogKey, resultKey } from '@batchapi/blobs';
import { type HistoryStore, MAX_PAGE_SIZE } from '@batchapi/history';
import { fromHistory } from './history-reads';
import {
  cancelJob,
  cancelTask,
  type EtcdStore,
  getJob,
  IDEMPOTENCY_LOOKUP_MAX_MS,
  IdempotencyConflictError,
  IdempotentJobGoneError,
  getNode,
  type Informer,
  listGroups,
  listJobs,
  listLiveResults,
  listResults,
  mirrorByName,
  loadSchedulerSettings,
  readCluster,
  sha256,
  SubmitCommitter,
  tenantAndQueues,
} from '@batchapi/store';
import { buildSnapshot, explainJob, learnedRuntimesOf, settingsOfRecord, storedDefragmentation, withLearnedRuntimes } from '@batchapi/scheduling';
import { IdempotencyLookups } from './idempotency-lookups';
import { WorkingDirsService } from './working-dirs';
import { SchedulerCalls } from './scheduler-calls';
import { inSpan, Metric, traceparentOf } from '@batchapi/telemetry';
import { DEFAULT_THROTTLE, PendingTasks, SubmitThrottle, THROTTLE_TUNING, type ThrottleTuning } from './throttle';
import { BACKLOG_GATE, type BacklogGate } from './archive-backlog';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Counter } from 'prom-client';

/** Job ids sort by creation time: base-36 milliseconds, then randomness. */
export function newJobId(now: number): string {
  // The last 12 hex digits of a v4 UUID are random (48 bits); randomUUID draws from a cached entropy pool, not a syscall per id.
  return `${now.toString(36).padStart(9, '0')}-${randomUUID().slice(24)}`;
}

/** Digest of a request, independent of key order, to detect idempotency-key reuse with another body. */
export function requestDigest(tenant: string, body: unknown): string {
  return createHash('sha256')
    .update(`${tenant}\n${canonicalJson(body)}`)
    .digest('hex');
}

/** How long admission trusts its last look at whether some node runs container images, in milliseconds. */
export const RUNTIME_RECHECK_MS = 5000;

@Injectable()
export class JobsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly submitted: Counter;
  private readonly whys: Counter;
  private readonly tenants = new Map<string, Tenant>();
  private readonly queues = new Map<string, Queue>();
  private informers: Informer[] = [];
  private readonly pending = new PendingTasks();
  private readonly throttle: SubmitThrottle;
  private readonly backlogRefused: () => void;
  /** Submits arriving together are committed together (group commit). */
  private readonly committer: SubmitCommitter;
  /** Calls to the scheduler (why pending). */
  private readonly scheduler: SchedulerCalls;
  /** Keyed submits' lookups of archived keys, batched (with a history store). */
  private readonly lookups?: IdempotencyLookups;

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    @Inject(THROTTLE_TUNING) tuning: Partial<ThrottleTuning> & Pick<ThrottleTuning, 'maxInflight'>,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
    /** Where finished jobs go once archived out of etcd. @default none: a job gone from etcd is not found */
    @Optional() @Inject(HISTORY) private readonly history?: HistoryStore,
    /** Pauses submits while the archive backlog is past its limit. @default none: never paused */
    @Optional() @Inject(BACKLOG_GATE) private readonly backlog?: BacklogGate,
    /** Calls to the scheduler replicas (why pending), shared with the queue views. @default a pool of its own */
    @Optional() @Inject(SchedulerCalls) scheduler?: SchedulerCalls,
    /** Where ended attempts' logs are kept. @default none: logs are read from their node only */
    @Optional() @Inject(BLOBS) private readonly blobs?: BlobStore,
    /** Told each submit's commit time, to shed submits while etcd is slow. @default none: commit time is not watched */
    @Optional() @Inject(SUBMIT_LOAD) load?: SubmitLoad,
    /** Checks that a job's working dir is its tenant's. @default none: not checked (the job fails on its node) */
    @Optional() private readonly workingDirs?: WorkingDirsService,
  ) {
    this.submitted = new Counter({ name: Metric.jobsSubmitted, help: 'Jobs committed by admission', labelNames: ['created'], registers: [ctx.registry] });
    this.whys = new Counter({
      name: Metric.admissionWhy,
      help: 'Why-pending answers by who worked them out (scheduler, or admission when no scheduler answered)',
      labelNames: ['explained_by'],
      registers: [ctx.registry],
    });
    const throttled = new Counter({
      name: Metric.admissionThrottled,
      help: 'Submits refused by a limit (429, or 503 when this replica is saturated), by limit',
      labelNames: ['limit'],
      registers: [ctx.registry],
    });
    this.committer = new SubmitCommitter(ctx.store, { onAnswered: (ms) => load?.observeCommit(ms) });
    if (history) this.lookups = new IdempotencyLookups(history);
    this.scheduler = scheduler ?? new SchedulerCalls(ctx.store, ctx.credential);
    this.throttle = new SubmitThrottle(ctx.store, this.pending, { ...DEFAULT_THROTTLE, ...tuning }, (limit) => throttled.inc({ limit }));
    this.backlogRefused = () => throttled.inc({ limit: 'archive_backlog' });
  }

  async onApplicationBootstrap(): Promise<void> {
    const { store } = this.ctx;
    this.informers.push(await store.inform<Tenant>(store.keys.tenants(), mirrorByName(this.tenants)));
    // The pending-task counts are watched only while some queue caps them.
    const capped = () => [...this.queues.values()].some((q) => q.maxPendingTasks !== undefined);
    this.informers.push(
      await store.inform<Queue>(
        store.keys.queues(),
        mirrorByName(this.queues, () => {
          this.pending.watchWhile(store, capped()).catch((err: Error) => this.ctx.log.warn({ err: err.message }, 'watching pending tasks failed'));
        }),
      ),
    );
    await this.pending.watchWhile(store, capped());
    await this.backlog?.start(store);
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.informers.map((i) => i.stop()), this.pending.stop(), this.scheduler.close(), this.backlog?.stop()]);
  }

  /** Whether a live node had a container runtime when the fleet was last read for it (`checkContainerRuntime`). */
  private runtimes: { at: number; any: boolean } = { at: Number.NEGATIVE_INFINITY, any: false };

  /**
   * Refuses a job that names an image while no live node runs images (none carries
   * `CONTAINER_RUNTIME_LABEL`): it would wait forever, or — were it placed on a process node —
   * run without its image. The fleet is read at most once per `RUNTIME_RECHECK_MS` for it. A
   * retry whose key already has a job (in etcd or in history) is not refused: it answers that job.
   * @throws ApiError no_container_runtime (422) naming `image`
   */
  private async checkContainerRuntime(image: string, now: number, tenant: string, key: string | undefined): Promise<void> {
    if (now - this.runtimes.at >= RUNTIME_RECHECK_MS) {
      const { items } = await this.ctx.store.listAll<NodeRecord>(this.ctx.store.keys.nodes());
      this.runtimes = { at: now, any: items.some((n) => n.value.labels?.[CONTAINER_RUNTIME_LABEL] !== undefined) };
    }
    if (this.runtimes.any) return;
    if (key !== undefined) {
      const digest = sha256(key);
      if ((await this.ctx.store.get(this.ctx.store.keys.idempotency(tenant, digest))) !== undefined) return;
      if (this.lookups && (await this.fromHistory(() => this.lookups!.get(tenant, digest)))) return;
    }
    throw new ApiError(
      ErrorCode.NoContainerRuntime,
      `image: no node runs container images (none has the ${CONTAINER_RUNTIME_LABEL} label: process executors run the command on their own machine), so a job in image ${image} would never run; leave "image" out, or add executors of the Kubernetes backend`,
      { field: 'image' },
    );
  }

  /** Validates, checks tenant and queue, and commits the job before returning. */
  async submit(principal: Principal, body: unknown, idempotencyKey: string | undefined, now: number): Promise<{ view: JobView; created: boolean }> {
    const { spec, queue, tenant: asked } = await inSpan('admission.validate', {}, () => parseSubmit(body));
    const key = idempotencyKey === undefined ? undefined : parseWith(IdempotencyKeySchema, idempotencyKey, 'Idempotency-Key');
    const tenant = asked ?? principal.tenant;
    if (tenant !== principal.tenant && principal.role !== 'operator') {
      throw new ApiError(ErrorCode.PermissionDenied, `your token may submit only for tenant ${principal.tenant}`, { field: 'tenant' });
    }
    // Tenants and queues come from watches; one unknown to the cache is looked up in etcd (it may be seconds old).
    let t = this.tenants.get(tenant);
    let q = this.queues.get(queue);
    if (!t || !q) {
      const stored = await tenantAndQueues(this.ctx.store, tenant, [queue]);
      t = stored.tenant;
      q = stored.queues[0];
    }
    if (!t) throw new ApiError(ErrorCode.UnknownTenant, `tenant ${tenant} does not exist; ask an operator to create it`, { field: 'tenant', id: tenant });
    if (!q || q.tenant !== tenant) {
      throw new ApiError(ErrorCode.UnknownQueue, `queue ${queue} does not exist for tenant ${tenant}; list queues or omit "queue" for the default`, {
        field: 'queue',
        id: queue,
      });
    }
    if (spec.image !== undefined) await this.checkContainerRuntime(spec.image, now, tenant, key);
    if (spec.workingDir) await this.workingDirs?.requireUploaded(tenant, spec.workingDir.digest, 'workingDir.digest');
    if (spec.limits) await checkSemaphores(this.ctx.store, tenant, spec.limits);
    this.checkBacklog(now);
    const job: JobRecord = {
      id: newJobId(now),
      tenant,
      queue,
      spec,
      phase: 'Submitted',
      pending: [{ start: 0, end: spec.tasks, attempt: 1 }],
      counts: { succeeded: 0, failed: 0, cancelled: 0 },
      traceparent: traceparentOf(),
      createdAt: now,
    };
    const requestHash = key === undefined ? undefined : requestDigest(tenant, body);
    // A key whose job was archived has its record in history (etcd keeps it only a while): look there first.
    const lookedUpAt = key !== undefined && this.history ? this.clock.monotonic() : undefined;
    if (key !== undefined && lookedUpAt !== undefined) {
      const archived = await this.archivedSubmit(tenant, key, requestHash!);
      if (archived) {
        this.submitted.inc({ created: 'false' });
        return { view: jobView(archived), created: false };
      }
    }
    let res;
    try {
      res = await this.throttle.admit(t, q, spec.tasks, now, () => {
        // The key's record, archived after the lookup above, stays in etcd IDEMPOTENCY_HANDOVER_MS:
        // the create must go out well within it (the committer adds at most its wait and one call).
        if (lookedUpAt !== undefined && this.clock.monotonic() - lookedUpAt > IDEMPOTENCY_LOOKUP_MAX_MS / 2) {
          throw new ApiError(ErrorCode.Unavailable, 'the submit took too long between its idempotency lookup and its commit; retry it', {
            retryAfterSeconds: 1,
          });
        }
        return inSpan('admission.commit', { attributes: { 'batch.job.id': job.id } }, () =>
          this.committer.submit(job, key !== undefined ? { key, requestHash: requestHash! } : undefined),
        );
      });
    } catch (err) {
      // A retry whose first submit's job finished and was archived: the same job, from history.
      const archived = err instanceof IdempotentJobGoneError ? await this.fromHistory((h) => h.getJob(err.jobId)) : undefined;
      if (!archived) throw err;
      this.submitted.inc({ created: 'false' });
      return { view: jobView(archived), created: false };
    }
    this.submitted.inc({ created: String(res.created) });
    return { view: jobView(res.job.value), created: res.created };
  }

  /**
   * `POST /v1/jobs/{id}/resubmit`: a new job with the spec of job `id` — live or archived, one
   * the principal may see (else 404) — through the same checks, throttles and commit as a
   * submit (`resubmitBody`: the stored environment, the same tenant and queue, labelled with
   * `id`, with the body's changes: queue, priority, resources, labels, env). With an
   * Idempotency-Key a retry answers the first resubmit's job.
   */
  async resubmit(
    principal: Principal,
    id: string,
    body: unknown,
    idempotencyKey: string | undefined,
    now: number,
  ): Promise<{ view: JobView; created: boolean }> {
    const changes = body !== undefined && body !== null ? parseWith(ResubmitSchema, body) : {};
    const { job } = await this.findJob(principal, id);
    return this.submit(principal, resubmitBody(job, changes), idempotencyKey, now);
  }

  /**
   * The archived job an idempotency key named, from history: undefined when history has no
   * record of the key (or no longer the job).
   * @throws IdempotencyConflictError when the key was used with another request
   * @throws ApiError unavailable while history does not answer (a keyed submit cannot be told new without it)
   */
  private async archivedSubmit(tenant: string, key: string, requestHash: string): Promise<JobRecord | undefined> {
    const prior = await this.fromHistory(() => this.lookups!.get(tenant, sha256(key)));
    if (!prior) return undefined;
    if (prior.requestHash !== requestHash) {
      throw new IdempotencyConflictError(
        `the idempotency key was already used for job ${prior.jobId} with a different request`,
        'differentRequest',
        prior.jobId,
      );
    }
    return this.fromHistory((h) => h.getJob(prior.jobId));
  }

  /** A job the principal may see, with live task counts; 404 for others' and unknown ids alike. */
  async get(principal: Principal, id: string): Promise<JobView> {
    const { job, live } = await this.findJob(principal, id);
    // An archived job is terminal: its counters are final and no group is live.
    return jobView(job, live ? (await listGroups(this.ctx.store, id)).map((g) => g.value) : []);
  }

  /** The job's view for its event stream, with the highest revision it reflects. */
  async eventSnapshot(principal: Principal, id: string): Promise<StreamSnapshot> {
    const job = await getJob(this.ctx.store, id);
    if (!job) {
      // Archived: one final view, and the stream ends.
      const { job: archived } = await this.findJob(principal, id);
      return { view: jobView(archived), revision: 0n, terminal: true };
    }
    if (principal.role !== 'operator' && job.value.tenant !== principal.tenant) throw new ApiError(ErrorCode.NotFound, `job ${id} not found`, { id });
    const groups = await listGroups(this.ctx.store, id);
    const revision = groups.reduce((m, g) => (BigInt(g.modRevision) > m ? BigInt(g.modRevision) : m), BigInt(job.modRevision));
    return {
      view: jobView(
        job.value,
        groups.map((g) => g.value),
      ),
      revision,
      terminal: TERMINAL_PHASES.has(job.value.phase),
    };
  }

  /** Builds a job's stream view from its mirrored record and group statuses (see EventStreams). */
  streamView(id: string): (keys: ReadonlyMap<string, MirroredValue>) => StreamSnapshot | undefined {
    const jobKey = this.ctx.store.keys.job(id);
    const groupsPrefix = this.ctx.store.keys.groupsOf(id);
    return (keys) => {
      const job = keys.get(jobKey);
      if (!job) return undefined;
      let revision = BigInt(job.modRevision);
      const groups: GroupStatus[] = [];
      for (const [k, g] of keys) {
        if (!k.startsWith(groupsPrefix)) continue;
        groups.push(g.value as GroupStatus);
        if (BigInt(g.modRevision) > revision) revision = BigInt(g.modRevision);
      }
      const value = job.value as JobRecord;
      return { view: jobView(value, groups), revision, terminal: TERMINAL_PHASES.has(value.phase) };
    };
  }

  /** The counts per phase of the jobs etcd holds that the principal may see, for `GET /v1/jobs/events`. */
  async countsSnapshot(principal: Principal): Promise<StreamSnapshot> {
    const { items } = await this.ctx.store.listAll<JobRecord>(this.ctx.store.keys.jobs());
    return jobCounts(principal, items);
  }

  /** Builds the counts from the mirrored `jobs/` keys (see EventStreams), for one stream. */
  countsView(principal: Principal): (keys: ReadonlyMap<string, MirroredValue>) => StreamSnapshot {
    return (keys) => jobCounts(principal, [...keys.values()] as Array<{ value: JobRecord; modRevision: string }>);
  }

  /**
   * `POST /v1/jobs:batch`: up to 1000 submits, each with its own idempotency key and its own
   * answer (status and job, or the error), in order. Runs 64 at a time, so their commits group (see SubmitCommitter).
   */
  /**
   * Refuses a submit while etcd holds more finished jobs than the history store has taken in
   * (`BATCH_ARCHIVE_BACKLOG_LIMIT`).
   * @throws ApiError overloaded (503, Retry-After)
   */
  checkBacklog(now: number): void {
    try {
      this.backlog?.check(now);
    } catch (err) {
      this.backlogRefused();
      throw err;
    }
  }

  async submitMany(
    principal: Principal,
    body: unknown,
    now: number,
  ): Promise<{ results: Array<{ status: number; job?: JobView; error?: ReturnType<ApiError['toBody']>['error'] }> }> {
    const { jobs } = parseWith(BulkSubmitSchema, body);
    const results: Array<{ status: number; job?: JobView; error?: ReturnType<ApiError['toBody']>['error'] }> = new Array(jobs.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < jobs.length; i = next++) {
        const { idempotencyKey, ...job } = jobs[i] as Record<string, unknown>;
        try {
          if (idempotencyKey !== undefined && typeof idempotencyKey !== 'string')
            throw new ApiError(ErrorCode.InvalidArgument, 'idempotencyKey: must be a string', { field: 'idempotencyKey' });
          const { view, created } = await this.submit(principal, job, idempotencyKey, now);
          results[i] = { status: created ? 201 : 200, job: view };
        } catch (err) {
          const e = err instanceof ApiError ? err : (storeApiError(err) ?? new ApiError(ErrorCode.Internal, (err as Error).message));
          results[i] = {
            status: e.status,
            error: {
              ...e.toBody().error,
              ...(e.details.field ? { field: `jobs[${i}].${e.details.field === 'Idempotency-Key' ? 'idempotencyKey' : e.details.field}` } : {}),
            },
          };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(64, jobs.length) }, worker));
    return { results };
  }

  /**
   * `GET /v1/jobs/:id/results`: what each task returned, only tasks that returned something, by
   * index: the value, or for one kept in the blob store (over 64 KiB) its reference.
   */
  async results(principal: Principal, id: string): Promise<{ results: ResultView[] }> {
    const { live } = await this.findJob(principal, id);
    return { results: (await this.taskResults(id, live)).map(resultView) };
  }

  /**
   * `GET /v1/jobs/:id/results/:index`: one task's result as JSON — inline, or read from the blob
   * store (checked against its SHA-256) when kept there.
   */
  async result(principal: Principal, id: string, indexParam: string): Promise<Readable | string> {
    const { job, live } = await this.findJob(principal, id);
    const index = Number(indexParam);
    if (!/^\d{1,9}$/.test(indexParam) || index >= job.spec.tasks) {
      throw new ApiError(ErrorCode.NotFound, `task ${indexParam} does not exist in job ${id} (it has ${job.spec.tasks})`, { field: 'index', id });
    }
    const r = (await this.taskResults(id, live)).find((t) => t.index === index);
    if (!r) throw new ApiError(ErrorCode.NotFound, `task ${index} of job ${id} has returned no result`, { id });
    if (!r.ref) return JSON.stringify(r.value ?? null);
    const blob = await this.blobs?.get(resultKey(id, index, r.attempt)).catch((err: Error) => {
      throw new ApiError(ErrorCode.Unavailable, `the blob store did not answer for the result (${err.message})`, { retryAfterSeconds: 5 });
    });
    if (!blob) {
      throw new ApiError(
        ErrorCode.NotFound,
        this.blobs
          ? `task ${index}'s result of job ${id} is no longer kept`
          : `task ${index}'s result is kept in a blob store this replica has none of (BATCH_BLOB_STORE)`,
        { id },
      );
    }
    const bytes = blob.info.contentEncoding === 'gzip' ? gunzipSync(blob.body) : blob.body;
    if (createHash('sha256').update(bytes).digest('hex') !== r.ref.sha256) {
      throw new ApiError(ErrorCode.Internal, `task ${index}'s result of job ${id} does not match its digest in the blob store`, { id });
    }
    return bytes.toString('utf8');
  }

  /**
   * A job's results: from etcd while it is live (or without history), else from history, every
   * page. A job found live may have been archived since (the archiver removes it with its results
   * from etcd once history has them): then its results are read from history, not taken as none.
   */
  private async taskResults(id: string, live: boolean): Promise<TaskResult[]> {
    if (!this.history) return listResults(this.ctx.store, id);
    if (live) {
      const results = await listLiveResults(this.ctx.store, id);
      if (results) return results;
    }
    const results: TaskResult[] = [];
    for (let cursor: string | undefined, first = true; first || cursor; first = false) {
      const page = (await this.fromHistory((h) => h.listResults(id, { cursor, limit: MAX_PAGE_SIZE })))!;
      results.push(...page.results);
      cursor = page.nextCursor;
    }
    return results;
  }

  /**
   * `GET /v1/jobs/:id/tasks`: one row per task attempt, by index then attempt — from the job's
   * groups and pending ranges while it is live, from history once archived (where tasks that never
   * ran are not rows: a finished job has no pending task).
   */
  async tasks(principal: Principal, id: string, query: unknown): Promise<{ tasks: TaskView[]; nextPageToken?: string }> {
    const q = parseWith(ListTasksQuerySchema, query);
    const after = q.pageToken ? decodeTaskToken(q.pageToken) : undefined;
    const limit = q.limit ?? 100;
    const { job, live } = await this.findJob(principal, id);
    if (live) {
      const page = liveTaskPage(
        job,
        (await listGroups(this.ctx.store, id)).map((g) => g.value),
        { state: q.state, after, limit },
      );
      return { tasks: page.tasks, ...(page.next ? { nextPageToken: encodeTaskToken(page.next) } : {}) };
    }
    const state = q.state;
    if (state === 'Pending') return { tasks: [] };
    const page = (await this.fromHistory((h) => h.listTasks(id, { ...(state ? { state } : {}), ...(after ? { after } : {}), limit })))!;
    const tasks = page.tasks.map((t): TaskView => {
      const row: TaskView = { index: t.index, attempt: t.attempt, state: t.state, node: t.node };
      if (t.exitCode !== undefined) row.exitCode = t.exitCode;
      if (t.reason !== undefined) row.reason = t.reason;
      if (t.signal !== undefined) row.signal = t.signal;
      if (t.boundAt !== undefined) row.boundAt = new Date(t.boundAt).toISOString();
      if (t.startedAt !== undefined) row.startedAt = new Date(t.startedAt).toISOString();
      if (t.endedAt !== undefined) row.endedAt = new Date(t.endedAt).toISOString();
      return row;
    });
    const last = tasks[tasks.length - 1];
    return { tasks, ...(page.nextCursor && last ? { nextPageToken: encodeTaskToken(last) } : {}) };
  }

  /**
   * `GET /v1/jobs`: live jobs from etcd and, with a history store, archived ones, as one list in
   * the asked order, filtered alike on both sides (history in SQL, live jobs by `jobMatcher`).
   */
  async list(principal: Principal, query: unknown): Promise<{ jobs: JobView[]; nextPageToken?: string }> {
    const q = parseWith(ListJobsQuerySchema, query);
    if (q.tenant !== undefined && principal.role !== 'operator' && q.tenant !== principal.tenant) {
      throw new ApiError(ErrorCode.PermissionDenied, `a tenant lists only its own jobs, not tenant ${q.tenant}'s`, { field: 'tenant', id: q.tenant });
    }
    const sort: JobSort = q.sort ?? 'submitted';
    const after = q.pageToken ? decodeJobPageToken(q.pageToken, sort) : undefined;
    const limit = q.limit ?? 50;
    const indexed = { tenant: principal.role === 'operator' ? q.tenant : principal.tenant, phase: q.state, queue: q.queue };
    const ms = (t: string | undefined) => (t === undefined ? undefined : Date.parse(t));
    const criteria: JobListCriteria = {
      ...(q.labelSelector ? { selector: parseLabelSelector(q.labelSelector) } : {}),
      namePrefix: q.namePrefix,
      workflowId: q.workflow,
      submittedFrom: ms(q.submittedSince),
      submittedBefore: ms(q.submittedBefore),
      finishedFrom: ms(q.finishedSince),
      finishedBefore: ms(q.finishedBefore),
      finishedOnly: sort.endsWith('finished'),
    };
    const matches = jobMatcher(criteria);
    const descending = sort.startsWith('-');
    let live: SourcePage;
    let archived: SourcePage | undefined;
    if (sort.endsWith('submitted')) {
      // Both stores hold jobs in id order: each reads just past the position.
      const [l, a] = await Promise.all([
        listJobs(this.ctx.store, { ...indexed, match: matches, limit, after: after?.id, descending }),
        this.fromHistory((h) => h.listJobsById({ ...indexed, ...criteria, afterId: after?.id, limit, descending })),
      ]);
      live = { jobs: l.jobs, more: l.nextAfter !== undefined };
      archived = a && { jobs: a, more: a.length === limit };
    } else {
      // By end: etcd has no such order, but its finished jobs are few (the archiver moves them
      // out within BATCH_ARCHIVE_AFTER): read them all and order them here.
      const [l, a] = await Promise.all([
        listJobs(this.ctx.store, { ...indexed, match: (j) => matches(j) && (!after || isAfter(j, after, sort)), limit: Number.MAX_SAFE_INTEGER }),
        this.fromHistory((h) =>
          h.listJobs({ ...indexed, ...criteria, ascending: !descending, limit, ...(after ? { after: { id: after.id, finishedAt: after.finishedAt! } } : {}) }),
        ),
      ]);
      live = { jobs: l.jobs.sort(jobOrder(sort)).slice(0, limit + 1), more: false };
      archived = a && { jobs: a.jobs, more: a.nextCursor !== undefined };
    }
    const page = mergeJobPages(live, archived ?? { jobs: [], more: false }, limit, sort);
    return { jobs: page.jobs.map((j) => jobView(j)), nextPageToken: page.next ? encodeJobPageToken(sort, page.next) : undefined };
  }

  async cancel(principal: Principal, id: string, now: number): Promise<JobView> {
    // An archived job has finished: cancelling it changes nothing.
    if (!(await this.findJob(principal, id)).live) return this.get(principal, id);
    await cancelJob(this.ctx.store, id, now);
    return this.get(principal, id);
  }

  /**
   * Cancels task `index` of a job alone: a pending task ends `Cancelled` at once, a bound or
   * running one is stopped by its executor; it never runs again. Cancelling it again changes nothing.
   * @throws ApiError not_found (404) naming `index` for a task the job does not have; conflict (409)
   * when the job or the task already ended; invalid_argument (422) naming `index` when the job
   * already records `MAX_CANCELLED_TASK_RANGES` ranges of tasks cancelled one by one
   */
  async cancelTask(principal: Principal, id: string, indexParam: string, now: number): Promise<JobView> {
    const { job, live } = await this.findJob(principal, id);
    const index = taskIndex(job, id, indexParam);
    const outcome = live ? await cancelTask(this.ctx.store, id, index, now) : 'job_ended';
    if (outcome === 'job_ended' || outcome === undefined) {
      throw new ApiError(ErrorCode.Conflict, `job ${id} already ended; there is nothing of it to cancel`, { id });
    }
    if (outcome === 'task_ended') throw new ApiError(ErrorCode.Conflict, `task ${index} of job ${id} already ended`, { id, field: 'index' });
    if (outcome === 'too_many_ranges') {
      throw new ApiError(
        ErrorCode.InvalidArgument,
        `job ${id} already has ${MAX_CANCELLED_TASK_RANGES} ranges of tasks cancelled one by one; cancel the whole job instead`,
        { id, field: 'index' },
      );
    }
    return this.get(principal, id);
  }

  /**
   * Opens the log of one task attempt: from the blob store once the attempt ended and its node
   * uploaded it (so it outlives the node and the job's archiving), else from the executor that
   * runs or ran it. The latest attempt unless `attempt` names one.
   */
  async logs(principal: Principal, id: string, indexParam: string, query: unknown): Promise<Readable> {
    const job = await this.visibleJob(principal, id);
    const q = parseWith(LogsQuerySchema, query);
    const index = taskIndex(job, id, indexParam);
    const stream = q.stream ?? 'stdout';
    const groups: GroupStatus[] = (await listGroups(this.ctx.store, id)).map((g) => g.value).filter((g) => g.start <= index && index < g.end);
    const group = q.attempt ? groups.find((g) => g.attempt === q.attempt) : groups.sort((a, b) => b.attempt - a.attempt)[0];
    const kept = await this.keptLog(id, index, q.attempt ?? group?.attempt, stream, group !== undefined);
    if (kept) return kept;
    if (!group) {
      throw new ApiError(
        ErrorCode.NotFound,
        this.blobs
          ? `no ${stream} log of task ${index}${q.attempt ? ` attempt ${q.attempt}` : ''} of job ${id} was kept (the task has not run, or ran before logs were kept)`
          : `task ${index} of job ${id} has not run${q.attempt ? ` attempt ${q.attempt}` : ''} yet, or its node is gone and no blob store keeps logs (BATCH_BLOB_STORE)`,
        { id },
      );
    }
    const node = await getNode(this.ctx.store, group.node);
    if (!node) throw new ApiError(ErrorCode.Unavailable, `node ${group.node} that ran task ${index} is not reachable now`, { id, retryAfterSeconds: 5 });
    const follow = q.follow === 'true' || q.follow === '1';
    const url = `${node.url}/internal/logs/${encodeURIComponent(id)}/${index}/${group.attempt}/${q.stream ?? 'stdout'}${follow ? '?follow=true' : ''}`;
    // The executor serves logs only to callers with the service credential (task pods may share its network).
    const res = await fetch(url, { headers: { authorization: this.ctx.credential.authorization() } }).catch((err: Error) => {
      throw new ApiError(ErrorCode.Unavailable, `node ${group.node} did not answer for logs (${err.message})`, { retryAfterSeconds: 5 });
    });
    if (res.status === 404) throw new ApiError(ErrorCode.NotFound, `no ${q.stream ?? 'stdout'} log for task ${index} attempt ${group.attempt}`, { id });
    if (res.status === 401)
      throw new ApiError(
        ErrorCode.Unavailable,
        `node ${group.node} refused this replica's service credential: every admission, scheduler and executor must share one BATCH_SERVICE_TOKEN_FILE`,
        { retryAfterSeconds: 5 },
      );
    if (!res.ok || !res.body) throw new ApiError(ErrorCode.Unavailable, `node ${group.node} answered ${res.status} for logs`, { retryAfterSeconds: 5 });
    return Readable.fromWeb(res.body as never);
  }

  /**
   * The attempt's log from the blob store, inflated; undefined when the store has none (the
   * attempt runs, or its upload failed) or there is no store. `attempt` unset: the latest
   * attempt the store has. With `nodeFallback`, a store that does not answer is passed over (the
   * node may still have the log); without, it is a 503.
   */
  private async keptLog(id: string, index: number, attempt: number | undefined, stream: LogStream, nodeFallback: boolean): Promise<Readable | undefined> {
    const blobs = this.blobs;
    if (!blobs) return undefined;
    try {
      let key = attempt !== undefined ? logKey(id, index, attempt, stream) : undefined;
      if (key === undefined) {
        // the latest attempt's: keys sort by attempt (zero-padded), so the last of this stream
        const listed = (await blobs.list(logsOfTask(id, index), MAX_BLOB_LIST)).filter((b) => parseLogKey(b.key)?.stream === stream);
        key = listed.at(-1)?.key;
        if (key === undefined) return undefined;
      }
      const blob = await blobs.get(key);
      if (!blob) return undefined;
      const bytes = Readable.from([blob.body]);
      return blob.info.contentEncoding === 'gzip' ? bytes.pipe(createGunzip()) : bytes;
    } catch (err) {
      if (nodeFallback) {
        this.ctx.log.warn({ err: (err as Error).message, job: id, index }, 'the blob store did not answer for a log; asking the node');
        return undefined;
      }
      if (err instanceof ApiError) throw err;
      throw new ApiError(ErrorCode.Unavailable, `the blob store did not answer for the log (${(err as Error).message})`, { retryAfterSeconds: 5 });
    }
  }

  /**
   * "Why is my job pending?": the placement phases for this job on the cluster as it is now —
   * asked of a scheduler replica (its live cache, the view it places from); when none
   * answers, worked out here from a fresh read of etcd.
   */
  async why(principal: Principal, id: string): Promise<WhyView> {
    const job = await this.visibleJob(principal, id);
    const now = this.clock.now();
    const waiting = (job.phase === 'Queued' || job.phase === 'Running' || job.phase === 'Submitted') && countTasks(job.pending) > 0;
    const empty = { jobs: [], nodes: [], allocs: new Map(), queues: [], bindings: [], cordons: [] };
    if (!waiting) return explainJob(buildSnapshot(empty, now), job, 'admission');
    const fromScheduler = await inSpan('admission.why.call', { attributes: { 'batch.job.id': id } }, () => this.scheduler.why(job));
    if (fromScheduler) {
      this.whys.inc({ explained_by: 'scheduler' });
      return fromScheduler;
    }
    this.whys.inc({ explained_by: 'admission' });
    // No scheduler answered: the same builder and explanation on a fresh read of etcd (no usage
    // history), with the settings the scheduler leader stored (topology levels, aging, prices,
    // backfill with the learned runtime estimates); a cluster whose leader stored none gets the defaults.
    const { store } = this.ctx;
    // And the nominations the leader's defragmentation stored, so the job's "waiting for node …" line shows here too.
    // (Only the term of the leader now in etcd: a gone leader's nominations are held by no one.)
    const [cluster, stored, learned, defragmenting, leader] = await Promise.all([
      readCluster(store),
      loadSchedulerSettings(store),
      store.get<unknown>(store.keys.runtimeEstimates()),
      store.get<unknown>(store.keys.defragmenting()),
      store.get<unknown>(store.keys.leader('scheduler')),
    ]);
    const { policy, backfill } = settingsOfRecord(stored);
    const defrag = storedDefragmentation(defragmenting?.value, now, leader?.createRevision);
    return explainJob(
      buildSnapshot(cluster, now, defrag ? { ...policy, nominated: defrag.nominated, nominatedSince: defrag.nominatedSince } : policy),
      job,
      'admission',
      {
        ...(backfill ? { backfill: withLearnedRuntimes(backfill, learnedRuntimesOf(learned?.value)) } : {}),
        ...(defrag ? { defragmenting: defrag.defragmenting } : {}),
      },
    );
  }

  private async visibleJob(principal: Principal, id: string): Promise<JobRecord> {
    return (await this.findJob(principal, id)).job;
  }

  /** A read of the history store (see `fromHistory`). */
  private fromHistory<T>(read: (h: HistoryStore) => Promise<T>): Promise<T | undefined> {
    return fromHistory(this.history, read);
  }

  /**
   * A job the principal may see: live from etcd, else (with a history store) archived; 404 for
   * others' and unknown ids alike. `live` says which.
   */
  private async findJob(principal: Principal, id: string): Promise<{ job: JobRecord; live: boolean }> {
    const stored = await getJob(this.ctx.store, id);
    const job = stored?.value ?? (await this.fromHistory((h) => h.getJob(id)));
    if (!job || (principal.role !== 'operator' && job.tenant !== principal.tenant)) {
      throw new ApiError(ErrorCode.NotFound, `job ${id} not found`, { id });
    }
    return { job, live: stored !== undefined };
  }
}

/** Path parameter `index` as a task of `job`; 404 naming `index` for anything else. */
function taskIndex(job: JobRecord, id: string, indexParam: string): number {
  const index = Number(indexParam);
  if (!/^\d{1,9}$/.test(indexParam) || index >= job.spec.tasks) {
    throw new ApiError(ErrorCode.NotFound, `task ${indexParam} does not exist in job ${id} (it has ${job.spec.tasks})`, { field: 'index', id });
  }
  return index;
}

function encodeTaskToken(c: TaskCursor): string {
  return Buffer.from(`${c.index}.${c.attempt}`).toString('base64url');
}

function decodeTaskToken(token: string): TaskCursor {
  const m = /^(\d{1,9})\.(\d{1,6})$/.exec(Buffer.from(token, 'base64url').toString());
  if (!m) throw new ApiError(ErrorCode.InvalidArgument, 'pageToken is not one this API gave', { field: 'pageToken' });
  return { index: Number(m[1]), attempt: Number(m[2]) };
}

/** A result as the API shows it: the value inline, or the reference of one kept in the blob store. */
export type ResultView = { index: number; value: unknown } | { index: number; ref: ResultRef };

function resultView(r: TaskResult): ResultView {
  return r.ref ? { index: r.index, ref: r.ref } : { index: r.index, value: r.value };
}

/**
 * How many of `jobs` the principal may see are in each phase; the revision is the highest mod
 * revision among them (a removed job changes the counts without raising it: EventStreams sends
 * such counts with a newer id).
 */
function jobCounts(principal: Principal, jobs: ReadonlyArray<{ value: JobRecord; modRevision: string }>): StreamSnapshot {
  const counts: Record<string, number> = {};
  let total = 0;
  let revision = 0n;
  for (const { value, modRevision } of jobs) {
    if (principal.role !== 'operator' && value.tenant !== principal.tenant) continue;
    counts[value.phase] = (counts[value.phase] ?? 0) + 1;
    total++;
    if (BigInt(modRevision) > revision) revision = BigInt(modRevision);
  }
  const view: JobCountsView = { counts, total };
  return { view, revision, terminal: false };
}

/**
 * A job's `limits` must name semaphores that exist for its tenant (or `global/…`), and no task may
 * ask for more units than one holds: such a job could never start. Locks need no record.
 * @throws ApiError unknown_semaphore / exceeds_semaphore (422) naming `limits.<name>`
 */
async function checkSemaphores(store: EtcdStore, tenant: string, limits: Readonly<Record<string, number>>): Promise<void> {
  const names = Object.keys(limits);
  const records = await store.getMany<SemaphoreRecord>(names.map((n) => store.keys.semaphore(semaphoreId(tenant, n))));
  names.forEach((name, i) => {
    const r = records[i]?.value;
    const field = `limits.${name}`;
    if (!r)
      throw new ApiError(
        ErrorCode.UnknownSemaphore,
        `semaphore ${name} does not exist${name.startsWith(GLOBAL_SEMAPHORE_PREFIX) ? '' : ` for tenant ${tenant}`}; create it first (batch semaphore put ${name} --capacity N, or PUT /v1/semaphores/${encodeURIComponent(name)})`,
        { field, id: name },
      );
    if (limits[name] > r.capacity)
      throw new ApiError(
        ErrorCode.ExceedsSemaphore,
        `each task asks for ${limits[name]} units of semaphore ${name}, which has ${r.capacity}; ask for at most ${r.capacity} or raise its capacity`,
        { field, id: name },
      );
  });
}
