/**
 * The job state machine as pure functions: each takes a record and the time, and returns
 * the next record. Callers write the result with a compare-and-swap.
 */
import {
  addResources,
  type Binding,
  countTasks,
  type FailureReason,
  GPU_MILLI,
  type GroupStatus,
  type JobRecord,
  MAX_CANCELLED_TASK_RANGES,
  mergeRanges,
  type NodeAllocation,
  type RetryPolicy,
  subtractRanges,
  type TaskGroup,
  type TaskRange,
  type TaskStatus,
  TERMINAL_PHASES,
  TERMINAL_TASK_STATES,
} from '@batchapi/api';

/** The signal recorded for tasks whose node was lost (executor lease expired or restarted). */
export const NODE_LOST = 'NodeLost' as const;
/** The failure reason of an attempt its node could not start. */
export const NODE_ERROR = 'NodeError' as const;
/**
 * The attempt number up to which a task whose node was lost under it (or could not start it)
 * runs again; the task's own failures do not retry here. Infrastructure faults are not the
 * user's: the bound only stops a task that takes down every node it lands on (quarantine
 * catches the node side). 3 was too few: the nemesis saw 4–8 s tasks on executors cut off
 * three times in two minutes fail their jobs, with no defect of theirs.
 */
export const MAX_NODE_LOST_ATTEMPTS = 10;

/** A task that goes back to pending: for another attempt, why, and from when. */
export interface Requeue {
  index: number;
  /** The attempt it runs at next. */
  attempt: number;
  /** Why its last attempt ended: `Preempted`, `NodeLost`, or the failure's reason (a retry). */
  reason: string;
  /** Not before this time, epoch ms (retry backoff). */
  notBefore?: number;
}

/**
 * Accounts finished groups into the job: terminal counters, and tasks lost with their node
 * go back to pending at the next attempt number (until `MAX_NODE_LOST_ATTEMPTS`). Ends the
 * job when every task is terminal.
 */
export function applyGroupOutcomes(job: JobRecord, groups: readonly GroupStatus[], now: number): JobRecord {
  return settleOutcomes(job, groups, now).job;
}

/** `applyGroupOutcomes`, also telling which tasks were requeued (for traces and events). */
export function settleOutcomes(job: JobRecord, groups: readonly GroupStatus[], now: number): { job: JobRecord; requeued: Requeue[] } {
  const counts = { ...job.counts };
  const requeue: TaskRange[] = [];
  const requeued: Requeue[] = [];
  const again = (index: number, attempt: number, reason: string, notBefore?: number) => {
    requeue.push({ start: index, end: index + 1, attempt, ...(notBefore !== undefined ? { notBefore } : {}) });
    requeued.push({ index, attempt, reason, ...(notBefore !== undefined ? { notBefore } : {}) });
  };
  for (const g of groups) {
    g.tasks.forEach((t, k) => {
      const index = g.start + k;
      if ((t.state === 'Failed' || t.state === 'Preempted') && job.cancelledTasks && taskCancelled(job, index)) {
        // Cancelled on its own: it never runs again. Stopped (preempted, or its node gone) it counts cancelled; a failure of its own stays one.
        if (t.state === 'Failed' && t.reason !== NODE_LOST && t.reason !== NODE_ERROR) counts.failed++;
        else counts.cancelled++;
        return;
      }
      if (t.state === 'Succeeded') counts.succeeded++;
      else if (t.state === 'Cancelled') counts.cancelled++;
      else if (t.state === 'Preempted') {
        // Not the task's fault: it runs again at its next attempt, unless the job is being cancelled.
        if (job.cancelRequestedAt === undefined) again(index, g.attempt + 1, 'Preempted');
        else counts.cancelled++;
      } else if (t.state === 'Failed') {
        if (job.cancelRequestedAt !== undefined) counts.failed++;
        else if ((t.reason === NODE_LOST || t.reason === NODE_ERROR) && g.attempt < MAX_NODE_LOST_ATTEMPTS) again(index, g.attempt + 1, t.reason);
        else if (t.reason !== NODE_LOST && t.reason !== NODE_ERROR && retries(job.spec.retry, t, g.attempt)) {
          again(index, g.attempt + 1, t.reason ?? 'Error', retryNotBefore(job.spec.retry!, g.attempt, job.id, now));
        } else counts.failed++;
      }
    });
  }
  // Ranges whose backoff is over drop their time, so they merge with their neighbours again.
  const pending = requeue.length
    ? mergeRanges(
        job.pending.map((r) => (r.notBefore !== undefined && r.notBefore <= now ? withoutNotBefore(r) : r)),
        requeue,
      )
    : job.pending;
  return { job: settle({ ...job, counts, pending }, now), requeued };
}

/**
 * Asks for a job's cancellation: pending tasks are cancelled at once; live groups are
 * stopped by their executors, whose reports end the job.
 */
export function requestCancel(job: JobRecord, now: number): JobRecord {
  if (TERMINAL_PHASES.has(job.phase)) return job;
  const cancelled = countTasks(job.pending);
  return settle(
    { ...job, pending: [], cancelRequestedAt: job.cancelRequestedAt ?? now, counts: { ...job.counts, cancelled: job.counts.cancelled + cancelled } },
    now,
  );
}

/** Whether task `index` of `job` was cancelled on its own (`requestTaskCancel`). */
export function taskCancelled(job: Pick<JobRecord, 'cancelledTasks'>, index: number): boolean {
  return (job.cancelledTasks ?? []).some((r) => r.start <= index && index < r.end);
}

/** Why a task cannot be cancelled on its own. */
export type TaskCancelRefusal = 'job_ended' | 'task_ended' | 'too_many_ranges';

/**
 * Asks for the cancellation of task `index` alone (Slurm's `scancel 123_7`): a pending task ends
 * `Cancelled` at once; a bound or running one is stopped by its executor (the binding's
 * `cancel`), and whatever its attempt's outcome, it never runs again. The job ends when its other
 * tasks do: `Failed` if one failed, else `Cancelled` (not every task ran), else `Succeeded`.
 *
 * `running`: whether the task is bound or running now (its group's status says so). Returns the
 * next record, `'unchanged'` when the task was already cancelled, or why it cannot be cancelled:
 * the job ended, the task ended (`running` false and not pending), or the job would record more
 * than `MAX_CANCELLED_TASK_RANGES` ranges.
 */
export function requestTaskCancel(job: JobRecord, index: number, running: boolean, now: number): JobRecord | 'unchanged' | TaskCancelRefusal {
  if (TERMINAL_PHASES.has(job.phase)) return 'job_ended';
  if (taskCancelled(job, index)) return 'unchanged';
  const pending = job.pending.some((r) => r.start <= index && index < r.end);
  if (!pending && !running) return 'task_ended';
  const cancelledTasks = addIndex(job.cancelledTasks ?? [], index);
  if (cancelledTasks.length > MAX_CANCELLED_TASK_RANGES) return 'too_many_ranges';
  const next: JobRecord = { ...job, cancelledTasks };
  if (!pending) return next;
  const counts = { ...job.counts, cancelled: job.counts.cancelled + 1 };
  return settle({ ...next, pending: subtractRanges(job.pending, [{ start: index, end: index + 1 }]), counts }, now);
}

/** `ranges` (sorted, merged) with `index` added, merged with its neighbours. */
function addIndex(ranges: ReadonlyArray<{ start: number; end: number }>, index: number): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  for (const r of [...ranges, { start: index, end: index + 1 }].sort((a, b) => a.start - b.start)) {
    const last = out[out.length - 1];
    if (last && last.end >= r.start) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/** Removes the ranges the scheduler bound from the pending ones and marks the job running. */
export function markBound(job: JobRecord, bound: ReadonlyArray<{ start: number; end: number }>, now: number): JobRecord {
  return { ...job, pending: subtractRanges(job.pending, bound), phase: 'Running', startedAt: job.startedAt ?? now };
}

/** Default reasons a retry policy retries. */
const RETRIED_REASONS: readonly FailureReason[] = ['Error', 'OOMKilled', 'DeadlineExceeded'];

/** True when a failed attempt gets another under the job's retry policy. */
export function retries(policy: RetryPolicy | undefined, t: TaskStatus, attempt: number): boolean {
  if (!policy || attempt >= policy.maxAttempts) return false;
  if (!(policy.retryOnReasons ?? RETRIED_REASONS).includes(t.reason ?? 'Error')) return false;
  if (t.exitCode !== undefined) {
    if (policy.failFastOnExitCodes?.includes(t.exitCode)) return false;
    if (policy.retryOnExitCodes && !policy.retryOnExitCodes.includes(t.exitCode)) return false;
  }
  return true;
}

/** Grid steps of retry times, largest first, in milliseconds. */
const RETRY_GRID_MS = [60_000, 15_000, 5_000, 1_000] as const;

/**
 * When tasks of job `jobId` that failed attempt `attempt` at `now` may run again, epoch ms:
 * `now` plus `retryDelayMs` (its jitter drawn from the job and attempt, not the task), rounded
 * up to a grid of whole seconds: the largest of 60, 15, 5 and 1 s that is at most a tenth of
 * the delay (1 s for the default 10 s backoff). Every task of a job that
 * fails the same attempt within one grid step gets the same time, so their pending ranges
 * merge: 15,000 retried tasks stay a few ranges, not 15,000 (each ~60 bytes of the job record).
 * Jobs still spread apart (their jitter differs). Pure.
 */
export function retryNotBefore(policy: RetryPolicy, attempt: number, jobId: string, now: number): number {
  const delay = retryDelayMs(policy, attempt, `${jobId}/${attempt}`);
  const step = RETRY_GRID_MS.find((g) => g <= delay / 10) ?? 1000;
  return Math.ceil((now + delay) / step) * step;
}

/**
 * Wait before attempt `attempt + 1`, milliseconds: `backoffSeconds` doubled per retry, capped
 * at `maxBackoffSeconds`, with ±20% jitter drawn from `seed` (pure and repeatable, yet spread
 * across seeds: `retryNotBefore` seeds it with the job and attempt).
 */
export function retryDelayMs(policy: RetryPolicy, attempt: number, seed: string): number {
  const base = Math.min((policy.backoffSeconds ?? 10) * 2 ** (attempt - 1), policy.maxBackoffSeconds ?? 600) * 1000;
  let h = 2166136261;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619);
  const jitter = ((h >>> 0) / 4294967295) * 0.4 - 0.2;
  return Math.round(base * (1 + jitter));
}

function withoutNotBefore(r: TaskRange): TaskRange {
  const { notBefore: _n, ...rest } = r;
  return rest;
}

/** Reason code of a job failed because its smallest bind (record and one task's binding) cannot fit one etcd transaction. */
export const BIND_TOO_LARGE = 'bind_too_large' as const;

/** Reason code of a job whose record and one report of its tasks cannot fit one etcd transaction. */
export const REPORT_TOO_LARGE = 'report_too_large' as const;

/**
 * Fails every pending task of a job with a reason the API shows (e.g. `bind_too_large`): they
 * count as failed and leave the pending ranges; the job ends `Failed` now if nothing of it
 * still runs, else when its running tasks end. Callers write it with a compare-and-swap. Pure.
 */
export function failPending(job: JobRecord, reason: { code: string; message: string }, now: number): JobRecord {
  if (TERMINAL_PHASES.has(job.phase)) return job;
  const failed = countTasks(job.pending);
  return settle({ ...job, pending: [], reason, counts: { ...job.counts, failed: job.counts.failed + failed } }, now);
}

function settle(job: JobRecord, now: number): JobRecord {
  const { succeeded, failed, cancelled } = job.counts;
  if (succeeded + failed + cancelled < job.spec.tasks || TERMINAL_PHASES.has(job.phase)) return job;
  // Tasks cancelled one by one (`requestTaskCancel`) make a job that did not fail `Cancelled`: not all of it ran.
  const phase = job.cancelRequestedAt !== undefined ? 'Cancelled' : failed > 0 ? 'Failed' : cancelled > 0 ? 'Cancelled' : 'Succeeded';
  return { ...job, phase, finishedAt: now };
}

/** Adds a group's reservation to its node's allocation. */
export function reserveOnNode(alloc: NodeAllocation, group: TaskGroup): NodeAllocation {
  return changeAllocation(alloc, group, 1);
}

/**
 * Whether a node's allocation changed from `seen` to `now` only by giving room back (no
 * resource or device is more used): a placement decided on `seen` still fits on `now`. Pure.
 */
export function onlyReleased(seen: NodeAllocation, now: NodeAllocation): boolean {
  for (const [r, v] of Object.entries(now.used)) if (v > ((seen.used as Record<string, number>)[r] ?? 0)) return false;
  for (const [d, v] of Object.entries(now.devices)) if (v > (seen.devices[d] ?? 0)) return false;
  return true;
}

/** Returns a finished group's reservation. */
export function releaseOnNode(alloc: NodeAllocation, group: TaskGroup): NodeAllocation {
  return changeAllocation(alloc, group, -1);
}

/**
 * The status a group gets when it is bound: its binding without what only the executor needs
 * (command, env, items, cancel and preemption requests, timeout), every task `Bound`. The
 * scheduler writes it beside the binding in one transaction, so an executor that sees the
 * binding unchanged since then knows the status (and its revision) without reading it.
 */
export function boundGroupStatus(b: Binding): GroupStatus {
  const { command: _c, env: _e, items: _i, cancelRequested: _x, cancel: _k, preempt: _p, preemptRequestedAt: _t, timeoutSeconds: _d, ...group } = b;
  return { ...group, tasks: Array.from({ length: b.end - b.start }, () => ({ state: 'Bound' as const })) };
}

/** Whether a report of this group ends some task not yet given back to its node's allocation. */
export function hasUnreleasedEnd(group: GroupStatus): boolean {
  return group.tasks.some((t) => TERMINAL_TASK_STATES.has(t.state) && !t.released);
}

/**
 * Returns the reservation of the tasks of a live group that ended and were not released yet
 * (a task's room goes back when it ends, not when its whole group does). Returns the new
 * allocation and the indices (offsets in the group) released.
 */
export function releaseEndedTasks(alloc: NodeAllocation, group: GroupStatus): { alloc: NodeAllocation; released: number[] } {
  const released = group.tasks.flatMap((t, k) => (TERMINAL_TASK_STATES.has(t.state) && !t.released ? [k] : []));
  return { alloc: changeAllocation(alloc, group, -1, released), released };
}

function changeAllocation(alloc: NodeAllocation, group: TaskGroup, sign: 1 | -1, only?: number[]): NodeAllocation {
  const offsets = only ?? Array.from({ length: group.end - group.start }, (_, k) => k);
  const used = addResources(alloc.used, group.resources, sign * offsets.length);
  const queues = { ...(alloc.queues ?? {}) };
  const held = addResources(queues[group.queue] ?? {}, group.resources, sign * offsets.length);
  if (Object.keys(held).length) queues[group.queue] = held;
  else delete queues[group.queue];
  const devices = { ...alloc.devices };
  const share = group.resources.gpu ?? 0;
  for (const perTask of offsets.map((k) => group.devices[k] ?? [])) {
    // A whole-GPU task holds each device fully; a fractional one holds `share` of one device.
    const each = share >= GPU_MILLI ? GPU_MILLI : share;
    for (const d of perTask) {
      const next = (devices[d] ?? 0) + sign * each;
      if (next > 0) devices[d] = next;
      else delete devices[d];
    }
  }
  return { used, devices, ...(Object.keys(queues).length ? { queues } : {}) };
}

/** An empty allocation. */
export const EMPTY_ALLOCATION: NodeAllocation = { used: {}, devices: {} };
