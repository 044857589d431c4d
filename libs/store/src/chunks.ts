/**
 * The store's one chunker: packs compares and writes into transactions under etcd's limits —
 * at most `MAX_TXN_OPS` compares and as many ops, and at most `MAX_TXN_BYTES` of keys and
 * values counted in UTF-8 bytes, as etcd counts them — and reports a unit that alone can never
 * fit instead of sending it (etcd would refuse the whole transaction, every time it is sent).
 * `TxnBudget` fills one transaction a unit at a time (when what comes next depends on what was
 * sent); `chunkBySize` splits a list in one go.
 */
import { jsonBytes } from '@batchapi/api';
import { type Compare, MAX_TXN_BYTES, MAX_TXN_OPS, type Op, TxnTooLargeError } from './etcd';
import { OutcomeUnknownError } from './errors';

/** What part of a transaction something takes. */
export interface TxnSize {
  /** Compares (etcd's `--max-txn-ops` bounds them and the ops separately). */
  compares: number;
  /** Puts and deletes. */
  ops: number;
  /** UTF-8 bytes of keys and values, plus `ENTRY_OVERHEAD_BYTES` per compare and op. */
  bytes: number;
}

/** Limits of one transaction. */
export interface TxnLimits {
  /** Most compares, and most ops, of one transaction. @default MAX_TXN_OPS (128) */
  maxOps: number;
  /** Most bytes of one transaction (see `TxnSize.bytes`). @default MAX_TXN_BYTES (1 MiB, under etcd's 1.5 MiB request limit) */
  maxBytes: number;
}

export const DEFAULT_TXN_LIMITS: TxnLimits = { maxOps: MAX_TXN_OPS, maxBytes: MAX_TXN_BYTES };

/** Framing of one compare or op in the request beyond its key and value (protobuf tags and lengths, revision or lease), bytes: an upper bound. */
export const ENTRY_OVERHEAD_BYTES = 32;

export const EMPTY_TXN_SIZE: TxnSize = { compares: 0, ops: 0, bytes: 0 };

/** The size of these compares and ops in a transaction: exactly the bytes `EtcdStore.txn` sends, plus framing. */
export function txnSize(compares: readonly Compare[], ops: readonly Op[]): TxnSize {
  let bytes = 0;
  for (const c of compares) bytes += Buffer.byteLength(c.key) + ENTRY_OVERHEAD_BYTES;
  for (const op of ops)
    bytes +=
      ENTRY_OVERHEAD_BYTES +
      ('delete' in op ? Buffer.byteLength(op.delete) : Buffer.byteLength(op.put) + (op.json !== undefined ? Buffer.byteLength(op.json) : jsonBytes(op.value)));
  return { compares: compares.length, ops: ops.length, bytes };
}

export function addTxnSizes(...sizes: TxnSize[]): TxnSize {
  return sizes.reduce((a, b) => ({ compares: a.compares + b.compares, ops: a.ops + b.ops, bytes: a.bytes + b.bytes }), EMPTY_TXN_SIZE);
}

/** Whether a transaction of this size may be sent. */
export function withinTxnLimits(size: TxnSize, limits: TxnLimits = DEFAULT_TXN_LIMITS): boolean {
  return size.compares <= limits.maxOps && size.ops <= limits.maxOps && size.bytes <= limits.maxBytes;
}

/**
 * One transaction being filled. `base` is what every transaction of the caller carries (a
 * fence compare, a lease compare): counted once, from the start.
 */
export class TxnBudget {
  private size: TxnSize;
  private units = 0;

  constructor(
    readonly base: TxnSize = EMPTY_TXN_SIZE,
    readonly limits: TxnLimits = DEFAULT_TXN_LIMITS,
  ) {
    this.size = base;
  }

  /** What the transaction holds so far, base included. */
  get used(): TxnSize {
    return this.size;
  }

  /** True until a unit was added. */
  get empty(): boolean {
    return this.units === 0;
  }

  /** Whether a unit of this size fits beside what is in already. */
  fits(unit: TxnSize): boolean {
    return withinTxnLimits(addTxnSizes(this.size, unit), this.limits);
  }

  /** Whether a unit of this size fits an empty transaction: false means it can never be sent. */
  fitsAlone(unit: TxnSize): boolean {
    return withinTxnLimits(addTxnSizes(this.base, unit), this.limits);
  }

  add(unit: TxnSize): void {
    this.size = addTxnSizes(this.size, unit);
    this.units++;
  }
}

/**
 * Splits units into consecutive transactions, in order, each within `limits` with `base`
 * included. A unit that alone can never fit is left out of every chunk and returned in
 * `tooLarge`, for the caller to isolate (fail it with a reason) instead of sending it.
 */
export function chunkBySize<T>(
  units: readonly T[],
  sizeOf: (u: T) => TxnSize,
  opts: { base?: TxnSize; limits?: TxnLimits } = {},
): { chunks: T[][]; tooLarge: T[] } {
  const chunks: T[][] = [];
  const tooLarge: T[] = [];
  let budget = new TxnBudget(opts.base, opts.limits);
  let chunk: T[] = [];
  for (const u of units) {
    const size = sizeOf(u);
    if (!budget.fitsAlone(size)) {
      tooLarge.push(u);
      continue;
    }
    if (!budget.fits(size)) {
      chunks.push(chunk);
      chunk = [];
      budget = new TxnBudget(opts.base, opts.limits);
    }
    budget.add(size);
    chunk.push(u);
  }
  if (chunk.length) chunks.push(chunk);
  return { chunks, tooLarge };
}

/**
 * True when a transaction failed because etcd (or this client, before sending) found it too
 * large: it certainly did not apply, and sending it again as it is fails again.
 */
export function isTxnTooLarge(err: unknown): boolean {
  if (err instanceof TxnTooLargeError) return true;
  if (err instanceof OutcomeUnknownError || !(err instanceof Error)) return false;
  // The store maps etcd's refusal to `unavailable` with the client error in the message: etcd's
  // "request is too large" (InvalidArgument), gRPC's "larger than max" (ResourceExhausted).
  return /request is too large|larger than max/i.test(err.message);
}
