/**
 * What `GET /v1/queues` shows, worked out from one cluster snapshot: each queue's quota, what it
 * holds and borrows, its fair-share value, its waiting work, and the positions of waiting jobs in
 * the scheduler's order. Pure: the scheduler answers from its live cache's snapshot (with its
 * usage history), admission from a fresh read of etcd when no scheduler answers.
 */
import { countTasks, formatResources, type QueueView, type ResourceVector } from '@batchapi/api';
import type { ClusterSnapshot } from './framework/snapshot-builder';
import { fairShareOf } from './plugins/fair-share';
import { queueOrder } from './plugins/queue-sort';
import { waitingIn } from './framework/snapshot-builder';
import { capView } from './plugins/running-caps';

/** Most positions one queue view lists. */
export const MAX_QUEUE_POSITIONS = 100;

/**
 * Every queue of the snapshot as the API shows it (without positions).
 *   borrowed[r] = used[r] − nominal[r] where used exceeds nominal
 *   fairShare   = dominant share of the cluster's capacity, divided by weight, to 4 decimals
 *   caps        = the queue's and its tenant's running caps, when either sets one (`plugins/running-caps`)
 */
export function queueViews(s: ClusterSnapshot): QueueView[] {
  const running = new Map<string, number>();
  for (const b of s.bindings) running.set(b.queue, (running.get(b.queue) ?? 0) + b.end - b.start);
  const waiting = new Map<string, { jobs: number; tasks: number }>();
  for (const j of s.jobs.values()) {
    const w = waiting.get(j.queue) ?? { jobs: 0, tasks: 0 };
    w.jobs++;
    w.tasks += countTasks(j.pending);
    waiting.set(j.queue, w);
  }
  return s.queues.map((q) => {
    const used = s.usage.get(q.name) ?? {};
    const borrowed: ResourceVector = {};
    for (const [r, nominal] of Object.entries(q.nominal)) if ((used[r] ?? 0) > nominal) borrowed[r] = used[r] - nominal;
    const w = waiting.get(q.name) ?? { jobs: 0, tasks: 0 };
    const qc = s.caps.queues.get(q.name);
    const tc = s.caps.tenants.get(q.tenant);
    const capped = [qc, tc].some((c) => c?.maxRunningTasks !== undefined || c?.gpuHoursPerDay !== undefined);
    return {
      name: q.name,
      tenant: q.tenant,
      weight: q.weight ?? 1,
      nominal: formatResources(q.nominal),
      ...(q.cohort ? { cohort: q.cohort } : {}),
      ...(q.borrowingLimit ? { borrowingLimit: formatResources(q.borrowingLimit) } : {}),
      ...(q.lendingLimit ? { lendingLimit: formatResources(q.lendingLimit) } : {}),
      ...(q.maxPendingTasks ? { maxPendingTasks: q.maxPendingTasks } : {}),
      ...(q.priorityAgingPerHour !== undefined ? { priorityAgingPerHour: q.priorityAgingPerHour } : {}),
      ...(q.priorityAgingMax !== undefined ? { priorityAgingMax: q.priorityAgingMax } : {}),
      ...(q.prices ? { prices: q.prices } : {}),
      used: formatResources(used),
      borrowed: formatResources(borrowed),
      fairShare: Math.round(fairShareOf(q.name, used, s.fair) * 10_000) / 10_000,
      pendingTasks: w.tasks,
      pendingJobs: w.jobs,
      runningTasks: running.get(q.name) ?? 0,
      ...(capped ? { caps: { queue: capView(qc, s.now), tenant: capView(tc, s.now) } } : {}),
    };
  });
}

/**
 * The waiting jobs of `queue` in the scheduler's order (priority, then age; 1 = next), only
 * `tenant`'s when given (a tenant sees its own jobs' places, counted among everyone's), at most
 * `MAX_QUEUE_POSITIONS`.
 */
export function queuePositions(s: ClusterSnapshot, queue: string, tenant?: string): NonNullable<QueueView['positions']> {
  return waitingIn(s, queue, queueOrder)
    .map((job, i) => ({ job, position: i + 1 }))
    .filter(({ job }) => tenant === undefined || job.tenant === tenant)
    .slice(0, MAX_QUEUE_POSITIONS)
    .map(({ job, position }) => ({ jobId: job.id, position, pendingTasks: countTasks(job.pending) }));
}
