/** How the CLI prints: a table for people, the API's JSON with `-o json`. */
import type { JobView, QueueView } from '@batchapi/api';

export type OutputFormat = 'table' | 'json';

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Columns of rows, padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/**
 * One line of task counts: `3 succeeded, 1 running, 4 pending`. A list answer may leave out live
 * counts (bound, running): then it says how many tasks the job has.
 */
export function countsLine(j: JobView): string {
  return Object.entries(j.taskCounts ?? {})
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ') || `${j.tasks} task${j.tasks === 1 ? '' : 's'}`;
}

export function jobRows(jobs: JobView[]): string {
  return table(
    ['ID', 'NAME', 'QUEUE', 'PHASE', 'TASKS', 'CREATED'],
    jobs.map((j) => [j.id, j.name, j.queue, j.phase, countsLine(j), j.createdAt]),
  );
}

export function jobDetail(j: JobView): string {
  const rows: Array<[string, string | undefined]> = [
    ['ID', j.id], ['Name', j.name], ['Tenant', j.tenant], ['Queue', j.queue], ['Phase', j.phase],
    ['Reason', j.reason ? `${j.reason.code}: ${j.reason.message}` : undefined],
    ['Command', JSON.stringify(j.command)], ['Resources', JSON.stringify(j.resources)], ['Tasks', `${j.tasks} (${countsLine(j)})`],
    ['Priority', String(j.priority)], ['Trace', j.traceId], ['Created', j.createdAt], ['Queued', j.queuedAt], ['Started', j.startedAt], ['Finished', j.finishedAt],
  ];
  return rows.filter(([, v]) => v !== undefined).map(([k, v]) => `${`${k}:`.padEnd(11)}${v}`).join('\n') + '\n';
}

/** Queues as `batch queues` and `batch top` show them. */
export function queueTable(queues: QueueView[]): string {
  return table(['QUEUE', 'TENANT', 'COHORT', 'WEIGHT', 'NOMINAL', 'USED', 'BORROWED', 'SHARE', 'RUNNING', 'PENDING'], queues.map((q) => [
    q.name, q.tenant, q.cohort ?? '-', String(q.weight), JSON.stringify(q.nominal), JSON.stringify(q.used), Object.keys(q.borrowed ?? {}).length ? JSON.stringify(q.borrowed) : '-',
    q.fairShare.toFixed(3), String(q.runningTasks), `${q.pendingTasks} (${q.pendingJobs} jobs)`,
  ]));
}
