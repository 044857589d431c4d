/**
 * Binding and reporting task groups: the scheduler's fenced bind of a plan, and the
 * executor's batched status reports. Both are compare-and-swap transactions, chunked under
 * etcd's limits; a chunk's writes all carry that txn's revision, which later chunks compare.
 */
import {
  applyGroupOutcomes, type Binding, boundGroupStatus, EMPTY_ALLOCATION, type GroupStatus, type JobRecord, NODE_LOST, type NodeAllocation,
  hasUnreleasedEnd, onlyReleased, releaseEndedTasks, type Requeue, reserveOnNode, settleOutcomes, subtractRanges, type TaskResult, TERMINAL_TASK_STATES,
} from '@batchapi/api';
import { type Compare, type EtcdStore, MAX_TXN_BYTES, MAX_TXN_OPS, type Op, type Versioned } from './etcd';

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
  /** Units (or parts) refused by a compare (stale job or node, or a lost fence); decided again next cycle. */
  refused: BindUnit[];
  /** Number of transactions sent. */
  txns: number;
  /** Revision of the last transaction that landed ("0" if none): caches are current once they reach it. */
  revision: string;
}

/**
 * Applies a plan: for each unit, the job record, each group's binding and status, and each
 * touched node's allocation change in one transaction together with the leader's fence.
 * `allocs` is the allocation of every touched node as the decision saw it.
 */
export async function bindPlan(
  store: EtcdStore,
  fence: Compare,
  units: BindUnit[],
  allocs: Map<string, Versioned<NodeAllocation> | undefined>,
): Promise<BindResult> {
  const result: BindResult = { bound: [], refused: [], txns: 0, revision: '0' };
  const current = new Map(allocs);
  const jobRevision = new Map<string, string>();
  let parts = units.flatMap(splitUnit);
  // Found changed since the decision (by a refused transaction): units on them are decided again next cycle.
  const staleJobs = new Set<string>();
  const staleNodes = new Set<string>();
  let refusals = 0;
  let i = 0;
  while (i < parts.length) {
    // Fill one txn with whole parts.
    const chunk: BindUnit[] = [];
    const touched = new Map<string, NodeAllocation>();
    let ops = 0;
    let bytes = 0;
    for (; i < parts.length; i++) {
      const u = parts[i];
      // A later part of a job one of whose parts was refused must not land either: its pending
      // ranges assume the earlier parts' bindings.
      if (staleJobs.has(u.job.key) || u.bindings.some((b) => staleNodes.has(b.node))) {
        staleJobs.add(u.job.key);
        result.refused.push(u);
        continue;
      }
      const newNodes = new Set(u.bindings.map((b) => b.node).filter((n) => !touched.has(n)));
      const unitOps = 1 + 2 * u.bindings.length + newNodes.size;
      const unitBytes = JSON.stringify(u.next).length + 2 * u.bindings.reduce((s, b) => s + JSON.stringify(b).length, 0);
      if (chunk.length > 0 && (ops + unitOps > MAX_TXN_OPS - 1 || bytes + unitBytes > MAX_TXN_BYTES || chunk.some((c) => c.job.key === u.job.key))) break;
      chunk.push(u);
      ops += unitOps;
      bytes += unitBytes;
      for (const b of u.bindings) touched.set(b.node, reserveOnNode(touched.get(b.node) ?? current.get(b.node)?.value ?? EMPTY_ALLOCATION, b));
    }
    const compares: Compare[] = [fence];
    const writes: Op[] = [];
    for (const u of chunk) {
      compares.push({ key: u.job.key, modRevision: jobRevision.get(u.job.key) ?? u.job.modRevision });
      writes.push({ put: u.job.key, value: u.next });
      for (const b of u.bindings) {
        const status = boundGroupStatus(b);
        compares.push({ key: store.keys.binding(b.node, b.jobId, b.start, b.attempt), absent: true });
        writes.push({ put: store.keys.binding(b.node, b.jobId, b.start, b.attempt), value: b });
        writes.push({ put: store.keys.group(b.jobId, b.start, b.attempt), value: status });
      }
    }
    for (const [node, next] of touched) {
      const key = store.keys.alloc(node);
      const seen = current.get(node);
      compares.push(seen ? { key, modRevision: seen.modRevision } : { key, absent: true });
      writes.push({ put: key, value: next });
    }
    if (chunk.length === 0) break;
    result.txns++;
    const res = await store.txn(compares, writes);
    if (!res.succeeded) {
      // Nothing of this chunk landed. Find which jobs and nodes changed since the decision (an
      // executor released room, a job was cancelled); only units on them are refused, and the
      // others go again — one stale node must not cost the whole cycle's plan.
      // A node that only got room back (an executor released ended tasks) keeps its units: they
      // are reserved again on top of its allocation as it is now.
      const found = await staleOf(store, chunk, touched, current, jobRevision);
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
        result.refused.push(...chunk, ...parts.slice(i));
        return result;
      }
      parts = [...chunk, ...parts.slice(i)];
      i = 0;
      continue;
    }
    result.bound.push(...chunk);
    result.revision = res.revision;
    for (const u of chunk) jobRevision.set(u.job.key, res.revision);
    for (const [node, next] of touched) current.set(node, { key: store.keys.alloc(node), value: next, modRevision: res.revision, createRevision: current.get(node)?.createRevision ?? res.revision });
  }
  return result;
}

/** The jobs and nodes of a refused chunk whose records are no longer as the chunk compared them. */
async function staleOf(
  store: EtcdStore,
  chunk: BindUnit[],
  touched: Map<string, NodeAllocation>,
  current: Map<string, Versioned<NodeAllocation> | undefined>,
  jobRevision: Map<string, string>,
): Promise<{ jobs: string[]; nodes: Map<string, Versioned<NodeAllocation> | undefined> }> {
  const jobKeys = [...new Set(chunk.map((u) => u.job.key))];
  const expectedJob = new Map(chunk.map((u) => [u.job.key, jobRevision.get(u.job.key) ?? u.job.modRevision]));
  const nodes = [...touched.keys()];
  const [jobsNow, allocsNow] = await Promise.all([store.getMany<JobRecord>(jobKeys), store.getMany<NodeAllocation>(nodes.map((n) => store.keys.alloc(n)))]);
  const jobs = jobKeys.filter((k, j) => jobsNow[j]?.modRevision !== expectedJob.get(k));
  const changed = new Map<string, Versioned<NodeAllocation> | undefined>();
  nodes.forEach((n, j) => { if (allocsNow[j]?.modRevision !== current.get(n)?.modRevision) changed.set(n, allocsNow[j]); });
  return { jobs, nodes: changed };
}

/** Refused transactions one plan may retry (after dropping or rebasing what changed) before the rest waits for the next cycle. */
const MAX_BIND_REFUSALS = 8;

/** Most groups of one job in one transaction: each takes up to three ops and two compares. */
const GROUPS_PER_PART = 40;

/**
 * Splits a unit whose groups do not fit one transaction into parts, each carrying the job
 * as it is once that part's ranges are bound; the parts are committed in order, each
 * comparing the job revision the previous one wrote.
 */
function splitUnit(u: BindUnit): BindUnit[] {
  if (u.bindings.length <= GROUPS_PER_PART) return [u];
  const parts: BindUnit[] = [];
  for (let k = 0; k < u.bindings.length; k += GROUPS_PER_PART) {
    const bound = u.bindings.slice(0, k + GROUPS_PER_PART);
    const last = k + GROUPS_PER_PART >= u.bindings.length;
    parts.push({ job: u.job, next: last ? u.next : { ...u.next, pending: subtractRanges(u.job.value.pending, bound) }, bindings: u.bindings.slice(k, k + GROUPS_PER_PART) });
  }
  return parts;
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
  /** Status keys whose report was refused: the group was changed or removed by someone else (an old attempt). Reports neither accepted nor refused lost races on busy records: send them again. */
  refused: string[];
  /** False when the executor's own lease no longer holds its node key: it must self-fence. */
  fenced: boolean;
  /** The status as written for each accepted report (with `released` set on tasks whose room went back). */
  written: Map<string, GroupStatus>;
  /** Tasks the accepted reports sent back to pending (retries, preemptions), per job. */
  requeued: Array<Requeue & { jobId: string }>;
}

/**
 * Writes executors' reports in batched transactions. Each task that ended gives its room back
 * to the node's allocation at once (marked `released`); a group whose tasks all ended also
 * deletes its binding and adds its outcomes to the job's counters. Every write is fenced by the executor's node lease and
 * compares the status revision, so a late report of an old attempt is refused.
 */
export async function reportGroups(store: EtcdStore, node: string, leaseId: string, reports: GroupReport[], now: number): Promise<ReportResult> {
  const result: ReportResult = { accepted: new Map(), refused: [], fenced: false, written: new Map(), requeued: [] };
  let todo = reports;
  let maxReports = MAX_TXN_OPS;
  for (let round = 0; round < 8 && todo.length > 0; round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, Math.random() * 10 * round)); // spread racing reporters
    const chunk = takeChunk(todo, maxReports);
    todo = todo.slice(chunk.length);
    const outcome = await reportChunk(store, node, leaseId, chunk, now);
    if (outcome === 'fenced') { result.fenced = true; return result; }
    if (outcome === 'too-large') {
      // Large job records (e.g. with `items`) made the chunk too big: send it in halves.
      const half = Math.ceil(chunk.length / 2);
      todo = [...chunk.slice(0, half), ...chunk.slice(half), ...todo];
      maxReports = half;
      round--;
      continue;
    }
    if (outcome === 'conflict') {
      // Someone changed a job or the allocation in between, or a status is stale: re-read and drop stale ones.
      const statuses = await store.getMany<GroupStatus>(chunk.map((r) => store.keys.group(r.status.jobId, r.status.start, r.status.attempt)));
      const fresh: GroupReport[] = [];
      chunk.forEach((r, k) => {
        const s = statuses[k];
        if (s && s.modRevision === r.statusRevision) fresh.push(r);
        else result.refused.push(store.keys.group(r.status.jobId, r.status.start, r.status.attempt));
      });
      todo = [...fresh, ...todo];
      continue;
    }
    for (const r of chunk) {
      const key = store.keys.group(r.status.jobId, r.status.start, r.status.attempt);
      result.accepted.set(key, outcome.revision);
      result.written.set(key, outcome.written.get(r)!);
    }
    result.requeued.push(...outcome.requeued);
    round = -1; // progress made: reset the conflict budget
    continue;
  }
  // Reports still in `todo` lost every race (busy job records): neither accepted nor refused — send again later.
  return result;
}

function takeChunk(reports: GroupReport[], maxReports: number): GroupReport[] {
  // Per report at most: status compare + put, binding delete, job compare + put, one put per result; the alloc once.
  let ops = 2;
  let bytes = 0;
  let n = 0;
  for (const r of reports) {
    const rOps = 5 + (r.results?.length ?? 0);
    const rBytes = JSON.stringify(r.status).length + resultBytes(r);
    if (n > 0 && (n >= maxReports || ops + rOps > MAX_TXN_OPS || bytes + rBytes > MAX_TXN_BYTES / 2)) break;
    ops += rOps;
    bytes += rBytes;
    n++;
  }
  return reports.slice(0, Math.max(1, n));
}

function resultBytes(r: GroupReport): number {
  return (r.results ?? []).reduce((s, x) => s + JSON.stringify(x).length, 0);
}

/**
 * Writes the results of one report that are too many for the report's own transaction, in
 * chunks before it, fenced like the report (node lease and unchanged status: a late report
 * of an old attempt writes nothing). Readers look at results once the job or task is
 * terminal, which happens only in the report's transaction after these.
 */
async function writeResultsAhead(store: EtcdStore, node: string, leaseId: string, r: GroupReport): Promise<boolean> {
  const statusKey = store.keys.group(r.status.jobId, r.status.start, r.status.attempt);
  const results = r.results ?? [];
  for (let i = 0; i < results.length;) {
    const ops: Op[] = [];
    let bytes = 0;
    for (; i < results.length && ops.length < MAX_TXN_OPS - 2; i++) {
      const b = JSON.stringify(results[i]).length;
      if (ops.length > 0 && bytes + b > MAX_TXN_BYTES) break;
      bytes += b;
      ops.push({ put: store.keys.result(r.status.jobId, results[i].index), value: results[i] });
    }
    const res = await store.txn([{ key: store.keys.node(node), lease: leaseId }, { key: statusKey, modRevision: r.statusRevision }], ops);
    if (!res.succeeded) return false;
  }
  return true;
}

async function reportChunk(store: EtcdStore, node: string, leaseId: string, chunk: GroupReport[], now: number): Promise<'fenced' | 'conflict' | 'too-large' | { revision: string; written: Map<GroupReport, GroupStatus>; requeued: Array<Requeue & { jobId: string }> }> {
  // The allocation is read only when some task ends now (a report of tasks starting leaves it be).
  const alloc = chunk.some((r) => hasUnreleasedEnd(r.status)) ? await store.get<NodeAllocation>(store.keys.alloc(node)) : undefined;
  // Every task that ended gives its room back and reaches its job now, not when its whole group ends.
  let nextAlloc = alloc?.value ?? EMPTY_ALLOCATION;
  const written = new Map<GroupReport, GroupStatus>();
  const outcomes = new Map<string, GroupStatus[]>();
  for (const r of chunk) {
    const { alloc: after, released } = releaseEndedTasks(nextAlloc, r.status);
    written.set(r, released.length ? { ...r.status, tasks: r.status.tasks.map((t, k) => (released.includes(k) ? { ...t, released: true } : t)) } : r.status);
    if (released.length === 0) continue;
    nextAlloc = after;
    outcomes.set(r.status.jobId, [...(outcomes.get(r.status.jobId) ?? []), onlyTasks(r.status, released)]);
  }
  const jobIds = [...outcomes.keys()];
  const jobs = await store.getMany<JobRecord>(jobIds.map((id) => store.keys.job(id)));
  const compares: Compare[] = [{ key: store.keys.node(node), lease: leaseId }];
  const ops: Op[] = [];
  // A lone report whose results do not fit beside it writes them first (see writeResultsAhead).
  const inline = chunk.length > 1 || 5 + (chunk[0].results?.length ?? 0) <= MAX_TXN_OPS - 2 && resultBytes(chunk[0]) <= MAX_TXN_BYTES / 2;
  if (!inline && !(await writeResultsAhead(store, node, leaseId, chunk[0]))) {
    const leaseOk = await store.txn([{ key: store.keys.node(node), lease: leaseId }], []);
    return leaseOk.succeeded ? 'conflict' : 'fenced';
  }
  for (const r of chunk) {
    const key = store.keys.group(r.status.jobId, r.status.start, r.status.attempt);
    compares.push({ key, modRevision: r.statusRevision });
    ops.push({ put: key, value: written.get(r) });
    if (inline) for (const x of r.results ?? []) ops.push({ put: store.keys.result(r.status.jobId, x.index), value: x });
    if (r.status.tasks.every((t) => TERMINAL_TASK_STATES.has(t.state))) ops.push({ delete: store.keys.binding(node, r.status.jobId, r.status.start, r.status.attempt) });
  }
  if (alloc && outcomes.size > 0) {
    compares.push({ key: alloc.key, modRevision: alloc.modRevision });
    ops.push({ put: alloc.key, value: nextAlloc });
  }
  const requeued: Array<Requeue & { jobId: string }> = [];
  jobIds.forEach((id, k) => {
    const job = jobs[k];
    if (!job) return;
    const settled = settleOutcomes(job.value, outcomes.get(id)!, now);
    compares.push({ key: job.key, modRevision: job.modRevision });
    ops.push({ put: job.key, value: settled.job });
    for (const r of settled.requeued) requeued.push({ ...r, jobId: id });
  });
  if (chunk.length > 1 && ops.reduce((n, op) => n + ('put' in op ? JSON.stringify(op.value).length : 0), 0) > MAX_TXN_BYTES) return 'too-large';
  const res = await store.txn(compares, ops);
  if (res.succeeded) return { revision: res.revision, written, requeued };
  const leaseOk = await store.txn([{ key: store.keys.node(node), lease: leaseId }], []);
  return leaseOk.succeeded ? 'conflict' : 'fenced';
}

/** The group with only the given task offsets visible to the job's state machine (the others read as still running). */
function onlyTasks(g: GroupStatus, offsets: number[]): GroupStatus {
  return { ...g, tasks: g.tasks.map((t, k) => (offsets.includes(k) ? t : { state: 'Running' as const })) };
}

/**
 * Ends the live groups of a node whose executor is gone, once the caller has waited its
 * lease TTL plus a grace (so the executor has certainly killed them, invariant 4): each
 * non-terminal task becomes `Failed` with signal `NodeLost` (the job's state machine
 * requeues it at the next attempt), the bindings and the node's allocation are removed.
 * Fenced by the caller's leadership; one transaction per job. Returns the groups ended and
 * the task attempts that ended `NodeLost`.
 */
export async function reapLostNode(store: EtcdStore, fence: Compare, node: string, now: number): Promise<{ groups: number; tasks: number }> {
  const bindings = (await store.listAll<Binding>(store.keys.bindingsOf(node))).items;
  const byJob = new Map<string, Array<Versioned<Binding>>>();
  for (const b of bindings) byJob.set(b.value.jobId, [...(byJob.get(b.value.jobId) ?? []), b]);
  let ended = 0;
  let lost = 0;
  for (const [jobId, list] of byJob) {
    for (let i = 0; i < list.length; i += 30) {
      const chunk = list.slice(i, i + 30);
      const [job, ...statuses] = await store.getMany<unknown>([store.keys.job(jobId), ...chunk.map((b) => store.keys.group(jobId, b.value.start, b.value.attempt))]);
      const compares: Compare[] = [fence];
      const ops: Op[] = [];
      const finished: GroupStatus[] = [];
      chunk.forEach((b, k) => {
        compares.push({ key: b.key, modRevision: b.modRevision });
        ops.push({ delete: b.key });
        const st = statuses[k] as Versioned<GroupStatus> | undefined;
        if (!st) return;
        const next: GroupStatus = { ...st.value, tasks: st.value.tasks.map((t) => (TERMINAL_TASK_STATES.has(t.state) ? t : { ...t, state: 'Failed' as const, reason: NODE_LOST, finishedAt: now })) };
        lost += st.value.tasks.filter((t) => !TERMINAL_TASK_STATES.has(t.state)).length;
        compares.push({ key: st.key, modRevision: st.modRevision });
        ops.push({ put: st.key, value: next });
        // Tasks released earlier already reached the job; the rest do now.
        finished.push(onlyTasks(next, next.tasks.flatMap((t, k) => (st.value.tasks[k]?.released ? [] : [k]))));
      });
      if (job) {
        const j = job as Versioned<JobRecord>;
        compares.push({ key: j.key, modRevision: j.modRevision });
        ops.push({ put: j.key, value: applyGroupOutcomes(j.value, finished, now) });
      }
      const res = await store.txn(compares, ops);
      if (!res.succeeded) throw new Error(`reaping node ${node} raced with another writer; retry next cycle`);
      ended += chunk.length;
    }
  }
  await store.txn([fence], [{ delete: store.keys.alloc(node) }]);
  return { groups: ended, tasks: lost };
}

/**
 * Asks executors to preempt task indices of live bindings: each binding gets the indices in
 * `preempt` by compare-and-swap, fenced by the scheduler's leadership. Returns how many
 * bindings were changed; a binding that changed or vanished meanwhile is skipped.
 */
export async function requestPreemption(store: EtcdStore, fence: Compare, victims: Array<{ node: string; jobId: string; start: number; attempt: number; index: number }>, now: number): Promise<number> {
  const byKey = new Map<string, number[]>();
  for (const v of victims) {
    const key = store.keys.binding(v.node, v.jobId, v.start, v.attempt);
    byKey.set(key, [...(byKey.get(key) ?? []), v.index]);
  }
  const keys = [...byKey.keys()];
  let changed = 0;
  for (let i = 0; i < keys.length; i += 60) {
    const chunk = keys.slice(i, i + 60);
    const current = await store.getMany<Binding>(chunk);
    const compares: Compare[] = [fence];
    const ops: Op[] = [];
    chunk.forEach((key, k) => {
      const b = current[k];
      if (!b) return;
      compares.push({ key, modRevision: b.modRevision });
      ops.push({ put: key, value: { ...b.value, preempt: [...new Set([...(b.value.preempt ?? []), ...byKey.get(key)!])].sort((x, y) => x - y), preemptRequestedAt: b.value.preemptRequestedAt ?? now } });
    });
    if (ops.length === 0) continue;
    const res = await store.txn(compares, ops);
    if (res.succeeded) changed += ops.length;
  }
  return changed;
}
