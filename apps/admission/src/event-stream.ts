/**
 * Server-sent events of one record (a job, a workflow): the current view first, then one
 * event per change, ended after a terminal phase. Changes come from informers over the
 * record's keys; each change re-reads the view (coalesced, so a burst sends one event),
 * and its id is the highest etcd mod revision it reflects, so `Last-Event-ID` resumes with
 * newer events only. Per connection: a bounded count of open streams, a keep-alive
 * comment every 15 s, everything stopped when the client goes away.
 */
import type { EtcdStore, Informer } from '@batchapi/store';
import { ApiError, ErrorCode } from '@batchapi/api';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** One read of the streamed record. */
export interface StreamSnapshot {
  /** The JSON view sent as `data`. */
  view: unknown;
  /** Highest mod revision of the keys the view was built from: the event id. */
  revision: bigint;
  /** After sending a terminal view the stream ends. */
  terminal: boolean;
}

/** Options of an event stream. */
export interface EventStreamOptions {
  /** Event name (`event:` line). */
  event: string;
  /** Key prefixes whose changes may change the view. */
  prefixes: string[];
  /** Reads the view now. */
  read(): Promise<StreamSnapshot>;
  /** Interval of the `: keepalive` comment, in milliseconds. @default 15000 */
  keepaliveMs?: number;
}

/** Counts open streams so one admission replica holds a bounded number of watches. */
export class EventStreams {
  private open = 0;
  /** @param max most streams open at once on this replica. @default 1000 */
  constructor(private readonly store: EtcdStore, readonly max = 1000) {}

  /** Serves one stream until the record is terminal or the client leaves. */
  async serve(req: FastifyRequest, reply: FastifyReply, opts: EventStreamOptions): Promise<void> {
    if (this.open >= this.max) throw new ApiError(ErrorCode.Unavailable, `this replica serves ${this.max} event streams already; retry later or poll`, { retryAfterSeconds: 5 });
    const lastHeader = req.headers['last-event-id'];
    const resumeFrom = typeof lastHeader === 'string' && /^\d{1,20}$/.test(lastHeader) ? BigInt(lastHeader) : -1n;
    const first = await opts.read(); // an unknown record fails here, before any byte is sent
    this.open++;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    let sent = resumeFrom;
    let closed = false;
    const informers: Informer[] = [];
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), opts.keepaliveMs ?? 15000);
    let finish!: () => void;
    const done = new Promise<void>((r) => { finish = r; });
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      for (const i of informers) void i.stop();
      res.end();
      this.open--;
      finish();
    };
    const send = (s: StreamSnapshot) => {
      if (closed) return;
      if (s.revision > sent) {
        sent = s.revision;
        res.write(`id: ${s.revision}\nevent: ${opts.event}\ndata: ${JSON.stringify(s.view)}\n\n`);
      }
      if (s.terminal) close();
    };
    // Coalesced refresh: at most one read in flight, one more queued behind it.
    let reading: Promise<void> | undefined;
    let again = false;
    const refresh = () => {
      if (closed) return;
      if (reading) { again = true; return; }
      reading = opts.read().then(send, () => undefined).finally(() => {
        reading = undefined;
        if (again) { again = false; refresh(); }
      });
    };
    req.raw.on('close', close);
    send(first);
    if (closed) return done;
    try {
      for (const prefix of opts.prefixes) informers.push(await this.store.inform(prefix, { onSync: refresh, onEvent: refresh }));
      if (closed) for (const i of informers) void i.stop();
    } catch {
      close();
    }
    return done;
  }
}
