/**
 * An open-loop submit generator on loopback for the API benchmarks. It uses undici's
 * connection pool (keep-alive, no WHATWG streams) because the generator shares the machine
 * with the cluster it measures: `fetch` cost about a third of a core at 1,000 submits/s,
 * CPU the services then lacked.
 */
import { Pool } from 'undici';

/** One submit's answer as the generator saw it. */
export interface SubmitAnswer {
  /** HTTP status, or 0 when the request failed without one (network, timeout). */
  status: number;
  /** Milliseconds from sending to the whole answer. */
  ms: number;
  /** The answer's JSON body (undefined without one). */
  body?: { id?: string };
  /** When it left, milliseconds since the generator's start. */
  sentAt: number;
}

/** Options of `openLoop`. */
export interface OpenLoopOptions {
  /** The API's base URL (loopback). */
  url: string;
  /** A tenant's bearer token. */
  token: string;
  /** Submits per second. */
  rate: number;
  /** How many to send in all. */
  count: number;
  /** The job to submit (JSON). */
  job: unknown;
  /** Idempotency key of the i-th submit. */
  key: (i: number) => string;
  /** Gives up on one answer after this long, milliseconds. @default 10000 */
  timeoutMs?: number;
  /** Keep-alive connections. @default 64 */
  connections?: number;
  /** Called with each answer, as it arrives. */
  onAnswer?: (a: SubmitAnswer, i: number) => void;
  /** Called every `rate × 5` sends with the count sent. */
  onProgress?: (sent: number) => void;
}

/**
 * Sends `count` submits at `rate` per second, each at its scheduled time whatever the answers
 * do (open loop, so a slow server cannot slow the offered load), and resolves when every
 * answer is in. Returns the seconds the sending took.
 */
export async function openLoop(o: OpenLoopOptions): Promise<number> {
  const pool = new Pool(o.url, {
    connections: o.connections ?? 64,
    keepAliveTimeout: 30_000,
    headersTimeout: o.timeoutMs ?? 10_000,
    bodyTimeout: o.timeoutMs ?? 10_000,
  });
  const body = JSON.stringify(o.job);
  const inflight: Array<Promise<void>> = [];
  const started = performance.now();
  try {
    for (let i = 0; i < o.count; i++) {
      const due = started + (i * 1000) / o.rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const t0 = performance.now();
      inflight.push(
        pool
          .request({
            path: '/v1/jobs',
            method: 'POST',
            headers: { authorization: `Bearer ${o.token}`, 'content-type': 'application/json', 'idempotency-key': o.key(i) },
            body,
          })
          .then(
            async (res) => {
              const text = await res.body.text();
              o.onAnswer?.(
                { status: res.statusCode, ms: performance.now() - t0, body: text ? (JSON.parse(text) as { id?: string }) : undefined, sentAt: t0 - started },
                i,
              );
            },
            () => {
              o.onAnswer?.({ status: 0, ms: performance.now() - t0, sentAt: t0 - started }, i);
            },
          ),
      );
      if (i > 0 && i % (o.rate * 5) === 0) o.onProgress?.(i);
    }
    const sendSeconds = (performance.now() - started) / 1000;
    await Promise.all(inflight);
    return sendSeconds;
  } finally {
    await pool.close();
  }
}
