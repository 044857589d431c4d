/** How the CLI prints: a table for people (`-o wide`: more columns), the API's JSON or YAML with `-o json|yaml`. */
import type { JobView, QueueView, RunningCapView, UsageView, WorkflowView } from '@batchapi/api';
import { dump } from 'js-yaml';

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'wide', 'json', 'yaml'];

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** True for the formats that print the API's data as it is (json, yaml). */
export function isData(format: OutputFormat | undefined): format is 'json' | 'yaml' {
  return format === 'json' || format === 'yaml';
}

/** Prints the API's answer as JSON or YAML. */
export function printData(v: unknown, format: 'json' | 'yaml'): void {
  if (format === 'yaml') process.stdout.write(dump(v, { noRefs: true, lineWidth: 120 }));
  else printJson(v);
}

/** Workflows as `batch workflow list` shows them. */
export function workflowRows(wfs: WorkflowView[], wide = false): string {
  const counts = (w: WorkflowView) => {
    const by = new Map<string, number>();
    for (const s of w.steps) by.set(s.phase, (by.get(s.phase) ?? 0) + 1);
    return [...by].map(([p, n]) => `${n} ${p.toLowerCase()}`).join(', ');
  };
  const header = ['ID', 'NAME', 'PHASE', 'STEPS', 'CREATED', ...(wide ? ['TENANT', 'QUEUE', 'FINISHED', 'TRACE'] : [])];
  return table(
    header,
    wfs.map((w) => [
      w.id,
      w.name,
      w.phase,
      counts(w),
      new Date(w.createdAt).toISOString(),
      ...(wide ? [w.tenant, w.queue, w.finishedAt ? new Date(w.finishedAt).toISOString() : '-', w.traceId ?? '-'] : []),
    ]),
  );
}

/** One workflow with its steps, critical path first. */
export function workflowDetail(w: WorkflowView): string {
  const head =
    `ID:        ${w.id}\nName:      ${w.name}\nPhase:     ${w.phase}\nTenant:    ${w.tenant}\nCreated:   ${new Date(w.createdAt).toISOString()}\n` +
    (w.finishedAt ? `Finished:  ${new Date(w.finishedAt).toISOString()}\n` : '') +
    (w.deadlineAt ? `Deadline:  ${new Date(w.deadlineAt).toISOString()}\n` : '') +
    (w.traceId ? `Trace:     ${w.traceId}\n` : '') +
    (w.retryOf ? `Retry of:  ${w.retryOf}\n` : '');
  return `${head}\n${table(
    ['STEP', 'PHASE', 'WHEN', 'DEPENDS ON', 'CRITICAL PATH', 'JOB'],
    // a reused step reads "Succeeded (cached)": its job is an earlier run's (a retry's reuse or a cache hit)
    w.steps.map((s) => [s.name, s.cached ? `${s.phase} (cached)` : s.phase, s.when, s.dependsOn.join(',') || '-', String(s.criticalPath), s.jobId ?? '-']),
  )}`;
}

/** Columns of rows, padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (c ?? '').padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/**
 * One line of task counts: `3 succeeded, 1 running, 4 pending`. A list answer may leave out live
 * counts (bound, running): then it says how many tasks the job has.
 */
export function countsLine(j: JobView): string {
  return (
    Object.entries(j.taskCounts ?? {})
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ') || `${j.tasks} task${j.tasks === 1 ? '' : 's'}`
  );
}

export function jobRows(jobs: JobView[], wide = false): string {
  return table(
    ['ID', 'NAME', 'QUEUE', 'PHASE', 'TASKS', 'CREATED', ...(wide ? ['TENANT', 'PRIORITY', 'RESOURCES', 'FINISHED', 'TRACE'] : [])],
    jobs.map((j) => [
      j.id,
      j.name,
      j.queue,
      j.phase,
      countsLine(j),
      j.createdAt,
      ...(wide ? [j.tenant, String(j.priority), JSON.stringify(j.resources), j.finishedAt ?? '-', j.traceId ?? '-'] : []),
    ]),
  );
}

export function jobDetail(j: JobView): string {
  const rows: Array<[string, string | undefined]> = [
    ['ID', j.id],
    ['Name', j.name],
    ['Tenant', j.tenant],
    ['Queue', j.queue],
    ['Phase', j.phase],
    ['Reason', j.reason ? `${j.reason.code}: ${j.reason.message}` : undefined],
    ['Command', JSON.stringify(j.command)],
    ['Env', j.env && Object.keys(j.env).length ? JSON.stringify(j.env) : undefined],
    ['Resources', JSON.stringify(j.resources)],
    ['Tasks', `${j.tasks} (${countsLine(j)})`],
    ['Limit', j.maxRunning !== undefined ? `${j.maxRunning} task${j.maxRunning === 1 ? '' : 's'} at once (maxRunning)` : undefined],
    ['Locks', j.locks?.length ? j.locks.join(', ') : undefined],
    [
      'Semaphores',
      j.limits
        ? Object.entries(j.limits)
            .map(([n, u]) => `${n} ×${u}`)
            .join(', ') + ' per task'
        : undefined,
    ],
    ['Priority', String(j.priority)],
    ['Trace', j.traceId],
    ['Created', j.createdAt],
    ['Queued', j.queuedAt],
    ['Started', j.startedAt],
    ['Finished', j.finishedAt],
  ];
  return (
    rows
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${`${k}:`.padEnd(11)}${v}`)
      .join('\n') + '\n'
  );
}

/** Queues as `batch queues` and `batch top` show them; a CAPS column when some queue or tenant sets running caps. */
export function queueTable(queues: QueueView[]): string {
  const capped = queues.some((q) => q.caps);
  return table(
    ['QUEUE', 'TENANT', 'COHORT', 'WEIGHT', 'NOMINAL', 'USED', 'BORROWED', 'SHARE', 'RUNNING', 'PENDING', ...(capped ? ['CAPS'] : [])],
    queues.map((q) => [
      q.name,
      q.tenant,
      q.cohort ?? '-',
      String(q.weight),
      JSON.stringify(q.nominal),
      JSON.stringify(q.used),
      Object.keys(q.borrowed ?? {}).length ? JSON.stringify(q.borrowed) : '-',
      q.fairShare.toFixed(3),
      String(q.runningTasks),
      `${q.pendingTasks} (${q.pendingJobs} jobs)`,
      ...(capped ? [capsCell(q.caps)] : []),
    ]),
  );
}

/**
 * A queue's running caps in one cell, only what is set: `queue 50/50 tasks, 10.2/100 GPU-h; tenant 80/100 tasks`
 * (running/maxRunningTasks, GPU-hours used in the last 24 h/gpuHoursPerDay, and when a used-up budget frees).
 */
export function capsCell(caps: QueueView['caps']): string {
  if (!caps) return '-';
  const one = (who: string, c: RunningCapView): string | undefined => {
    const parts: string[] = [];
    if (c.maxRunningTasks !== undefined) parts.push(`${c.runningTasks}/${c.maxRunningTasks} tasks`);
    if (c.gpuHoursPerDay !== undefined) parts.push(`${c.gpuHoursUsed}/${c.gpuHoursPerDay} GPU-h${c.gpuBudgetFreesAt ? ` (frees ${c.gpuBudgetFreesAt})` : ''}`);
    return parts.length ? `${who} ${parts.join(', ')}` : undefined;
  };
  return [one('queue', caps.queue), one('tenant', caps.tenant)].filter((x) => x !== undefined).join('; ');
}

/** `batch usage`: one row per group, then the window. Hours to 2 decimals; waits in seconds. */
export function usageTable(u: UsageView): string {
  const hours = (h: number) => h.toFixed(2);
  const secs = (s: number | undefined) => (s === undefined ? '-' : `${s.toFixed(1)}s`);
  const rows = u.groups.map((g) => [
    g.key ?? '(none)',
    hours(g.cpuCoreHours),
    hours(g.memoryGiBHours),
    hours(g.gpuHours),
    String(g.attempts),
    String(g.failed),
    String(g.preempted),
    secs(g.queueWaitP50Seconds),
    secs(g.queueWaitP99Seconds),
  ]);
  const head = [u.groupBy.toUpperCase(), 'CPU-H', 'MEM-GIB-H', 'GPU-H', 'ATTEMPTS', 'FAILED', 'PREEMPTED', 'WAIT-P50', 'WAIT-P99'];
  const window = `(attempts that ended from ${u.from} to ${u.to}${u.truncated ? '; more groups were left out' : ''})\n`;
  if (!u.step) return table(head, rows) + window;
  // With --step: each group's steps in which attempts ended, oldest first.
  const steps = u.groups.flatMap((g) =>
    (g.series ?? []).map((p) => [g.key ?? '(none)', p.start, hours(p.cpuCoreHours), hours(p.memoryGiBHours), hours(p.gpuHours), String(p.attempts)]),
  );
  return table(head, rows) + '\n' + table([u.groupBy.toUpperCase(), `${u.step.toUpperCase()} FROM`, 'CPU-H', 'MEM-GIB-H', 'GPU-H', 'ATTEMPTS'], steps) + window;
}
