/**
 * The finished jobs' index the archiver reads: a job enters when it is written terminal with its
 * `finishedAt`, leaves when it is deleted or written live again; candidates come oldest first,
 * bounded; a sync replaces everything.
 */
import type { JobRecord } from '@batchapi/api';
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
