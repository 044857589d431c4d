/**
 * What the history suites share: one real PostgreSQL per suite (ephemeral: no fsync), a fresh
 * database per call of `freshDatabase`, and finished-job records to archive.
 */
import { type GroupStatus, type JobRecord, type TaskResult, type TaskStatus, taskGroupOf } from '@batchapi/api';
import { type ArchivedJob, createDatabase, type LocalPostgres, startPostgres } from '@batchapi/history';

/** Starts the suite's PostgreSQL in beforeAll and stops it in afterAll; `freshDatabase()` gives a new empty database's URL. */
export function usePostgres(): { freshDatabase(): Promise<string> } {
  let server: LocalPostgres | undefined;
  let n = 0;
  beforeAll(async () => {
    server = await startPostgres({ ephemeral: true });
  });
  afterAll(async () => {
    await server?.stop();
  });
  return {
    freshDatabase: () => createDatabase(server!.url, `suite_${++n}`),
  };
}

/** 2026-05-10T12:00:00Z: "now" of the suites. */
export const T0 = Date.UTC(2026, 4, 10, 12, 0, 0);
const MINUTE = 60_000;

/** A finished job of `tasks` tasks, finished `finishedAt` (default T0); fields overridable. */
export function finishedJob(id: string, over: Partial<JobRecord> & { name?: string; labels?: Record<string, string>; tasks?: number } = {}): JobRecord {
  const { name, labels, tasks, ...rest } = over;
  return {
    id,
    tenant: 'team-a',
    queue: 'default',
    phase: 'Succeeded',
    pending: [],
    counts: { succeeded: tasks ?? 1, failed: 0, cancelled: 0 },
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    createdAt: T0 - 10 * MINUTE,
    queuedAt: T0 - 9 * MINUTE,
    startedAt: T0 - 8 * MINUTE,
    finishedAt: T0,
    spec: {
      name: name ?? `job-${id}`,
      command: ['python', 'train.py', '--lr', '0.1'],
      env: { MODE: 'fast' },
      resources: { cpu: 1000, memory: 1073741824 },
      tasks: tasks ?? 1,
      priority: 0,
      labels: labels ?? {},
    },
    ...rest,
  };
}

/** A group `[start, end)` of `job` on `node` at `attempt`, every task in `states[i]` (default Succeeded). */
export function group(job: JobRecord, start: number, end: number, attempt: number, node: string, states: Array<Partial<TaskStatus>> = []): GroupStatus {
  return {
    ...taskGroupOf(job, node, { start, end, attempt }, job.startedAt! + attempt * 1000),
    tasks: Array.from({ length: end - start }, (_, i) => ({
      state: 'Succeeded' as const,
      exitCode: 0,
      startedAt: job.startedAt! + attempt * 1000 + 10,
      finishedAt: job.finishedAt! - 10,
      ...states[i],
    })),
  };
}

/** `job` archived with one group of all its tasks on node-1 at attempt 1, each succeeded and returning `{ i }` (unless given). */
export function archived(job: JobRecord, groups?: GroupStatus[], results?: TaskResult[]): ArchivedJob {
  return {
    job,
    groups: groups ?? [group(job, 0, job.spec.tasks, 1, 'node-1')],
    results: results ?? Array.from({ length: job.spec.tasks }, (_, i) => ({ index: i, attempt: 1, value: { i } })),
  };
}
