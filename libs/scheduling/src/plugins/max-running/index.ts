/**
 * Concurrency limits of a job (`maxRunning`: Slurm's `--array=…%N`, Kubernetes' `parallelism`),
 * applied where pending work is made (the snapshot builder, beside priority aging), so every
 * later phase — batch fill, the per-job pass, gangs, backfill reservations, reclaim and
 * preemption — sees at most the tasks the limit leaves room for.
 *
 * The tasks a job has bound or running come from its record, never from the leader's memory:
 *   inFlight = tasks − pending − succeeded − failed − cancelled
 * A task leaves `pending` in the bind transaction (which compares the job's revision) and reaches
 * a terminal counter — or goes back to `pending` for a retry — in the report that gives its room
 * back to its node. So a slot frees exactly when the task's capacity does, a bind decided on a
 * stale count is refused by etcd, and a new leader counts the same. Pure.
 */
import { countTasks, type WhyJob } from '@batchapi/api';
import type { PendingWork } from '../../snapshot';

/** What the limit held back of a job's placeable tasks. */
export interface RunLimit {
  /** The job's `maxRunning`. */
  limit: number;
  /** Its tasks bound or running now (see `tasksInFlight`). */
  running: number;
  /** Placeable tasks the limit keeps waiting. */
  held: number;
}

/** Tasks of `job` bound or running (not pending, not yet counted terminal): `tasks − pending − succeeded − failed − cancelled`. */
export function tasksInFlight(job: Pick<WhyJob, 'pending' | 'counts' | 'spec'>): number {
  const c = job.counts ?? { succeeded: 0, failed: 0, cancelled: 0 };
  return Math.max(0, job.spec.tasks - countTasks(job.pending) - c.succeeded - c.failed - c.cancelled);
}

/**
 * `w` with at most the tasks `job`'s `maxRunning` leaves room for:
 *   tasks' = min(tasks, max(0, maxRunning − inFlight))
 * and `runLimit` set when that held some back. `w` itself is not changed.
 */
export function limitRunning(w: PendingWork, job: Pick<WhyJob, 'pending' | 'counts' | 'spec'>): PendingWork {
  return job.spec.maxRunning === undefined ? w : withinLimit(w, job.spec.maxRunning, tasksInFlight(job));
}

/** `w` with at most `max(0, limit − running)` tasks (`runLimit` set when that held some back): the arithmetic of `limitRunning`, for callers that count `running` themselves (the simulator). */
export function withinLimit(w: PendingWork, limit: number | undefined, running: number): PendingWork {
  if (limit === undefined) return w;
  const room = Math.max(0, limit - running);
  if (w.tasks <= room) return w;
  return { ...w, tasks: room, runLimit: { limit, running, held: w.tasks - room } };
}

/** "at its limit of 50 running tasks (maxRunning): 950 tasks wait for a slot", or undefined when nothing was held. */
export function runLimitMessage(w: Pick<PendingWork, 'runLimit'>): string | undefined {
  const r = w.runLimit;
  if (!r) return undefined;
  const waiting = `${r.held} task${r.held === 1 ? ' waits' : 's wait'} for a slot`;
  return r.running >= r.limit
    ? `at its limit of ${r.limit} running task${r.limit === 1 ? '' : 's'} (maxRunning): ${waiting}`
    : `near its limit of ${r.limit} running task${r.limit === 1 ? '' : 's'} (maxRunning; ${r.running} bound or running): ${waiting}`;
}
