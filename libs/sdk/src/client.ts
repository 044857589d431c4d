/**
 * The TypeScript SDK: a typed client of the BatchAPI HTTP API. Retries what is safe to
 * retry (429 and 503, honoring `Retry-After`), and makes every submit idempotent by
 * sending an `Idempotency-Key`, so its own retries never create a second job.
 */
import { randomUUID } from 'node:crypto';
import { ApiError, ErrorCode, type JobView, type NodeView, type QueueView, type SubmitJobRequest, TERMINAL_PHASES } from '@batchapi/api';

/** The answer of `GET /v1/jobs/:id/why`. */
export interface WhyView {
  jobId: string;
  phase: JobView['phase'];
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
  /** Base URL of the admission service, e.g. `http://127.0.0.1:7070`. */
  url: string;
  /** Bearer token naming a tenant and a role. */
  token: string;
  /** Deadline of each HTTP request, in milliseconds. @default 30000 */
  timeoutMs?: number;
  /** Retries of a request answered 429 or 503 (or not answered at all). @default 3 */
  retries?: number;
  /** Longest wait between retries, in milliseconds, whatever `Retry-After` says. @default 10000 */
  maxRetryDelayMs?: number;
}

/** Options of `submitJob`. */
export interface SubmitOptions {
  /** Makes retries safe: the same key returns the same job. @default a random UUID per call */
  idempotencyKey?: string;
}

/** A page of `listJobs`. */
export interface JobPage {
  jobs: JobView[];
  nextPageToken?: string;
}

/** Filters of `listJobs`. */
export interface ListOptions {
  state?: JobView['phase'];
  queue?: string;
  /** Page size. @default 50 */
  limit?: number;
  pageToken?: string;
}

/** Options of `logs`. */
export interface LogsOptions {
  /** @default "stdout" */
  stream?: 'stdout' | 'stderr';
  /** @default the latest attempt */
  attempt?: number;
  /** Keep streaming until the task ends. @default false */
  follow?: boolean;
}

/** Options of `waitForJob`. */
export interface WaitOptions {
  /** Pause between polls, in milliseconds. @default 500 */
  intervalMs?: number;
  /** Called with every new view of the job. */
  onUpdate?: (job: JobView) => void;
  /** Gives up after this long, in milliseconds (throws `unavailable`). @default no limit */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class BatchClient {
  private readonly base: string;

  constructor(readonly options: BatchClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  /** Submits a job; answers once it is durable. */
  async submitJob(req: SubmitJobRequest, opts: SubmitOptions = {}): Promise<JobView> {
    return this.json<JobView>('POST', '/v1/jobs', req, { 'Idempotency-Key': opts.idempotencyKey ?? randomUUID() });
  }

  getJob(id: string): Promise<JobView> {
    return this.json<JobView>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  listJobs(opts: ListOptions = {}): Promise<JobPage> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) q.set(k, String(v));
    return this.json<JobPage>('GET', `/v1/jobs${q.size ? `?${q}` : ''}`);
  }

  /** Why a job's tasks are pending: blockers with node counts and changes that would let it run. */
  why(id: string): Promise<WhyView> {
    return this.json<WhyView>('GET', `/v1/jobs/${encodeURIComponent(id)}/why`);
  }

  /** Queues with quota, usage, fair share and what waits (a tenant sees its own). */
  listQueues(): Promise<{ queues: QueueView[] }> {
    return this.json('GET', '/v1/queues');
  }

  /** Nodes with capacity, allocation and cordons (operator tokens only). */
  listNodes(): Promise<{ nodes: NodeView[] }> {
    return this.json('GET', '/v1/nodes');
  }

  /** Stops new work on a node (operator). */
  cordonNode(name: string, reason: string): Promise<NodeView> {
    return this.json('POST', `/v1/nodes/${encodeURIComponent(name)}/cordon`, { reason });
  }

  /** Cordons a node and stops its running tasks after `deadlineSeconds` (operator). @param deadlineSeconds @default 300 */
  drainNode(name: string, reason: string, deadlineSeconds?: number): Promise<NodeView> {
    return this.json('POST', `/v1/nodes/${encodeURIComponent(name)}/drain`, { reason, ...(deadlineSeconds !== undefined ? { deadlineSeconds } : {}) });
  }

  /** Lets a node take work again (operator). */
  uncordonNode(name: string): Promise<NodeView> {
    return this.json('DELETE', `/v1/nodes/${encodeURIComponent(name)}/cordon`);
  }

  cancelJob(id: string): Promise<JobView> {
    return this.json<JobView>('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /** A task's log as text chunks; with `follow`, until the task ends. */
  async *logs(id: string, index: number, opts: LogsOptions = {}): AsyncGenerator<string> {
    const q = new URLSearchParams({ stream: opts.stream ?? 'stdout' });
    if (opts.attempt) q.set('attempt', String(opts.attempt));
    if (opts.follow) q.set('follow', 'true');
    const res = await this.request('GET', `/v1/jobs/${encodeURIComponent(id)}/tasks/${index}/logs?${q}`, undefined, {}, !opts.follow);
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) yield decoder.decode(chunk, { stream: true });
  }

  /** Polls a job until it reaches a terminal phase; returns its last view. */
  async waitForJob(id: string, opts: WaitOptions = {}): Promise<JobView> {
    const started = Date.now();
    let last = '';
    for (;;) {
      const job = await this.getJob(id);
      const seen = JSON.stringify([job.phase, job.taskCounts]);
      if (seen !== last) { last = seen; opts.onUpdate?.(job); }
      if (TERMINAL_PHASES.has(job.phase)) return job;
      if (opts.timeoutMs !== undefined && Date.now() - started > opts.timeoutMs) {
        throw new ApiError(ErrorCode.Unavailable, `job ${id} did not finish within ${opts.timeoutMs} ms`, { id });
      }
      if (opts.signal?.aborted) throw new ApiError(ErrorCode.Unavailable, 'waiting was aborted', { id });
      await sleep(opts.intervalMs ?? 500);
    }
  }

  private async json<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const res = await this.request(method, path, body, headers, true);
    return (await res.json()) as T;
  }

  private async request(method: string, path: string, body: unknown, headers: Record<string, string>, withTimeout: boolean): Promise<Response> {
    const retries = this.options.retries ?? 3;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(`${this.base}${path}`, {
          method,
          headers: { authorization: `Bearer ${this.options.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: withTimeout ? AbortSignal.timeout(this.options.timeoutMs ?? 30_000) : undefined,
        });
      } catch (err) {
        if (attempt < retries) { await sleep(backoff(attempt, undefined, this.options.maxRetryDelayMs)); continue; }
        throw new ApiError(ErrorCode.Unavailable, `${this.base} did not answer: ${(err as Error).message}`, { retryAfterSeconds: 1 });
      }
      if (res.ok) return res;
      const retryable = res.status === 429 || res.status === 503;
      if (retryable && attempt < retries) {
        await res.body?.cancel();
        await sleep(backoff(attempt, res.headers.get('retry-after'), this.options.maxRetryDelayMs));
        continue;
      }
      const text = await res.text();
      let parsed: unknown = text;
      try { parsed = JSON.parse(text); } catch { /* not JSON */ }
      throw ApiError.fromBody(res.status, parsed);
    }
  }
}

/** Delay before retry `attempt`: `Retry-After` when given, else exponential with jitter; capped. */
export function backoff(attempt: number, retryAfter: string | null | undefined, maxMs = 10_000): number {
  const seconds = retryAfter ? Number(retryAfter) : NaN;
  const base = Number.isFinite(seconds) ? seconds * 1000 : 200 * 2 ** attempt * (0.5 + Math.random());
  return Math.min(base, maxMs);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
