/**
 * Server-sent events of one record (a job, a workflow): the current view first, then one
 * event per change, ended after a terminal phase. Informers over the record's keys mirror
 * them in the stream, and each change rebuilds the view from that mirror without reading
 * etcd again (at most one event per `minIntervalMs`, so a burst of changes to a wide array
 * sends one event with the latest view). An event's id is the highest etcd mod revision it
 * reflects, so `Last-Event-ID` resumes with newer events only. Per connection: a bounded count of open streams, a keep-alive
 * comment every 15 s, everything stopped when the client goes away.
 */
import type { EtcdStore, Informer, InformerHandlers } from '@batchapi/store';
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

/** A key's value and mod revision as a stream's informers hold it. */
export interface MirroredValue {
  value: unknown;
  modRevision: string;
}

/** Options of an event stream. */
export interface EventStreamOptions {
  /** Event name (`event:` line). */
  event: string;
  /** Key prefixes whose changes may change the view. */
  prefixes: string[];
  /** Reads the view once, before the stream opens: an unknown or hidden record fails here, before any byte is sent. */
  read(): Promise<StreamSnapshot>;
  /** The view built from the keys under `prefixes` as mirrored; undefined while the record is absent. */
  view(keys: ReadonlyMap<string, MirroredValue>): StreamSnapshot | undefined;
  /** Fewest milliseconds between two events built from changes. @default 100 */
  minIntervalMs?: number;
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
    let timer: NodeJS.Timeout | undefined;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      clearTimeout(timer);
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
    // The view of the mirrored keys, at most once per interval; the last change is always sent.
    const mirror = new Map<string, MirroredValue>();
    // No view until every prefix has been listed: a view of a job before its groups are in would
    // be sent with their revision's id, and the complete view, at the same revision, never after.
    const synced = new Set<string>();
    const minInterval = opts.minIntervalMs ?? 100;
    let lastAt = 0;
    const refresh = () => {
      if (closed || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        if (synced.size < opts.prefixes.length) return; // the last prefix's sync refreshes again
        lastAt = Date.now();
        const s = opts.view(mirror);
        if (s) send(s);
      }, Math.max(0, lastAt + minInterval - Date.now()));
    };
    const handlers = (prefix: string): InformerHandlers<unknown> => ({
      onSync: (items) => {
        for (const k of [...mirror.keys()]) if (k.startsWith(prefix)) mirror.delete(k);
        for (const kv of items) mirror.set(kv.key, { value: kv.value, modRevision: kv.modRevision });
        synced.add(prefix);
        refresh();
      },
      onEvent: (ev) => {
        if (ev.type === 'put') mirror.set(ev.key, { value: ev.value, modRevision: ev.modRevision });
        else mirror.delete(ev.key);
        refresh();
      },
    });
    req.raw.on('close', close);
    send(first);
    if (closed) return done;
    try {
      for (const prefix of opts.prefixes) informers.push(await this.store.inform(prefix, handlers(prefix)));
      if (closed) for (const i of informers) void i.stop();
    } catch {
      close();
    }
    return done;
  }
}
