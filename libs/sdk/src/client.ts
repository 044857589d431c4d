/**
 * The TypeScript SDK: a typed client of the BatchAPI HTTP API. Retries what is safe to
 * retry (429 and 503, honoring `Retry-After`, and requests that got no answer), and makes
 * every submit idempotent by sending an `Idempotency-Key`, so its own retries never create
 * a second job. Connections are reused (the global `fetch` keeps them alive).
 */
import { randomUUID } from 'node:crypto';
import {
  ApiError, ErrorCode, type JobPhase, type JobView, type NodeView, type QueueView, type ResubmitChanges, type SubmitJobRequest, type SubmitWorkflowRequest, statusOf, TERMINAL_PHASES,
  TERMINAL_WORKFLOW_PHASES, type TaskListState, type TaskView, type UsageView, type WhyView, type WorkflowView, type WorkingDirView,
} from '@batchapi/api';
import { backoff, RETRYABLE_STATUSES } from './retry';
import { SchedulesApi } from './schedules';
import { WorkflowTemplatesApi } from './workflow-templates';
import { SemaphoresApi } from './semaphores';

/** Options of a `BatchClient`. */

/** A task's result as `GET /v1/jobs/:id/results` lists it: the value, or the reference of one kept in the blob store (over 64 KiB; `jobs.result` reads it). */
export type JobResult = { index: number; value: unknown } | { index: number; ref: { sizeBytes: number; sha256: string } };

export interface BatchClientOptions {
  /** Base URL of the admission service, e.g. `http://127.0.0.1:7070` (a trailing `/` is ignored). */
  url: string;
  /** Bearer token naming a tenant and a role; sent as `Authorization: Bearer <token>`. */
  token: string;
  /**
   * Deadline of each HTTP attempt, in milliseconds: until the whole answer is read, or for a
   * streamed log until its headers arrive. A retry gets a fresh deadline.
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * Retries of a request answered 429 or 503, or not answered at all (connection refused,
   * reset, timed out). Other errors are never retried. 0 turns retries off.
   * @default 3
   */
  retries?: number;
  /**
   * Longest wait before one retry, in milliseconds, whatever `Retry-After` asks for.
   * Without `Retry-After` the wait is exponential from 200 ms with jitter.
   * @default 10000
   */
  maxRetryDelayMs?: number;
}

/** Options of `submitJob`. */
export interface SubmitOptions {
  /**
   * Makes the submit safe to repeat: the same key with the same request returns the same
   * job (the API answers 200 instead of 201); with another request it is refused
   * (`idempotency_conflict`). The SDK's own retries always reuse the key.
   * @default a random UUID per `submitJob` call
   */
  idempotencyKey?: string;
}

/** A page of `listJobs`. */
export interface JobPage {
  /** In the order asked for (`sort`). */
  jobs: JobView[];
  /** Pass as `pageToken` to get the next page; absent on the last page. */
  nextPageToken?: string;
}

/** Filters of `listJobs`. */
/** Options of `listTasks`. */
export interface TaskListOptions {
  /** Only attempts in this state (`Pending` for tasks not bound yet). @default every state */
  state?: TaskListState;
  /** Rows per page, 1 to 1000. @default 100 */
  limit?: number;
  /** `nextPageToken` of the previous page. @default the first page */
  pageToken?: string;
}

/** A page of task attempts. */
export interface TaskPage {
  tasks: TaskView[];
  /** Pass as `pageToken` for the next page; absent on the last page. */
  nextPageToken?: string;
}

export interface ListOptions {
  /** Only jobs in this phase. @default every phase */
  state?: JobPhase;
  /** Only jobs of this queue. @default every queue the token may see */
  queue?: string;
  /** Only this tenant's jobs (operators; a tenant may name only itself). @default every tenant the token may see */
  tenant?: string;
  /** A Kubernetes label selector: `team=ml,env!=dev,tier in (a,b),gpu,!spot`. @default none */
  labelSelector?: string;
  /** Only jobs whose name starts with this. @default none */
  namePrefix?: string;
  /** Only the step jobs of this workflow. @default none */
  workflow?: string;
  /** Submitted at or after this time. @default no bound */
  submittedSince?: Date | string;
  /** Submitted before this time. @default no bound */
  submittedBefore?: Date | string;
  /** Finished at or after this time (unfinished jobs are left out). @default no bound */
  finishedSince?: Date | string;
  /** Finished before this time (unfinished jobs are left out). @default no bound */
  finishedBefore?: Date | string;
  /** `submitted` (oldest first), `-submitted` (newest first), `finished` / `-finished` (finished jobs only, by end). @default "submitted" */
  sort?: 'submitted' | '-submitted' | 'finished' | '-finished';
  /** Jobs per page, 1 to 1000. @default 50 */
  limit?: number;
  /** `nextPageToken` of the previous page (of the same `sort`). @default the first page */
  pageToken?: string;
}

/** The question of `usage`. */
export interface UsageOptions {
  /** Attempts that ended at or after this time. @default 7 days before `to` */
  from?: Date | string;
  /** Attempts that ended before this time (at most 400 days after `from`). @default now */
  to?: Date | string;
  /** `tenant`, `queue`, `gpuModel` or `label:<key>`. @default "tenant" */
  groupBy?: string;
  /** Only this tenant (operators; a tenant may name only itself). @default every tenant the token may see */
  tenant?: string;
  /** Only this queue. @default every queue */
  queue?: string;
  /** Also split each group's hours by `hour` or `day` from `from` (each group's `series`). @default no split */
  step?: 'hour' | 'day';
}

/** Options of `logs`. */
export interface LogsOptions {
  /** Which output of the task. @default "stdout" */
  stream?: 'stdout' | 'stderr';
  /** Attempt number, from 1. @default the latest attempt */
  attempt?: number;
  /** Keep streaming as the task writes, until it ends. @default false (what was written so far) */
  follow?: boolean;
}

/** Options of `waitForJob`. */
export interface WaitOptions {
  /** Pause between two polls of the job, in milliseconds. @default 500 */
  intervalMs?: number;
  /** Called with the job's view when first seen, then each time its phase or task counts change. */
  onUpdate?: (job: JobView) => void;
  /**
   * Gives up after this long, in milliseconds, with an `ApiError` `unavailable` naming the job
   * (the job itself goes on).
   * @default no limit
   */
  timeoutMs?: number;
  /** Stops waiting when aborted, with an `ApiError` `unavailable` (the job itself goes on). @default never aborted */
  signal?: AbortSignal;
}

const USER_AGENT = 'batchapi-sdk-ts/0.1.0';

/**
 * A client of one BatchAPI endpoint. Every method answers the API's JSON, or throws an `ApiError`
 * with the API's code, message and field or id.
 *
 * ```ts
 * const batch = new BatchClient({ url: process.env.BATCH_API!, token: process.env.BATCH_TOKEN! });
 * const job = await batch.submitJob({ command: ['sh', '-c', 'echo $BATCH_TASK_INDEX'], tasks: 8, resources: { cpu: '500m' } });
 * const done = await batch.waitForJob(job.id, { onUpdate: (j) => console.log(j.phase, j.taskCounts) });
 * for await (const text of batch.logs(job.id, 0)) process.stdout.write(text);
 * ```
 */
export class BatchClient {
  private readonly base: string;
  /** Jobs in the style of a handle: `await (await client.jobs.submit(req)).result()`. */
  readonly jobs: JobsApi;
  /** Workflows: DAGs of jobs run by the control plane. */
  readonly workflows: WorkflowsApi;
  /** Schedules: cron jobs and cron workflows. */
  readonly schedules: SchedulesApi;
  /** Workflow templates: workflows defined once, versioned, run with parameters. */
  readonly workflowTemplates: WorkflowTemplatesApi<WorkflowHandle>;
  /** Semaphores: capacities that jobs' `limits` take units of; the mutexes of their `locks`. */
  readonly semaphores: SemaphoresApi;

  constructor(readonly options: BatchClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.jobs = new JobsApi(this);
    this.workflows = new WorkflowsApi(this);
    this.schedules = new SchedulesApi(this);
    this.workflowTemplates = new WorkflowTemplatesApi(this, (view) => new WorkflowHandle(this, view.id, view));
    this.semaphores = new SemaphoresApi(this);
  }

  /**
   * Server-sent events of one record (`/v1/jobs/:id/events`, `/v1/workflows/:id/events`):
   * each view as it changes, until `done(view)`. A dropped connection is resumed with
   * `Last-Event-ID`, so no change is seen twice and none is missed.
   * @internal used by the handles
   */
  async *follow<T>(path: string, done: (view: T) => boolean, signal?: AbortSignal): AsyncGenerator<T, void, undefined> {
    let lastId: string | undefined;
    for (let reconnects = 0; ; reconnects++) {
      if (signal?.aborted) throw new ApiError(ErrorCode.Unavailable, `stopped following ${path}: aborted`);
      const { res, abort } = await this.attempt('GET', path, undefined, { accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) }, false);
      const stop = () => abort();
      signal?.addEventListener('abort', stop, { once: true });
      const decoder = new TextDecoder();
      let buffer = '';
      let ended = false;
      try {
        for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let data = '';
            let event = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('id: ')) lastId = line.slice(4);
              else if (line.startsWith('event: ')) event = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (!data) continue; // a keep-alive comment
            if (event === 'stream-closed') continue; // the server closes the stream next (e.g. slow_consumer): resumed below from lastId
            const view = JSON.parse(data) as T;
            yield view;
            if (done(view)) { ended = true; return; }
          }
        }
      } catch (err) {
        if (signal?.aborted) throw new ApiError(ErrorCode.Unavailable, `stopped following ${path}: aborted`);
        if (reconnects >= (this.options.retries ?? 3)) throw new ApiError(ErrorCode.Unavailable, `the event stream ${path} broke: ${causeOf(err)}`);
      } finally {
        signal?.removeEventListener('abort', stop);
        if (!ended) abort();
      }
      // The server ends a stream only after a terminal view; here the connection broke. Done meanwhile?
      const now = await this.call<T>('GET', path.replace(/\/events$/, ''));
      if (done(now)) { yield now; return; }
      await sleep(backoff(Math.min(reconnects, 5), undefined, this.options.maxRetryDelayMs), signal);
    }
  }

  /** @internal JSON request with the client's retries (for the namespaced APIs). */
  request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    return this.call<T>(method, path, body, headers);
  }

  /** Submits a job. Answers once the job is durable (committed in etcd). */
  submitJob(req: SubmitJobRequest, opts: SubmitOptions = {}): Promise<JobView> {
    return this.call<JobView>('POST', '/v1/jobs', req, { 'idempotency-key': opts.idempotencyKey ?? randomUUID() });
  }

  /**
   * A new job with the spec of job `id` (live or finished): the environment as stored, the same
   * tenant and queue, labelled `batch.resubmitted-from` — with `changes`: another queue or
   * priority, and resources, labels and variables merged over the job's. Retried safely: an
   * idempotency key (a random one unless given) makes a retry answer the same new job.
   * @param changes what differs from the job. @default none
   */
  resubmitJob(id: string, changes: ResubmitChanges = {}, opts: SubmitOptions = {}): Promise<JobView> {
    return this.call<JobView>('POST', `/v1/jobs/${encodeURIComponent(id)}/resubmit`, changes, { 'idempotency-key': opts.idempotencyKey ?? randomUUID() });
  }

  /** One job by id (`not_found` when it does not exist or belongs to another tenant). */
  getJob(id: string): Promise<JobView> {
    return this.call<JobView>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /** The working dir package `digest` (`sha256:<hex>`) the caller's tenant uploaded; undefined when it has none. */
  async getWorkingDir(digest: string): Promise<WorkingDirView | undefined> {
    try {
      return await this.call<WorkingDirView>('GET', `/v1/blobs/working-dirs/${encodeURIComponent(digest)}`);
    } catch (err) {
      if (err instanceof ApiError && err.code === ErrorCode.NotFound) return undefined;
      throw err;
    }
  }

  /**
   * Uploads a working dir package: `gz`, the gzip of the tar whose digest is `digest` (as the
   * CLI's `packWorkingDir` makes it). Idempotent: a digest already kept is not stored again
   * (`created: false`). Jobs then name it in `workingDir: { digest }`.
   */
  async uploadWorkingDir(digest: string, gz: Uint8Array): Promise<{ view: WorkingDirView; created: boolean }> {
    const { res, text } = await this.attempt('PUT', `/v1/blobs/working-dirs/${encodeURIComponent(digest)}`, gz, {}, true);
    return { view: JSON.parse(text) as WorkingDirView, created: res.status === 201 };
  }

  /** One page of jobs, newest first; follow `nextPageToken` for more. */
  /**
   * One page of a job's task attempts, by index then attempt (state, node, exit code, reason,
   * times) — live or archived alike; `state: 'Failed'` lists which tasks failed, and why.
   */
  listTasks(id: string, opts: TaskListOptions = {}): Promise<TaskPage> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts)) if (v !== undefined && v !== '') q.set(k, String(v));
    const query = q.toString();
    return this.call<TaskPage>('GET', `/v1/jobs/${encodeURIComponent(id)}/tasks${query ? `?${query}` : ''}`);
  }

  listJobs(opts: ListOptions = {}): Promise<JobPage> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts)) if (v !== undefined && v !== '') q.set(k, v instanceof Date ? v.toISOString() : String(v));
    const query = q.toString();
    return this.call<JobPage>('GET', `/v1/jobs${query ? `?${query}` : ''}`);
  }

  /** CPU-, memory- and GPU-hours, attempt outcomes and queue waits over a window, by tenant, queue, GPU model or label (from the history store). */
  usage(opts: UsageOptions = {}): Promise<UsageView> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts)) if (v !== undefined && v !== '') q.set(k, v instanceof Date ? v.toISOString() : String(v));
    const query = q.toString();
    return this.call<UsageView>('GET', `/v1/usage${query ? `?${query}` : ''}`);
  }

  /** Cancels a job: pending tasks never start, running ones get SIGTERM then SIGKILL. Cancelling a finished job changes nothing. */
  cancelJob(id: string): Promise<JobView> {
    return this.call<JobView>('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /**
   * Cancels task `index` of a job alone: pending, it ends at once; running, it gets SIGTERM then
   * SIGKILL; it never runs again. The job ends when its other tasks do (`Cancelled` unless one failed).
   * Throws `ApiError` `conflict` when the job or the task already ended.
   */
  cancelTask(id: string, index: number): Promise<JobView> {
    return this.call<JobView>('DELETE', `/v1/jobs/${encodeURIComponent(id)}/tasks/${index}`);
  }

  /** Why a job's tasks are pending: blockers with node counts and changes that would let it run. */
  why(id: string): Promise<WhyView> {
    return this.call<WhyView>('GET', `/v1/jobs/${encodeURIComponent(id)}/why`);
  }

  /** Queues with quota, usage, fair share and what waits (a tenant sees its own). */
  listQueues(): Promise<{ queues: QueueView[] }> {
    return this.call('GET', '/v1/queues');
  }

  /** Nodes with capacity, allocation and cordons (operator tokens only). */
  listNodes(): Promise<{ nodes: NodeView[] }> {
    return this.call('GET', '/v1/nodes');
  }

  /** Stops new work on a node (operator). */
  cordonNode(name: string, reason: string): Promise<NodeView> {
    return this.call('POST', `/v1/nodes/${encodeURIComponent(name)}/cordon`, { reason });
  }

  /**
   * Cordons a node and stops its running tasks (they are requeued) after `deadlineSeconds` (operator).
   * @param deadlineSeconds time running tasks get to finish, in seconds. @default 300
   */
  drainNode(name: string, reason: string, deadlineSeconds?: number): Promise<NodeView> {
    return this.call('POST', `/v1/nodes/${encodeURIComponent(name)}/drain`, { reason, ...(deadlineSeconds !== undefined ? { deadlineSeconds } : {}) });
  }

  /** Lets a node take work again (operator). */
  uncordonNode(name: string): Promise<NodeView> {
    return this.call('DELETE', `/v1/nodes/${encodeURIComponent(name)}/cordon`);
  }

  /**
   * A task's log as text chunks, in order, as the server sends them (chunks do not follow line
   * boundaries). With `follow`, the iteration ends when the task ends; breaking out of the loop
   * closes the connection.
   */
  async *logs(id: string, index: number, opts: LogsOptions = {}): AsyncGenerator<string, void, undefined> {
    const q = new URLSearchParams({ stream: opts.stream ?? 'stdout' });
    if (opts.attempt !== undefined) q.set('attempt', String(opts.attempt));
    if (opts.follow) q.set('follow', 'true');
    const { res, abort } = await this.attempt('GET', `/v1/jobs/${encodeURIComponent(id)}/tasks/${index}/logs?${q}`, undefined, {}, false);
    const decoder = new TextDecoder();
    try {
      if (!res.body) return;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true });
        if (text) yield text;
      }
      const rest = decoder.decode();
      if (rest) yield rest;
    } finally {
      abort(); // a consumer that stops early must not leave the stream open
    }
  }

  /** Polls a job until it reaches a terminal phase (Succeeded, Failed, Cancelled, Rejected); returns its last view. */
  async waitForJob(id: string, opts: WaitOptions = {}): Promise<JobView> {
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    const interval = opts.intervalMs ?? 500;
    let last = '';
    for (;;) {
      if (opts.signal?.aborted) throw new ApiError(ErrorCode.Unavailable, `stopped waiting for job ${id}: aborted`, { id });
      const job = await this.getJob(id);
      const seen = JSON.stringify([job.phase, job.taskCounts]);
      if (seen !== last) {
        last = seen;
        opts.onUpdate?.(job);
      }
      if (TERMINAL_PHASES.has(job.phase)) return job;
      const left = deadline - Date.now();
      if (left <= 0) throw new ApiError(ErrorCode.Unavailable, `job ${id} did not finish within ${opts.timeoutMs} ms (it is ${job.phase})`, { id });
      await sleep(Math.min(interval, left), opts.signal);
    }
  }

  /** A request whose JSON answer is read within the deadline; retried when safe. */
  private async call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const { text } = await this.attempt(method, path, body, headers, true);
    return JSON.parse(text) as T;
  }

  /** Sends a request, retrying when safe. With `readBody` the deadline covers the whole answer, else only its headers (a stream). */
  private async attempt(
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
    readBody: boolean,
  ): Promise<{ res: Response; text: string; abort: () => void }> {
    const retries = this.options.retries ?? 3;
    const timeoutMs = this.options.timeoutMs ?? 30_000;
    const url = `${this.base}${path}`;
    for (let attempt = 0; ; attempt++) {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      let res: Response;
      let text = '';
      try {
        res = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${this.options.token}`,
            'user-agent': USER_AGENT,
            ...(body !== undefined ? { 'content-type': body instanceof Uint8Array ? 'application/gzip' : 'application/json' } : {}),
            ...headers,
          },
          body: body === undefined ? undefined : body instanceof Uint8Array ? body : JSON.stringify(body),
          signal: ac.signal,
        });
        if (readBody || !res.ok) text = await res.text();
      } catch (err) {
        clearTimeout(timer);
        if (attempt < retries) {
          await sleep(backoff(attempt, undefined, this.options.maxRetryDelayMs));
          continue;
        }
        const why = ac.signal.aborted ? (ac.signal.reason as Error).message : causeOf(err);
        throw new ApiError(ErrorCode.Unavailable, `${method} ${url}: ${why}; is the API running? (tried ${attempt + 1} time${attempt ? 's' : ''})`);
      }
      clearTimeout(timer);
      if (res.ok) return { res, text, abort: () => ac.abort() };
      const error = decodeError(res.status, text);
      if (RETRYABLE_STATUSES.has(res.status) && attempt < retries) {
        await sleep(backoff(attempt, res.headers.get('retry-after'), this.options.maxRetryDelayMs, error.details.retryAfterSeconds));
        continue;
      }
      throw error;
    }
  }
}

/** A job that ended without succeeding, raised by `JobHandle.result()`. */
export class JobFailedError extends Error {
  constructor(readonly job: JobView) {
    super(`job ${job.id} ended ${job.phase}${job.reason ? `: ${job.reason.message}` : ''} (${job.taskCounts.failed} failed, ${job.taskCounts.cancelled} cancelled of ${job.tasks} tasks)`);
    this.name = 'JobFailedError';
  }
}

/** One entry of `jobs.submitMany`. */
export type BulkSubmitEntry = SubmitJobRequest & {
  /** As `SubmitOptions.idempotencyKey`. @default a random UUID per entry */
  idempotencyKey?: string;
};

/** One answer of `jobs.submitMany`, at the position of its entry. */
export interface BulkSubmitResult {
  /** 201 created, 200 an idempotent replay, 4xx refused (see `error`). */
  status: number;
  job?: JobView;
  error?: { code: ErrorCode; message: string; field?: string };
}

/** Options of waiting through the event stream. */
export interface FollowOptions<T> {
  /** Called with the view when first seen and at every change. */
  onUpdate?: (view: T) => void;
  /** Stops waiting when aborted, with an `ApiError` `unavailable` (the work goes on). @default never */
  signal?: AbortSignal;
}

/** A submitted job: its id and the ways to wait for it without polling. */
export class JobHandle {
  constructor(private readonly client: BatchClient, readonly id: string, readonly submitted: JobView) {}

  /** The job's view at each change (server-sent events), until it ends. */
  events(opts: FollowOptions<JobView> = {}): AsyncGenerator<JobView, void, undefined> {
    return this.client.follow<JobView>(`/v1/jobs/${encodeURIComponent(this.id)}/events`, (j) => TERMINAL_PHASES.has(j.phase), opts.signal);
  }

  /** Waits for the job to end and returns its last view (whatever the outcome). */
  async wait(opts: FollowOptions<JobView> = {}): Promise<JobView> {
    let last = this.submitted;
    for await (const j of this.events(opts)) { last = j; opts.onUpdate?.(j); }
    return last;
  }

  /**
   * Waits for the job and returns what its tasks wrote to `BATCH_RESULT_PATH`: the value of a
   * one-task job (`undefined` if it wrote none), or an array by task index for an array job.
   * Throws `JobFailedError` when the job did not succeed.
   */
  async result<T = unknown>(opts: FollowOptions<JobView> = {}): Promise<T> {
    const job = await this.wait(opts);
    if (job.phase !== 'Succeeded') throw new JobFailedError(job);
    const { results } = await this.client.jobs.results(this.id);
    // a result kept in the blob store (over 64 KiB) is fetched by itself
    const valueOf = (r: JobResult) => ('ref' in r ? this.client.jobs.result(this.id, r.index) : Promise.resolve(r.value));
    if (job.tasks === 1) {
      const r = results.find((x) => x.index === 0);
      return (r ? await valueOf(r) : undefined) as T;
    }
    const out = new Array<unknown>(job.tasks).fill(undefined);
    for (const r of results) out[r.index] = await valueOf(r);
    return out as T;
  }

  cancel(): Promise<JobView> {
    return this.client.cancelJob(this.id);
  }
}

/** `client.jobs`. */
export class JobsApi {
  constructor(private readonly client: BatchClient) {}

  /** Submits a job (durable before the answer) and returns its handle. */
  async submit(req: SubmitJobRequest, opts: SubmitOptions = {}): Promise<JobHandle> {
    const view = await this.client.submitJob(req, opts);
    return new JobHandle(this.client, view.id, view);
  }

  /**
   * Submits up to 1000 jobs in one request; each has its own idempotency key (a random one
   * unless given, reused by the SDK's retries) and its own answer, in order.
   */
  async submitMany(entries: BulkSubmitEntry[]): Promise<BulkSubmitResult[]> {
    const jobs = entries.map((e) => ({ ...e, idempotencyKey: e.idempotencyKey ?? randomUUID() }));
    return (await this.client.request<{ results: BulkSubmitResult[] }>('POST', '/v1/jobs:batch', { jobs })).results;
  }

  /** A handle of an existing job. */
  async get(id: string): Promise<JobHandle> {
    return new JobHandle(this.client, id, await this.client.getJob(id));
  }

  /** What the job's tasks returned so far, by index (only tasks that returned something): each value, or the reference of one kept in the blob store. */
  results(id: string): Promise<{ results: JobResult[] }> {
    return this.client.request('GET', `/v1/jobs/${encodeURIComponent(id)}/results`);
  }

  /** One task's result, inline or read from the blob store. */
  result(id: string, index: number): Promise<unknown> {
    return this.client.request('GET', `/v1/jobs/${encodeURIComponent(id)}/results/${index}`);
  }
}

/** A submitted workflow. */
export class WorkflowHandle {
  constructor(private readonly client: BatchClient, readonly id: string, readonly submitted: WorkflowView) {}

  /** The workflow's view at each change (server-sent events), until it ends. */
  events(opts: FollowOptions<WorkflowView> = {}): AsyncGenerator<WorkflowView, void, undefined> {
    return this.client.follow<WorkflowView>(`/v1/workflows/${encodeURIComponent(this.id)}/events`, (w) => TERMINAL_WORKFLOW_PHASES.has(w.phase), opts.signal);
  }

  /** Waits for the workflow to end and returns its last view. */
  async wait(opts: FollowOptions<WorkflowView> = {}): Promise<WorkflowView> {
    let last = this.submitted;
    for await (const w of this.events(opts)) { last = w; opts.onUpdate?.(w); }
    return last;
  }

  cancel(): Promise<WorkflowView> {
    return this.client.workflows.cancel(this.id);
  }

  /** Re-runs this finished run from its failure: see `WorkflowsApi.retry`. */
  retry(opts: SubmitOptions = {}): Promise<WorkflowHandle> {
    return this.client.workflows.retry(this.id, opts);
  }
}

/** `client.workflows`. */
export class WorkflowsApi {
  constructor(private readonly client: BatchClient) {}

  /** Submits a workflow (validated whole: a cycle is `workflow_cycle`) and returns its handle. */
  async submit(req: SubmitWorkflowRequest, opts: SubmitOptions = {}): Promise<WorkflowHandle> {
    const view = await this.client.request<WorkflowView>('POST', '/v1/workflows', req, { 'idempotency-key': opts.idempotencyKey ?? randomUUID() });
    return new WorkflowHandle(this.client, view.id, view);
  }

  get(id: string): Promise<WorkflowView> {
    return this.client.request('GET', `/v1/workflows/${encodeURIComponent(id)}`);
  }

  /**
   * The token's workflows (all of them for operators), oldest first.
   * @param limit 1 to 1000. @default 100
   * @param opts.template only the runs of this workflow template. @default every workflow
   */
  async list(limit?: number, opts: { template?: string } = {}): Promise<WorkflowView[]> {
    const q = new URLSearchParams();
    if (limit) q.set('limit', String(limit));
    if (opts.template) q.set('template', opts.template);
    const qs = q.toString();
    return (await this.client.request<{ workflows: WorkflowView[] }>('GET', `/v1/workflows${qs ? `?${qs}` : ''}`)).workflows;
  }

  /** Cancels the workflow: running steps' jobs are cancelled, pending steps never run. */
  cancel(id: string): Promise<WorkflowView> {
    return this.client.request('DELETE', `/v1/workflows/${encodeURIComponent(id)}`);
  }

  /**
   * Re-run from failure: a new run of finished run `id` (one that did not succeed, live or
   * archived) that runs its failed, cancelled and skipped steps and every step after them, and
   * reuses the other steps' jobs and results (their view shows `cached: {reason: "retry", jobId}`).
   * The new run's `retryOf` is `id`. A run still running or one that succeeded is refused with
   * `workflow_not_retryable`.
   */
  async retry(id: string, opts: SubmitOptions = {}): Promise<WorkflowHandle> {
    const view = await this.client.request<WorkflowView>('POST', `/v1/workflows/${encodeURIComponent(id)}/retry`, {}, { 'idempotency-key': opts.idempotencyKey ?? randomUUID() });
    return new WorkflowHandle(this.client, view.id, view);
  }

  /** A handle of an existing workflow. */
  async handle(id: string): Promise<WorkflowHandle> {
    return new WorkflowHandle(this.client, id, await this.get(id));
  }
}

/** Most specific status → code, for error bodies that are not the API's envelope (e.g. from a proxy). */
const codeOfStatus = new Map<number, ErrorCode>();
for (const [code, status] of Object.entries(statusOf) as Array<[ErrorCode, number]>) if (!codeOfStatus.has(status)) codeOfStatus.set(status, code);

/** The API's error envelope as an `ApiError`; any other body by its status. */
export function decodeError(status: number, text: string): ApiError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const envelope = (body as { error?: { code?: unknown } } | undefined)?.error;
  if (envelope && typeof envelope.code === 'string' && envelope.code in statusOfCodes) return ApiError.fromBody(status, body);
  const code = codeOfStatus.get(status) ?? (status >= 500 ? ErrorCode.Unavailable : ErrorCode.Internal);
  const excerpt = text.trim().replace(/\s+/g, ' ').slice(0, 200);
  return new ApiError(code, `HTTP ${status}${excerpt ? `: ${excerpt}` : ''}`);
}
const statusOfCodes: Record<string, number> = statusOf;

/** The useful part of a fetch failure (`fetch failed` hides it in `cause`). */
function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
