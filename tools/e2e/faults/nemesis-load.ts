/**
 * The nemesis load: an open-loop, seeded stream of submits at a fixed rate over keep-alive
 * connections (undici), of mixed work — single tasks (most on simulated nodes, some on process
 * nodes writing the run log), arrays of 100–10,000 tasks (log-uniform, a small share), gangs,
 * two-step workflows — plus cancels of recently accepted jobs and deliberate resubmits of
 * accepted keys. Every submit carries an idempotency key (also its `nkey` label, so the checker
 * can find two jobs of one key in etcd) and is retried with that key on the other replica
 * after a 503, a 429 or no answer, as the SDKs do: each attempt has the SDK's deadline
 * (`ATTEMPT_TIMEOUT_MS`, 30 s) and waits the SDK's backoff before the next (`backoff` of
 * `@batchapi/sdk`: `Retry-After` when the answer had one, else exponential from 200 ms with
 * jitter, at most 10 s). A client that gave up after a few seconds and retried at once would
 * multiply the load exactly when the cluster is slowest: every abandoned attempt is still
 * worked by admission, and at 100 submits/s on 2 cores a 6 s deadline turned a slow minute into
 * a retry storm (5 requests per submit) that the cluster never got out of, faults or not. What
 * is submitted when depends only on the seed; the answers are recorded for the checker.
 */
import { backoff } from '@batchapi/sdk';
import { Pool } from 'undici';
import { rng } from '../../bench/src/rng';
import type { SubmitRecord, WorkKind } from './checker';

/** Options of the load. */
export interface NemesisLoadOptions {
  seed: number;
  /** Submits per second (new submits and resubmits; cancels come on top). */
  rate: number;
  /** Admission base URLs now (they change when a replica restarts). */
  urls: () => string[];
  token: string;
  /** The shared task run log the process tasks append to. */
  runLog: string;
  /** A FIFO the process tasks block on for their 50 ms sleeps (no fork per sleep). */
  fifo: string;
  /** Share of each kind of new submit. @default see `DEFAULT_MIX` */
  mix?: Partial<Record<WorkKind, number>>;
  /** Share of ticks that resubmit an accepted key instead of a new submit. @default 0.05 */
  resubmitShare?: number;
  /** Cancels per submit (of a recently accepted simulated job). @default 0.03 */
  cancelShare?: number;
  /** How long one submit is retried before it is given up, milliseconds. @default 60000 */
  giveUpMs?: number;
}

/**
 * The mix of new submits. Arrays are 0.1% of submits but, at a mean of ~2,150 tasks
 * (log-uniform 100–10,000) of 0.5–1 s, most of the tasks: at 200 submits/s about 430 array
 * tasks/s (~320 CPUs busy on average, a 10,000-task array ~8 s of the `bulk` queue's 1,000)
 * beside ~330 other tasks/s (~400 CPUs) — within the cohort's 1,600 with room to catch up
 * after a fault.
 */
export const DEFAULT_MIX: Record<WorkKind, number> = { single: 0.83, process: 0.05, array: 0.001, gang: 0.059, workflow: 0.06 };

/** Deadline of one submit attempt, milliseconds: the SDK's default (`BatchClientOptions.timeoutMs`). */
export const ATTEMPT_TIMEOUT_MS = 30_000;

/** The benchmarks' seeded PRNG (mulberry32): the same seed gives the same load and fault schedule. */
export { rng };

interface Pending {
  rec: SubmitRecord;
  path: string;
  body: string;
}

export class NemesisLoad {
  /** Every key submitted, by key. */
  readonly submits = new Map<string, SubmitRecord>();
  /** Answers by HTTP status (`network`: no answer). */
  readonly statuses: Record<string, number> = {};
  /** Why requests got no answer: error code or message → count. */
  readonly networkErrors: Record<string, number> = {};
  /** Submit requests sent (first attempts, their retries and resubmits). */
  requests = 0;
  /** Ticks that sent a submit (new or resubmit): the offered submit rate's numerator. */
  submitted = 0;
  cancels = 0;
  resubmits = 0;
  /** Seconds from the first to the last tick. */
  seconds = 0;
  private readonly pools = new Map<string, Pool>();
  private readonly rand: () => number;
  private readonly recent: Pending[] = [];
  private readonly cancellable: SubmitRecord[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly mix: Array<[WorkKind, number]>;

  constructor(private readonly o: NemesisLoadOptions) {
    this.rand = rng(o.seed ^ 0x5eed);
    const m = { ...DEFAULT_MIX, ...o.mix };
    const total = Object.values(m).reduce((a, b) => a + b, 0);
    let acc = 0;
    this.mix = Object.entries(m).map(([k, v]) => [k as WorkKind, (acc += v / total)]);
  }

  /** Submits at the rate until `stopAt` (epoch ms), then waits for every answer. */
  async run(stopAt: number): Promise<void> {
    const started = performance.now();
    const end = started + (stopAt - Date.now());
    for (let i = 0; ; i++) {
      const due = started + (i * 1000) / this.o.rate;
      if (due >= end) break;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      this.tick(i);
    }
    this.seconds = (performance.now() - started) / 1000;
    while (this.inflight.size) await Promise.all([...this.inflight]);
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
  }

  /** Achieved submits per second. */
  rate(): number {
    return this.seconds ? this.submitted / this.seconds : 0;
  }

  private tick(i: number): void {
    const r = this.rand();
    this.submitted++;
    if (r < (this.o.resubmitShare ?? 0.05) && this.recent.length) {
      const p = this.recent[Math.floor(this.rand() * this.recent.length)];
      this.resubmits++;
      this.track(this.send(p, i + 1));
    } else {
      const p = this.newSubmit(i);
      this.submits.set(p.rec.key, p.rec);
      this.track(this.send(p, i));
    }
    if (this.rand() < (this.o.cancelShare ?? 0.03) && this.cancellable.length) {
      const rec = this.cancellable[Math.floor(this.rand() * this.cancellable.length)];
      this.cancels++;
      this.track(this.cancel(rec, i));
    }
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** A new submit of a kind drawn from the mix; its body depends only on the PRNG. */
  private newSubmit(i: number): Pending {
    const r = this.rand();
    const kind = this.mix.find(([, upTo]) => r < upTo)?.[0] ?? 'single';
    const key = `n${this.o.seed}-${i}`;
    const labels = { nkey: key };
    const simSeconds = (lo: number, hi: number) => (lo + this.rand() * (hi - lo)).toFixed(2);
    const sim = (seconds: string) => ({
      command: ['true'],
      resources: { cpu: '1', memory: '1Gi' },
      selector: { simulated: 'true' },
      env: { BATCH_SIM_SECONDS: seconds },
    });
    let body: Record<string, unknown>;
    let tasks = 1;
    switch (kind) {
      case 'process': {
        tasks = this.rand() < 0.5 ? 1 : 2;
        // a fifth run 4–8 s: still running when their node is lost, so a run that outlives its
        // node's lease (and overlaps its rerun elsewhere) shows in the run log
        const long = this.rand() < 0.2;
        const command = long ? this.taskCommand(40 + Math.floor(this.rand() * 41), 0.1) : this.taskCommand(6, 0.05);
        body = {
          name: long ? 'proc-long' : 'proc',
          tasks,
          command,
          resources: { cpu: '100m', memory: '16Mi' },
          selector: { kind: 'process' },
          env: { LC_ALL: 'C' },
          labels,
        };
        break;
      }
      case 'array':
        tasks = Math.round(100 * 100 ** this.rand()); // log-uniform 100–10,000
        body = { name: 'array', tasks, queue: 'bulk', ...sim(simSeconds(0.5, 1)), labels };
        break;
      case 'gang':
        tasks = 4 + Math.floor(this.rand() * 13);
        body = { name: 'gang', tasks, gang: true, ...sim(simSeconds(0.5, 1.5)), labels };
        break;
      case 'workflow': {
        const step = (name: string, dependsOn: string[]) => ({ name, dependsOn, job: sim(simSeconds(0.2, 1)) });
        tasks = 3;
        body = { name: 'wf', labels, steps: [step('a', []), step('b', ['a']), step('c', ['a'])] };
        break;
      }
      default:
        body = { name: 'single', ...sim(simSeconds(0.5, 2)), labels };
    }
    return { rec: { kind, key, ids: [], tasks }, path: kind === 'workflow' ? '/v1/workflows' : '/v1/jobs', body: JSON.stringify(body) };
  }

  /**
   * The process task: bash builtins only (one fork per task): a start line, `beats` heartbeats
   * `every` seconds apart (a `read -t` on a FIFO nobody writes is the sleep) and an end line,
   * each with job, index, attempt and `$EPOCHREALTIME`.
   */
  private taskCommand(beats: number, every: number): string[] {
    const mark = (k: string) => `echo "${k} $BATCH_JOB_ID $BATCH_TASK_INDEX $BATCH_ATTEMPT $EPOCHREALTIME" >> ${this.o.runLog}`;
    return ['bash', '-c', `${mark('s')}; for ((i = 0; i < ${beats}; i++)); do read -t ${every} <> ${this.o.fifo}; ${mark('h')}; done; ${mark('e')}`];
  }

  private pool(url: string): Pool {
    let p = this.pools.get(url);
    if (!p) {
      // Enough connections that a slow moment of the API does not queue requests inside the pool,
      // where they would time out unsent and come back as retries (a retry storm of the client's own).
      p = new Pool(url, {
        connections: 256,
        keepAliveTimeout: 30_000,
        headersTimeout: ATTEMPT_TIMEOUT_MS,
        bodyTimeout: ATTEMPT_TIMEOUT_MS,
        connectTimeout: 2000,
      });
      this.pools.set(url, p);
    }
    return p;
  }

  private async request(
    url: string,
    method: string,
    path: string,
    key?: string,
    body?: string,
  ): Promise<{ status: number; json?: { id?: string }; retryAfter?: string }> {
    this.requests++;
    try {
      const res = await this.pool(url).request({
        path,
        method,
        body,
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        headers: {
          authorization: `Bearer ${this.o.token}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
          ...(key ? { 'idempotency-key': key } : {}),
        },
      });
      const text = await res.body.text();
      this.statuses[res.statusCode] = (this.statuses[res.statusCode] ?? 0) + 1;
      let json: { id?: string } | undefined;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON */
      }
      const retryAfter = res.headers['retry-after'];
      return { status: res.statusCode, json, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined };
    } catch (err) {
      this.statuses.network = (this.statuses.network ?? 0) + 1;
      const e = err as { code?: string; name?: string; message?: string };
      const why = `${url.replace(/^http:\/\//, '')} ${e.code ?? e.name ?? 'error'}`;
      this.networkErrors[why] = (this.networkErrors[why] ?? 0) + 1;
      return { status: 0 };
    }
  }

  /** Sends one submit with its key until accepted, refused or given up; retries go to the other replica. */
  private async send(p: Pending, i: number): Promise<void> {
    const deadline = Date.now() + (this.o.giveUpMs ?? 60_000);
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const urls = this.o.urls();
      const res = await this.request(urls[(i + attempt) % urls.length], 'POST', p.path, p.rec.key, p.body);
      if ((res.status === 200 || res.status === 201) && res.json?.id) {
        const first = p.rec.ids.length === 0;
        p.rec.ids.push(res.json.id);
        if (first) {
          this.recent.push(p);
          if (this.recent.length > 200) this.recent.shift();
          if (p.rec.kind !== 'process' && p.rec.kind !== 'workflow') {
            this.cancellable.push(p.rec);
            if (this.cancellable.length > 50) this.cancellable.shift();
          }
        }
        return;
      }
      if (res.status !== 0 && res.status !== 503 && res.status !== 429) {
        const answer = `${res.status} ${JSON.stringify(res.json).slice(0, 200)}`;
        if (!p.rec.ids.length) p.rec.refused = answer;
        else p.rec.resubmitRefused = answer; // an accepted key resubmitted with the same body must answer its job
        return;
      }
      const wait = Math.min(backoff(attempt, res.retryAfter), Math.max(0, deadline - Date.now()));
      await new Promise((r) => setTimeout(r, wait));
    }
    if (!p.rec.ids.length) p.rec.refused = 'gave up';
  }

  /** Cancels an accepted job once (its answer does not matter: the job may end Cancelled or Succeeded). */
  private async cancel(rec: SubmitRecord, i: number): Promise<void> {
    rec.cancelled = true;
    const urls = this.o.urls();
    await this.request(urls[i % urls.length], 'DELETE', `/v1/jobs/${rec.ids[0]}`);
  }
}
