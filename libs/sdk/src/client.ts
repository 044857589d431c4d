/**
 * The TypeScript SDK: a typed client of the BatchAPI HTTP API. Retries what is safe to
 * retry (429 and 503, honoring `Retry-After`, and requests that got no answer), and makes
 * every submit idempotent by sending an `Idempotency-Key`, so its own retries never create
 * a second job. Connections are reused (the global `fetch` keeps them alive).
 */
import { randomUUID } from 'node:crypto';
import { ApiError, ErrorCode, type JobPhase, type JobView, type NodeView, type QueueView, type SubmitJobRequest, statusOf, TERMINAL_PHASES } from '@batchapi/api';
import { backoff, RETRYABLE_STATUSES } from './retry';

/** The answer of `GET /v1/jobs/:id/why`. */
export interface WhyView {
  jobId: string;
  phase: JobPhase;
  /** 1 = next in its queue. */
  position: number;
  tasksAhead: number;
  pendingTasks: number;
  placeableNow: number;
  blockers: Array<{ reason: string; nodes: number }>;
  quota?: string;
  messages: string[];
  counterfactuals: string[];
}

/** Options of a `BatchClient`. */
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
  /** Newest first. */
  jobs: JobView[];
  /** Pass as `pageToken` to get the next page; absent on the last page. */
  nextPageToken?: string;
}

/** Filters of `listJobs`. */
export interface ListOptions {
  /** Only jobs in this phase. @default every phase */
  state?: JobPhase;
  /** Only jobs of this queue. @default every queue the token may see */
  queue?: string;
  /** Jobs per page, 1 to 1000. @default 50 */
  limit?: number;
  /** `nextPageToken` of the previous page. @default the first page */
  pageToken?: string;
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

  constructor(readonly options: BatchClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  /** Submits a job. Answers once the job is durable (committed in etcd). */
  submitJob(req: SubmitJobRequest, opts: SubmitOptions = {}): Promise<JobView> {
    return this.call<JobView>('POST', '/v1/jobs', req, { 'idempotency-key': opts.idempotencyKey ?? randomUUID() });
  }

  /** One job by id (`not_found` when it does not exist or belongs to another tenant). */
  getJob(id: string): Promise<JobView> {
    return this.call<JobView>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /** One page of jobs, newest first; follow `nextPageToken` for more. */
  listJobs(opts: ListOptions = {}): Promise<JobPage> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts)) if (v !== undefined && v !== '') q.set(k, String(v));
    const query = q.toString();
    return this.call<JobPage>('GET', `/v1/jobs${query ? `?${query}` : ''}`);
  }

  /** Cancels a job: pending tasks never start, running ones get SIGTERM then SIGKILL. Cancelling a finished job changes nothing. */
  cancelJob(id: string): Promise<JobView> {
    return this.call<JobView>('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
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
    const { res, text } = await this.attempt(method, path, body, headers, true);
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
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...headers,
          },
          body: body === undefined ? undefined : JSON.stringify(body),
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
