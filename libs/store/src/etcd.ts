/**
 * The etcd client: reads, compare-and-swap transactions in batches, informers (list then
 * watch, resumed from the last revision) and the process lease. Every unary call carries
 * a deadline; etcd failures surface as `StoreUnavailableError` (see errors.ts; the API answers 503).
 * The client never re-sends a call by itself: reads are retried here (they are idempotent),
 * so is a write that certainly never left (no connection to its member, `neverSent`),
 * and a write whose answer was lost throws `OutcomeUnknownError` — it may have committed,
 * so a caller re-reads (a token of its own in what it wrote tells its write from another's)
 * or retries an idempotent operation later; it never reads it as a refusal.
 */
import {
  castGrpcError,
  ClientClosedError,
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCAlreadyExistsError,
  GRPCFailedPreconditionError,
  GRPCInvalidArgumentError,
  GRPCNotFoundError,
  GRPCNotImplementedError,
  GRPCOutOfRangeError,
  GRPCResourceExhastedError,
  GRPCUnauthenticatedError,
  EtcdPermissionDeniedError,
  type IKeyValue,
  isRecoverableError,
  type Watcher,
} from 'etcd3';
import type * as RPC from 'etcd3/lib/rpc';
import { InterceptingCall, type Interceptor, status as GrpcStatus } from '@grpc/grpc-js';
import { describeError, OutcomeUnknownError, StoreError, StoreUnavailableError } from './errors';
import { Keys } from './keys';
import { type LeaseAnswer, leaseAnswerOfTtl, LeaseFence, leaseLossVerdict, monotonicMs, RenewalOutcome } from './lease-fence';

/** Options of a store connection. */
export interface StoreOptions {
  /** etcd client URLs, e.g. `["http://127.0.0.1:2379"]`. */
  endpoints: string[];
  /** Root prefix of every key. @default "/batch/" */
  prefix?: string;
  /** Deadline of each unary call, in milliseconds. @default 2000 */
  callTimeoutMs?: number;
  /** Observes every call: operation (`range`, `txn`), duration in seconds, success. @default none */
  onCall?: (op: 'range' | 'txn', seconds: number, ok: boolean) => void;
  /**
   * Told when the client's shared watch stream fell out of step with its watchers (a reply for a
   * watch it no longer knows: see `guardWatchStream`); the stream is then torn down and every
   * watcher resumes from its own revision. @default a warning on stderr
   */
  onWatchStreamFault?: (err: Error) => void;
  /** TLS to etcd (`https://` endpoints): the CA that signed etcd's certificate, and this client's certificate and key (PEM) for etcd's client-cert auth. @default plain connections */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  /** Largest answer read, in bytes: a read whose answer is larger asks for fewer keys (see `MAX_RESPONSE_BYTES`). @default MAX_RESPONSE_BYTES (64 MiB) */
  maxResponseBytes?: number;
}

/** A decoded value with the revisions a compare-and-swap needs. */
export interface Versioned<T> {
  key: string;
  value: T;
  /** Revision of the last change of this key (compare for CAS). */
  modRevision: string;
  createRevision: string;
}

/** A condition of a transaction. */
export type Compare =
  | { key: string; modRevision: string }
  | { key: string; absent: true }
  | { key: string; createRevision: string }
  /** The key exists and is bound to this lease (an executor's self-fence). */
  | { key: string; lease: string };

/**
 * A write in a transaction. A put may carry `json`, its value already serialized
 * (`JSON.stringify(value)`, made by `encodedPut`): the transaction's size and the request then
 * use it instead of serializing the value again. Ops are not changed once made.
 */
export type Op = { put: string; value: unknown; lease?: string; json?: string } | { delete: string };

/**
 * A put of `value` at `key` with its JSON made once, for a caller that sizes a transaction
 * (`txnSize`) before sending it: a record is serialized once instead of twice.
 */
export function encodedPut(key: string, value: unknown, lease?: string): Op {
  return { put: key, value, json: JSON.stringify(value), ...(lease !== undefined ? { lease } : {}) };
}

/** Most operations etcd accepts in one transaction (`--max-txn-ops`). */
export const MAX_TXN_OPS = 128;
/** Largest transaction we send, in bytes: below etcd's 1.5 MiB request limit with headroom. */
export const MAX_TXN_BYTES = 1024 * 1024;

export class TxnTooLargeError extends Error {}

/** Retries of a failed read (re-sent at once, most likely to another member). */
export const READ_RETRIES = 3;
/**
 * Retries of a write or lease grant that was never sent (`neverSent`). The pool picks a member at
 * random for each call and opens a member's circuit after 3 failures in a row, so the 4th send
 * at the latest goes to another member.
 */
export const UNSENT_RETRIES = 3;

/** An event of an informer. */
export interface WatchEvent<T> {
  type: 'put' | 'delete';
  key: string;
  value?: T;
  modRevision: string;
  /** The key's create revision (a put's); a key deleted and made again has a new one. */
  createRevision?: string;
}

/**
 * `ev` with its `value` the JSON of `raw`, decoded when a handler first reads it (then kept): a
 * handler that needs only the key and revision — a process's own write coming back, a change it
 * already holds — costs no decode. `value` is an ordinary enumerable property to every reader
 * (spread, `JSON.stringify`); an empty `raw` (a delete's) is `undefined`. A value that is not JSON
 * throws where it is read.
 */
export function withValueDecodedOnRead<T>(ev: Omit<WatchEvent<T>, 'value'>, raw: Buffer): WatchEvent<T> {
  if (raw.length === 0) return { ...ev, value: undefined };
  let decoded: T | undefined;
  let pending: Buffer | undefined = raw;
  return Object.defineProperty(ev as WatchEvent<T>, 'value', {
    enumerable: true,
    configurable: true,
    get(): T | undefined {
      if (pending) {
        decoded = JSON.parse(pending.toString()) as T;
        pending = undefined;
      }
      return decoded;
    },
    set(v: T | undefined) {
      pending = undefined;
      decoded = v;
    },
  });
}

/** Handlers of an informer. */
export interface InformerHandlers<T> {
  /** The full listing at `revision`; called once, first. */
  onSync(items: Array<Versioned<T>>, revision: string): void;
  /**
   * One change after the listing. In revision order as watched; a relist (after a compaction,
   * and periodically) delivers what the view lacked as events too, so for one key revisions
   * only go up, but a relist's correction may carry an older revision than another key's
   * event already delivered.
   */
  onEvent(event: WatchEvent<T>): void;
}

export function decode<T>(kv: IKeyValue): Versioned<T> {
  return { key: kv.key.toString(), value: JSON.parse(kv.value.toString()) as T, modRevision: kv.mod_revision, createRevision: kv.create_revision };
}

/** Throws a client failure as `StoreUnavailableError` (retry after 1 s); a `StoreError` is rethrown as it is. */
export function unavailable(err: unknown): never {
  if (err instanceof StoreError) throw err;
  throw new StoreUnavailableError(`the store is unavailable (${describeError(err)})`, err);
}

/**
 * Errors that prove a write was not applied: it never left this process (every member's
 * circuit open, client closed), or etcd answered with a refusal that applies nothing
 * (bad request, too large, no space, permission, unknown lease). Anything else — deadline,
 * unavailable, cancelled, reset, an unrecognised error — leaves the outcome unknown.
 */
const NOT_APPLIED = [
  ClientClosedError,
  GRPCInvalidArgumentError,
  GRPCResourceExhastedError,
  GRPCFailedPreconditionError,
  GRPCOutOfRangeError,
  GRPCNotFoundError,
  GRPCAlreadyExistsError,
  GRPCNotImplementedError,
  GRPCUnauthenticatedError,
  EtcdPermissionDeniedError,
  EtcdLeaseInvalidError,
];

/**
 * grpc-js's own words for a call that never had a connection to go out on: the member refused
 * or dropped the connection before the call was sent (`14 UNAVAILABLE: No connection
 * established. Last error: … ECONNREFUSED …`), or the deadline passed while the call still
 * waited for a connection (`4 DEADLINE_EXCEEDED: … Waiting for LB pick`, a paused member).
 */
const NEVER_SENT = [/^14 UNAVAILABLE: (?:\w+: )?No connection established/, /^4 DEADLINE_EXCEEDED: .*Waiting for LB pick/];

/** True when `err` says the call never left this process for want of a connection (see `NEVER_SENT`): safe to send again to another member. */
export function neverSent(err: unknown): boolean {
  const message = (err as Error)?.message;
  return typeof message === 'string' && NEVER_SENT.some((re) => re.test(message));
}

/** True when `err` proves the call was not applied (see `NOT_APPLIED` and `neverSent`). */
export function certainlyNotApplied(err: unknown): boolean {
  if (err instanceof Error && 'isBrokenCircuitError' in err) return true; // blocked before sending (cockatiel's circuit breaker)
  return NOT_APPLIED.some((c) => err instanceof c) || neverSent(err);
}

/**
 * The client's global fault policy: run each call once. Its default re-sends a call that
 * failed as unavailable or deadline-exceeded, up to 3 times, to another member: a txn that
 * had committed then fails its own compare and reads as a conflict.
 */
const sendOnce = {
  execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal })),
};

type FaultPolicy = NonNullable<NonNullable<NonNullable<ConstructorParameters<typeof Etcd3>[0]>['faultHandling']>['global']>;

/** A call as the test seam sees it: a txn's compares and ops, or a read. */
export interface SeamCall {
  op: 'range' | 'txn';
  /** True for a txn with ops (sent once; a lost answer is `OutcomeUnknownError`). */
  writes: boolean;
  compares?: Compare[];
  ops?: Op[];
  /** What a read asks for (set by `get` and `list`): one key, or every key under a prefix (`prefix`). */
  read?: { key: string; prefix: boolean };
}

/**
 * Test seam around every unary call: `send` sends it to etcd. A test can send it and then
 * throw (the commit landed, the answer was lost), send it twice (what the client's own retry
 * did), or throw without sending (a member down). Production code never sets it.
 */
export type CallSeam = <T>(call: SeamCall, send: () => Promise<T>) => Promise<T>;

/**
 * The HTTP/2 flow-control window of every etcd client (per stream and per connection), in bytes:
 * how far etcd may send ahead of what the process has read. Watches of a busy process fall behind
 * with Node's 64 KiB default (see `connect`). @default 8 MiB
 */
export const FLOW_CONTROL_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * Largest answer this client reads, in bytes (`grpc.max_receive_message_length`; grpc-js's default
 * is 4 MiB, etcd's Go client's 2 GiB). A read whose answer would be larger asks for less: a page of
 * fewer keys, a transaction of fewer ranges (`ResponseTooLargeError`, `fewerKeys`). So a listing of records
 * near their size limit pages itself down instead of failing every time (a restart listing a few
 * thousand workflows, ~1 KiB each, in one 5,000-key page got 5.2 MB, over the old 4 MiB, and every
 * quota replica failed its start until the records went). @default 64 MiB
 */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * A read's answer was over `MAX_RESPONSE_BYTES`: the same request would fail again, so it is not
 * re-sent; the store's reads ask for fewer keys instead (`fewerKeys`). Thrown to a caller only by a
 * read of one key (never: etcd takes no value over its 1.5 MiB request limit). Nothing was written.
 */
export class ResponseTooLargeError extends StoreUnavailableError {
  /**
   * @param answerBytes - the answer's size as grpc-js reported it, in bytes (undefined: not said)
   * @param limitBytes - the receive limit it was over, in bytes
   */
  constructor(
    message: string,
    cause: unknown,
    readonly answerBytes: number | undefined,
    readonly limitBytes: number,
  ) {
    super(message, cause);
  }
}

/**
 * grpc-js's own refusal of an answer over the receive limit, said as FAILED_PRECONDITION instead of
 * RESOURCE_EXHAUSTED. etcd3 takes RESOURCE_EXHAUSTED for a fault of the member: it resets the
 * member's channels (every watch on them resumes) and counts it in the member's circuit, which
 * shuts the member out for 5 s after 3 in a row, while the member is fine and the read asks for
 * less at once (`ResponseTooLargeError`). The message stays (`isResponseTooLarge`).
 */
const tooLargeIsNoMemberFault: Interceptor = (options, nextCall) =>
  new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      next(metadata, {
        onReceiveStatus(status, nextStatus) {
          const tooLarge = status.code === GrpcStatus.RESOURCE_EXHAUSTED && /Received message larger than max/.test(status.details);
          nextStatus(tooLarge ? { ...status, code: GrpcStatus.FAILED_PRECONDITION } : status);
        },
      });
    },
  });

/** Times a listing read at one revision starts again when etcd compacted that revision meanwhile. */
export const COMPACTED_RESTARTS = 5;

/** Whether `err` (or the error it wraps) is etcd refusing a read at a revision it compacted. */
export function isCompacted(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (/required revision has been compacted/.test(e.message)) return true;
  return false;
}

/** Whether `err` is grpc-js refusing an answer over its receive limit (`RESOURCE_EXHAUSTED: Received message larger than max (A vs L)`). */
export function isResponseTooLarge(err: unknown): boolean {
  return err instanceof Error && /Received message larger than max/.test(err.message);
}

/**
 * How many of `n` keys (or ranges) to ask for after an answer for `n` was too large: in
 * proportion to the limit over the answer's size, with a fifth to spare, and at most half —
 * so one refusal is mostly all it takes.
 *   fewer = max(1, floor(n × min(½, 0.8 × limit ÷ answer)))
 */
export function fewerKeys(n: number, err: ResponseTooLargeError): number {
  const ratio = err.answerBytes ? (0.8 * err.limitBytes) / err.answerBytes : 0.5;
  return Math.max(1, Math.floor(n * Math.min(0.5, ratio)));
}

/** The one connection a process has to etcd. */
export class EtcdStore {
  readonly client: Etcd3;
  readonly keys: Keys;
  /**
   * When the client's watch stream last answered anything (a watch created, events, progress),
   * ms of CLOCK_MONOTONIC; -Infinity before it ever did. An informer whose watch is not yet
   * acknowledged tears the stream down only if the stream has not answered for its timeout: a
   * stream that answers is alive, and its watch is only queued behind others (etcd3 creates
   * watches one at a time) — hundreds of informers re-watching at once must not reset it in turn.
   */
  watchStreamAnsweredAt = Number.NEGATIVE_INFINITY;
  /** How many times an informer tore the client's watch stream down because it did not answer (see `InformerOptions.watchAckTimeoutMs`). */
  watchStreamResets = 0;
  readonly callTimeoutMs: number;
  /** Test seam around every call (see `CallSeam`). @default none: each call is sent as it is */
  seam?: CallSeam;

  constructor(readonly options: StoreOptions) {
    this.callTimeoutMs = options.callTimeoutMs ?? 2000;
    this.client = this.connect(options.endpoints);
    guardWatchStream(this.client, options.onWatchStreamFault ?? ((err) => console.warn(`etcd watch stream resynced: ${err.message}`)), () => {
      this.watchStreamAnsweredAt = monotonicMs();
    });
    this.keys = new Keys(options.prefix ?? '/batch/');
  }

  /**
   * A client of `hosts` with this store's TLS, deadlines and fault policy: every call sent once.
   * With `ownCircuit: false` a member is never skipped after failures (a client of one member,
   * whose caller handles each failure, wants a restarted member used at once).
   */
  connect(hosts: string[], { ownCircuit = true } = {}): Etcd3 {
    const { tls } = this.options;
    const timeout = this.callTimeoutMs;
    return new Etcd3({
      hosts,
      dialTimeout: timeout,
      ...(tls ? { credentials: { rootCertificate: tls.ca, ...(tls.cert ? { certChain: tls.cert } : {}), ...(tls.key ? { privateKey: tls.key } : {}) } } : {}),
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout, interceptors: [tooLargeIsNoMemberFault] }),
      // A watch stream on a member that stopped answering (paused, partitioned) would otherwise
      // hang unnoticed: a ping every 10 s (etcd refuses pings closer than its 5 s
      // --grpc-keepalive-min-time) unanswered for 5 s closes the channel, and informers resume
      // from their own revision on another member.
      // HTTP/2 flow control: Node's default window is 64 KiB per stream and per connection, so etcd
      // could send a watch stream only 64 KiB ahead of what this process had read. A busy process
      // (a burst of events to decode) then stalled every watch on the connection, etcd marked them
      // slow and caught them up from its backend every 100 ms: `bench pipelines` at 1,000 runs saw
      // a job's commit reach quota's watch p50 1.3 s later during the submission burst; with
      // FLOW_CONTROL_WINDOW_BYTES, 51–130 ms, and etcd reported no slow watcher. (etcd's Go clients
      // grow their window by BDP estimation; grpc-js keeps the one it is given.)
      grpcOptions: {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
        'grpc.max_receive_message_length': this.options.maxResponseBytes ?? MAX_RESPONSE_BYTES,
      },
      faultHandling: { global: sendOnce as unknown as FaultPolicy, ...(ownCircuit ? {} : { host: () => sendOnce as unknown as FaultPolicy }) },
    });
  }

  async close(): Promise<void> {
    this.client.close();
  }

  /**
   * Runs one etcd call, observed. A read (`range`, or a txn that writes nothing) is re-sent
   * up to `READ_RETRIES` times on a recoverable failure, then throws `StoreUnavailableError`. A
   * write is sent again only when it never left (`neverSent`, up to `UNSENT_RETRIES` times: a
   * member is down); a failure that does not prove it unapplied throws `OutcomeUnknownError`.
   */
  private async call<T>(op: 'range' | 'txn', fn: () => Promise<T>, writes = op === 'txn', detail?: Pick<SeamCall, 'compares' | 'ops' | 'read'>): Promise<T> {
    const started = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await (this.seam ? this.seam({ op, writes, ...detail }, fn) : fn());
        this.options.onCall?.(op, (performance.now() - started) / 1000, true);
        return out;
      } catch (err) {
        // A write's answer over the limit (never seen: a write answers a header) was applied by etcd: only this client refused it.
        if (writes && isResponseTooLarge(err)) throw new OutcomeUnknownError(err);
        if (!writes && isResponseTooLarge(err)) {
          this.options.onCall?.(op, (performance.now() - started) / 1000, false);
          const limit = this.options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
          const said = /larger than max \((\d+) vs \d+\)/.exec((err as Error).message);
          throw new ResponseTooLargeError(`the store's answer was over ${limit} bytes (${describeError(err)})`, err, said ? Number(said[1]) : undefined, limit);
        }
        if (writes ? attempt < UNSENT_RETRIES && neverSent(err) : attempt < READ_RETRIES && err instanceof Error && isRecoverableError(err)) continue;
        this.options.onCall?.(op, (performance.now() - started) / 1000, false);
        if (writes && !certainlyNotApplied(err)) throw new OutcomeUnknownError(err);
        return unavailable(err);
      }
    }
  }

  /** Reads one key. */
  async get<T>(key: string): Promise<Versioned<T> | undefined> {
    const res = await this.call('range', () => this.client.kv.range({ key: Buffer.from(key) }), false, { read: { key, prefix: false } });
    return res.kvs[0] ? decode<T>(res.kvs[0]) : undefined;
  }

  /**
   * Reads many keys: `MAX_TXN_OPS` keys per request (one read-only transaction), each request at
   * `revision`, or at the current one when absent. A request whose answer is over
   * `MAX_RESPONSE_BYTES` is read in pieces of fewer keys (`fewerKeys`), all at `revision`, or
   * without one at the first piece's.
   */
  async getMany<T>(keys: string[], revision?: string): Promise<Array<Versioned<T> | undefined>> {
    const out: Array<Versioned<T> | undefined> = [];
    for (let i = 0; i < keys.length; i += MAX_TXN_OPS) out.push(...(await this.getChunk<T>(keys.slice(i, i + MAX_TXN_OPS), revision)).values);
    return out;
  }

  /** `getMany` of at most `MAX_TXN_OPS` keys in one transaction, in pieces of fewer keys while its answer is too large. */
  private async getChunk<T>(chunk: string[], revision: string | undefined): Promise<{ values: Array<Versioned<T> | undefined>; revision: string }> {
    try {
      const res = await this.call('range', () =>
        this.client.kv.txn({ success: chunk.map((k) => ({ request_range: { key: Buffer.from(k), ...(revision ? { revision } : {}) } })) }),
      );
      return { values: res.responses.map((r) => (r.response_range.kvs[0] ? decode<T>(r.response_range.kvs[0]) : undefined)), revision: res.header.revision };
    } catch (err) {
      if (!(err instanceof ResponseTooLargeError) || chunk.length === 1) throw err;
      // In pieces of fewer keys, the first at `revision`, the others at the first's.
      // (An answer's header says the current revision, not the one asked for: `revision` when given.)
      const size = fewerKeys(chunk.length, err);
      const first = await this.getChunk<T>(chunk.slice(0, size), revision);
      const at = revision ?? first.revision;
      const values = first.values;
      for (let i = size; i < chunk.length; i += size) values.push(...(await this.getChunk<T>(chunk.slice(i, i + size), at)).values);
      return { values, revision: at };
    }
  }

  /**
   * Lists every key under each of many prefixes: `MAX_TXN_OPS` prefixes per request (one
   * read-only transaction, one revision), at most `pageSize` keys of a prefix in it; a prefix
   * with more is listed whole on its own (`listAll`), and so are the prefixes of a request whose
   * answer is over `MAX_RESPONSE_BYTES`, in requests of fewer prefixes (each at its own revision). Many small prefixes — the groups and results
   * of many jobs — cost a few requests instead of one each.
   */
  async listMany<T>(prefixes: readonly string[], pageSize = 1000): Promise<Array<Array<Versioned<T>>>> {
    const out: Array<Array<Versioned<T>>> = [];
    for (let i = 0; i < prefixes.length; i += MAX_TXN_OPS) out.push(...(await this.listChunk<T>(prefixes.slice(i, i + MAX_TXN_OPS), pageSize)));
    return out;
  }

  /** `listMany` of at most `MAX_TXN_OPS` prefixes in one transaction; in pieces of fewer prefixes while its answer is too large (one prefix: `listAll`, which pages itself). */
  private async listChunk<T>(chunk: readonly string[], pageSize: number): Promise<Array<Array<Versioned<T>>>> {
    let res: RPC.ITxnResponse;
    try {
      res = await this.call('range', () =>
        this.client.kv.txn({ success: chunk.map((p) => ({ request_range: { key: Buffer.from(p), range_end: prefixEnd(p), limit: pageSize } })) }),
      );
    } catch (err) {
      if (!(err instanceof ResponseTooLargeError)) throw err;
      if (chunk.length === 1) return [(await this.listAll<T>(chunk[0], pageSize)).items];
      // In pieces of fewer prefixes; a piece of one is listed page by page at once (its transaction would hold the same range).
      const size = fewerKeys(chunk.length, err);
      const out: Array<Array<Versioned<T>>> = [];
      for (let i = 0; i < chunk.length; i += size)
        out.push(...(size === 1 ? [(await this.listAll<T>(chunk[i], pageSize)).items] : await this.listChunk<T>(chunk.slice(i, i + size), pageSize)));
      return out;
    }
    const out: Array<Array<Versioned<T>>> = [];
    for (let k = 0; k < chunk.length; k++) {
      const r = res.responses[k].response_range;
      out.push(r.more ? (await this.listAll<T>(chunk[k])).items : r.kvs.map((kv) => decode<T>(kv)));
    }
    return out;
  }

  /**
   * Lists keys under a prefix in key order (`descending`: the reverse), starting after
   * `startAfter` in that order (exclusive), at most `limit` of them (0: all). A page whose answer
   * would be over `MAX_RESPONSE_BYTES` comes back shorter, with `more` (a listing of all keys is
   * then read page by page, at the first page's revision).
   */
  async list<T>(
    prefix: string,
    opts: { limit?: number; startAfter?: string; descending?: boolean } = {},
  ): Promise<{ items: Array<Versioned<T>>; revision: string; more: boolean }> {
    return this.restartedOnCompaction(() => this.listOnce<T>(prefix, opts));
  }

  /** `list`, once: a listing of all keys read in pages fails when etcd compacts its revision meanwhile. */
  private async listOnce<T>(
    prefix: string,
    opts: { limit?: number; startAfter?: string; descending?: boolean },
  ): Promise<{ items: Array<Versioned<T>>; revision: string; more: boolean }> {
    const range = opts.descending
      ? // keys in [prefix, startAfter), the highest first
        {
          key: Buffer.from(prefix),
          range_end: opts.startAfter ? Buffer.from(opts.startAfter) : prefixEnd(prefix),
          sort_order: 'Descend' as const,
          sort_target: 'Key' as const,
        }
      : { key: opts.startAfter ? Buffer.concat([Buffer.from(opts.startAfter), Buffer.from([0])]) : Buffer.from(prefix), range_end: prefixEnd(prefix) };
    const { res, limit } = await this.rangePage(range, opts.limit ?? 0, undefined, { read: { key: prefix, prefix: true } });
    const items = res.kvs.map((kv) => decode<T>(kv));
    if (!res.more || (opts.limit ?? 0) > 0) return { items, revision: res.header.revision, more: res.more };
    // All keys were asked for and the answer was split: the rest, page by page, at the same revision.
    await this.readRestOfPages(range, items, limit, res.header.revision, !!opts.descending);
    return { items, revision: res.header.revision, more: false };
  }

  /**
   * The pages of `range` after `items` (its pages so far, in its order: `descending` or not), each
   * of at most `size` keys (fewer while an answer is too large, see `rangePage`), at `revision`,
   * appended to `items` until none is left.
   */
  private async readRestOfPages<T>(range: RPC.IRangeRequest, items: Array<Versioned<T>>, size: number, revision: string, descending: boolean): Promise<void> {
    for (let more = true; more;) {
      const last = Buffer.from(items[items.length - 1].key);
      const next = descending ? { ...range, range_end: last } : { ...range, key: Buffer.concat([last, Buffer.from([0])]) };
      const page = await this.rangePage(next, size, revision);
      items.push(...page.res.kvs.map((kv) => decode<T>(kv)));
      more = page.res.more;
      size = page.limit;
    }
  }

  /**
   * One range of at most `limit` keys (0: all), at `revision` (absent: the current one), asking
   * for fewer while the answer is over `MAX_RESPONSE_BYTES`: `fewerKeys` of the keys it held (the
   * limit, or the range's count when that is less: a count-only read). Returns the answer and the
   * limit it was read with (the next page's).
   */
  private async rangePage(
    range: RPC.IRangeRequest,
    limit: number,
    revision?: string,
    detail?: Pick<SeamCall, 'read'>,
  ): Promise<{ res: RPC.IRangeResponse; limit: number }> {
    for (;;) {
      try {
        const res = await this.call('range', () => this.client.kv.range({ ...range, limit, ...(revision ? { revision } : {}) }), false, detail);
        return { res, limit };
      } catch (err) {
        if (!(err instanceof ResponseTooLargeError) || limit === 1) throw err;
        // In proportion to the keys the answer held: the limit, or fewer when the range has fewer.
        const keys = await this.call('range', () => this.client.kv.range({ ...range, count_only: true, ...(revision ? { revision } : {}) }), false, detail);
        const held = limit === 0 ? Number(keys.count) : Math.min(limit, Number(keys.count));
        if (held <= 1) throw err;
        limit = fewerKeys(held, err);
      }
    }
  }

  /** How many keys there are under a prefix (counted by etcd: no value is read). */
  async count(prefix: string): Promise<number> {
    const res = await this.call('range', () => this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), count_only: true }));
    return Number(res.count);
  }

  /**
   * Lists every key under a prefix, page by page, at the revision of the first page: `pageSize`
   * keys a page, fewer while a page's answer would be over `MAX_RESPONSE_BYTES` (`fewerKeys`, kept
   * for the pages after).
   */
  async listAll<T>(prefix: string, pageSize = 5000): Promise<{ items: Array<Versioned<T>>; revision: string }> {
    return this.restartedOnCompaction(() => this.listAllOnce<T>(prefix, pageSize));
  }

  /**
   * `fn` again from its start when etcd compacted the revision it read its later pages at
   * (`required revision has been compacted`), up to `COMPACTED_RESTARTS` times, as a Kubernetes
   * reflector lists again on 410 Gone: a listing of many pages takes longer than the time between
   * two compactions. (The nemesis: a scheduler's start listing ~76,000 jobs failed this way and
   * exited, again and again.)
   */
  private async restartedOnCompaction<R>(fn: () => Promise<R>): Promise<R> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= COMPACTED_RESTARTS || !isCompacted(err)) throw err;
      }
    }
  }

  /** `listAll`, once at one revision. */
  private async listAllOnce<T>(prefix: string, pageSize: number): Promise<{ items: Array<Versioned<T>>; revision: string }> {
    const range = { key: Buffer.from(prefix), range_end: prefixEnd(prefix) };
    const first = await this.rangePage(range, pageSize, undefined, { read: { key: prefix, prefix: true } });
    const revision = first.res.header.revision;
    const items = first.res.kvs.map((kv) => decode<T>(kv));
    if (first.res.more) await this.readRestOfPages(range, items, first.limit, revision, false);
    return { items, revision };
  }

  /**
   * Keys (no values) and their mod revisions in `[from, end)`, at most `limit`, at `revision`
   * (a linearizable read at the current revision when absent).
   */
  async keysAt(
    from: Buffer,
    end: Buffer,
    limit: number,
    revision?: string,
  ): Promise<{ keys: Array<{ key: string; modRevision: string }>; revision: string; more: boolean }> {
    const res = await this.call('range', () => this.client.kv.range({ key: from, range_end: end, limit, keys_only: true, ...(revision ? { revision } : {}) }));
    return { keys: res.kvs.map((kv) => ({ key: kv.key.toString(), modRevision: kv.mod_revision })), revision: res.header.revision, more: res.more };
  }

  /**
   * Commits one transaction: all compares hold and every op applies, or nothing does.
   * Returns `false` when a compare failed (the caller lost a race and must re-read).
   * Throws `OutcomeUnknownError` when a txn with ops was sent and its answer lost, and
   * `StoreUnavailableError` when it certainly did not apply. A txn without ops is a read.
   */
  async txn(compares: Compare[], ops: Op[]): Promise<{ succeeded: boolean; revision: string }> {
    const req: RPC.ITxnRequest = { compare: compares.map(toCompare), success: ops.map(toRequestOp) };
    if (req.compare!.length + req.success!.length > MAX_TXN_OPS * 2 || req.success!.length > MAX_TXN_OPS || req.compare!.length > MAX_TXN_OPS) {
      throw new TxnTooLargeError(`transaction of ${req.compare!.length} compares and ${req.success!.length} ops is over ${MAX_TXN_OPS}`);
    }
    const res = await this.call('txn', () => this.client.kv.txn(req), ops.length > 0, { compares, ops });
    if (res.succeeded && ops.length > 0 && BigInt(res.header.revision) > this.lastCommittedRevision) this.lastCommittedRevision = BigInt(res.header.revision);
    return { succeeded: res.succeeded, revision: res.header.revision };
  }

  /**
   * Revision of the newest write this connection committed ("0" before any): a decision made
   * after writes (a scheduler that asked tasks to stop) waits until its caches reach it.
   */
  lastCommittedRevision = 0n;

  /**
   * Starts an informer over a prefix: lists it (`onSync`), then watches from the listing's
   * revision so no event is missed. After a disconnect the watch resumes from the informer's
   * own last revision + 1; after a compaction past it, and periodically, the prefix is listed
   * again and what the view lacked is delivered as events (see `Informer`).
   */
  async inform<T>(prefix: string, handlers: InformerHandlers<T>, options: InformerOptions = {}): Promise<Informer> {
    const informer = new Informer(this, prefix, handlers as InformerHandlers<unknown>, options);
    await informer.start();
    return informer;
  }

  /**
   * Grants a lease of `ttlSeconds` that nobody keeps alive: what is put under it is deleted by
   * etcd itself `ttlSeconds` after the grant, whether or not this process lives on. A grant
   * whose answer was lost leaves a lease nobody uses, which expires as well.
   * @returns the lease id
   * @throws StoreUnavailableError when etcd did not answer
   */
  async grantExpiringLease(ttlSeconds: number): Promise<string> {
    try {
      const res = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }, { deadline: Date.now() + this.callTimeoutMs });
      return res.ID;
    } catch (err) {
      return unavailable(err);
    }
  }

  /** Grants the process lease (one per process) and keeps it alive (see `ProcessLease`). */
  async grantLease(ttlSeconds: number, options: ProcessLeaseOptions = {}): Promise<ProcessLease> {
    const lease = new ProcessLease(this, ttlSeconds, options);
    await lease.ready();
    return lease;
  }
}

/** The parts of etcd3's `WatchManager` (one per client: every watcher of the client on one stream) that `guardWatchStream` touches. */
interface WatchManagerInternals {
  state: number;
  stream?: NodeJS.EventEmitter;
  client: { watch(...args: unknown[]): Promise<NodeJS.EventEmitter> };
  handleResponse(res: RPC.IWatchResponse): void;
  handleCreatedResponse(res: RPC.IWatchResponse): void;
  handleError(err: Error): void;
}

/**
 * Keeps etcd3's watch stream handler from throwing out of a stream event (an uncaught
 * exception: the process dies). Its `WatchManager` looks each reply's watcher up by watch id and
 * throws ("Failed to find watcher for IWatchResponse", "Could not find watcher corresponding to
 * create response") when there is none, which legitimately happens:
 * - after a stream error (a watch the informer cancelled as unacknowledged tears the stream
 *   down; a member went away), grpc-js still emits the replies already read from the old stream,
 *   while the manager has forgotten every watch id (and, once a new stream is up, has given the
 *   same ids — they count from 0 per stream — to other watchers, which would get another
 *   prefix's events). Replies of a stream that is not the manager's current one are dropped:
 *   its watchers were told `disconnected` and resume from their own revision.
 * - on the current stream, a reply for a watch the client no longer knows (a cancel racing
 *   with etcd's replies). The reply is reported (`onFault`) and the stream torn down as if it
 *   had failed: every watcher is told `disconnected` and resumes (an informer from its own
 *   revision + 1), so nothing is skipped and nothing is swallowed silently.
 */
function guardWatchStream(client: Etcd3, onFault: (err: Error) => void, onAnswer: () => void): void {
  const manager = (client as unknown as { watchManager?: WatchManagerInternals }).watchManager;
  if (!manager || typeof manager.handleResponse !== 'function' || typeof manager.client?.watch !== 'function') return;
  const rpc = manager.client;
  const watch = rpc.watch.bind(rpc);
  rpc.watch = async (...args: unknown[]) => {
    const stream = await watch(...args);
    const emit = stream.emit.bind(stream);
    stream.emit = (event: string | symbol, ...rest: unknown[]) => {
      // A reply read from a stream the manager has left: not this stream's watchers' any more.
      if (event === 'data' && (manager.stream !== stream || manager.state !== WATCH_STREAM_CONNECTED)) return false;
      return emit(event, ...rest);
    };
    return stream;
  };
  const guard = (name: 'handleResponse' | 'handleCreatedResponse') => {
    const handle = manager[name].bind(manager);
    manager[name] = (res: RPC.IWatchResponse) => {
      onAnswer();
      try {
        handle(res);
      } catch (err) {
        onFault(
          new Error(
            `${(err as Error).message} (watch id ${res.watch_id}, revision ${res.header?.revision}); the watch stream is opened again and every watch resumes`,
          ),
        );
        if (manager.state === WATCH_STREAM_CONNECTED) manager.handleError(err as Error);
      }
    };
  };
  guard('handleResponse');
  guard('handleCreatedResponse');
}

/** Options of an informer. */
export interface InformerOptions {
  /**
   * Period of the safety relist, in milliseconds, jittered by ±20%: the prefix is listed
   * again and whatever the view lacks is delivered as events. A backstop for a watch that
   * failed without saying so (e.g. a stream to a member that stopped answering). 0 turns it off.
   * @default 300000 (5 minutes)
   */
  relistEveryMs?: number;
  /**
   * How long a (re)created watch may wait for etcd's acknowledgement, in milliseconds, before
   * the client's watch stream is torn down (its channel to that member closed) and the watch
   * created again on a new stream, possibly on another member: a member that accepts
   * connections but does not answer.
   * @default 5000
   */
  watchAckTimeoutMs?: number;
}

/** `waitForRevision` of an informer that was stopped. */
export class InformerStoppedError extends Error {
  constructor(readonly prefix: string) {
    super(`the informer of ${prefix} was stopped`);
    this.name = 'InformerStoppedError';
  }
}

/** etcd3's `WatchManager` state when it has a stream (its `State.Connected`). */
const WATCH_STREAM_CONNECTED = 2;
/** Keys per page of a relist. */
const RELIST_PAGE = 5000;
const FIRST_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5000;

/**
 * List-then-watch over one prefix. The watch always resumes from this informer's own
 * revision + 1 (never from the client's idea of it: etcd3 resumes from the header revision of
 * the last reply, `created` replies included, which skips events a catching-up watch had not
 * sent yet). A watch that is cancelled by etcd (compaction past its revision) and the periodic
 * safety relist list the prefix again and deliver the difference from the view as events, so
 * handlers see `onSync` once, then only events whose revisions never go back for a key.
 */
export class Informer {
  private rev = 0n;
  /** Mod revision of every key in the view: what a relist compares against. */
  private readonly known = new Map<string, bigint>();
  private watcher?: Watcher;
  /** Bumped whenever the current watch is dropped: callbacks of an older watch are ignored. */
  private generation = 0;
  /** The generation of the last watch etcd acknowledged (created). */
  private acknowledged = -1;
  private stopped = false;
  private relisting?: Promise<void>;
  private relistTimer?: NodeJS.Timeout;
  private ackTimer?: NodeJS.Timeout;
  private backoffMs = FIRST_BACKOFF_MS;
  /** Pending backoff sleeps: `stop()` ends them at once. */
  private readonly sleepers = new Set<() => void>();
  private readonly waiters = new Set<{ revision: bigint; resolve: () => void; reject: (err: Error) => void }>();
  private readonly relistEveryMs: number;
  private readonly watchAckTimeoutMs: number;

  constructor(
    private readonly store: EtcdStore,
    readonly prefix: string,
    private readonly handlers: InformerHandlers<unknown>,
    options: InformerOptions = {},
  ) {
    this.relistEveryMs = options.relistEveryMs ?? 300_000;
    this.watchAckTimeoutMs = options.watchAckTimeoutMs ?? 5000;
  }

  /**
   * The revision up to which the view delivered to the handlers is complete: every change of
   * the prefix at or below it has been delivered (as part of a listing or as an event). It
   * advances with each listing, each batch of events (to the last event's revision, not the
   * reply header's, which can run ahead of events etcd has yet to send), and each progress
   * notification of the watch — etcd sends those only to a watch that has caught up, every
   * `--experimental-watch-progress-notify-interval` (our etcd members: 2 s; etcd's default
   * 10 min), so the revision of an idle prefix advances too. Never decreases.
   */
  get revision(): string {
    return String(this.rev);
  }

  /** Lists the prefix (`onSync`), then watches from the listing's revision + 1. */
  async start(): Promise<void> {
    const { items, revision } = await this.store.listAll<unknown>(this.prefix);
    if (this.stopped) return;
    for (const kv of items) this.known.set(kv.key, BigInt(kv.modRevision));
    this.handlers.onSync(items, revision);
    this.advance(BigInt(revision));
    this.openWatch();
    this.scheduleRelist();
  }

  /**
   * Resolves once the view is complete up to `revision` (see `revision`). Rejects with
   * `InformerStoppedError` when the informer stops first, or with the signal's reason.
   */
  waitForRevision(revision: string | bigint, signal?: AbortSignal): Promise<void> {
    const target = BigInt(revision);
    if (this.rev >= target) return Promise.resolve();
    if (this.stopped) return Promise.reject(new InformerStoppedError(this.prefix));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.waiters.delete(waiter);
        reject(signal!.reason);
      };
      const waiter = {
        revision: target,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Stops at once: no handler runs after this returns, even while etcd does not answer. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.relistTimer);
    this.dropWatch(true);
    for (const wake of [...this.sleepers]) wake();
    for (const w of [...this.waiters]) w.reject(new InformerStoppedError(this.prefix));
    this.waiters.clear();
  }

  private openWatch(): void {
    if (this.stopped) return;
    const gen = ++this.generation;
    // `watcher()`, not `create()`: listeners are in place before any reply can arrive.
    const w = this.store.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(this.rev + 1n))
      .watcher();
    this.watcher = w;
    const current = () => gen === this.generation && !this.stopped;
    this.armAckTimer(current, monotonicMs());
    w.on('connected', () => {
      if (!current()) return;
      this.acknowledged = gen;
      clearTimeout(this.ackTimer);
      this.backoffMs = FIRST_BACKOFF_MS;
    });
    w.on('data', (res: RPC.IWatchResponse) => {
      if (current()) this.apply(res);
    });
    // The client would re-attach this watcher from the revision it tracks itself: replace it.
    w.on('disconnected', () => {
      if (current()) this.rewatch();
    });
    // etcd cancelled the watch (its revision was compacted, or another reason): relist.
    // The client has already dropped it, so no cancel is sent.
    w.on('error', () => {
      if (!current()) return;
      this.dropWatch(false);
      void this.relist();
    });
  }

  /**
   * Waits for the watch's acknowledgement until `watchAckTimeoutMs` after `since` and after the
   * stream's last answer, whichever is later: a stream that keeps answering others is alive.
   */
  private armAckTimer(current: () => boolean, since: number): void {
    const due = Math.max(since, this.store.watchStreamAnsweredAt) + this.watchAckTimeoutMs;
    // Decided after the poll phase (setImmediate): a timer that fires late, after the event loop
    // was busy, must first see the answers already waiting on the socket.
    this.ackTimer = setTimeout(
      () =>
        setImmediate(() => {
          // (the acknowledgement may have come between the timer and this check)
          if (!current() || this.acknowledged === this.generation) return;
          if (Math.max(since, this.store.watchStreamAnsweredAt) + this.watchAckTimeoutMs > monotonicMs()) this.armAckTimer(current, since);
          else this.ackTimedOut();
        }),
      Math.max(1, due - monotonicMs()),
    );
    this.ackTimer.unref();
  }

  /** Drops the current watch; its callbacks are ignored from now on. */
  private dropWatch(cancel: boolean): void {
    this.generation++;
    clearTimeout(this.ackTimer);
    const w = this.watcher;
    this.watcher = undefined;
    // Not awaited: a cancel sent to a member that stopped answering never completes.
    if (w && cancel) void w.cancel().catch(() => undefined);
  }

  /**
   * etcd did not acknowledge the watch in time. etcd3 carries every watcher of the client on one
   * stream and creates them one at a time, so a new watcher would only queue behind this one on
   * the same stuck stream (and cancelling a watcher etcd never acknowledged waits for the stream
   * too). The stream is torn down instead: its error resets the client's channel to that member,
   * every watcher of the client is told `disconnected` (this one re-watches from there, each from
   * its own revision), and the client opens a new stream, on whichever member its pool picks.
   */
  private ackTimedOut(): void {
    const manager = (this.store.client as unknown as { watchManager?: { state: number; stream?: { cancel(): void } } }).watchManager;
    if (manager?.state === WATCH_STREAM_CONNECTED && manager.stream) {
      this.store.watchStreamResets++;
      manager.stream.cancel();
    } else this.rewatch();
  }

  /** Replaces the watch, after a backoff, by one from this informer's own revision + 1. */
  private rewatch(): void {
    this.dropWatch(true);
    const delay = this.nextBackoff();
    void this.sleep(delay).then(() => {
      if (!this.stopped && !this.watcher && !this.relisting) this.openWatch();
    });
  }

  private apply(res: RPC.IWatchResponse): void {
    if (res.events.length === 0) {
      // A progress notification: etcd sends it only to a watch that has delivered every event
      // up to the header's revision.
      if (!res.created && !res.canceled) this.advance(BigInt(res.header.revision));
      return;
    }
    const from = this.rev;
    let last = from;
    for (const ev of res.events) {
      const kv = ev.kv;
      const at = BigInt(kv.mod_revision);
      if (at <= from) continue; // already in the view (delivered by a relist)
      const key = kv.key.toString();
      const type = String(ev.type).toLowerCase() === 'delete' ? 'delete' : 'put';
      if (type === 'delete') this.known.delete(key);
      else this.known.set(key, at);
      this.handlers.onEvent(
        withValueDecodedOnRead({ type, key, modRevision: kv.mod_revision, ...(type === 'put' ? { createRevision: kv.create_revision } : {}) }, kv.value),
      );
      if (at > last) last = at;
    }
    this.advance(last);
  }

  /**
   * Lists the prefix again with no watch running, delivers the difference from the view as
   * events, then watches from the listing's revision + 1. With no watch, nothing newer than
   * the listing can have been delivered, so the view never goes back.
   */
  private relist(): Promise<void> {
    if (this.relisting) return this.relisting;
    clearTimeout(this.relistTimer);
    this.dropWatch(true);
    this.relisting = (async () => {
      while (!this.stopped) {
        try {
          await this.listDifference();
        } catch {
          await this.sleep(this.nextBackoff());
          continue;
        }
        if (this.stopped) return;
        this.backoffMs = FIRST_BACKOFF_MS;
        this.openWatch();
        return;
      }
    })().finally(() => {
      this.relisting = undefined;
      this.scheduleRelist();
    });
    return this.relisting;
  }

  /**
   * Lists the prefix at one revision, `RELIST_PAGE` keys at a time and keys only, fetches the
   * values of the keys whose mod revision differs from the view, and delivers the difference
   * as events (see `deliverDifference`). Returns the listing's revision. The view's entries move
   * to a new map as their keys are listed, so what is left in the old one was deleted, and the
   * relist never holds a second copy of the prefix; a failed listing moves them back.
   */
  private async listDifference(): Promise<bigint> {
    const listed = new Map<string, bigint>();
    const changed: Array<Versioned<unknown>> = [];
    try {
      let revision: string | undefined;
      let from = Buffer.from(this.prefix);
      const end = prefixEnd(this.prefix);
      for (let more = true; more;) {
        const page = await this.store.keysAt(from, end, RELIST_PAGE, revision);
        revision ??= page.revision;
        const stale: string[] = [];
        for (const { key, modRevision } of page.keys) {
          const had = this.known.get(key);
          this.known.delete(key);
          // The entry moves with the value the view had: deliverDifference updates it.
          if (had !== undefined) listed.set(key, had);
          if (had !== BigInt(modRevision)) stale.push(key);
        }
        if (stale.length) changed.push(...(await this.store.getMany<unknown>(stale, revision)).filter((kv): kv is Versioned<unknown> => kv !== undefined));
        more = page.more;
        if (page.keys.length) from = Buffer.concat([Buffer.from(page.keys[page.keys.length - 1].key), Buffer.from([0])]);
      }
      // A linearizable listing sent after the last delivered event is never older than it.
      if (BigInt(revision!) < this.rev) throw new Error('listing older than the view');
      const deleted = [...this.known.keys()];
      this.known.clear();
      for (const [key, rev] of listed) this.known.set(key, rev);
      listed.clear();
      this.deliverDifference(changed, deleted, BigInt(revision!));
      return BigInt(revision!);
    } finally {
      for (const [key, rev] of listed) this.known.set(key, rev);
    }
  }

  /**
   * Delivers, in revision order, the events that turn the view into a listing at `revision`:
   * `changed` (keys whose mod revision differs from the view's) as puts, `deleted` (keys of the
   * view not in the listing) as deletes. A deleted key was deleted at some revision up to
   * `revision`: its delete event carries `revision`, the first one at which the deletion is known.
   */
  private deliverDifference(changed: Array<Versioned<unknown>>, deleted: string[], revision: bigint): void {
    const changes: Array<WatchEvent<unknown>> = changed.map((kv) => ({
      type: 'put',
      key: kv.key,
      value: kv.value,
      modRevision: kv.modRevision,
      createRevision: kv.createRevision,
    }));
    for (const key of deleted) changes.push({ type: 'delete', key, modRevision: String(revision) });
    changes.sort((a, b) => (BigInt(a.modRevision) < BigInt(b.modRevision) ? -1 : BigInt(a.modRevision) > BigInt(b.modRevision) ? 1 : 0));
    for (const ev of changes) {
      if (ev.type === 'delete') this.known.delete(ev.key);
      else this.known.set(ev.key, BigInt(ev.modRevision));
      this.handlers.onEvent(ev);
    }
    this.advance(revision);
  }

  private advance(revision: bigint): void {
    if (revision <= this.rev) return;
    this.rev = revision;
    for (const w of [...this.waiters]) {
      if (w.revision > revision) continue;
      this.waiters.delete(w);
      w.resolve();
    }
  }

  private scheduleRelist(): void {
    clearTimeout(this.relistTimer);
    if (this.stopped || this.relistEveryMs <= 0) return;
    this.relistTimer = setTimeout(() => void this.relist(), this.relistEveryMs * (0.8 + 0.4 * Math.random()));
    this.relistTimer.unref();
  }

  private nextBackoff(): number {
    const ms = this.backoffMs * (0.5 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    return ms;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      this.sleepers.add(done);
    });
  }
}

/** Options of the process lease. */
export interface ProcessLeaseOptions {
  /**
   * The clock the self-fence is kept on, in milliseconds (tests pass a fake one). Monotonic: a
   * wall-clock step must neither fence the holder nor stretch its fence.
   * @default monotonicMs (CLOCK_MONOTONIC)
   */
  clock?: () => number;
  /**
   * Period of keep-alives, in milliseconds. Each one goes to every member at once, so one
   * member down or paused costs nothing; a short period leaves the most margin for a raft
   * election (a keep-alive waits for the new leader, and its send time is what counts).
   * @default TTL / 5
   */
  keepAliveEveryMs?: number;
}

/** A keep-alive stream as grpc-js gives it (etcd3's `leaseKeepAlive`). */
type KeepAliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>;

/**
 * The one lease of a process. `alive(now)` is the self-fence: it turns false once the TTL has
 * passed since the *send time* of the last renewal (grant or keep-alive) etcd acknowledged,
 * measured on this process's clock, without waiting for anything from etcd (see `LeaseFence`).
 *
 * Keep-alives are hedged: every `keepAliveEveryMs` one keep-alive, stamped with its send time,
 * goes to *every* member over a client of that member alone, each on its own stream with a
 * deadline of one TTL, ended after its reply or error. Any acknowledged reply renews the fence
 * (the newest send time wins); a reply with no TTL left means the lease is gone. So a member
 * killed or paused costs nothing — the others answer — and during a raft election the
 * keep-alives sent to followers wait for the new leader and then count from their send time.
 * One keep-alive at a time to a member picked at random (the client's pool) lost the lease
 * whenever two picks in a row were the dead member.
 *
 * 2×TTL after the last acknowledged send, the lease is given up only once etcd confirms it
 * (`leaseTimeToLive` on every member: none answers with TTL left).
 */
export class ProcessLease {
  private fence: LeaseFence;
  private readonly clock: () => number;
  private readonly keepAliveEveryMs: number;
  private readonly ttlMs: number;
  private timer?: NodeJS.Timeout;
  /** One client per member, for keep-alives and the loss check; closed when the lease ends. */
  private members: Etcd3[] = [];
  private readonly streams = new Set<KeepAliveStream>();
  private lostHandlers: Array<() => void> = [];
  private renewedHandlers: Array<(sentAt: number) => void> = [];
  private failedHandlers: Array<(err: Error) => void> = [];
  private isLost = false;
  private confirming = false;
  /** A loss check put off until the fence ends (see `confirmLoss`). */
  private recheck?: NodeJS.Timeout;
  id = '';

  constructor(
    private readonly store: EtcdStore,
    readonly ttlSeconds: number,
    options: ProcessLeaseOptions = {},
  ) {
    this.clock = options.clock ?? monotonicMs;
    this.ttlMs = ttlSeconds * 1000;
    this.keepAliveEveryMs = options.keepAliveEveryMs ?? this.ttlMs / 5;
    this.fence = new LeaseFence(this.clock(), this.ttlMs);
  }

  /**
   * Grants the lease, then keeps it alive. A grant whose answer is lost is sent again (up to
   * `UNSENT_RETRIES` times): a lease granted without an answer has no keys and no keep-alive,
   * and expires by itself within its TTL.
   */
  async ready(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      // The TTL counts from before the grant that was acknowledged was sent.
      const sentAt = this.clock();
      try {
        const res = await this.store.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds }, { deadline: Date.now() + this.store.callTimeoutMs });
        this.id = res.ID;
        this.fence = new LeaseFence(sentAt, this.ttlMs);
        break;
      } catch (err) {
        if (attempt < UNSENT_RETRIES && err instanceof Error && isRecoverableError(err)) continue;
        unavailable(err);
      }
    }
    if (this.isLost) return;
    this.members = this.store.options.endpoints.map((endpoint) => this.store.connect([endpoint], { ownCircuit: false }));
    this.timer = setInterval(() => this.renew(), this.keepAliveEveryMs);
    this.timer.unref();
  }

  /** Sends one keep-alive, stamped with its send time, to every member; each reply settles on its own. */
  private renew(): void {
    if (this.isLost) return;
    const sentAt = this.clock();
    if (this.fence.sinceRenewalMs(sentAt) > 2 * this.ttlMs) this.confirmLoss();
    let unanswered = this.members.length;
    const failed = (err: Error) => {
      // One member's "not found" is only a hint (a member whose apply lags behind a new leader's
      // log can say so of a live lease): ask every member before giving the lease up.
      if (err instanceof EtcdLeaseInvalidError) this.confirmLoss();
      // A renewal failed when no member acknowledged this round's keep-alive.
      if (--unanswered === 0 && !this.isLost) for (const fn of this.failedHandlers) fn(err);
    };
    for (const member of this.members) {
      // The deadline ends a stream to a member that stopped answering; its reply would be too late to count anyway.
      member.leaseClient.leaseKeepAlive({ deadline: Date.now() + this.ttlMs }).then((stream) => {
        if (this.isLost) {
          stream.cancel();
          return;
        }
        this.streams.add(stream);
        let settled = false;
        const settle = () => {
          settled = true;
          this.streams.delete(stream);
        };
        stream.on('data', (res: RPC.ILeaseKeepAliveResponse) => {
          if (settled) return;
          settle();
          stream.end();
          unanswered = -1; // answered: no failure to report for this round
          this.acknowledged(sentAt, Number(res.TTL));
        });
        stream.on('error', (err: Error) => {
          if (!settled) {
            settle();
            failed(castGrpcError(err));
          }
        });
        stream.on('end', () => {
          if (!settled) {
            settle();
            failed(new Error('the keep-alive stream ended without a reply'));
          }
        });
        stream.write({ ID: this.id });
      }, failed);
    }
  }

  private acknowledged(sentAt: number, ttlSeconds: number): void {
    // No TTL left, from one member: confirmed with every member first (see `failed` in renew).
    // The fence is not extended meanwhile, so a lease that is really gone still ends it at TTL.
    if (!(ttlSeconds > 0)) {
      this.confirmLoss();
      return;
    }
    const outcome = this.fence.acknowledged(sentAt, ttlSeconds);
    if (outcome === RenewalOutcome.Gone) this.markLost('etcd answered a keep-alive with no TTL left');
    else if (outcome === RenewalOutcome.Renewed && !this.isLost) for (const fn of this.renewedHandlers) fn(sentAt);
  }

  /**
   * 2×TTL without an acknowledged renewal, or one member said the lease is gone: asks every
   * member for the lease's TTL once, and gives it up when a majority answers it is gone (no TTL
   * left, not found), none says it is held, and its own fence has ended (before that, it asks
   * again when the fence ends; `leaseLossVerdict`). No answer decides nothing: the fence ends at
   * TTL anyway, and the next round asks again.
   */
  private confirmLoss(): void {
    if (this.confirming) return;
    this.confirming = true;
    // Each member answers held, gone, or nothing (down, or no leader during an election: not an
    // answer about the lease). Gone needs a majority saying so and none saying held.
    const asks = this.members.map((member) =>
      member.leaseClient.leaseTimeToLive({ ID: this.id }, { deadline: Date.now() + this.store.callTimeoutMs }).then(
        (res): LeaseAnswer => leaseAnswerOfTtl(Number(res.TTL)),
        (err: unknown): LeaseAnswer => (castGrpcError(err as Error) instanceof EtcdLeaseInvalidError ? 'gone' : 'unknown'),
      ),
    );
    void Promise.all(asks).then((answers) => {
      this.confirming = false;
      if (this.isLost) return;
      const now = this.clock();
      const verdict = leaseLossVerdict(answers, this.fence.alive(now));
      if (verdict === 'keep') return;
      if (verdict === 'recheck') {
        clearTimeout(this.recheck);
        this.recheck = setTimeout(() => this.confirmLoss(), Math.max(10, this.ttlMs - this.fence.sinceRenewalMs(now)) + 10);
        this.recheck.unref?.();
        return;
      }
      this.markLost(`the members answered ${answers.join(', ')} for the lease, ${Math.round(this.fence.sinceRenewalMs(now))} ms after its last renewal`);
    });
  }

  /** True while the lease is certainly held: less than TTL since the send time of the last acknowledged renewal. */
  alive(now = this.clock()): boolean {
    return !this.isLost && this.fence.alive(now);
  }

  /** Milliseconds since the send time of the last acknowledged renewal. */
  sinceRenewalMs(now = this.clock()): number {
    return this.fence.sinceRenewalMs(now);
  }

  /** Calls `fn` with the send time (on the lease's clock: `monotonicMs` unless a test passed one) of each renewal that extended the fence. */
  onRenewed(fn: (sentAt: number) => void): void {
    this.renewedHandlers.push(fn);
  }

  /** Calls `fn` when no member acknowledged a round of keep-alives (no answer within the TTL, members unavailable…); the next round is sent anyway. */
  onRenewalFailed(fn: (err: Error) => void): void {
    this.failedHandlers.push(fn);
  }

  onLost(fn: () => void): void {
    this.lostHandlers.push(fn);
  }

  /** Why the lease was given up (set once it is): for logs, and for tests that must say why. */
  lostReason?: string;

  /** Gives the lease up: stops renewing and tells `onLost` handlers. @param reason what showed it was lost (kept in `lostReason`) */
  markLost(reason = 'given up by its holder'): void {
    if (this.isLost) return;
    this.lostReason = reason;
    this.stopRenewing();
    for (const fn of this.lostHandlers) fn();
  }

  /** Stops renewing without telling etcd, which expires the lease after its TTL (a process that died). */
  release(): void {
    this.stopRenewing();
  }

  /** Stops renewing and revokes the lease in etcd (a lease already gone there is fine). */
  async revoke(): Promise<void> {
    this.stopRenewing();
    if (!this.id) return;
    for (let attempt = 0; attempt <= UNSENT_RETRIES; attempt++) {
      try {
        await this.store.client.leaseClient.leaseRevoke({ ID: this.id }, { deadline: Date.now() + this.store.callTimeoutMs });
        return;
      } catch (err) {
        // Idempotent: sent again after any failure that may pass; unknown lease means done.
        if (!(err instanceof Error && isRecoverableError(err))) return;
      }
    }
  }

  private stopRenewing(): void {
    this.isLost = true;
    clearTimeout(this.recheck);
    clearInterval(this.timer);
    for (const stream of this.streams) stream.cancel();
    this.streams.clear();
    for (const member of this.members) member.close();
    this.members = [];
  }
}

function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i]++;
      return out;
    }
  }
  return Buffer.from([0]);
}

// Numeric enum values of etcd's protocol (the client sends them as numbers).
const EQUAL = 0;
const CREATE = 1;
const MOD = 2;
const LEASE = 4;

function toCompare(c: Compare): RPC.ICompare {
  const key = Buffer.from(c.key);
  if ('absent' in c) return { key, target: CREATE, result: EQUAL, create_revision: 0 };
  if ('lease' in c) return { key, target: LEASE, result: EQUAL, lease: c.lease };
  if ('createRevision' in c) return { key, target: CREATE, result: EQUAL, create_revision: c.createRevision };
  return { key, target: MOD, result: EQUAL, mod_revision: c.modRevision };
}

function toRequestOp(op: Op): RPC.IRequestOp {
  if ('delete' in op) return { request_delete_range: { key: Buffer.from(op.delete) } };
  return { request_put: { key: Buffer.from(op.put), value: Buffer.from(op.json ?? JSON.stringify(op.value)), lease: op.lease ?? 0 } };
}

/**
 * Informer handlers that keep `map` equal to the records under a prefix, keyed by the last
 * key segment (tenants, queues…). `changed` is called after every sync and event.
 */
export function mirrorByName<T>(map: Map<string, T>, changed: () => void = () => undefined): InformerHandlers<T> {
  const nameOf = (key: string) => key.slice(key.lastIndexOf('/') + 1);
  return {
    onSync: (items) => {
      map.clear();
      for (const kv of items) map.set(nameOf(kv.key), kv.value);
      changed();
    },
    onEvent: (ev) => {
      if (ev.type === 'put' && ev.value !== undefined) map.set(nameOf(ev.key), ev.value);
      else map.delete(nameOf(ev.key));
      changed();
    },
  };
}
