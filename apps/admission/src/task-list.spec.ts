import type { GroupStatus, JobRecord, TaskStatus } from '@batchapi/api';
import { liveTaskPage } from './task-list';

const T = 1_800_000_000_000;
const job = (pending: JobRecord['pending']): JobRecord =>
  ({
    id: 'j',
    tenant: 't',
    queue: 'q',
    phase: 'Running',
    pending,
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
    createdAt: T,
    spec: {},
  }) as unknown as JobRecord;
const group = (start: number, attempt: number, node: string, tasks: Array<Partial<TaskStatus>>): GroupStatus =>
  ({
    jobId: 'j',
    tenant: 't',
    queue: 'q',
    node,
    start,
    end: start + tasks.length,
    attempt,
    resources: {},
    devices: [],
    boundAt: T,
    tasks,
  }) as unknown as GroupStatus;
const keys = (rows: Array<{ index: number; attempt: number; state: string }>) => rows.map((r) => `${r.index}/${r.attempt}:${r.state}`);

describe('liveTaskPage', () => {
  // Tasks 0-1 on n1 at attempt 1 (0 succeeded, 1 failed → retrying as attempt 2, pending);
  // tasks 2-3 running on n2; tasks 4-5 never bound.
  const j = job([
    { start: 1, end: 2, attempt: 2, notBefore: T + 5000 },
    { start: 4, end: 6, attempt: 1 },
  ]);
  const groups = [
    group(2, 1, 'n2', [{ state: 'Running', startedAt: T + 10 }, { state: 'Running' }]),
    group(0, 1, 'n1', [
      { state: 'Succeeded', exitCode: 0, startedAt: T + 10, finishedAt: T + 20 },
      { state: 'Failed', exitCode: 3, reason: 'Error', finishedAt: T + 30 },
    ]),
  ];
  const table: Array<{ name: string; opts: Parameters<typeof liveTaskPage>[2]; rows: string[]; next?: { index: number; attempt: number } }> = [
    {
      name: 'every attempt by index then attempt, pending ones at the attempt they will run as',
      opts: { limit: 100 },
      rows: ['0/1:Succeeded', '1/1:Failed', '1/2:Pending', '2/1:Running', '3/1:Running', '4/1:Pending', '5/1:Pending'],
    },
    // 7 rows, 3 a page: the first page ends at 1/2
    {
      name: 'a page stops at the limit and says where the next starts',
      opts: { limit: 3 },
      rows: ['0/1:Succeeded', '1/1:Failed', '1/2:Pending'],
      next: { index: 1, attempt: 2 },
    },
    {
      name: 'the next page starts after the cursor',
      opts: { limit: 3, after: { index: 1, attempt: 2 } },
      rows: ['2/1:Running', '3/1:Running', '4/1:Pending'],
      next: { index: 4, attempt: 1 },
    },
    { name: 'the last page has no next', opts: { limit: 3, after: { index: 4, attempt: 1 } }, rows: ['5/1:Pending'] },
    { name: 'state=Failed: which tasks failed', opts: { limit: 10, state: 'Failed' }, rows: ['1/1:Failed'] },
    // 3 pending rows, limit 3: nothing matches after the third
    { name: 'a filtered page that fills exactly has no next', opts: { limit: 3, state: 'Pending' }, rows: ['1/2:Pending', '4/1:Pending', '5/1:Pending'] },
  ];
  it.each(table)('$name', ({ opts, rows, next }) => {
    const page = liveTaskPage(j, groups, opts);
    expect(keys(page.tasks)).toEqual(rows);
    expect(page.next).toEqual(next);
  });

  it('carries node, exit code, reason and ISO times of an attempt', () => {
    const [, failed] = liveTaskPage(j, groups, { limit: 2 }).tasks;
    expect(failed).toEqual({
      index: 1,
      attempt: 1,
      state: 'Failed',
      node: 'n1',
      exitCode: 3,
      reason: 'Error',
      boundAt: new Date(T).toISOString(),
      endedAt: new Date(T + 30).toISOString(),
    });
  });

  it('walks a million pending tasks lazily: the first page of 10 is 10 rows', () => {
    const big = job([{ start: 0, end: 1_000_000, attempt: 1 }]);
    const page = liveTaskPage(big, [], { limit: 10 });
    expect(page.tasks.map((t) => t.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(page.next).toEqual({ index: 9, attempt: 1 });
  });
});
