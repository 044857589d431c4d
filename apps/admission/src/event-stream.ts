/**
 * Server-sent events of one record (a job, a workflow): the current view first, then one
 * event per change, ended after a terminal phase. Informers over the record's keys mirror
 * them in the stream, and each change rebuilds the view from that mirror without reading
 * etcd again (at most one event per `minIntervalMs`, so a burst of changes to a wide array
 * sends one event with the latest view). An event's id is the highest etcd mod revision it
 * reflects: with `Last-Event-ID` the current view is sent unless the client holds exactly it,
 * then newer events only.
 *
 * Bounds: streams open on the replica and per tenant (429 `too_many_streams` past a tenant's
 * cap, 503 past the replica's); a keep-alive comment every 15 s; everything stopped when the
 * client goes away. Backpressure: a view is written only while the socket takes it (`write`
 * returned true, or 'drain' came since); meanwhile only the latest view waits (each is whole,
 * so the ones in between are dropped, never queued). A client that reads nothing for
 * `stallMs` while a view waits gets a final `stream-closed` event (`slow_consumer`) and the
 * stream is closed; it resumes with `Last-Event-ID`.
 */
import { type Clock, systemClock } from '@batchapi/runtime';
import type { EtcdStore, Informer, InformerHandlers } from '@batchapi/store';
import { ApiError, ErrorCode, type Principal } from '@batchapi/api';
import { Metric } from '@batchapi/telemetry';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Gauge, type Registry } from 'prom-client';

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
  /** Who follows: the stream counts against its tenant's cap (operators: only the replica's). */
  principal: Principal;
  /** Event name (`event:` line). */
  event: string;
  /** Key prefixes whose changes may change the view. */
  prefixes: string[];
  /** Reads the view once, before the stream opens: an unknown or hidden record fails here, before any byte is sent. */
  read(): Promise<StreamSnapshot>;
  /**
   * The view built from the keys under `prefixes` as mirrored; undefined when the record is not
   * among them (it left etcd since the first read: archived, or deleted). Then the stream calls
   * `read` once more and sends what it gives (an archived record's final view), or ends with a
   * `stream-closed` event carrying the error it threw. Its revision is the newest mod revision
   * among the keys it was built from. A view that differs from the one the client holds but is no
   * newer by that measure (a key left etcd, before or after the informers' listing, or one
   * prefix's informer is behind another's) is sent with the newest revision the mirror has seen
   * (the delete's, or the listing's), or the last id sent + 1 when that is no newer: every change
   * the client does not hold goes out, and ids only grow.
   */
  view(keys: ReadonlyMap<string, MirroredValue>): StreamSnapshot | undefined;
  /** Fewest milliseconds between two events built from changes. @default 100 */
  minIntervalMs?: number;
  /** Interval of the `: keepalive` comment, in milliseconds. @default 15000 */
  keepaliveMs?: number;
}

/** Limits of the event streams of one admission replica. */
export interface EventStreamLimits {
  /** Most streams open at once on the replica (`BATCH_MAX_EVENT_STREAMS`); then 503 `unavailable`. @default 1000 */
  maxStreams: number;
  /**
   * Most streams one tenant's tokens hold open at once on the replica
   * (`BATCH_MAX_EVENT_STREAMS_PER_TENANT`); then 429 `too_many_streams`. Operators are held
   * only by `maxStreams`. @default 100
   */
  maxStreamsPerTenant: number;
  /**
   * How long a view may wait for a client that reads nothing before the stream is closed as a
   * slow consumer, in milliseconds (`BATCH_EVENT_STREAM_STALL_MS`). @default 30000
   */
  stallMs: number;
}

/** The limit that refused or closed a stream: the label of `batch_admission_reads_refused_total`. */
export type StreamLimit = 'streams_per_replica' | 'streams_per_tenant' | 'slow_consumer';

/** A stream's client stopped reading: the close is not the client's doing, so it lingers this long for the final event, in milliseconds. */
const FINAL_EVENT_GRACE_MS = 5000;

/** Counts open streams, per tenant and on the replica, so one admission replica holds a bounded number of watches. */
export class EventStreams {
  private open = 0;
  private readonly byTenant = new Map<string, number>();
  private readonly sockets = new Set<{ writableLength: number }>();
  readonly limits: EventStreamLimits;

  /**
   * @param limits the caps and the stall timeout (see `EventStreamLimits`; `admissionConfigFromEnv` reads them).
   * @param registry where the open streams and their unread bytes are exported, when given.
   * @param refused called with the limit each time a stream is refused or closed by one.
   * @param clock the clock events are spaced by (`minIntervalMs`, on its monotonic reading). @default systemClock
   */
  constructor(
    private readonly store: EtcdStore,
    limits: EventStreamLimits,
    registry?: Registry,
    private readonly refused: (limit: StreamLimit) => void = () => undefined,
    private readonly clock: Clock = systemClock,
  ) {
    this.limits = limits;
    if (registry) {
      const open = () => this.open;
      const buffered = () => [...this.sockets].reduce((n, s) => n + s.writableLength, 0);
      new Gauge({
        name: Metric.admissionEventStreams,
        help: 'Event streams open on this replica',
        registers: [registry],
        collect() {
          this.set(open());
        },
      });
      new Gauge({
        name: Metric.admissionEventStreamBuffered,
        help: "Bytes event streams hold unread in their sockets' buffers (one view at most beyond the high-water mark each)",
        registers: [registry],
        collect() {
          this.set(buffered());
        },
      });
    }
  }

  /** Takes a stream slot for the principal or throws the refusal; the returned function gives it back (once). */
  private reserve(p: Principal): () => void {
    if (this.open >= this.limits.maxStreams) {
      this.refused('streams_per_replica');
      throw new ApiError(ErrorCode.Unavailable, `this replica serves ${this.limits.maxStreams} event streams already; retry later or poll`, {
        retryAfterSeconds: 5,
      });
    }
    const counted = p.role !== 'operator';
    const mine = this.byTenant.get(p.tenant) ?? 0;
    if (counted && mine >= this.limits.maxStreamsPerTenant) {
      this.refused('streams_per_tenant');
      throw new ApiError(ErrorCode.TooManyStreams, `tenant ${p.tenant} has ${mine} event streams open on this replica, its most; close one, or poll`, {
        id: p.tenant,
        retryAfterSeconds: 5,
      });
    }
    this.open++;
    if (counted) this.byTenant.set(p.tenant, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open--;
      if (!counted) return;
      const left = (this.byTenant.get(p.tenant) ?? 1) - 1;
      if (left > 0) this.byTenant.set(p.tenant, left);
      else this.byTenant.delete(p.tenant);
    };
  }

  /** Serves one stream until the record is terminal, the client leaves, or it stops reading. */
  async serve(req: FastifyRequest, reply: FastifyReply, opts: EventStreamOptions): Promise<void> {
    const release = this.reserve(opts.principal); // before the read: concurrent opens cannot pass the cap together
    const lastHeader = req.headers['last-event-id'];
    const resumeFrom = typeof lastHeader === 'string' && /^\d{1,20}$/.test(lastHeader) ? BigInt(lastHeader) : -1n;
    let first: StreamSnapshot;
    try {
      first = await opts.read(); // an unknown record fails here, before any byte is sent
    } catch (err) {
      release();
      throw err;
    }
    reply.hijack();
    const res = reply.raw;
    this.sockets.add(res);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // The first view goes out unless the client holds exactly it (`Last-Event-ID` equal to its
    // revision): a view's revision can also be lower than an id the client saw (a counts view
    // whose newest jobs were archived, an id from another stream), and a resuming client must
    // see the view as it is now. Later views go out only when newer than the last one sent.
    let sent = first.revision === resumeFrom ? resumeFrom : -1n;
    /**
     * The JSON of the view the client holds (or will, once the socket takes it): each one written,
     * the first included. Unknown (undefined) for a client resuming at the first view's id, which
     * is not sent: an id is the newest revision among a view's keys, and a removal since changes
     * the view, not the id.
     */
    let held: string | undefined;
    let closed = false;
    const informers: Informer[] = [];
    /** Set while the socket holds more than it wants (`write` returned false, no 'drain' yet). */
    let blocked = false;
    /** The latest view not yet written because the socket was blocked. */
    let waiting: StreamSnapshot | undefined;
    let stall: NodeJS.Timeout | undefined;
    const keepalive = setInterval(() => {
      if (!blocked) write(': keepalive\n\n');
    }, opts.keepaliveMs ?? 15000);
    let finish!: () => void;
    const done = new Promise<void>((r) => {
      finish = r;
    });
    let timer: NodeJS.Timeout | undefined;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      clearTimeout(timer);
      clearTimeout(stall);
      for (const i of informers) void i.stop();
      res.end();
      this.sockets.delete(res);
      release();
      finish();
    };
    const write = (text: string) => {
      if (res.write(text) || blocked) return;
      blocked = true;
      stall = setTimeout(closeSlow, this.limits.stallMs);
      res.once('drain', () => {
        blocked = false;
        clearTimeout(stall);
        const next = waiting;
        waiting = undefined;
        if (next) send(next);
      });
    };
    // The client read nothing for stallMs: tell it why (it reads this once it reads again), then close.
    const closeSlow = () => {
      if (closed) return;
      this.refused('slow_consumer');
      const e = new ApiError(
        ErrorCode.SlowConsumer,
        `the client read nothing for ${this.limits.stallMs} ms while events waited; reconnect with Last-Event-ID to resume`,
        { retryAfterSeconds: 1 },
      );
      res.write(`event: stream-closed\ndata: ${JSON.stringify(e.toBody())}\n\n`);
      close();
      // A client that never reads would hold the socket (and its buffer) open: cut it after a grace.
      const cut = setTimeout(() => res.destroy(), FINAL_EVENT_GRACE_MS);
      cut.unref();
      res.once('close', () => clearTimeout(cut));
    };
    const send = (s: StreamSnapshot) => {
      if (closed) return;
      if (blocked) {
        if (s.revision > sent || s.terminal) waiting = s; // each view is whole: the newest replaces the one waiting
        return;
      }
      if (s.revision > sent) {
        sent = s.revision;
        held = JSON.stringify(s.view);
        write(`id: ${s.revision}\nevent: ${opts.event}\ndata: ${held}\n\n`);
      }
      if (s.terminal) close();
    };
    // The view of the mirrored keys, at most once per interval; the last change is always sent.
    const mirror = new Map<string, MirroredValue>();
    /**
     * The newest revision the mirror has seen: the informers' listings' and every event's (each
     * prefix has its own watch, so another prefix may still be behind it).
     */
    let seen = 0n;
    const saw = (revision: string) => {
      const r = BigInt(revision);
      if (r > seen) seen = r;
    };
    // No view until every prefix has been listed: a view of a job before its groups are in would
    // be sent with their revision's id, and the complete view, at the same revision, never after.
    const synced = new Set<string>();
    const minInterval = opts.minIntervalMs ?? 100;
    let lastAt = Number.NEGATIVE_INFINITY;
    const refresh = () => {
      if (closed || timer) return;
      timer = setTimeout(
        () => {
          timer = undefined;
          if (synced.size < opts.prefixes.length) return; // the last prefix's sync refreshes again
          lastAt = this.clock.monotonic();
          const s = opts.view(mirror);
          if (s) sendNewest(s);
          else void reread();
        },
        Math.max(0, lastAt + minInterval - this.clock.monotonic()),
      );
    };
    // A removal (seen as an event, or missing from a listing made after the first read) changes
    // the view without raising its keys' revisions, and so does a change one prefix's informer
    // delivers after another's newer one: such a view goes out with the mirror's revision (or the
    // next id when that is no newer), or the client would keep the old one until the next put.
    const sendNewest = (s: StreamSnapshot) => {
      if (s.revision <= sent && JSON.stringify(s.view) !== held) s.revision = seen > sent ? seen : sent + 1n;
      send(s);
    };
    // The record left etcd (its end and its archiving can come in one refresh, or before the
    // listing): without this the stream would stay open with nothing more to send.
    let rereading = false;
    const reread = async () => {
      if (rereading || closed) return;
      rereading = true;
      try {
        const s = await opts.read();
        sendNewest(s);
      } catch (err) {
        endWith(err, 'the record left etcd and cannot be read now');
      } finally {
        rereading = false;
      }
    };
    /** Says why the stream ends (a final `stream-closed` event, when the socket takes it), then ends it. */
    const endWith = (err: unknown, what: string) => {
      if (closed) return;
      if (!blocked) {
        const e =
          err instanceof ApiError
            ? err
            : new ApiError(ErrorCode.Unavailable, `${what} (${(err as Error).message}); reconnect with Last-Event-ID to resume`, {
                retryAfterSeconds: 1,
              });
        res.write(`event: stream-closed\ndata: ${JSON.stringify(e.toBody())}\n\n`);
      }
      close();
    };
    const handlers = (prefix: string): InformerHandlers<unknown> => ({
      onSync: (items, revision) => {
        for (const k of [...mirror.keys()]) if (k.startsWith(prefix)) mirror.delete(k);
        for (const kv of items) mirror.set(kv.key, { value: kv.value, modRevision: kv.modRevision });
        saw(revision);
        synced.add(prefix);
        refresh();
      },
      onEvent: (ev) => {
        if (ev.type === 'put') mirror.set(ev.key, { value: ev.value, modRevision: ev.modRevision });
        else mirror.delete(ev.key);
        saw(ev.modRevision);
        refresh();
      },
    });
    req.raw.on('close', close);
    send(first);
    if (closed) return done;
    try {
      for (const prefix of opts.prefixes) informers.push(await this.store.inform(prefix, handlers(prefix)));
      if (closed) for (const i of informers) void i.stop();
    } catch (err) {
      // The first view went out but the stream cannot follow the record (etcd did not answer the
      // watch's listing): say why, as the slow-consumer close does, so the client resumes after a
      // pause instead of seeing a stream that ended for no reason.
      endWith(err, 'the stream cannot follow the record now');
    }
    return done;
  }
}
