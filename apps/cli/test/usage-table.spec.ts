import type { UsageView } from '@batchapi/api';
import { usageTable } from '../src/output';

const view: UsageView = {
  from: '2026-12-01T00:00:00.000Z',
  to: '2026-12-02T00:00:00.000Z',
  groupBy: 'queue',
  groups: [
    {
      key: 'train',
      cpuCoreHours: 12.5,
      memoryGiBHours: 50,
      gpuHours: 1.25,
      attempts: 3,
      succeeded: 2,
      failed: 1,
      preempted: 0,
      queueWaitP50Seconds: 4,
      series: [
        { start: '2026-12-01T00:00:00.000Z', cpuCoreHours: 10, memoryGiBHours: 40, gpuHours: 1, attempts: 2 },
        { start: '2026-12-01T05:00:00.000Z', cpuCoreHours: 2.5, memoryGiBHours: 10, gpuHours: 0.25, attempts: 1 },
      ],
    },
  ],
  truncated: false,
};

it('prints one row per group, and with a step each group’s steps after it', () => {
  expect(usageTable({ ...view, groups: view.groups.map(({ series: _, ...g }) => g) })).toBe(
    [
      'QUEUE  CPU-H  MEM-GIB-H  GPU-H  ATTEMPTS  FAILED  PREEMPTED  WAIT-P50  WAIT-P99',
      'train  12.50  50.00      1.25   3         1       0          4.0s      -',
      '(attempts that ended from 2026-12-01T00:00:00.000Z to 2026-12-02T00:00:00.000Z)',
      '',
    ].join('\n'),
  );
  // 10 + 2.5 = 12.5 core-h over the two hours in which train's attempts ended
  expect(usageTable({ ...view, step: 'hour' })).toBe(
    [
      'QUEUE  CPU-H  MEM-GIB-H  GPU-H  ATTEMPTS  FAILED  PREEMPTED  WAIT-P50  WAIT-P99',
      'train  12.50  50.00      1.25   3         1       0          4.0s      -',
      '',
      'QUEUE  HOUR FROM                 CPU-H  MEM-GIB-H  GPU-H  ATTEMPTS',
      'train  2026-12-01T00:00:00.000Z  10.00  40.00      1.00   2',
      'train  2026-12-01T05:00:00.000Z  2.50   10.00      0.25   1',
      '(attempts that ended from 2026-12-01T00:00:00.000Z to 2026-12-02T00:00:00.000Z)',
      '',
    ].join('\n'),
  );
});
