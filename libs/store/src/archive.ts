/**
 * The etcd side of archiving: which finished jobs may leave etcd, what of them is read for the
 * history store (the job, its task groups, its results), and their fenced removal once history
 * holds them. The archiver (an elected role) writes to history between `readArchiveBatch` and
 * `removeArchived`; a crash in between leaves the job in etcd, and the next pass archives it
 * again (history upserts by job id), so nothing is lost and nothing archived twice.
 */
import {
  type GroupStatus,
  type JobRecord,
  type RuntimeEstimates,
  type TaskResult,
  TERMINAL_PHASES,
  TERMINAL_WORKFLOW_PHASES,
  WORKFLOW_LABEL,
  type WorkflowRecord,
} from '@batchapi/api';
import { chunkBySize, txnSize } from './chunks';
import { type Compare, type EtcdStore, type Op, type Versioned } from './etcd';
import type { IdempotencyRecord } from './jobs';

/** A finished job as read for archiving: the record as compared on removal, its groups and results, its idempotency record. */
export interface ArchiveEntry {
  job: Versioned<JobRecord>;
  groups: Array<Versioned<GroupStatus>>;
  results: Array<Versioned<TaskResult>>;
  /** The record of its submit's Idempotency-Key, when it had one and it names this job. @default none */
  idempotency?: Versioned<IdempotencyRecord>;
}

/**
 * True when `job` may be archived at `now`: terminal, finished at least `afterMs` ago, and not a
 * step of a workflow that is still running (its controller reads its step jobs from etcd).
 *   now − finishedAt ≥ afterMs
 */
export function isArchivable(job: JobRecord, now: number, afterMs: number, liveWorkflows: ReadonlySet<string>): boolean {
  if (!TERMINAL_PHASES.has(job.phase) || job.finishedAt === undefined || now - job.finishedAt < afterMs) return false;
  const wf = job.spec.labels?.[WORKFLOW_LABEL];
  return wf === undefined || !liveWorkflows.has(wf);
}

/** What waits for archiving: the jobs archivable now (oldest finished first, at most `max`), and how many finished jobs etcd holds in all. */
export async function archivableJobs(
  store: EtcdStore,
  now: number,
  afterMs: number,
  max: number,
): Promise<{ jobs: Array<Versioned<JobRecord>>; finished: number; oldestFinishedAt?: number }> {
  const [jobs, workflows] = await Promise.all([store.listAll<JobRecord>(store.keys.jobs()), store.listAll<WorkflowRecord>(store.keys.workflows())]);
  const live = new Set(workflows.items.filter((w) => !TERMINAL_WORKFLOW_PHASES.has(w.value.phase)).map((w) => w.value.id));
  const finished = jobs.items.filter((j) => TERMINAL_PHASES.has(j.value.phase));
  const ready = finished.filter((j) => isArchivable(j.value, now, afterMs, live)).sort((a, b) => a.value.finishedAt! - b.value.finishedAt!);
  const oldest = finished.reduce<number | undefined>(
    (m, j) => (j.value.finishedAt !== undefined && (m === undefined || j.value.finishedAt < m) ? j.value.finishedAt : m),
    undefined,
  );
  return { jobs: ready.slice(0, max), finished: finished.length, ...(oldest !== undefined ? { oldestFinishedAt: oldest } : {}) };
}

/**
 * Of the jobs `ids` (candidates from an index of finished jobs), those archivable now, read from
 * etcd at one revision (gone or changed ones are left out), oldest finished first. Lists the
 * workflows (to leave out steps of live ones); reads no other job.
 */
export async function archivableJobsAmong(store: EtcdStore, ids: readonly string[], now: number, afterMs: number): Promise<Array<Versioned<JobRecord>>> {
  if (ids.length === 0) return [];
  const [jobs, workflows] = await Promise.all([
    store.getMany<JobRecord>(ids.map((id) => store.keys.job(id))),
    store.listAll<WorkflowRecord>(store.keys.workflows()),
  ]);
  const live = new Set(workflows.items.filter((w) => !TERMINAL_WORKFLOW_PHASES.has(w.value.phase)).map((w) => w.value.id));
  return jobs
    .filter((j): j is Versioned<JobRecord> => j !== undefined && isArchivable(j.value, now, afterMs, live))
    .sort((a, b) => a.value.finishedAt! - b.value.finishedAt!);
}

/**
 * Reads each job's groups, results and idempotency record: all groups' and results' prefixes in
 * a few read-only transactions (`listMany`), the records in a few more (`getMany`) — a batch of
 * 500 one-task jobs is about a dozen requests, not 1,500.
 */
export async function readArchiveBatch(store: EtcdStore, jobs: ReadonlyArray<Versioned<JobRecord>>): Promise<ArchiveEntry[]> {
  const keyed = jobs.filter((j) => j.value.idempotencyDigest !== undefined);
  const [children, records] = await Promise.all([
    store.listMany<GroupStatus | TaskResult>(jobs.flatMap((j) => [store.keys.groupsOf(j.value.id), store.keys.resultsOf(j.value.id)])),
    store.getMany<IdempotencyRecord>(keyed.map((j) => store.keys.idempotency(j.value.tenant, j.value.idempotencyDigest!))),
  ]);
  const recordOf = new Map(keyed.map((j, i) => [j.value.id, records[i]]));
  return jobs.map((job, i) => {
    const idempotency = recordOf.get(job.value.id);
    return {
      job,
      groups: children[2 * i] as Array<Versioned<GroupStatus>>,
      results: children[2 * i + 1] as Array<Versioned<TaskResult>>,
      ...(idempotency?.value.jobId === job.value.id ? { idempotency } : {}),
    };
  });
}

/** What `removeArchived` did. */
export interface RemovedArchive {
  /** Jobs removed from etcd, by id. */
  jobs: string[];
  /** Jobs left because they changed since they were read (archived again by a later pass) or the fence was lost. */
  kept: number;
}

/** One job's removal: the compares and ops of its own transaction (the fence aside). */
function removalOf(e: ArchiveEntry, keyLease: string | undefined): { compares: Compare[]; ops: Op[] } {
  const compares: Compare[] = [{ key: e.job.key, modRevision: e.job.modRevision }];
  const ops: Op[] = [...e.groups, ...e.results].map((c): Op => ({ delete: c.key }));
  ops.push({ delete: e.job.key });
  if (e.idempotency && keyLease) {
    compares.push({ key: e.idempotency.key, modRevision: e.idempotency.modRevision });
    ops.push({ put: e.idempotency.key, value: e.idempotency.value, lease: keyLease });
  }
  return { compares, ops };
}

/**
 * Removes archived jobs from etcd, fenced, each only if unchanged since it was read: a job with
 * its groups and results in one transaction, and as many jobs in one transaction as etcd's
 * limits allow (a 1-task job is 4 ops: about 30 jobs a transaction). When a packed transaction
 * is refused (one of its jobs changed, or the fence was lost), its jobs are tried one by one,
 * so one changed job keeps only itself. Its idempotency record, which history now holds too, is
 * put again under `keyLease` in the same transaction as the job's removal: etcd deletes it when
 * that lease expires, not at once, so that a submit that looked the key up in history just
 * before the archive wrote it still meets the record in etcd (see `IDEMPOTENCY_HANDOVER_MS`).
 * Without `keyLease` the record stays until retention. A job too large for one transaction (over
 * ~125 groups and results) has its groups and results deleted first, in their own
 * transactions, then the job (a crash in between leaves a job with fewer groups, never groups
 * without a job). Every transaction carries the fence: once it is lost, nothing more is removed.
 */
export async function removeArchived(store: EtcdStore, fence: Compare, entries: readonly ArchiveEntry[], keyLease?: string): Promise<RemovedArchive> {
  const out: RemovedArchive = { jobs: [], kept: 0 };
  const units = entries.map((e) => ({ e, ...removalOf(e, keyLease) }));
  const { chunks, tooLarge } = chunkBySize(units, (u) => txnSize(u.compares, u.ops), { base: txnSize([fence], []) });
  const one = async (u: (typeof units)[number]): Promise<boolean> => {
    const ok = (await store.txn([fence, ...u.compares], u.ops)).succeeded;
    if (ok) out.jobs.push(u.e.job.value.id);
    return ok;
  };
  for (const chunk of chunks) {
    if (
      chunk.length > 1 &&
      (
        await store.txn(
          [fence, ...chunk.flatMap((u) => u.compares)],
          chunk.flatMap((u) => u.ops),
        )
      ).succeeded
    ) {
      out.jobs.push(...chunk.map((u) => u.e.job.value.id));
      continue;
    }
    for (const u of chunk) if (!(await one(u))) out.kept++;
  }
  for (const u of tooLarge) {
    const children = [...u.e.groups, ...u.e.results];
    const parts = chunkBySize(children, (c) => txnSize([], [{ delete: c.key }]), { base: txnSize([fence], []) }).chunks;
    let fenced = true;
    for (const part of parts) {
      fenced = (
        await store.txn(
          [fence],
          part.map((c): Op => ({ delete: c.key })),
        )
      ).succeeded;
      if (!fenced) break;
    }
    const rest = { ...u, ops: u.ops.filter((op) => !('delete' in op) || op.delete === u.e.job.key) };
    if (!fenced || !(await one(rest))) out.kept++;
  }
  return out;
}

/**
 * How long an archived job's idempotency record stays in etcd after the job left it: 2 minutes.
 * A submit with a key looks in history first and then creates the key in etcd only if absent;
 * it gives up (503) unless it sends that create within `IDEMPOTENCY_LOOKUP_MAX_MS` of its
 * history read. A record the archiver wrote to history after that read is still in etcd until
 * `IDEMPOTENCY_HANDOVER_MS` after it was written, well past the create: the create fails on it
 * and the submit answers the archived job. (Both are spans of one clock's rate; no two clocks
 * are compared.) These records are the part of etcd that follows the submit rate rather than the
 * live work: rate × handover of them, each ~560 B of etcd's database with its index — at 500
 * keyed jobs/s ~60,000 records, ~32 MiB (5 minutes held ~80 MiB, the largest share of a soak's
 * database). Two minutes still leaves the create ten times the time it may take.
 */
export const IDEMPOTENCY_HANDOVER_MS = 120_000;

/** Longest a submit may take from its history lookup of a key to sending its etcd create: a tenth of the handover (12 s; admission gives up at half of it). */
export const IDEMPOTENCY_LOOKUP_MAX_MS = IDEMPOTENCY_HANDOVER_MS / 10;

/** True when workflow `w` may be archived at `now`: finished at least `afterMs` ago.   now − finishedAt ≥ afterMs */
export function isWorkflowArchivable(w: WorkflowRecord, now: number, afterMs: number): boolean {
  return TERMINAL_WORKFLOW_PHASES.has(w.phase) && w.finishedAt !== undefined && now - w.finishedAt >= afterMs;
}

/** The workflows archivable now, oldest finished first, at most `max`. */
export async function archivableWorkflows(store: EtcdStore, now: number, afterMs: number, max: number): Promise<Array<Versioned<WorkflowRecord>>> {
  const all = await store.listAll<WorkflowRecord>(store.keys.workflows());
  return all.items
    .filter((w) => isWorkflowArchivable(w.value, now, afterMs))
    .sort((a, b) => a.value.finishedAt! - b.value.finishedAt!)
    .slice(0, max);
}

/** Removes archived workflows from etcd, each fenced and only if unchanged since read; returns the ids removed. Stops at a lost fence. */
export async function removeArchivedWorkflows(store: EtcdStore, fence: Compare, workflows: ReadonlyArray<Versioned<WorkflowRecord>>): Promise<string[]> {
  const removed: string[] = [];
  for (const w of workflows) {
    const res = await store.txn([fence, { key: w.key, modRevision: w.modRevision }], [{ delete: w.key }]);
    if (res.succeeded) removed.push(w.value.id);
  }
  return removed;
}

/** What the archiver last saw waiting in etcd, at `archive/backlog`. Times are epoch milliseconds. */
export interface ArchiveBacklog {
  /** Finished jobs etcd holds (archivable or not yet). */
  finished: number;
  /** When the oldest of them finished. @default none when there are none */
  oldestFinishedAt?: number;
  /** When the archiver counted (wall time). */
  at: number;
}

/**
 * Records the backlog the archiver counted, fenced by its leader key: a deposed archiver cannot
 * overwrite its successor's count. Unconditional otherwise: the latest count wins.
 * @returns false when the fence no longer holds
 */
export async function putArchiveBacklog(store: EtcdStore, fence: Compare, backlog: ArchiveBacklog): Promise<boolean> {
  return (await store.txn([fence], [{ put: store.keys.archiveBacklog(), value: backlog }])).succeeded;
}

/**
 * Records the runtime estimates the archiver learned from the history, fenced by its leader key
 * (a deposed archiver cannot overwrite its successor's). The latest wins.
 * @returns false when the fence no longer holds
 */
export async function putRuntimeEstimates(store: EtcdStore, fence: Compare, estimates: RuntimeEstimates): Promise<boolean> {
  return (await store.txn([fence], [{ put: store.keys.runtimeEstimates(), value: estimates }])).succeeded;
}
