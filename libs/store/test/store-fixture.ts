/**
 * What the store suites share: one etcd member with a store and a role won on a process lease,
 * and the records a test submits and binds (a queued job, a binding of its tasks, the unit a
 * plan binds).
 */
import { type Binding, type JobRecord, type JobSpec, taskGroupOf } from '@batchapi/api';
import { type BindUnit, campaign, EtcdStore, type Leadership, type LocalEtcd, type ProcessLease, startEtcd, submitJob, type Versioned } from '@batchapi/store';

export interface LeaderStore {
  etcd: LocalEtcd;
  store: EtcdStore;
  lease: ProcessLease;
  leader: Leadership;
}

/** Starts the member, a store under `prefix`, and wins `role` as identity `L` on a 5 s lease. */
export async function startLeaderStore(prefix: string, role: string): Promise<LeaderStore> {
  const etcd = await startEtcd();
  const store = new EtcdStore({ endpoints: etcd.endpoints, prefix });
  const lease = await store.grantLease(5);
  const leader = await campaign(store, role, 'L', lease);
  return { etcd, store, lease, leader };
}

/** Revokes the lease, closes the store and stops the member. */
export async function stopLeaderStore(s: Pick<LeaderStore, 'etcd' | 'store' | 'lease'>): Promise<void> {
  await s.lease.revoke();
  await s.store.close();
  await s.etcd.stop();
}

/** A job of `tasks` tasks of 1 CPU each running `true`, queued in queue `q` of tenant `a` at 1; `spec` overrides fields of its spec. */
export function queuedJob(id: string, tasks = 1, spec: Partial<JobSpec> = {}): JobRecord {
  return {
    id,
    tenant: 'a',
    queue: 'q',
    phase: 'Queued',
    createdAt: 1,
    spec: { name: 'j', command: ['true'], env: {}, resources: { cpu: 1000 }, tasks, priority: 0, labels: {}, ...spec },
    pending: [{ start: 0, end: tasks, attempt: 1 }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
  };
}

/**
 * The binding of `job`'s tasks `[start, end)` (all of them unless `over` says) on `node` at
 * attempt 1, bound at 1, with the job's resources, command and env and no devices; `over`
 * overrides any field.
 */
export function bindingOf(job: JobRecord, node: string, over: Partial<Binding> = {}): Binding {
  const start = over.start ?? 0;
  const end = over.end ?? job.spec.tasks;
  return {
    ...taskGroupOf(
      job,
      node,
      { start, end, attempt: 1 },
      1,
      Array.from({ length: end - start }, () => []),
    ),
    command: job.spec.command,
    env: job.spec.env,
    ...over,
  };
}

/** The unit `bindPlan` commits for `job` and its `bindings`: the job as decided on, then Running with nothing pending (and `next`). */
export function runningUnit(job: Versioned<JobRecord>, bindings: Binding[], next: Partial<JobRecord> = {}): BindUnit {
  return { job, next: { ...job.value, pending: [], phase: 'Running', ...next }, bindings };
}

/** Submits `record` and gives the unit that binds all its tasks as one group on `node`. */
export async function submittedUnit(store: EtcdStore, record: JobRecord, node: string): Promise<BindUnit> {
  const { job } = await submitJob(store, record);
  return runningUnit(job, [bindingOf(record, node)]);
}
