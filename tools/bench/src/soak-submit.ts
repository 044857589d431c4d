/**
 * The soak's submitter: N one-task jobs through `POST /v1/jobs:batch` at a steady rate, in chunks,
 * with a bound on the requests in flight. A 429 or 503 — for the whole request or one entry — is
 * counted and sent again (the same idempotency keys, so a retry never makes a second job) no
 * sooner than its `Retry-After`; nothing else is sent before then either.
 */
import { Pool } from 'undici';

/** Options of `BatchSubmitter`. */
export interface BatchSubmitterOptions {
  /** The API's base URL (loopback). */
  url: string;
  /** A tenant's bearer token. */
  token: string;
  /** Jobs to submit in all. */
  jobs: number;
  /** Jobs per second offered. */
  rate: number;
  /** Jobs per request (≤ 1000). */
  chunk: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** The i-th job's body (without its idempotency key). */
  job: (i: number) => Record<string, unknown>;
  /** The i-th job's idempotency key. */
  key: (i: number) => string;
  /** Gives up on one answer after this long, in milliseconds (then it is sent again). @default 30000 */
  timeoutMs?: number;
}

type Entry = { status: number; job?: { id?: string }; error?: { code?: string; retryAfterSeconds?: number } };

export class BatchSubmitter {
  /** Jobs sent at least once. */
  submitted = 0;
  /** Each accepted job's id by index (undefined: not accepted yet). */
  readonly ids: Array<string | undefined>;
  accepted = 0;
  /** 429 and 503 answers: whole requests plus single entries. */
  refused429 = 0;
  refused503 = 0;
  /** Requests that got no answer in time or failed on the network (sent again). */
  networkErrors = 0;
  /** Entries refused for good (any other 4xx/5xx), by status: not sent again. */
  readonly rejected: Record<string, number> = {};
  private readonly pool: Pool;
  private readonly retry: number[] = [];
  /** Nothing is sent before this (`performance.now()` ms): the longest Retry-After seen. */
  private notBefore = 0;
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly o: BatchSubmitterOptions) {
    this.ids = new Array<string | undefined>(o.jobs);
    this.pool = new Pool(o.url, {
      connections: o.concurrency + 2,
      keepAliveTimeout: 30_000,
      headersTimeout: o.timeoutMs ?? 30_000,
      bodyTimeout: o.timeoutMs ?? 30_000,
    });
  }

  /** An accepted job's id at random (for reads that name a job), or undefined before the first. */
  randomAcceptedId(rand: () => number): string | undefined {
    for (let tries = 0; tries < 20 && this.submitted; tries++) {
      const id = this.ids[Math.floor(rand() * this.submitted)];
      if (id) return id;
    }
    return undefined;
  }

  /**
   * Sends every job at its scheduled time (job i is due `i / rate` seconds after the start) until
   * all are accepted or refused for good, or `stopAt` (`performance.now()` ms) passes, or `signal`
   * aborts. Returns the seconds the fresh sending took.
   */
  async run(stopAt: number, signal: AbortSignal): Promise<number> {
    const o = this.o;
    const started = performance.now();
    let next = 0;
    let sendSeconds = NaN;
    while (!signal.aborted && performance.now() < stopAt) {
      if (next >= o.jobs && Number.isNaN(sendSeconds)) sendSeconds = (performance.now() - started) / 1000;
      if (next >= o.jobs && !this.retry.length && !this.inflight.size) break;
      const now = performance.now();
      if (this.inflight.size >= o.concurrency) {
        await Promise.race(this.inflight);
        continue;
      }
      if (now < this.notBefore) {
        await sleep(Math.min(this.notBefore - now, stopAt - now));
        continue;
      }
      if (this.retry.length) {
        this.send(this.retry.splice(0, o.chunk));
        continue;
      }
      // a chunk is sent once it is due whole (or it is the last one)
      const upTo = Math.min(o.jobs, next + o.chunk);
      const dueAt = started + ((upTo - 1) * 1000) / o.rate;
      if (next < o.jobs && now >= dueAt) {
        const indices = Array.from({ length: upTo - next }, (_, k) => next + k);
        next = upTo;
        this.submitted = next;
        this.send(indices);
        continue;
      }
      const wake = next < o.jobs ? dueAt - now : 50;
      await Promise.race([sleep(Math.min(Math.max(1, wake), stopAt - now)), ...this.inflight]);
    }
    if (!signal.aborted) await Promise.all(this.inflight);
    return Number.isNaN(sendSeconds) ? (performance.now() - started) / 1000 : sendSeconds;
  }

  /** Requests left to retry (jobs not accepted yet when the run stopped). */
  get unsent(): number {
    return this.retry.length;
  }

  /** Closes the connections (at once when requests are still in flight: an interrupted run). */
  async close(): Promise<void> {
    await (this.inflight.size ? this.pool.destroy() : this.pool.close());
  }

  private send(indices: number[]): void {
    const body = JSON.stringify({ jobs: indices.map((i) => ({ ...this.o.job(i), idempotencyKey: this.o.key(i) })) });
    const p = this.request(indices, body).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  private async request(indices: number[], body: string): Promise<void> {
    let status: number;
    let retryAfter: string | string[] | undefined;
    let text: string;
    try {
      const res = await this.pool.request({
        path: '/v1/jobs:batch',
        method: 'POST',
        headers: { authorization: `Bearer ${this.o.token}`, 'content-type': 'application/json' },
        body,
      });
      status = res.statusCode;
      retryAfter = res.headers['retry-after'];
      text = await res.body.text();
    } catch {
      this.networkErrors++;
      this.again(indices, 1);
      return;
    }
    if (status === 429 || status === 503) {
      if (status === 429) this.refused429++;
      else this.refused503++;
      this.again(indices, Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter) || 1);
      return;
    }
    if (status !== 200) {
      for (const _ of indices) this.rejected[status] = (this.rejected[status] ?? 0) + 1;
      return;
    }
    let results: Entry[];
    try {
      results = (JSON.parse(text) as { results: Entry[] }).results;
    } catch {
      this.networkErrors++; // a cut answer: the same keys again
      this.again(indices, 1);
      return;
    }
    const again: number[] = [];
    let wait = 0;
    results.forEach((r, k) => {
      const i = indices[k];
      if ((r.status === 201 || r.status === 200) && r.job?.id) {
        if (this.ids[i] === undefined) this.accepted++;
        this.ids[i] = r.job.id;
      } else if (r.status === 429 || r.status === 503) {
        if (r.status === 429) this.refused429++;
        else this.refused503++;
        again.push(i);
        wait = Math.max(wait, r.error?.retryAfterSeconds ?? 1);
      } else this.rejected[r.status] = (this.rejected[r.status] ?? 0) + 1;
    });
    if (again.length) this.again(again, wait);
  }

  private again(indices: number[], seconds: number): void {
    this.retry.push(...indices);
    this.notBefore = Math.max(this.notBefore, performance.now() + seconds * 1000);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
