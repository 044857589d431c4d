/**
 * The finished jobs' index the archiver reads: a job enters when it is written terminal with its
 * `finishedAt`, leaves when it is deleted or written live again; candidates come oldest first,
 * bounded; a sync replaces everything.
 */
import type { JobRecord } from '@batchapi/api';
import { pauseAfterPass } from '../src/archiver.service';
import { FinishedJobs } from '../src/finished-jobs';

const job = (id: string, phase: JobRecord['phase'], finishedAt?: number): JobRecord => ({
  id,
  tenant: 't',
  queue: 'q',
  phase,
  createdAt: 0,
  spec: { name: id, command: ['true'], env: {}, resources: {}, tasks: 1, priority: 0, labels: {} },
  pending: [],
  counts: { succeeded: 0, failed: 0, cancelled: 0 },
  ...(finishedAt !== undefined ? { finishedAt } : {}),
});

it('indexes finished jobs by when they finished, from a sync and then from events', () => {
  const f = new FinishedJobs();
  expect(f.ready).toBe(false);
  f.sync([job('a', 'Succeeded', 300), job('b', 'Running'), job('c', 'Failed', 100)]);
  expect(f.ready).toBe(true);
  expect(f.stats()).toEqual({ finished: 2, oldestFinishedAt: 100 });
  // finished at or before 300: c (100), then a (300); b runs
  expect(f.finishedBefore(300, 10)).toEqual(['c', 'a']);
  expect(f.finishedBefore(299, 10)).toEqual(['c']);
  expect(f.finishedBefore(300, 1)).toEqual(['c']);

  f.put('b', job('b', 'Cancelled', 50)); // b ends
  f.put('c', undefined); // c archived (deleted)
  f.put('a', job('a', 'Queued')); // a written live again (a retried workflow step, say)
  expect(f.finishedBefore(1000, 10)).toEqual(['b']);
  expect(f.stats()).toEqual({ finished: 1, oldestFinishedAt: 50 });

  // a job terminal without finishedAt (not settled yet) is no candidate
  f.put('d', job('d', 'Succeeded'));
  expect(f.stats().finished).toBe(1);

  f.sync([]);
  expect(f.stats()).toEqual({ finished: 0 });
});

it('names the earliest end after a cutoff (the next job to become ready)', () => {
  const f = new FinishedJobs();
  f.sync([job('a', 'Succeeded', 100), job('b', 'Failed', 250), job('c', 'Succeeded', 400)]);
  expect(f.firstFinishedAfter(99)).toBe(100);
  expect(f.firstFinishedAfter(100)).toBe(250); // strictly after: a is at the cutoff, already a candidate
  expect(f.firstFinishedAfter(400)).toBeUndefined();
});

// afterMs 5000, intervalMs 5000, minPauseMs 1000; `now` 20,000 ms
const T = { afterMs: 5_000, intervalMs: 5_000, minPauseMs: 1_000 };
it.each([
  // next end      pause   arithmetic
  [undefined, 5_000], // nothing finished since the cutoff: the longest pause
  [17_000, 2_000], // 17,000 + 5,000 − 20,000 = 2,000
  [15_500, 1_000], // 15,500 + 5,000 − 20,000 = 500 < minPauseMs → 1,000
  [14_000, 1_000], // ready already (−1,000) → minPauseMs
  [19_900, 4_900], // 19,900 + 5,000 − 20,000 = 4,900
  [22_000, 5_000], // 7,000 > intervalMs → 5,000
])('after a pass at 20,000 with the next end at %p the archiver waits %p ms', (next, pause) => {
  expect(pauseAfterPass(20_000, next, T)).toBe(pause);
});
