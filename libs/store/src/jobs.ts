/**
 * Job records: the durable submit with its idempotency key, compare-and-swap updates,
 * listings, and cancellation that reaches the live bindings.
 */
import { createHash } from 'node:crypto';
import { type Binding, type GroupStatus, type JobRecord, type TaskResult, TERMINAL_PHASES } from '@batchapi/api';
import { requestCancel, requestTaskCancel, type TaskCancelRefusal } from '@batchapi/lifecycle';
import { type Compare, type EtcdStore, MAX_TXN_BYTES, MAX_TXN_OPS, type Op, type Versioned } from './etcd';
import { CasConflictError, IdempotentJobGoneError, OutcomeUnknownError, StoreUnavailableError } from './errors';
import { firstSubmitOf } from './idempotency';

/** What the idempotency key maps to. */
export interface IdempotencyRecord {
  jobId: string;
  /** SHA-256 of the canonical request, so reuse with another body is refused. */
  requestHash: string;
  createdAt: number;
}

/** Most compare-and-swap attempts of an update before giving up with `CasConflictError`. */
export const MAX_CAS_ATTEMPTS = 16;

export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Commits a new job (and its idempotency record) in one transaction before anyone answers.
 * With an idempotency key, a retry returns the first job (`created: false`) and a reuse
 * with another request body fails with `IdempotencyConflictError`; concurrent retries race on
 * the key's absence, so exactly one job is created. A job id taken by another job, or a key
 * whose job is gone, is a `CasConflictError`.
 */
export async function submitJob(
  store: EtcdStore,
  job: JobRecord,
  idempotency?: { key: string; requestHash: string },
): Promise<{ job: Versioned<JobRecord>; created: boolean }> {
  const { compares, ops, idemKey } = submitWrites(store, job, idempotency);
  let res: { succeeded: boolean; revision: string };
  try {
    res = await store.txn(compares, ops);
  } catch (err) {
    if (!(err instanceof OutcomeUnknownError)) throw err;
    // The job id is drawn per submit: a record under it that is this very job means the write landed.
    // Else it may still land: unknown (503), and a retry with the same Idempotency-Key tells.
    const same = await store.get<JobRecord>(store.keys.job(job.id)).catch(() => undefined);
    if (same && sameSubmit(same.value, job)) return { job: same, created: true };
    throw err;
  }
  if (res.succeeded) return { job: { key: store.keys.job(job.id), value: job, modRevision: res.revision, createRevision: res.revision }, created: true };
  return submitRefused(store, job, idempotency, idemKey);
}

/** Whether a stored job is this submit's: what never changes after a submit is compared (the scheduler may have bound it since). */
function sameSubmit(stored: JobRecord, submitted: JobRecord): boolean {
  const fixed = (j: JobRecord) => JSON.stringify([j.tenant, j.queue, j.createdAt, j.spec]);
  return fixed(stored) === fixed(submitted);
}

/** The compares and writes of one submit: the job and its idempotency record, both new. */
function submitWrites(
  store: EtcdStore,
  job: JobRecord,
  idempotency?: { key: string; requestHash: string },
): { compares: Compare[]; ops: Op[]; idemKey?: string } {
  const jobKey = store.keys.job(job.id);
  const compares: Compare[] = [{ key: jobKey, absent: true }];
  if (!idempotency) return { compares, ops: [{ put: jobKey, value: job }] };
  const digest = sha256(idempotency.key);
  const idemKey = store.keys.idempotency(job.tenant, digest);
  // The job names its record, so the archiver moves the record with it.
  const ops: Op[] = [{ put: jobKey, value: { ...job, idempotencyDigest: digest } satisfies JobRecord }];
  compares.push({ key: idemKey, absent: true });
  ops.push({ put: idemKey, value: { jobId: job.id, requestHash: idempotency.requestHash, createdAt: job.createdAt } satisfies IdempotencyRecord });
  return { compares, ops, idemKey };
}

/** Why a submit's compares failed: the key's first job (a retry), or the error to answer. */
async function submitRefused(
  store: EtcdStore,
  job: JobRecord,
  idempotency: { key: string; requestHash: string } | undefined,
  idemKey: string | undefined,
): Promise<{ job: Versioned<JobRecord>; created: boolean }> {
  if (!idemKey || !idempotency) {
    // Job ids are drawn at random per submit: a record under this id that is this very job was
    // written by an earlier try of this submit whose answer was lost (a deadline after the commit).
    const same = await store.get<JobRecord>(store.keys.job(job.id));
    if (same && sameSubmit(same.value, job)) return { job: same, created: true };
    throw new CasConflictError(`job ${job.id} already exists`, job.id);
  }
  const jobId = await firstSubmitOf(store, idemKey, idempotency.requestHash, 'job', (r: IdempotencyRecord) => r.jobId);
  const existing = await store.get<JobRecord>(store.keys.job(jobId));
  if (!existing) throw new IdempotentJobGoneError(jobId);
  return { job: existing, created: false };
}

/** Bytes a submit adds to a transaction besides its job record: the idempotency record and both keys. */
const SUBMIT_OVERHEAD_BYTES = 512;

/** Tuning of a `SubmitCommitter`. */
export interface SubmitCommitterOptions {
  /** Transactions under way at once; submits arriving meanwhile wait and go together in the next. @default 2 */
  maxInflight?: number;
  /** Most submits in one transaction (each takes two compares and two writes). @default 32 */
  maxBatch?: number;
  /** A submit that waited this long for its turn (etcd slow or down) is answered 503 without being sent, checked at least this often, in milliseconds. @default 2000 */
  maxWaitMs?: number;
  /** The clock, in milliseconds. @default performance.now */
  clock?: () => number;
  /**
   * Told each submit's time from its arrival here to its answer (committed, refused, or 503
   * unanswered), in milliseconds on `clock`: how long etcd is taking to take submits (admission
   * sheds new submits on it). @default none
   */
  onAnswered?: (latencyMs: number) => void;
}

interface PendingSubmit {
  job: JobRecord;
  idempotency?: { key: string; requestHash: string };
  /** When it arrived (the committer's clock). */
  at: number;
  resolve: (r: { job: Versioned<JobRecord>; created: boolean }) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit of submits: while `maxInflight` transactions are under way, submits that
 * arrive wait and are then committed together in one transaction (no added delay when
 * idle). Each caller's promise resolves only once its job is committed, as with
 * `submitJob`. A batch whose compares fail (an idempotency key seen before, a racing
 * retry) is retried one submit at a time, so every submit gets exactly its own answer.
 * Under load this turns a thousand small transactions a second into a few dozen larger
 * ones: etcd and the gRPC client do much less per job.
 */
export class SubmitCommitter {
  private readonly queue: PendingSubmit[] = [];
  private inflight = 0;
  private readonly maxInflight: number;
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  private readonly clock: () => number;
  private readonly onAnswered?: (latencyMs: number) => void;
  /** Answers submits that wait past `maxWaitMs` while every transaction slot is taken. */
  private expiry?: NodeJS.Timeout;

  constructor(
    private readonly store: EtcdStore,
    o: SubmitCommitterOptions = {},
  ) {
    this.maxInflight = o.maxInflight ?? 2;
    this.maxWaitMs = o.maxWaitMs ?? 2000;
    this.clock = o.clock ?? (() => performance.now());
    this.onAnswered = o.onAnswered;
    this.maxBatch = Math.min(o.maxBatch ?? 32, Math.floor(MAX_TXN_OPS / 2));
  }

  /** Commits a new job (and its idempotency record); the same answers and errors as `submitJob`. */
  submit(job: JobRecord, idempotency?: { key: string; requestHash: string }): Promise<{ job: Versioned<JobRecord>; created: boolean }> {
    return new Promise((resolve, reject) => {
      const at = this.clock();
      const answered = () => this.onAnswered?.(this.clock() - at);
      this.queue.push({
        job,
        idempotency,
        at,
        resolve: (r) => {
          answered();
          resolve(r);
        },
        reject: (err) => {
          answered();
          reject(err);
        },
      });
      this.pump();
      this.armExpiry();
    });
  }

  /** While submits wait, a timer answers those past `maxWaitMs` even if no slot frees meanwhile. */
  private armExpiry(): void {
    if (this.expiry || this.queue.length === 0) return;
    const wait = Math.max(0, this.queue[0].at + this.maxWaitMs - this.clock()) + 1;
    this.expiry = setTimeout(() => {
      this.expiry = undefined;
      const now = this.clock();
      for (let i = 0; i < this.queue.length;) {
        if (now - this.queue[i].at > this.maxWaitMs) this.reject503(this.queue.splice(i, 1)[0]);
        else i++;
      }
      this.armExpiry();
    }, wait);
    this.expiry.unref();
  }

  private reject503(p: PendingSubmit): void {
    p.reject(new StoreUnavailableError(`the store did not take the submit within ${this.maxWaitMs} ms`));
  }

  private pump(): void {
    while (this.inflight < this.maxInflight && this.queue.length > 0) {
      const batch = this.take();
      if (batch.length === 0) continue; // all it found had waited too long (answered 503)
      this.inflight++;
      void this.commit(batch).finally(() => {
        this.inflight--;
        this.pump();
      });
    }
  }

  /**
   * The next batch: in arrival order, under the op and byte limits, one submit per idempotency
   * key. Submits that waited past `maxWaitMs` are answered 503 instead: after an outage the
   * backlog is not sent late, one deadline after another, to clients that have retried.
   */
  private take(): PendingSubmit[] {
    const batch: PendingSubmit[] = [];
    const keys = new Set<string>();
    let bytes = 0;
    const now = this.clock();
    for (let i = 0; i < this.queue.length && batch.length < this.maxBatch;) {
      const p = this.queue[i];
      if (now - p.at > this.maxWaitMs) {
        this.queue.splice(i, 1);
        this.reject503(p);
        continue;
      }
      // Bytes as etcd counts them (UTF-8), with room for the idempotency record and the keys.
      const b = Buffer.byteLength(JSON.stringify(p.job)) + SUBMIT_OVERHEAD_BYTES;
      if (batch.length > 0 && bytes + b > MAX_TXN_BYTES / 2) break;
      // Two submits with one key cannot share a transaction (etcd refuses a key written twice): the later waits.
      if (p.idempotency && keys.has(p.idempotency.key)) {
        i++;
        continue;
      }
      if (p.idempotency) keys.add(p.idempotency.key);
      bytes += b;
      batch.push(p);
      this.queue.splice(i, 1);
    }
    return batch;
  }

  private async commit(batch: PendingSubmit[], rounds = 0): Promise<void> {
    if (batch.length <= 1) return this.commitEach(batch);
    const writes = batch.map((p) => submitWrites(this.store, p.job, p.idempotency));
    let res: { succeeded: boolean; revision: string };
    try {
      res = await this.store.txn(
        writes.flatMap((w) => w.compares),
        writes.flatMap((w) => w.ops),
      );
    } catch {
      // Refused whole (too large, say) or its outcome unknown (a deadline after the commit?): each
      // submit on its own, which also tells one that was committed from one that was not.
      return this.commitEach(batch);
    }
    if (res.succeeded) {
      for (const p of batch)
        p.resolve({ job: { key: this.store.keys.job(p.job.id), value: p.job, modRevision: res.revision, createRevision: res.revision }, created: true });
      return;
    }
    await this.afterConflict(batch, writes, rounds);
  }

  /**
   * A batch whose compares failed wrote nothing. One read of every key it compared tells which
   * submits found theirs taken (a retry of a key already committed, most often): those go on
   * their own, to be answered as single submits are (the key's job, or a conflict); the rest are
   * committed together again. Without this a batch with one retried key among 32 cost 33
   * transactions — when the cluster is slow, retries are many and every batch had one. A key
   * taken between the read and the next try fails that batch too: after `MAX_CONFLICT_ROUNDS`
   * the rest go one by one, as before.
   */
  private async afterConflict(batch: PendingSubmit[], writes: Array<{ compares: Compare[] }>, rounds: number): Promise<void> {
    if (rounds >= MAX_CONFLICT_ROUNDS) return this.commitEach(batch);
    let present: Array<unknown>;
    try {
      present = await this.store.getMany<unknown>(writes.flatMap((w) => w.compares.map((c) => c.key)));
    } catch {
      return this.commitEach(batch);
    }
    const taken: PendingSubmit[] = [];
    const fresh: PendingSubmit[] = [];
    let at = 0;
    batch.forEach((p, i) => {
      const n = writes[i].compares.length;
      (present.slice(at, at + n).some((kv) => kv !== undefined) ? taken : fresh).push(p);
      at += n;
    });
    await Promise.all([this.commitEach(taken), this.commit(fresh, rounds + 1)]);
  }

  /** Each submit in its own transaction (`submitJob`), answered with its own outcome. */
  private async commitEach(batch: PendingSubmit[]): Promise<void> {
    await Promise.all(batch.map((p) => submitJob(this.store, p.job, p.idempotency).then(p.resolve, p.reject)));
  }
}

/** Times a batch that failed on taken keys is read and tried again without them before its submits go one by one. */
const MAX_CONFLICT_ROUNDS = 2;

export async function getJob(store: EtcdStore, id: string): Promise<Versioned<JobRecord> | undefined> {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) return undefined;
  return store.get<JobRecord>(store.keys.job(id));
}

/**
 * Read, change, compare-and-swap, retried on conflict. `change` is pure: it returns the next
 * record, or `undefined` for "no change". `extra` adds compares and ops to the same txn.
 */
export async function updateJob(
  store: EtcdStore,
  id: string,
  change: (job: JobRecord) => JobRecord | undefined,
  extra: { compares?: Compare[]; ops?: Op[] } = {},
): Promise<Versioned<JobRecord> | undefined> {
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await getJob(store, id);
    if (!cur) return undefined;
    const next = change(cur.value);
    if (!next) return cur;
    const res = await store.txn(
      [{ key: cur.key, modRevision: cur.modRevision }, ...(extra.compares ?? [])],
      [{ put: cur.key, value: next }, ...(extra.ops ?? [])],
    );
    if (res.succeeded) return { ...cur, value: next, modRevision: res.revision };
  }
  throw new CasConflictError(`job ${id} changed on each of ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, id);
}

/**
 * Replaces a job record as it was read (`cur`) with `next`, fenced by the leader's compare: one
 * try, no retry (the caller decides again on a fresher read). False when the job changed
 * meanwhile or the fence failed; nothing was written then.
 */
export async function replaceJob(store: EtcdStore, fence: Compare, cur: Versioned<JobRecord>, next: JobRecord): Promise<boolean> {
  const res = await store.txn([fence, { key: cur.key, modRevision: cur.modRevision }], [{ put: cur.key, value: next }]);
  return res.succeeded;
}

/**
 * `updateJob` for many jobs at once: one read, one transaction comparing every changed job's
 * revision. If any of them changed meanwhile, each is updated on its own (with retries).
 * Returns the jobs as this call wrote them (unchanged ones, and ones another writer changed
 * so that `change` no longer applies, are left out).
 */
export async function updateJobs(store: EtcdStore, ids: string[], change: (job: JobRecord) => JobRecord | undefined): Promise<JobRecord[]> {
  const written: JobRecord[] = [];
  for (let i = 0; i < ids.length; i += 60) {
    const chunk = ids.slice(i, i + 60);
    const current = await store.getMany<JobRecord>(chunk.map((id) => store.keys.job(id)));
    const compares: Compare[] = [];
    const ops: Op[] = [];
    const next: JobRecord[] = [];
    for (const cur of current) {
      if (!cur) continue;
      const n = change(cur.value);
      if (!n) continue;
      compares.push({ key: cur.key, modRevision: cur.modRevision });
      ops.push({ put: cur.key, value: n });
      next.push(n);
    }
    if (ops.length === 0) continue;
    if ((await store.txn(compares, ops)).succeeded) {
      written.push(...next);
      continue;
    }
    // One by one; only what this call wrote counts (another writer may have changed it first).
    for (const id of chunk) {
      if (!next.some((n) => n.id === id)) continue;
      let wrote: JobRecord | undefined;
      await updateJob(store, id, (job) => (wrote = change(job)));
      if (wrote) written.push(wrote);
    }
  }
  return written;
}

/** Filters of a job listing. */
export interface JobFilter {
  /** Only this tenant's jobs; absent for operators. */
  tenant?: string;
  phase?: string;
  queue?: string;
  /** Any further test a job must pass (label selector, name, times). @default none */
  match?: (job: JobRecord) => boolean;
  /** Page size. @default 50 */
  limit?: number;
  /** Job id to resume after (the last of the previous page), in the listing's order. */
  after?: string;
  /** Highest id first (newest submitted first). @default false */
  descending?: boolean;
}

/**
 * Lists jobs in id order (ids begin with their submit time; `descending`: newest first),
 * filtered, one page at a time: reads etcd 500 keys at a time until the page is full.
 */
export async function listJobs(store: EtcdStore, f: JobFilter): Promise<{ jobs: JobRecord[]; nextAfter?: string }> {
  const limit = f.limit ?? 50;
  const jobs: JobRecord[] = [];
  let after = f.after ? store.keys.job(f.after) : undefined;
  for (;;) {
    const page = await store.list<JobRecord>(store.keys.jobs(), { limit: 500, startAfter: after, descending: f.descending });
    for (const kv of page.items) {
      const j = kv.value;
      if ((f.tenant && j.tenant !== f.tenant) || (f.phase && j.phase !== f.phase) || (f.queue && j.queue !== f.queue) || (f.match && !f.match(j))) continue;
      jobs.push(j);
      if (jobs.length === limit) return { jobs, nextAfter: j.id };
    }
    if (!page.more || page.items.length === 0) return { jobs };
    after = page.items[page.items.length - 1].key;
  }
}

/** The statuses of groups by key (`keys.group(…)`), in order; undefined where a group has none. */
export function getGroupStatuses(store: EtcdStore, statusKeys: readonly string[]): Promise<Array<Versioned<GroupStatus> | undefined>> {
  return store.getMany<GroupStatus>([...statusKeys]);
}

/** Status of every group a job has had. */
export async function listGroups(store: EtcdStore, jobId: string): Promise<Array<Versioned<GroupStatus>>> {
  return (await store.listAll<GroupStatus>(store.keys.groupsOf(jobId))).items;
}

/**
 * Cancels a job: pending tasks end at once; every live binding gets `cancelRequested`, each
 * by compare-and-swap, so its executor stops the tasks (SIGTERM, then SIGKILL after a grace).
 */
export async function cancelJob(store: EtcdStore, id: string, now: number, fence?: Compare): Promise<Versioned<JobRecord> | undefined> {
  const fenced = fence ? { compares: [fence] } : {};
  const job = await updateJob(store, id, (j) => (TERMINAL_PHASES.has(j.phase) || j.cancelRequestedAt ? undefined : requestCancel(j, now)), fenced);
  if (!job) return undefined;
  for (const g of await listGroups(store, id)) {
    if (g.value.tasks.every((t) => t.state !== 'Bound' && t.state !== 'Running')) continue;
    const key = store.keys.binding(g.value.node, id, g.value.start, g.value.attempt);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const b = await store.get<Binding>(key);
      if (!b || b.value.cancelRequested) break;
      const res = await store.txn(
        [{ key, modRevision: b.modRevision }, ...(fence ? [fence] : [])],
        [{ put: key, value: { ...b.value, cancelRequested: true } }],
      );
      if (res.succeeded) break;
    }
  }
  return getJob(store, id);
}

/**
 * Cancels task `index` of a job alone (`requestTaskCancel`): the job record first, by
 * compare-and-swap — read before the groups, so a bind after that read fails the swap and the
 * decision is taken again — then, when the task is bound or running, its binding's `cancel` gets
 * the index so its executor stops it. Returns the job as written (or as it was, when the task was
 * already cancelled: a repeated call marks the binding again, in case the first stopped between
 * its two writes), undefined when there is no such job, or why the task cannot be cancelled.
 */
export async function cancelTask(store: EtcdStore, id: string, index: number, now: number): Promise<Versioned<JobRecord> | TaskCancelRefusal | undefined> {
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await getJob(store, id);
    if (!cur) return undefined;
    const live = (await listGroups(store, id)).find(
      (g) => g.value.start <= index && index < g.value.end && ['Bound', 'Running'].includes(g.value.tasks[index - g.value.start]?.state),
    );
    const next = requestTaskCancel(cur.value, index, live !== undefined, now);
    if (next === 'unchanged') {
      // A repeated call also marks the binding, should the first have stopped between its two writes.
      if (live) await markTaskCancelled(store, store.keys.binding(live.value.node, id, live.value.start, live.value.attempt), index);
      return cur;
    }
    if (typeof next === 'string') return next;
    const res = await store.txn([{ key: cur.key, modRevision: cur.modRevision }], [{ put: cur.key, value: next }]);
    if (!res.succeeded) continue;
    if (live) await markTaskCancelled(store, store.keys.binding(live.value.node, id, live.value.start, live.value.attempt), index);
    return { ...cur, value: next, modRevision: res.revision };
  }
  throw new CasConflictError(`job ${id} changed on each of ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, id);
}

/** Adds `index` to a binding's `cancel`, by compare-and-swap; nothing when the binding is gone (its group ended). */
async function markTaskCancelled(store: EtcdStore, key: string, index: number): Promise<void> {
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const b = await store.get<Binding>(key);
    if (!b || b.value.cancelRequested || b.value.cancel?.includes(index)) return;
    const res = await store.txn([{ key, modRevision: b.modRevision }], [{ put: key, value: { ...b.value, cancel: [...(b.value.cancel ?? []), index] } }]);
    if (res.succeeded) return;
  }
  throw new CasConflictError(`binding ${key} changed on each of ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, key);
}

/** The results tasks of a job returned (`BATCH_RESULT_PATH`), in task order. */
export async function listResults(store: EtcdStore, jobId: string): Promise<TaskResult[]> {
  return (await store.listAll<TaskResult>(store.keys.resultsOf(jobId))).items.map((kv) => kv.value);
}

/**
 * `listResults` of a job that is in etcd: the job record is read at the revision the results were
 * read at, and `undefined` means the job was not there then. The archiver removes a job with its
 * results in one transaction (after history has them), so a reader that found the job live a
 * moment before does not take an archived job's missing results for an empty list: it reads
 * history instead. (A job too large for one transaction, over ~125 groups and results, loses
 * them in transactions of their own before its record goes: a read in between gets part of them.)
 */
export async function listLiveResults(store: EtcdStore, jobId: string): Promise<TaskResult[] | undefined> {
  const { items, revision } = await store.listAll<TaskResult>(store.keys.resultsOf(jobId));
  const [job] = await store.getMany<JobRecord>([store.keys.job(jobId)], revision);
  return job ? items.map((kv) => kv.value) : undefined;
}
