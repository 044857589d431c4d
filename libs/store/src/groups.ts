/**
 * Binding and reporting task groups: the scheduler's fenced bind of a plan, and the
 * executor's batched status reports. Both are compare-and-swap transactions, chunked under
 * etcd's limits; a chunk's writes all carry that txn's revision, which later chunks compare.
 */
import {
  type Binding,
  jsonBytes,
  type GroupStatus,
  type JobRecord,
  type NodeAllocation,
  type ReporterToken,
  subtractRanges,
  type TaskResult,
  TERMINAL_TASK_STATES,
} from '@batchapi/api';
import {
  applyGroupOutcomes,
  BIND_TOO_LARGE,
  REPORT_TOO_LARGE,
  failPending,
  boundGroupStatus,
  EMPTY_ALLOCATION,
  NODE_LOST,
  hasUnreleasedEnd,
  onlyReleased,
  releaseEndedTasks,
  releaseOnNode,
  type Requeue,
  reserveOnNode,
  settleOutcomes,
} from '@batchapi/lifecycle';
import { type Compare, encodedPut, type EtcdStore, MAX_TXN_BYTES, MAX_TXN_OPS, type Op, type Versioned } from './etcd';
import { FencedError, OutcomeUnknownError } from './errors';
import { addTxnSizes, chunkBySize, DEFAULT_TXN_LIMITS, EMPTY_TXN_SIZE, isTxnTooLarge, TxnBudget, type TxnLimits, type TxnSize, txnSize } from './chunks';

/** All groups one job gets in one cycle, with the job record they were decided from. */
export interface BindUnit {
  /** The job as the decision saw it; its mod revision is compared. */
  job: Versioned<JobRecord>;
  /** The job after binding (pending ranges removed). */
  next: JobRecord;
  bindings: Binding[];
}

/** What happened to a plan. A unit too large for one transaction is committed as several parts. */
export interface BindResult {
  /** Units (or parts of units) whose bindings landed. */
  bound: BindUnit[];
  /** Units (or parts) refused by a compare (stale job or node, or a lost fence), or not sent because the plan stopped; decided again next cycle. */
  refused: BindUnit[];
  /**
   * Units that can never commit: the job record with one task's binding is over one
   * transaction. Never sent; their job was failed with `bind_too_large` (a failure that did not
   * certainly land — a failed compare, a lost answer, a store error — lists the unit in
   * `refused` instead: it is isolated again next cycle).
   */
  tooLarge: BindUnit[];
  /** Number of transactions sent. */
  txns: number;
  /** Revision of the last transaction that landed ("0" if none): caches are current once they reach it. */
  revision: string;
  /**
   * Why the plan stopped before its end: a transaction whose answer was lost
   * (`OutcomeUnknownError`: it may have landed) or a store failure. What was not sent is in
   * `refused`; the caches show what landed, and the next cycle decides again. @default none
   */
  interrupted?: Error;
}

/** Options of `bindPlan`. */
export interface BindOptions {
  /** Time of the decision, epoch ms (when a job too large to bind fails). @default the units' `boundAt` */
  now?: number;
  /** Limits of one transaction. @default DEFAULT_TXN_LIMITS */
  limits?: TxnLimits;
  /**
   * The create revision of each node's key (`nodes/{node}`) as the decision saw it. A touched
   * node listed here is compared, so nothing is bound to a node whose executor's lease has
   * expired (its key deleted, or made again by a new executor) since the decision. @default none: not compared
   */
  nodes?: ReadonlyMap<string, string>;
}

/**
 * Applies a plan: for each unit, the job record, each group's binding and status, and each
 * touched node's allocation change in one transaction together with the leader's fence.
 * `allocs` is the allocation of every touched node as the decision saw it. A unit that can
 * never fit one transaction is isolated (its job fails with the reason) and the rest goes on;
 * a transaction that throws stops the plan without losing track of what was not sent.
 */
export async function bindPlan(
  store: EtcdStore,
  fence: Compare,
  units: BindUnit[],
  allocs: Map<string, Versioned<NodeAllocation> | undefined>,
  opts: BindOptions = {},
): Promise<BindResult> {
  const result: BindResult = { bound: [], refused: [], tooLarge: [], txns: 0, revision: '0' };
  const limits = opts.limits ?? DEFAULT_TXN_LIMITS;
  const base = txnSize([fence], []);
  const current = new Map(allocs);
  // The job as this plan last wrote it: later parts compare it, and a failure is written on it.
  const written = new Map<string, Versioned<JobRecord>>();
  // Listed in `tooLarge` only once its job certainly failed; else refused, and isolated again next cycle.
  const isolate = async (u: BindUnit) => {
    const failed = await failTooLarge(store, fence, written.get(u.job.key) ?? u.job, u, limits, opts.now ?? u.bindings[0]?.boundAt ?? Date.now());
    (failed ? result.tooLarge : result.refused).push(u);
  };
  const json = new PlanJson(store);
  let parts: BindUnit[] = [];
  for (const u of units) {
    const split = splitUnit(store, u, current, base, limits, json);
    if (split === 'too-large') await isolate(u);
    else parts.push(...split);
  }
  // Found changed since the decision (by a refused transaction): units on them are decided again next cycle.
  const staleJobs = new Set<string>();
  const staleNodes = new Set<string>();
  // Jobs isolated when etcd itself found a lone part too large: their remaining parts are not sent.
  const dropped = new Set<string>();
  let maxUnits = Infinity;
  let refusals = 0;
  let i = 0;
  while (i < parts.length) {
    // Fill one txn with whole parts.
    const chunk: BindUnit[] = [];
    const touched = new Map<string, NodeAllocation>();
    const budget = new TxnBudget(base, limits);
    for (; i < parts.length && chunk.length < maxUnits; i++) {
      const u = parts[i];
      if (dropped.has(u.job.key)) continue;
      // A later part of a job one of whose parts was refused must not land either: its pending
      // ranges assume the earlier parts' bindings.
      if (staleJobs.has(u.job.key) || u.bindings.some((b) => staleNodes.has(b.node))) {
        staleJobs.add(u.job.key);
        result.refused.push(u);
        continue;
      }
      if (chunk.some((c) => c.job.key === u.job.key)) break;
      const size = partSize(store, u, current, touched, json);
      if (!budget.fits(size)) {
        if (!budget.empty) break;
        // Fitted alone when split; an allocation that grew since cannot make it fit: next cycle.
        staleJobs.add(u.job.key);
        result.refused.push(u);
        continue;
      }
      budget.add(size);
      chunk.push(u);
      for (const b of u.bindings) touched.set(b.node, reserveOnNode(touched.get(b.node) ?? current.get(b.node)?.value ?? EMPTY_ALLOCATION, b));
    }
    if (chunk.length === 0) break;
    const compares: Compare[] = [fence];
    const writes: Op[] = [];
    for (const u of chunk) {
      compares.push({ key: u.job.key, modRevision: written.get(u.job.key)?.modRevision ?? u.job.modRevision });
      writes.push(json.put(u.job.key, u.next));
      for (const b of u.bindings) {
        compares.push({ key: store.keys.binding(b.node, b.jobId, b.start, b.attempt), absent: true });
        writes.push(json.put(store.keys.binding(b.node, b.jobId, b.start, b.attempt), b));
        writes.push(json.status(b));
      }
    }
    for (const [node, next] of touched) {
      const key = store.keys.alloc(node);
      const seen = current.get(node);
      compares.push(seen ? { key, modRevision: seen.modRevision } : { key, absent: true });
      writes.push({ put: key, value: next });
      const created = opts.nodes?.get(node);
      if (created) compares.push({ key: store.keys.node(node), createRevision: created });
    }
    result.txns++;
    let res: { succeeded: boolean; revision: string };
    try {
      res = await store.txn(compares, writes);
    } catch (err) {
      if (isTxnTooLarge(err)) {
        // etcd found it too large after all (nothing applied): fewer parts a txn, and a lone part is isolated.
        if (chunk.length > 1) {
          maxUnits = Math.ceil(chunk.length / 2);
          parts = [...chunk, ...parts.slice(i)];
          i = 0;
          continue;
        }
        dropped.add(chunk[0].job.key);
        await isolate(chunk[0]);
        continue;
      }
      // The answer was lost (it may have landed) or the store failed: do not guess. The caches
      // will show what landed; everything not known to have landed is decided again next cycle.
      result.refused.push(...chunk, ...parts.slice(i).filter((u) => !dropped.has(u.job.key)));
      result.interrupted = err as Error;
      return result;
    }
    if (!res.succeeded) {
      // Nothing of this chunk landed. Find which jobs and nodes changed since the decision (an
      // executor released room, a job was cancelled); only units on them are refused, and the
      // others go again — one stale node must not cost the whole cycle's plan.
      // A node that only got room back (an executor released ended tasks) keeps its units: they
      // are reserved again on top of its allocation as it is now.
      const found = await staleOf(store, chunk, touched, current, written);
      for (const k of found.jobs) staleJobs.add(k);
      for (const [n, now] of found.nodes) {
        const seen = current.get(n)?.value ?? EMPTY_ALLOCATION;
        if (now && onlyReleased(seen, now.value)) {
          current.set(n, now);
        } else staleNodes.add(n);
      }
      if (++refusals > MAX_BIND_REFUSALS || (found.jobs.length === 0 && found.nodes.size === 0)) {
        // Nothing of ours changed (the fence: leadership lost; or a binding exists already), or
        // the view keeps moving: the rest is decided again next cycle.
        result.refused.push(...chunk, ...parts.slice(i).filter((u) => !dropped.has(u.job.key)));
        return result;
      }
      parts = [...chunk, ...parts.slice(i)];
      i = 0;
      continue;
    }
    result.bound.push(...chunk);
    result.revision = res.revision;
    for (const u of chunk) written.set(u.job.key, { ...u.job, value: u.next, modRevision: res.revision });
    for (const [node, next] of touched)
      current.set(node, {
        key: store.keys.alloc(node),
        value: next,
        modRevision: res.revision,
        createRevision: current.get(node)?.createRevision ?? res.revision,
      });
  }
  return result;
}

/** The jobs and nodes of a refused chunk whose records are no longer as the chunk compared them. */
async function staleOf(
  store: EtcdStore,
  chunk: BindUnit[],
  touched: Map<string, NodeAllocation>,
  current: Map<string, Versioned<NodeAllocation> | undefined>,
  written: Map<string, Versioned<JobRecord>>,
): Promise<{ jobs: string[]; nodes: Map<string, Versioned<NodeAllocation> | undefined> }> {
  const jobKeys = [...new Set(chunk.map((u) => u.job.key))];
  const expectedJob = new Map(chunk.map((u) => [u.job.key, written.get(u.job.key)?.modRevision ?? u.job.modRevision]));
  const nodes = [...touched.keys()];
  const [jobsNow, allocsNow] = await Promise.all([store.getMany<JobRecord>(jobKeys), store.getMany<NodeAllocation>(nodes.map((n) => store.keys.alloc(n)))]);
  const jobs = jobKeys.filter((k, j) => jobsNow[j]?.modRevision !== expectedJob.get(k));
  const changed = new Map<string, Versioned<NodeAllocation> | undefined>();
  nodes.forEach((n, j) => {
    if (allocsNow[j]?.modRevision !== current.get(n)?.modRevision) changed.set(n, allocsNow[j]);
  });
  return { jobs, nodes: changed };
}

/** Refused transactions one plan may retry (after dropping or rebasing what changed) before the rest waits for the next cycle. */
const MAX_BIND_REFUSALS = 8;

/** What one part takes in a transaction: its job (compare, put), each binding (absent compare, binding and status puts), and the allocation of each node not yet in `touched`. */
function partSize(
  store: EtcdStore,
  u: BindUnit,
  current: Map<string, Versioned<NodeAllocation> | undefined>,
  touched: ReadonlyMap<string, NodeAllocation>,
  json: PlanJson,
): TxnSize {
  const nodes = new Map<string, NodeAllocation>();
  for (const b of u.bindings)
    if (!touched.has(b.node)) nodes.set(b.node, reserveOnNode(nodes.get(b.node) ?? current.get(b.node)?.value ?? EMPTY_ALLOCATION, b));
  return addTxnSizes(
    jobSize(store, u.next, json),
    ...u.bindings.map((b) => bindingSize(store, b, json)),
    ...[...nodes].map(([n, a]) => nodeWriteSize(store, n, a)),
  );
}

/** A touched node's part of a transaction: its allocation's compare and write, and its key's compare. */
function nodeWriteSize(store: EtcdStore, node: string, alloc: NodeAllocation): TxnSize {
  const key = store.keys.alloc(node);
  return txnSize(
    [
      { key, absent: true },
      { key: store.keys.node(node), createRevision: '0' },
    ],
    [{ put: key, value: alloc }],
  );
}

function jobSize(store: EtcdStore, job: JobRecord, json: PlanJson): TxnSize {
  const key = store.keys.job(job.id);
  return txnSize([{ key, modRevision: '0' }], [json.put(key, job)]);
}

function bindingSize(store: EtcdStore, b: Binding, json: PlanJson): TxnSize {
  const key = store.keys.binding(b.node, b.jobId, b.start, b.attempt);
  return txnSize([{ key, absent: true }], [json.put(key, b), json.status(b)]);
}

/**
 * The puts of one plan with each record's JSON made once: a plan sizes a job record, a binding
 * and its status when it splits units and again when it fills each transaction, then sends them
 * (four serializations of each before). Keyed by the record object: a plan never changes a
 * record it made (a part's job is a new object).
 */
class PlanJson {
  private readonly json = new WeakMap<object, string>();
  private readonly statuses = new WeakMap<Binding, Op>();

  constructor(private readonly store: EtcdStore) {}

  /** The put of `value` at `key`, with its JSON. */
  put(key: string, value: object): Op {
    let json = this.json.get(value);
    if (json === undefined) this.json.set(value, (json = JSON.stringify(value)));
    return { put: key, value, json };
  }

  /** The put of the status binding `b` gives its group. */
  status(b: Binding): Op {
    let op = this.statuses.get(b);
    if (!op) this.statuses.set(b, (op = this.put(this.store.keys.group(b.jobId, b.start, b.attempt), boundGroupStatus(b))));
    return op;
  }
}

/**
 * Splits a unit into parts that each fit one transaction beside the fence, each carrying the
 * job as it is once that part's ranges are bound; the parts are committed in order, each
 * comparing the job revision the previous one wrote. A binding of so many tasks that it does
 * not fit by itself (its status has an entry per task) is cut into smaller ranges on the same
 * node. `too-large` when even one task's binding and the job record do not fit: the unit can
 * never commit.
 */
function splitUnit(
  store: EtcdStore,
  u: BindUnit,
  current: Map<string, Versioned<NodeAllocation> | undefined>,
  base: TxnSize,
  limits: TxnLimits,
  json: PlanJson,
): BindUnit[] | 'too-large' {
  // Each part writes the job once; a part's record differs from `next` only in its pending
  // ranges, which a cut can lengthen by one range per binding (`RANGE_BYTES` each).
  const job = jobSize(store, u.next, json);
  const jobPart = { ...job, bytes: Math.max(job.bytes, jobSize(store, u.job.value, json).bytes) + RANGE_BYTES * u.bindings.length };
  const allocSize = (b: Binding) => nodeWriteSize(store, b.node, reserveOnNode(current.get(b.node)?.value ?? EMPTY_ALLOCATION, b));
  const alone = (b: Binding) => new TxnBudget(base, limits).fitsAlone(addTxnSizes(jobPart, bindingSize(store, b, json), allocSize(b)));
  const cut = (b: Binding): Binding[] | undefined => {
    if (alone(b)) return [b];
    if (b.end - b.start <= 1) return undefined;
    const mid = b.start + Math.floor((b.end - b.start) / 2);
    const left = cut(rangeOf(b, b.start, mid));
    const right = left && cut(rangeOf(b, mid, b.end));
    return left && right ? [...left, ...right] : undefined;
  };
  const bindings: Binding[] = [];
  for (const b of u.bindings) {
    const pieces = cut(b);
    if (!pieces) return 'too-large';
    bindings.push(...pieces);
  }
  const groups: Binding[][] = [];
  let budget = new TxnBudget(addTxnSizes(base, jobPart), limits);
  let group: Binding[] = [];
  const seen = new Set<string>();
  for (const b of bindings) {
    const size = addTxnSizes(bindingSize(store, b, json), seen.has(b.node) ? EMPTY_TXN_SIZE : allocSize(b));
    if (!budget.fits(size) && group.length > 0) {
      groups.push(group);
      group = [];
      seen.clear();
      budget = new TxnBudget(addTxnSizes(base, jobPart), limits);
    }
    budget.add(size);
    group.push(b);
    seen.add(b.node);
  }
  if (group.length) groups.push(group);
  if (groups.length === 1 && bindings.length === u.bindings.length) return [u];
  const parts: BindUnit[] = [];
  let bound: Binding[] = [];
  groups.forEach((g, k) => {
    bound = [...bound, ...g];
    const last = k === groups.length - 1;
    parts.push({ job: u.job, next: last ? u.next : { ...u.next, pending: subtractRanges(u.job.value.pending, bound) }, bindings: g });
  });
  return parts;
}

/** Bytes one more pending range can add to a job record (`{"start":…,"end":…,"attempt":…,"notBefore":…}`), an upper bound. */
const RANGE_BYTES = 96;

/** The tasks `[start, end)` of a binding, with their devices and items. */
function rangeOf(b: Binding, start: number, end: number): Binding {
  const from = start - b.start;
  const to = end - b.start;
  return { ...b, start, end, devices: b.devices.slice(from, to), ...(b.items ? { items: b.items.slice(from, to) } : {}) };
}

/**
 * Fails a job whose smallest bind can never commit: its pending tasks fail with
 * `bind_too_large` (fenced CAS on the job record as this plan last saw it). True only when the
 * failure certainly landed: a compare that fails (the job changed), an answer that was lost
 * (`OutcomeUnknownError`: it may or may not have landed) or a store error leave it for the next
 * cycle, which sees the job as it is and isolates it again if it still needs it.
 */
async function failTooLarge(store: EtcdStore, fence: Compare, job: Versioned<JobRecord>, u: BindUnit, limits: TxnLimits, now: number): Promise<boolean> {
  const one = u.bindings[0] ? rangeOf(u.bindings[0], u.bindings[0].start, u.bindings[0].start + 1) : undefined;
  const recordBytes = jsonBytes(job.value);
  const bindingBytes = one ? jsonBytes(one) : 0;
  const message = `the job cannot be bound: its record (${recordBytes} bytes) and one task's binding (${bindingBytes} bytes: command, env, selector, items) do not fit the ${limits.maxBytes} bytes of one etcd transaction; make them smaller (pass large values by reference: a file or URI the task reads) and submit again`;
  const next = failPending(job.value, { code: BIND_TOO_LARGE, message }, now);
  try {
    return (await store.txn([fence, { key: job.key, modRevision: job.modRevision }], [{ put: job.key, value: next }])).succeeded;
  } catch {
    // Not certainly landed, whatever the error (an unknown outcome included): not reported as failed.
    return false;
  }
}

/** One group's new status from its executor. */
export interface GroupReport {
  status: GroupStatus;
  /** Mod revision of the status key the executor last saw or wrote. */
  statusRevision: string;
  /** Results of tasks of this group that ended since the last accepted report. @default none */
  results?: TaskResult[];
}

/** What happened to a batch of reports. */
export interface ReportResult {
  /** New mod revision of each accepted report's status key. */
  accepted: Map<string, string>;
  /**
   * Status keys whose group is no longer this executor's: another writer changed or removed
   * its status and its binding is gone. Reports neither accepted nor refused (lost races on
   * busy records, answers lost, a status changed while the binding stays) are sent again.
   */
  refused: string[];
  /** False when the executor's own lease no longer holds its node key: it must self-fence. */
  fenced: boolean;
  /** The status as written for each accepted report (with `released` set on tasks whose room went back). */
  written: Map<string, GroupStatus>;
  /** Tasks the accepted reports sent back to pending (retries, preemptions), per job. */
  requeued: Array<Requeue & { jobId: string }>;
}

/** Sequence of this process's report transactions (each carries the next one in its token). */
let reportSeq = 0;

/**
 * Writes executors' reports in batched transactions. Each task that ended gives its room back
 * to the node's allocation at once (marked `released`); a group whose tasks all ended also
 * deletes its binding and adds its outcomes to the job's counters. Every write is fenced by the executor's node lease and
 * compares the status revision, so a late report of an old attempt is refused.
 *
 * Each transaction writes a token (`leaseId`, a sequence of this process) into the statuses it
 * puts. After a failed compare or a lost answer the statuses are read again: this token means
 * the transaction landed (accepted, its job and allocation changes applied once, with it); an
 * earlier token of the same lease means an earlier report whose answer was lost landed — the
 * report is rebased on it (its revision and `released` marks) and sent again. Only a status
 * changed by another writer with its binding gone is refused.
 */
export async function reportGroups(store: EtcdStore, node: string, leaseId: string, reports: GroupReport[], now: number): Promise<ReportResult> {
  const result: ReportResult = { accepted: new Map(), refused: [], fenced: false, written: new Map(), requeued: [] };
  let todo = reports;
  let maxReports = MAX_TXN_OPS;
  for (let round = 0; round < 8 && todo.length > 0; round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, Math.random() * 10 * round)); // spread racing reporters
    const chunk = takeChunk(todo, maxReports);
    todo = todo.slice(chunk.length);
    const token: ReporterToken = { lease: leaseId, seq: ++reportSeq };
    const outcome = await reportChunk(store, node, leaseId, chunk, now, token);
    if (outcome === 'fenced') {
      result.fenced = true;
      return result;
    }
    if (outcome === 'too-large') {
      // Large job records (e.g. with `items`) made the chunk too big: send it in halves.
      const half = Math.ceil(chunk.length / 2);
      todo = [...chunk.slice(0, half), ...chunk.slice(half), ...todo];
      maxReports = half;
      round--;
      continue;
    }
    let landed: { revision: string } | undefined = 'revision' in outcome ? outcome : undefined;
    if (!landed) {
      // A compare failed (someone changed a job or the allocation, or a status is stale), or the
      // answer was lost: the statuses tell which.
      const seen = await settleChunk(store, node, leaseId, chunk, token);
      if (seen.landed) landed = seen.landed;
      else {
        result.refused.push(...seen.refused);
        todo = [...seen.again, ...todo];
        continue;
      }
    }
    for (const r of chunk) {
      const key = store.keys.group(r.status.jobId, r.status.start, r.status.attempt);
      result.accepted.set(key, landed.revision);
      result.written.set(key, outcome.written.get(r)!);
    }
    result.requeued.push(...outcome.requeued);
    round = -1; // progress made: reset the conflict budget
  }
  // Reports still in `todo` lost every race (busy job records): neither accepted nor refused — send again later.
  return result;
}

/**
 * Reads the statuses (and bindings) of a chunk whose transaction failed its compare or lost its
 * answer: `landed` when they carry the chunk's token (one transaction: all or none carry it);
 * else the reports to send again (unchanged, or rebased on an earlier landed report of the same
 * lease) and the ones refused. A read that fails throws: the caller keeps its reports and the
 * next report resolves them the same way.
 */
async function settleChunk(
  store: EtcdStore,
  node: string,
  leaseId: string,
  chunk: GroupReport[],
  token: ReporterToken,
): Promise<{ landed?: { revision: string }; again: GroupReport[]; refused: string[] }> {
  const keys = chunk.map((r) => store.keys.group(r.status.jobId, r.status.start, r.status.attempt));
  const statuses = await store.getMany<GroupStatus>(keys);
  const mine = statuses.find((s) => s?.value.reporter?.lease === token.lease && s.value.reporter.seq === token.seq);
  if (mine) return { landed: { revision: mine.modRevision }, again: [], refused: [] };
  const bindings = await store.getMany<Binding>(chunk.map((r) => store.keys.binding(node, r.status.jobId, r.status.start, r.status.attempt)));
  const out = { again: [] as GroupReport[], refused: [] as string[] };
  chunk.forEach((r, k) => {
    const s = statuses[k];
    if (s && s.modRevision === r.statusRevision) out.again.push(r);
    else if (s && s.value.reporter?.lease === leaseId) out.again.push(rebase(r, s));
    else if (!bindings[k]) out.refused.push(keys[k]);
    // else: changed by another writer while the binding stays; sent again next flush, refused once the binding goes.
  });
  return out;
}

/**
 * A report on top of an earlier report of this process that landed though its answer was
 * lost: it compares that write's revision and keeps its `released` marks, so the room and
 * outcomes that write already gave back are not given twice.
 */
function rebase(r: GroupReport, landed: Versioned<GroupStatus>): GroupReport {
  const tasks = r.status.tasks.map((t, k) => (landed.value.tasks[k]?.released && !t.released ? { ...t, released: true } : t));
  return { ...r, statusRevision: landed.modRevision, status: { ...r.status, tasks } };
}

function takeChunk(reports: GroupReport[], maxReports: number): GroupReport[] {
  // Per report at most: status compare + put, binding delete, job compare + put, one put per result; the alloc once.
  let ops = 2;
  let bytes = 0;
  let n = 0;
  for (const r of reports) {
    const rOps = 5 + (r.results?.length ?? 0);
    const rBytes = jsonBytes(r.status) + resultBytes(r);
    if (n > 0 && (n >= maxReports || ops + rOps > MAX_TXN_OPS || bytes + rBytes > MAX_TXN_BYTES / 2)) break;
    ops += rOps;
    bytes += rBytes;
    n++;
  }
  return reports.slice(0, Math.max(1, n));
}

function resultBytes(r: GroupReport): number {
  return (r.results ?? []).reduce((s, x) => s + jsonBytes(x), 0);
}

/**
 * Writes the results of one lone report that do not fit beside it, in transactions before it
 * (sized by the store's chunker), fenced like the report (node lease and unchanged status: a
 * late report of an old attempt writes nothing). Readers look at results once the job or task
 * is terminal, which happens only in the report's transaction after these.
 */
async function writeResultsAhead(store: EtcdStore, node: string, leaseId: string, r: GroupReport, results: readonly Op[]): Promise<boolean> {
  const fences: Compare[] = [
    { key: store.keys.node(node), lease: leaseId },
    { key: store.keys.group(r.status.jobId, r.status.start, r.status.attempt), modRevision: r.statusRevision },
  ];
  // A result is at most MAX_RESULT_BYTES: one alone always fits.
  const { chunks } = chunkBySize(results, (op) => txnSize([], [op]), { base: txnSize(fences, []) });
  for (const ops of chunks) {
    // Results are puts of the same values: one whose answer was lost is simply written again.
    if (!(await store.txn(fences, ops)).succeeded) return false;
  }
  return true;
}

/** A chunk's transaction as prepared: what each status becomes and what it requeues. */
interface PreparedChunk {
  written: Map<GroupReport, GroupStatus>;
  requeued: Array<Requeue & { jobId: string }>;
}

/**
 * Sends one chunk of reports with `token` in each status it puts: `revision` once it landed;
 * `unsettled` when a compare failed or the answer was lost (the caller reads the statuses to
 * tell which); `too-large` when a chunk of several reports does not fit one transaction (the
 * caller halves it). A lone report never answers `too-large`: its results go ahead, and if its
 * status and job record still cannot fit, it ends its job instead (see `endOversizedReport`).
 */
async function reportChunk(
  store: EtcdStore,
  node: string,
  leaseId: string,
  chunk: GroupReport[],
  now: number,
  token: ReporterToken,
): Promise<'fenced' | 'too-large' | (PreparedChunk & ({ revision: string } | { unsettled: true }))> {
  // The jobs whose tasks end now, from the statuses alone; they and the allocation are read in one
  // transaction, and only when some task ends (a report of tasks starting leaves them be).
  const jobIds = [...new Set(chunk.filter((r) => hasUnreleasedEnd(r.status)).map((r) => r.status.jobId))];
  const read = jobIds.length ? await store.getMany<NodeAllocation | JobRecord>([store.keys.alloc(node), ...jobIds.map((id) => store.keys.job(id))]) : [];
  const alloc = read[0] as Versioned<NodeAllocation> | undefined;
  const jobs = read.slice(1) as Array<Versioned<JobRecord> | undefined>;
  // Every task that ended gives its room back and reaches its job now, not when its whole group ends.
  let nextAlloc = alloc?.value ?? EMPTY_ALLOCATION;
  const written = new Map<GroupReport, GroupStatus>();
  const outcomes = new Map<string, GroupStatus[]>();
  for (const r of chunk) {
    const { alloc: after, released } = releaseEndedTasks(nextAlloc, r.status);
    written.set(r, {
      ...r.status,
      tasks: released.length ? r.status.tasks.map((t, k) => (released.includes(k) ? { ...t, released: true } : t)) : r.status.tasks,
      reporter: token,
    });
    if (released.length === 0) continue;
    nextAlloc = after;
    outcomes.set(r.status.jobId, [...(outcomes.get(r.status.jobId) ?? []), onlyTasks(r.status, released)]);
  }
  let requeued: Array<Requeue & { jobId: string }> = [];
  // A failed compare: fenced when the lease no longer holds the node key, else for the caller to settle.
  const compareFailed = async (): Promise<'fenced' | (PreparedChunk & { unsettled: true })> => {
    const leaseOk = await store.txn([{ key: store.keys.node(node), lease: leaseId }], []);
    return leaseOk.succeeded ? { written, requeued, unsettled: true } : 'fenced';
  };
  const compares: Compare[] = [{ key: store.keys.node(node), lease: leaseId }];
  const statusOps = (statusOf: (r: GroupReport) => GroupStatus): Op[] =>
    chunk.flatMap((r) => [
      encodedPut(store.keys.group(r.status.jobId, r.status.start, r.status.attempt), statusOf(r)),
      ...(r.status.tasks.every((t) => TERMINAL_TASK_STATES.has(t.state))
        ? [{ delete: store.keys.binding(node, r.status.jobId, r.status.start, r.status.attempt) }]
        : []),
    ]);
  for (const r of chunk) compares.push({ key: store.keys.group(r.status.jobId, r.status.start, r.status.attempt), modRevision: r.statusRevision });
  const allocOps: Op[] = [];
  if (alloc && outcomes.size > 0) {
    compares.push({ key: alloc.key, modRevision: alloc.modRevision });
    allocOps.push(encodedPut(alloc.key, nextAlloc));
  }
  const settledJobs: Array<{ job: Versioned<JobRecord>; next: JobRecord }> = [];
  jobIds.forEach((id, k) => {
    const job = jobs[k];
    if (!job) return;
    const settled = settleOutcomes(job.value, outcomes.get(id)!, now);
    compares.push({ key: job.key, modRevision: job.modRevision });
    settledJobs.push({ job, next: settled.job });
    for (const r of settled.requeued) requeued.push({ ...r, jobId: id });
  });
  const jobOps = (jobOf: (j: { job: Versioned<JobRecord>; next: JobRecord }) => JobRecord): Op[] => settledJobs.map((j) => encodedPut(j.job.key, jobOf(j)));
  // Each record serialized once: the transaction is sized and sent from the same JSON.
  const resultOps: Op[] = chunk.flatMap((r) => (r.results ?? []).map((x) => encodedPut(store.keys.result(r.status.jobId, x.index), x)));
  const budget = new TxnBudget();
  let ops: Op[] = [...statusOps((r) => written.get(r)!), ...allocOps, ...jobOps((j) => j.next)];
  try {
    if (budget.fits(txnSize(compares, [...ops, ...resultOps]))) ops = [...ops, ...resultOps];
    else if (chunk.length > 1) return 'too-large';
    else {
      // A lone report: its results go ahead in their own transactions, then the rest must fit alone.
      if (resultOps.length > 0 && !(await writeResultsAhead(store, node, leaseId, chunk[0], resultOps))) return await compareFailed();
      if (!budget.fits(txnSize(compares, ops))) {
        const ended = endOversizedReport(
          chunk[0],
          written.get(chunk[0])!,
          settledJobs,
          now,
          (statusOf, jobOf) => txnSize(compares, [...statusOps(statusOf), ...allocOps, ...jobOps(jobOf)]),
          budget,
        );
        written.set(chunk[0], ended.status);
        requeued = [];
        ops = [...statusOps(() => ended.status), ...allocOps, ...jobOps(ended.jobOf)];
      }
    }
  } catch (err) {
    if (err instanceof OutcomeUnknownError) return { written, requeued, unsettled: true };
    throw err;
  }
  try {
    const res = await store.txn(compares, ops);
    if (res.succeeded) return { revision: res.revision, written, requeued };
  } catch (err) {
    if (err instanceof OutcomeUnknownError) return { written, requeued, unsettled: true };
    throw err;
  }
  return compareFailed();
}

/**
 * A lone report whose status and job record cannot fit one transaction (a job record from
 * before the submit caps, or a group whose per-task fields grew past what the bind-time split
 * sized) would be refused by etcd every time it is sent, and its job would stay `Running`.
 * It ends instead, in one fenced transaction like any report: the status keeps only each task's
 * state, reason, exit code and `released` mark; the job's pending tasks fail with
 * `report_too_large`; and if the record is still too large, the inputs only a new attempt
 * would need (env, items, labels, selector, tolerations) are dropped from it. Throws when even
 * that cannot fit.
 */
function endOversizedReport(
  r: GroupReport,
  status: GroupStatus,
  jobs: ReadonlyArray<{ job: Versioned<JobRecord>; next: JobRecord }>,
  now: number,
  sizeOf: (statusOf: () => GroupStatus, jobOf: (j: { job: Versioned<JobRecord>; next: JobRecord }) => JobRecord) => TxnSize,
  budget: TxnBudget,
): { status: GroupStatus; jobOf: (j: { job: Versioned<JobRecord>; next: JobRecord }) => JobRecord } {
  const compact: GroupStatus = {
    ...status,
    tasks: status.tasks.map((t) => ({
      state: t.state,
      ...(t.reason ? { reason: t.reason } : {}),
      ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
      ...(t.released ? { released: true } : {}),
    })),
  };
  const reasonOf = (job: JobRecord, trimmed: boolean) => ({
    code: REPORT_TOO_LARGE,
    message: `a report of tasks ${r.status.start}–${r.status.end - 1} cannot be written: the job's record (${jsonBytes(job)} bytes) and the group's status (${jsonBytes(status)} bytes) do not fit the ${budget.limits.maxBytes} bytes of one etcd transaction, so its pending tasks fail${trimmed ? ' and its env, items, labels, selector and tolerations were dropped from the stored record' : ''}; submit it again smaller (pass large values by reference: a file or URI the task reads)`,
  });
  const failed = (job: JobRecord, trimmed: boolean): JobRecord => {
    const reason = reasonOf(job, trimmed);
    const next = failPending(job, reason, now);
    const out = next.reason ? next : { ...next, reason };
    return trimmed ? { ...out, spec: { ...withoutTaskInputs(out.spec) } } : out;
  };
  for (const trimmed of [false, true]) {
    const jobOf = (j: { job: Versioned<JobRecord>; next: JobRecord }) => failed(j.next, trimmed);
    if (budget.fits(sizeOf(() => compact, jobOf))) return { status: compact, jobOf };
  }
  throw new Error(
    `the report of group ${r.status.jobId}/${r.status.start} cannot fit one etcd transaction even with its status compacted and its job record trimmed`,
  );
}

/** A job spec without what only a new attempt would need. */
function withoutTaskInputs(spec: JobRecord['spec']): JobRecord['spec'] {
  const { items: _items, selector: _selector, tolerations: _tolerations, ...rest } = spec;
  return { ...rest, env: {}, labels: {} };
}

/** The group with only the given task offsets visible to the job's state machine (the others read as still running). */
function onlyTasks(g: GroupStatus, offsets: number[]): GroupStatus {
  return { ...g, tasks: g.tasks.map((t, k) => (offsets.includes(k) ? t : { state: 'Running' as const })) };
}

/** The reaper found the node's key again: its executor is back, so its groups are its own. */
export class NodeReturnedError extends Error {
  constructor(readonly node: string) {
    super(`node ${node} registered again while being reaped; its groups are left to its executor`);
    this.name = 'NodeReturnedError';
  }
}

/** The reaper's leadership fence no longer holds: a newer leader reaps instead. */
export class ReapFencedError extends FencedError {
  constructor(readonly node: string) {
    super(`reaping node ${node} stopped: this scheduler is no longer the leader`);
    this.name = 'ReapFencedError';
  }
}

/** Listings of a lost node's bindings one reap goes through before the rest waits for the next cycle. */
const MAX_REAP_ROUNDS = 8;
/** Sends of the final allocation delete one reap makes before it throws (the next cycle reaps again). */
const MAX_ALLOC_DELETES = 3;

/**
 * Ends the live groups of a node whose executor is gone, once the caller has waited its
 * lease TTL plus a grace (so the executor has certainly killed them, invariant 4): each
 * non-terminal task becomes `Failed` with signal `NodeLost` (the job's state machine
 * requeues it at the next attempt), the bindings and the node's allocation are removed.
 * Fenced by the caller's leadership and by the node key being absent (a node that came back
 * is not reaped: `NodeReturnedError`); one transaction per job chunk. A transaction refused
 * by a busy job record, or whose answer was lost, is settled by listing the bindings again:
 * a binding gone is a group ended (the reap is idempotent). Returns the groups ended and the
 * task attempts that ended `NodeLost`; throws when bindings remain after `MAX_REAP_ROUNDS`
 * listings (the next cycle goes on) — the allocation is deleted only once none remain.
 */
export async function reapLostNode(store: EtcdStore, fence: Compare, node: string, now: number): Promise<{ groups: number; tasks: number }> {
  const gone: Compare = { key: store.keys.node(node), absent: true };
  let ended = 0;
  let lost = 0;
  // Chunks refused or whose answer was lost: counted once the next listing shows their bindings
  // gone (a lost node's bindings are deleted by nobody else; a refused re-send may have landed).
  let unsettled: Array<{ keys: string[]; tasks: number }> = [];
  for (let round = 0; ; round++) {
    const bindings = (await store.listAll<Binding>(store.keys.bindingsOf(node))).items;
    const listed = new Set(bindings.map((b) => b.key));
    for (const u of unsettled)
      if (u.keys.every((k) => !listed.has(k))) {
        ended += u.keys.length;
        lost += u.tasks;
      }
    unsettled = [];
    if (bindings.length === 0) break;
    if (round >= MAX_REAP_ROUNDS)
      throw new Error(`reaping node ${node}: ${bindings.length} bindings remain after ${round} rounds of busy job records; retry next cycle`);
    const byJob = new Map<string, Array<Versioned<Binding>>>();
    for (const b of bindings) byJob.set(b.value.jobId, [...(byJob.get(b.value.jobId) ?? []), b]);
    for (const [jobId, list] of byJob) {
      for (let i = 0; i < list.length; i += 30) {
        const chunk = list.slice(i, i + 30);
        const txn = await reapTxn(store, [fence, gone], node, jobId, chunk, now);
        try {
          if ((await store.txn(txn.compares, txn.ops)).succeeded) {
            ended += chunk.length;
            lost += txn.tasks;
            continue;
          }
        } catch (err) {
          if (!(err instanceof OutcomeUnknownError)) throw err;
          unsettled.push({ keys: chunk.map((b) => b.key), tasks: txn.tasks });
          continue;
        }
        unsettled.push({ keys: chunk.map((b) => b.key), tasks: txn.tasks });
        await whyReapRefused(store, fence, node);
        // Else a binding, status or job record changed (reports of the job's other groups): listed again next round.
      }
    }
  }
  // What is left of the allocation goes once no binding is left (each reap txn already took its
  // groups' reservations out). Deleting is idempotent: a lost answer is sent again; a refusal the
  // node and the fence do not explain is tried again, a bounded number of times.
  for (let attempt = 1; ; attempt++) {
    try {
      if ((await store.txn([fence, gone], [{ delete: store.keys.alloc(node) }])).succeeded) break;
      await whyReapRefused(store, fence, node);
      if (attempt >= MAX_ALLOC_DELETES) throw new Error(`reaping node ${node}: deleting its allocation was refused ${attempt} times; retry next cycle`);
    } catch (err) {
      if (!(err instanceof OutcomeUnknownError) || attempt >= MAX_ALLOC_DELETES) throw err;
    }
  }
  return { groups: ended, tasks: lost };
}

/**
 * One reap transaction: the chunk's bindings deleted, their statuses ended `NodeLost`, the job's
 * outcomes applied, and the tasks' reservations taken out of the node's allocation (compared
 * at its revision), so a reap that stops half-way (the node came back) leaves no reservation of
 * a reaped group behind.
 */
async function reapTxn(
  store: EtcdStore,
  fences: Compare[],
  node: string,
  jobId: string,
  chunk: Array<Versioned<Binding>>,
  now: number,
): Promise<{ compares: Compare[]; ops: Op[]; tasks: number }> {
  const allocKey = store.keys.alloc(node);
  const [job, alloc, ...statuses] = await store.getMany<unknown>([
    store.keys.job(jobId),
    allocKey,
    ...chunk.map((b) => store.keys.group(jobId, b.value.start, b.value.attempt)),
  ]);
  const compares: Compare[] = [...fences];
  const ops: Op[] = [];
  const finished: GroupStatus[] = [];
  let nextAlloc = (alloc as Versioned<NodeAllocation> | undefined)?.value;
  let tasks = 0;
  chunk.forEach((b, k) => {
    compares.push({ key: b.key, modRevision: b.modRevision });
    ops.push({ delete: b.key });
    const st = statuses[k] as Versioned<GroupStatus> | undefined;
    if (!st) {
      // No status to tell which tasks gave their room back already: the whole group's goes.
      if (nextAlloc) nextAlloc = releaseOnNode(nextAlloc, b.value);
      return;
    }
    // Written by the scheduler, not by the executor: without its report token.
    const { reporter: _executor, ...status } = st.value;
    const ended: GroupStatus = {
      ...status,
      tasks: st.value.tasks.map((t) => (TERMINAL_TASK_STATES.has(t.state) ? t : { ...t, state: 'Failed' as const, reason: NODE_LOST, finishedAt: now })),
    };
    // Every task not released yet gives its room back now (the same arithmetic as a report's).
    const { alloc: after, released } = releaseEndedTasks(nextAlloc ?? EMPTY_ALLOCATION, ended);
    if (nextAlloc) nextAlloc = after;
    const next: GroupStatus = { ...ended, tasks: ended.tasks.map((t, j) => (released.includes(j) ? { ...t, released: true } : t)) };
    tasks += st.value.tasks.filter((t) => !TERMINAL_TASK_STATES.has(t.state)).length;
    compares.push({ key: st.key, modRevision: st.modRevision });
    ops.push({ put: st.key, value: next });
    // Tasks released earlier already reached the job; the rest do now.
    finished.push(onlyTasks(ended, released));
  });
  if (alloc) {
    compares.push({ key: allocKey, modRevision: (alloc as Versioned<NodeAllocation>).modRevision });
    ops.push({ put: allocKey, value: nextAlloc });
  } else compares.push({ key: allocKey, absent: true });
  if (job) {
    const j = job as Versioned<JobRecord>;
    compares.push({ key: j.key, modRevision: j.modRevision });
    ops.push({ put: j.key, value: applyGroupOutcomes(j.value, finished, now) });
  }
  return { compares, ops, tasks };
}

/** After a refused reap txn: throws when the node is back or the fence is gone (else a record just changed). */
async function whyReapRefused(store: EtcdStore, fence: Compare, node: string): Promise<void> {
  if (await store.get(store.keys.node(node))) throw new NodeReturnedError(node);
  if (!(await store.txn([fence], [])).succeeded) throw new ReapFencedError(node);
}

/**
 * Asks executors to preempt task indices of live bindings: each binding gets the indices in
 * `preempt` by compare-and-swap, fenced by the scheduler's leadership, in transactions chunked
 * by count and UTF-8 bytes (a binding carries its job's command and env). Returns how many
 * bindings were changed; a binding that changed or vanished meanwhile is skipped (with the
 * rest of its transaction: decided again next cycle).
 */
export async function requestPreemption(
  store: EtcdStore,
  fence: Compare,
  victims: Array<{ node: string; jobId: string; start: number; attempt: number; index: number }>,
  now: number,
  limits: TxnLimits = DEFAULT_TXN_LIMITS,
): Promise<number> {
  const byKey = new Map<string, number[]>();
  for (const v of victims) {
    const key = store.keys.binding(v.node, v.jobId, v.start, v.attempt);
    byKey.set(key, [...(byKey.get(key) ?? []), v.index]);
  }
  const keys = [...byKey.keys()];
  const current = await store.getMany<Binding>(keys);
  const changes = keys.flatMap((key, k) => {
    const b = current[k];
    if (!b) return [];
    const value: Binding = {
      ...b.value,
      preempt: [...new Set([...(b.value.preempt ?? []), ...byKey.get(key)!])].sort((x, y) => x - y),
      preemptRequestedAt: b.value.preemptRequestedAt ?? now,
    };
    return [{ compare: { key, modRevision: b.modRevision } as Compare, op: { put: key, value } as Op }];
  });
  // A binding too large to rewrite alone cannot exist (it was written with its job in one transaction); none is sent.
  const { chunks } = chunkBySize(changes, (c) => txnSize([c.compare], [c.op]), { base: txnSize([fence], []), limits });
  let changed = 0;
  for (const chunk of chunks) {
    const res = await store.txn(
      [fence, ...chunk.map((c) => c.compare)],
      chunk.map((c) => c.op),
    );
    if (res.succeeded) changed += chunk.length;
  }
  return changed;
}
