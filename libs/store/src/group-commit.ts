/**
 * Group commit of independent compare-and-swap writes — the workflow controller's reconciles of
 * different workflows, each fenced by the same leadership: while transactions are in flight
 * (`maxInFlight`), the writes that arrive wait, then go together in one transaction (as many as
 * the limits allow). With 1,000 runs the controller's 32 workers each sent one transaction per
 * reconcile; in the burst they go several to a transaction, each a round trip and a request etcd
 * applies fewer.
 *
 * Each write keeps the answer it would have had alone: its compares all hold and its ops landed
 * (`succeeded`, the revision), or one of its compares failed and nothing of it landed. A batch is
 * all or nothing, so when a batch's transaction fails a compare, nothing of it landed and each of
 * its writes is sent again alone (one per transaction, ahead of the queue) to learn whose compare
 * failed. An error (etcd unreachable, an
 * answer lost: `OutcomeUnknownError`) is every write's error, as it would have been for each alone.
 */
import { addTxnSizes, DEFAULT_TXN_LIMITS, EMPTY_TXN_SIZE, type TxnLimits, txnSize, withinTxnLimits } from './chunks';
import type { Compare, EtcdStore, Op } from './etcd';

/** What a transaction answers: whether every compare held (then every op landed), and the revision. */
export interface TxnAnswer {
  succeeded: boolean;
  revision: string;
}

/** Sends one compare-and-swap write: `EtcdStore.txn`, or `GroupCommit.txn`. */
export type TxnSender = (compares: Compare[], ops: Op[]) => Promise<TxnAnswer>;

/** One write waiting for its batch. */
export interface PendingWrite {
  compares: Compare[];
  ops: Op[];
}

/** The keys a write puts or deletes. */
function keysOf(w: PendingWrite): string[] {
  return w.ops.map((op) => ('delete' in op ? op.delete : op.put));
}

/** A compare as a string, to send each distinct compare (the shared fence) once. */
function compareId(c: Compare): string {
  if ('modRevision' in c) return `m ${c.modRevision} ${c.key}`;
  if ('createRevision' in c) return `c ${c.createRevision} ${c.key}`;
  if ('lease' in c) return `l ${c.lease} ${c.key}`;
  return `a ${c.key}`;
}

/**
 * How many writes from the head of `queue` go in the next transaction: at least one, then as long
 * as the whole stays within `limits` (compares and ops counted as sent: each distinct compare once),
 * no key is written twice (etcd refuses a transaction that puts a key twice), and no write's
 * compares read a key another of the batch writes, or the other way round: in one transaction every
 * compare is read before any op, so two writes that each compare what the other writes (A: "x
 * absent → put y", B: "y absent → put x") would both land, where alone, one after the other, the
 * second would fail. Disjoint keys make the batch the same as its writes sent one by one. A write
 * to be sent `alone` (a failed batch's, see `GroupCommit`) goes by itself. Pure.
 */
export function takeBatch(queue: readonly (PendingWrite & { alone?: boolean })[], limits: TxnLimits = DEFAULT_TXN_LIMITS): number {
  const compares = new Set<string>();
  const read = new Set<string>();
  const written = new Set<string>();
  let total = EMPTY_TXN_SIZE;
  let n = 0;
  for (const w of queue) {
    if (n > 0 && w.alone) break;
    const wKeys = keysOf(w);
    const wRead = w.compares.map((c) => c.key);
    if (n > 0 && (wKeys.some((k) => written.has(k) || read.has(k)) || wRead.some((k) => written.has(k)))) break;
    const added = w.compares.filter((c) => !compares.has(compareId(c)));
    const size = addTxnSizes(total, txnSize(added, w.ops));
    if (n > 0 && !withinTxnLimits(size, limits)) break;
    total = size;
    for (const c of added) compares.add(compareId(c));
    for (const k of wRead) read.add(k);
    for (const k of wKeys) written.add(k);
    n++;
    if (w.alone) break;
  }
  return n;
}

/** The one transaction of a batch: each distinct compare once, every op. */
export function mergeWrites(batch: readonly PendingWrite[]): PendingWrite {
  const compares = new Map<string, Compare>();
  for (const w of batch) for (const c of w.compares) if (!compares.has(compareId(c))) compares.set(compareId(c), c);
  return { compares: [...compares.values()], ops: batch.flatMap((w) => w.ops) };
}

interface Waiting extends PendingWrite {
  /** Sent by itself: it was in a batch that failed a compare (see `send`). */
  alone?: boolean;
  resolve: (a: TxnAnswer) => void;
  reject: (err: unknown) => void;
}

export interface GroupCommitOptions {
  /** Transactions in flight at once; a write that finds fewer goes at once. @default 2 */
  maxInFlight?: number;
  /** Limits of one transaction. @default DEFAULT_TXN_LIMITS */
  limits?: TxnLimits;
}

/** Batches independent CAS writes (see the module header). Writes of one batch must touch distinct keys to be merged; a write that overlaps waits for the next. */
export class GroupCommit {
  private readonly queue: Waiting[] = [];
  private inFlight = 0;
  private readonly maxInFlight: number;
  private readonly limits: TxnLimits;
  /** Transactions sent, and writes they carried (for tests and diagnostics). */
  readonly sent = { transactions: 0, writes: 0 };

  constructor(
    private readonly store: Pick<EtcdStore, 'txn'>,
    options: GroupCommitOptions = {},
  ) {
    this.maxInFlight = options.maxInFlight ?? 2;
    this.limits = options.limits ?? DEFAULT_TXN_LIMITS;
  }

  /** Sends one write; answers as `EtcdStore.txn` would for it alone. */
  readonly txn: TxnSender = (compares, ops) =>
    new Promise<TxnAnswer>((resolve, reject) => {
      this.queue.push({ compares, ops, resolve, reject });
      this.pump();
    });

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, takeBatch(this.queue, this.limits));
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async send(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) return this.alone(batch[0]);
    const merged = mergeWrites(batch);
    let answer: TxnAnswer;
    try {
      this.count(batch.length);
      answer = await this.store.txn(merged.compares, merged.ops);
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    if (answer.succeeded) {
      for (const w of batch) w.resolve(answer);
      return;
    }
    // A compare failed and nothing landed: each write, sent alone, says whether it was one of its own.
    // They go first, one per transaction, within the transactions in flight like any other.
    this.queue.unshift(...batch.map((w) => ({ ...w, alone: true })));
  }

  private async alone(w: Waiting): Promise<void> {
    try {
      this.count(1);
      w.resolve(await this.store.txn(w.compares, w.ops));
    } catch (err) {
      w.reject(err);
    }
  }

  private count(writes: number): void {
    this.sent.transactions++;
    this.sent.writes += writes;
  }
}
