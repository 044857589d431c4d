import type { JobRecord } from '@batchapi/api';
import { isArchivable } from './archive';

const NOW = 1_800_000_000_000;
const job = (phase: JobRecord['phase'], finishedAgoMs: number | undefined, workflow?: string): JobRecord => ({
  id: 'j',
  tenant: 't',
  queue: 'q',
  phase,
  createdAt: NOW - 3_600_000,
  ...(finishedAgoMs !== undefined ? { finishedAt: NOW - finishedAgoMs } : {}),
  spec: { name: 'j', command: ['true'], env: {}, resources: { cpu: 100 }, tasks: 1, priority: 0, labels: workflow ? { 'batch.workflow': workflow } : {} },
  pending: [],
  counts: { succeeded: 1, failed: 0, cancelled: 0 },
});

describe('isArchivable (after 60 s)', () => {
  const AFTER = 60_000;
  const table: Array<{ name: string; job: JobRecord; live?: string[]; expected: boolean }> = [
    { name: 'a running job stays', job: job('Running', undefined), expected: false },
    // 59 999 < 60 000
    { name: 'a job finished 59.999 s ago stays', job: job('Succeeded', 59_999), expected: false },
    // 60 000 ≥ 60 000
    { name: 'a job finished exactly 60 s ago goes', job: job('Succeeded', 60_000), expected: true },
    { name: 'failed, cancelled and rejected jobs go too', job: job('Rejected', 120_000), expected: true },
    { name: 'a terminal phase without finishedAt stays (cannot be placed in history time)', job: job('Failed', undefined), expected: false },
    { name: 'a step of a running workflow stays (its controller reads it)', job: job('Succeeded', 120_000, 'wf-1'), live: ['wf-1'], expected: false },
    { name: 'a step of a finished workflow goes', job: job('Succeeded', 120_000, 'wf-1'), live: ['wf-2'], expected: true },
  ];
  it.each(table)('$name', ({ job: j, live, expected }) => {
    expect(isArchivable(j, NOW, AFTER, new Set(live ?? []))).toBe(expected);
  });
});
