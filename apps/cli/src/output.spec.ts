import type { JobView, QueueView } from '@batchapi/api';
import { jobDetail, queueTable } from './output';

describe('queueTable', () => {
  it('lines up one row per queue with its share to three places', () => {
    const q: QueueView = {
      name: 'ml',
      tenant: 'perception',
      cohort: 'research',
      weight: 2,
      nominal: { cpu: '64' },
      used: { cpu: '72' },
      borrowed: { cpu: '8' },
      fairShare: 0.0625,
      pendingTasks: 12,
      pendingJobs: 3,
      runningTasks: 8,
    };
    const lines = queueTable([q, { ...q, name: 'etl', fairShare: 0.5, pendingTasks: 0, pendingJobs: 0 }])
      .trimEnd()
      .split('\n');
    expect(lines[0].split(/\s{2,}/)).toEqual(['QUEUE', 'TENANT', 'COHORT', 'WEIGHT', 'NOMINAL', 'USED', 'BORROWED', 'SHARE', 'RUNNING', 'PENDING']);
    expect(lines[1].split(/\s{2,}/)).toEqual(['ml', 'perception', 'research', '2', '{"cpu":"64"}', '{"cpu":"72"}', '{"cpu":"8"}', '0.063', '8', '12 (3 jobs)']);
    expect(lines[2]).toContain('0.500');
  });

  it('adds a CAPS column with only the caps that are set, when some queue or tenant sets one', () => {
    const q: QueueView = {
      name: 'ml',
      tenant: 'vision',
      weight: 1,
      nominal: {},
      used: {},
      borrowed: {},
      fairShare: 0,
      pendingTasks: 3,
      pendingJobs: 1,
      runningTasks: 50,
      caps: {
        queue: { runningTasks: 50, maxRunningTasks: 50, gpuHoursUsed: 10.25 },
        tenant: { runningTasks: 80, gpuHoursUsed: 120, gpuHoursPerDay: 100, gpuBudgetFreesAt: '2026-12-05T03:00:00.000Z' },
      },
    };
    const lines = queueTable([q, { ...q, name: 'etl', caps: undefined }])
      .trimEnd()
      .split('\n');
    expect(lines[0].split(/\s{2,}/).at(-1)).toBe('CAPS');
    expect(lines[1].split(/\s{2,}/).at(-1)).toBe('queue 50/50 tasks; tenant 120/100 GPU-h (frees 2026-12-05T03:00:00.000Z)');
    expect(lines[2].split(/\s{2,}/).at(-1)).toBe('-');
  });
});

describe('jobDetail', () => {
  const job: JobView = {
    id: 'j1',
    name: 'job',
    tenant: 't',
    queue: 'q',
    phase: 'Running',
    command: ['run'],
    env: {},
    resources: { cpu: '1' },
    tasks: 1000,
    priority: 0,
    labels: {},
    taskCounts: { pending: 940, bound: 0, running: 50, succeeded: 10, failed: 0, cancelled: 0 },
    createdAt: '2026-12-04T00:00:00.000Z',
  };
  it("shows a job's maxRunning as its limit, and no line without one", () => {
    expect(jobDetail({ ...job, maxRunning: 50 })).toContain('\nLimit:     50 tasks at once (maxRunning)\n');
    expect(jobDetail(job)).not.toContain('Limit:');
  });
});
