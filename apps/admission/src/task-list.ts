/**
 * The task attempts of a live job, one row per (index, attempt), by index then attempt: every
 * attempt its groups recorded (ended ones included), and the tasks still waiting as `Pending` at
 * the attempt they will run as. Rows are produced lazily and the page stops at `limit`, so a
 * million pending tasks cost what one page shows. Pure.
 */
import { type GroupStatus, type JobRecord, type TaskListState, type TaskView } from '@batchapi/api';

/** Where a page starts: after this (index, attempt). */
export interface TaskCursor {
  index: number;
  attempt: number;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function* groupRows(groups: readonly GroupStatus[]): Generator<TaskView> {
  const rows: TaskView[] = [];
  for (const g of groups)
    g.tasks.forEach((t, k) => {
      const row: TaskView = { index: g.start + k, attempt: g.attempt, state: t.state, node: g.node };
      if (t.exitCode !== undefined) row.exitCode = t.exitCode;
      if (t.reason !== undefined) row.reason = t.reason;
      if (t.signal !== undefined) row.signal = t.signal;
      if (g.boundAt !== undefined) row.boundAt = iso(g.boundAt);
      if (t.startedAt !== undefined) row.startedAt = iso(t.startedAt);
      if (t.finishedAt !== undefined) row.endedAt = iso(t.finishedAt);
      rows.push(row);
    });
  rows.sort(byTask);
  yield* rows;
}

function* pendingRows(job: JobRecord): Generator<TaskView> {
  for (const r of [...job.pending].sort((a, b) => a.start - b.start))
    for (let i = r.start; i < r.end; i++) yield { index: i, attempt: r.attempt, state: 'Pending' };
}

function byTask(a: TaskCursor, b: TaskCursor): number {
  return a.index - b.index || a.attempt - b.attempt;
}

/** Merges two streams each sorted by (index, attempt). */
function* merged(a: Generator<TaskView>, b: Generator<TaskView>): Generator<TaskView> {
  let x = a.next();
  let y = b.next();
  while (!x.done || !y.done) {
    if (y.done || (!x.done && byTask(x.value, y.value) <= 0)) {
      yield x.value;
      x = a.next();
    } else {
      yield y.value;
      y = b.next();
    }
  }
}

/**
 * A page of a live job's task rows after `after`, only those in `state` when given, at most
 * `limit`; `next` is where the following page starts when there may be more.
 */
export function liveTaskPage(
  job: JobRecord,
  groups: readonly GroupStatus[],
  opts: { state?: TaskListState; after?: TaskCursor; limit: number },
): { tasks: TaskView[]; next?: TaskCursor } {
  const tasks: TaskView[] = [];
  for (const row of merged(groupRows(groups), pendingRows(job))) {
    if (opts.after && byTask(row, opts.after) <= 0) continue;
    if (opts.state && row.state !== opts.state) continue;
    if (tasks.length === opts.limit) {
      const last = tasks[tasks.length - 1];
      return { tasks, next: { index: last.index, attempt: last.attempt } };
    }
    tasks.push(row);
  }
  return { tasks };
}
