/**
 * The etcd client: reads, compare-and-swap transactions in batches, informers (list then
 * watch, resumed from the last revision) and the process lease. Every unary call carries
 * a deadline; etcd failures surface as `ApiError(unavailable)` so callers answer 503.
 */
import { ApiError, ErrorCode } from '@batchapi/api';
import { Etcd3, type IKeyValue, type Lease, type Watcher } from 'etcd3';
import type * as RPC from 'etcd3/lib/rpc';
import { Keys } from './keys';

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
  /** TLS to etcd (`https://` endpoints): the CA that signed etcd's certificate, and this client's certificate and key (PEM) for etcd's client-cert auth. @default plain connections */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
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

/** A write in a transaction. */
export type Op = { put: string; value: unknown; lease?: string } | { delete: string };

/** Most operations etcd accepts in one transaction (`--max-txn-ops`). */
export const MAX_TXN_OPS = 128;
/** Largest transaction we send, in bytes: below etcd's 1.5 MiB request limit with headroom. */
export const MAX_TXN_BYTES = 1024 * 1024;

export class TxnTooLargeError extends Error {}

/** An event of an informer. */
export interface WatchEvent<T> {
  type: 'put' | 'delete';
  key: string;
  value?: T;
  modRevision: string;
}

/** Handlers of an informer. */
export interface InformerHandlers<T> {
  /** The full listing at `revision`; called first and again after any resync. */
  onSync(items: Array<Versioned<T>>, revision: string): void;
  /** One change after the listing, in revision order. */
  onEvent(event: WatchEvent<T>): void;
}

export function decode<T>(kv: IKeyValue): Versioned<T> {
  return { key: kv.key.toString(), value: JSON.parse(kv.value.toString()) as T, modRevision: kv.mod_revision, createRevision: kv.create_revision };
}

/** Maps client failures to `unavailable` (503, retry after 1 s); anything else is rethrown. */
export function unavailable(err: unknown): never {
  if (err instanceof ApiError) throw err;
  const name = (err as Error)?.constructor?.name ?? 'Error';
  throw new ApiError(ErrorCode.Unavailable, `the store is unavailable (${name}: ${(err as Error)?.message ?? err}); retry later`, { retryAfterSeconds: 1 });
}

/** The one connection a process has to etcd. */
export class EtcdStore {
  readonly client: Etcd3;
  readonly keys: Keys;
  readonly callTimeoutMs: number;

  constructor(readonly options: StoreOptions) {
    this.callTimeoutMs = options.callTimeoutMs ?? 2000;
    const timeout = this.callTimeoutMs;
    this.client = new Etcd3({
      hosts: options.endpoints,
      dialTimeout: timeout,
      ...(options.tls ? { credentials: { rootCertificate: options.tls.ca, ...(options.tls.cert ? { certChain: options.tls.cert } : {}), ...(options.tls.key ? { privateKey: options.tls.key } : {}) } } : {}),
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    });
    this.keys = new Keys(options.prefix ?? '/batch/');
  }

  async close(): Promise<void> {
    this.client.close();
  }

  /** Runs one etcd call: observed, and failures mapped to `unavailable`. */
  private async call<T>(op: 'range' | 'txn', fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const out = await fn();
      this.options.onCall?.(op, (performance.now() - started) / 1000, true);
      return out;
    } catch (err) {
      this.options.onCall?.(op, (performance.now() - started) / 1000, false);
      return unavailable(err);
    }
  }

  /** Reads one key. */
  async get<T>(key: string): Promise<Versioned<T> | undefined> {
    const res = await this.call('range', () => this.client.kv.range({ key: Buffer.from(key) }));
    return res.kvs[0] ? decode<T>(res.kvs[0]) : undefined;
  }

  /** Reads many keys at one revision. */
  async getMany<T>(keys: string[]): Promise<Array<Versioned<T> | undefined>> {
    if (keys.length === 0) return [];
    const out: Array<Versioned<T> | undefined> = [];
    for (let i = 0; i < keys.length; i += MAX_TXN_OPS) {
      const chunk = keys.slice(i, i + MAX_TXN_OPS);
      const res = await this.call('range', () => this.client.kv.txn({ success: chunk.map((k) => ({ request_range: { key: Buffer.from(k) } })) }));
      for (const r of res.responses) out.push(r.response_range.kvs[0] ? decode<T>(r.response_range.kvs[0]) : undefined);
    }
    return out;
  }

  /** Lists keys under a prefix in key order, starting after `startAfter`, at most `limit` of them. */
  async list<T>(prefix: string, opts: { limit?: number; startAfter?: string } = {}): Promise<{ items: Array<Versioned<T>>; revision: string; more: boolean }> {
    const end = prefixEnd(prefix);
    const from = opts.startAfter ? Buffer.concat([Buffer.from(opts.startAfter), Buffer.from([0])]) : Buffer.from(prefix);
    const res = await this.call('range', () => this.client.kv.range({ key: from, range_end: end, limit: opts.limit ?? 0 }));
    return { items: res.kvs.map((kv) => decode<T>(kv)), revision: res.header.revision, more: res.more };
  }

  /** Lists every key under a prefix, page by page, at the revision of the first page. */
  async listAll<T>(prefix: string, pageSize = 5000): Promise<{ items: Array<Versioned<T>>; revision: string }> {
    const items: Array<Versioned<T>> = [];
    const first = await this.list<T>(prefix, { limit: pageSize });
    items.push(...first.items);
    let more = first.more;
    while (more) {
      const end = prefixEnd(prefix);
      const after = Buffer.concat([Buffer.from(items[items.length - 1].key), Buffer.from([0])]);
      const res = await this.call('range', () => this.client.kv.range({ key: after, range_end: end, limit: pageSize, revision: first.revision }));
      items.push(...res.kvs.map((kv) => decode<T>(kv)));
      more = res.more;
    }
    return { items, revision: first.revision };
  }

  /**
   * Commits one transaction: all compares hold and every op applies, or nothing does.
   * Returns `false` when a compare failed (the caller lost a race and must re-read).
   */
  async txn(compares: Compare[], ops: Op[]): Promise<{ succeeded: boolean; revision: string }> {
    const req: RPC.ITxnRequest = { compare: compares.map(toCompare), success: ops.map(toRequestOp) };
    if (req.compare!.length + req.success!.length > MAX_TXN_OPS * 2 || req.success!.length > MAX_TXN_OPS || req.compare!.length > MAX_TXN_OPS) {
      throw new TxnTooLargeError(`transaction of ${req.compare!.length} compares and ${req.success!.length} ops is over ${MAX_TXN_OPS}`);
    }
    const res = await this.call('txn', () => this.client.kv.txn(req));
    return { succeeded: res.succeeded, revision: res.header.revision };
  }

  /**
   * Starts an informer over a prefix: lists it, then watches from the listing's revision so
   * no event is missed; the client resumes the watch from its last revision after a
   * disconnect, and a compaction or cancel triggers a fresh listing (`onSync` again).
   */
  async inform<T>(prefix: string, handlers: InformerHandlers<T>): Promise<Informer> {
    const informer = new Informer(this, prefix, handlers as InformerHandlers<unknown>);
    await informer.start();
    return informer;
  }

  /** Grants the process lease (one per process) and keeps it alive. */
  async grantLease(ttlSeconds: number): Promise<ProcessLease> {
    const lease = new ProcessLease(this.client.lease(ttlSeconds, { autoKeepAlive: true }), ttlSeconds);
    await lease.ready();
    return lease;
  }
}

/** List-then-watch over one prefix. */
export class Informer {
  private watcher?: Watcher;
  private stopped = false;
  /** Revision of the last event or listing seen. */
  revision = '0';

  constructor(private readonly store: EtcdStore, readonly prefix: string, private readonly handlers: InformerHandlers<unknown>) {}

  async start(): Promise<void> {
    const { items, revision } = await this.store.listAll<unknown>(this.prefix);
    this.revision = revision;
    this.handlers.onSync(items, revision);
    const w = await this.store.client.watch().prefix(this.prefix).startRevision(String(BigInt(revision) + 1n)).create();
    if (this.stopped) { await w.cancel(); return; }
    this.watcher = w;
    w.on('data', (res: RPC.IWatchResponse) => {
      for (const ev of res.events) {
        const kv = ev.kv;
        this.revision = kv.mod_revision;
        this.handlers.onEvent({
          type: String(ev.type).toLowerCase() === 'delete' ? 'delete' : 'put',
          key: kv.key.toString(),
          value: kv.value.length ? JSON.parse(kv.value.toString()) : undefined,
          modRevision: kv.mod_revision,
        });
      }
    });
    w.on('error', () => void this.resync());
  }

  private async resync(): Promise<void> {
    if (this.stopped) return;
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
    for (let delay = 200; !this.stopped; delay = Math.min(delay * 2, 5000)) {
      try { await this.start(); return; } catch { await new Promise((r) => setTimeout(r, delay)); }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watcher?.cancel().catch(() => undefined);
  }
}

/**
 * The one lease of a process. `alive(now)` is the self-fence: it turns false once the TTL
 * has passed since the last keep-alive etcd acknowledged, measured on this process's clock,
 * without waiting for the client's late `lost` event.
 */
export class ProcessLease {
  private lastRenewedAt = Date.now();
  private lostHandlers: Array<() => void> = [];
  private isLost = false;
  id = '';

  constructor(readonly lease: Lease, readonly ttlSeconds: number) {
    lease.on('keepaliveSucceeded', () => { this.lastRenewedAt = Date.now(); });
    lease.on('lost', () => this.markLost());
  }

  async ready(): Promise<void> {
    this.id = await this.lease.grant().catch(unavailable);
    this.lastRenewedAt = Date.now();
  }

  /** True while the lease is certainly held: less than TTL since the last acknowledged renewal. */
  alive(now = Date.now()): boolean {
    return !this.isLost && now - this.lastRenewedAt < this.ttlSeconds * 1000;
  }

  /** Milliseconds since the last acknowledged renewal. */
  sinceRenewalMs(now = Date.now()): number {
    return now - this.lastRenewedAt;
  }

  onLost(fn: () => void): void {
    this.lostHandlers.push(fn);
  }

  markLost(): void {
    if (this.isLost) return;
    this.isLost = true;
    for (const fn of this.lostHandlers) fn();
  }

  async revoke(): Promise<void> {
    this.isLost = true;
    await this.lease.revoke().catch(() => undefined);
  }
}

function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) { const out = Buffer.from(b.subarray(0, i + 1)); out[i]++; return out; }
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
  return { request_put: { key: Buffer.from(op.put), value: Buffer.from(JSON.stringify(op.value)), lease: op.lease ?? 0 } };
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
