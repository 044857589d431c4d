/**
 * PostFilter: gang timeout. A gang that could not start within its timeout fails with the
 * reasons it waited for, so it neither waits forever nor holds anything (it never reserves
 * room while blocked). Pure: the plan's gang failures; the planner writes them by CAS.
 */
import { countTasks, type JobRecord } from '@batchapi/api';
import type { Unplaced } from '../../placement';

/** A gang waits at most this long to start, unless its job says otherwise, in seconds. */
export const DEFAULT_GANG_TIMEOUT_SECONDS = 600;

/** A gang job to fail: the job as decided on, and what it becomes. */
export interface GangFailure {
  jobId: string;
  next: JobRecord;
}

/**
 * The gangs among `unplaced` blocked for longer than their timeout, measured from when they
 * were queued (or created):   now − (queuedAt ?? createdAt) ≥ (gangTimeoutSeconds ?? 600) · 1000
 */
export function expiredGangs(unplaced: readonly Unplaced[], jobs: ReadonlyMap<string, JobRecord>, now: number): GangFailure[] {
  const out: GangFailure[] = [];
  for (const u of unplaced) {
    if (!u.gangBlocked) continue;
    const job = jobs.get(u.jobId);
    if (!job) continue;
    const timeout = (job.spec.gangTimeoutSeconds ?? DEFAULT_GANG_TIMEOUT_SECONDS) * 1000;
    if (now - (job.queuedAt ?? job.createdAt) < timeout) continue;
    const reasons = [
      ...u.statuses.filter((st) => st.plugin !== 'Quota').map((st) => st.reason),
      ...u.filtered.map((r) => `${r.nodes} nodes: ${r.status.reason}`),
      ...(u.full ? [`${u.full} nodes without free room`] : []),
      ...(u.quotaLimited ? ['the queue quota is too small for all tasks at once'] : []),
    ];
    const message = `gang of ${job.spec.tasks} tasks could not start together within ${timeout / 1000} s${reasons.length ? `: ${reasons.join('; ')}` : ''}`;
    out.push({
      jobId: job.id,
      next: {
        ...job,
        phase: 'Failed',
        pending: [],
        finishedAt: now,
        reason: { code: 'gang_unschedulable', message },
        counts: { ...job.counts, failed: job.counts.failed + countTasks(job.pending) },
      },
    });
  }
  return out;
}
