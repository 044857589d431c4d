import type { JobRecord, TaskRange } from '@batchapi/api';
import type { FilterRefusal, Status, Unplaced } from '../../index';
import { DEFAULT_GANG_TIMEOUT_SECONDS, expiredGangs } from './index';

/** A queued gang job of 4 tasks: tasks 0–1 at attempt 1 and 3 at attempt 2 still pending (3 tasks); 1 already failed. */
function job(over: { id?: string; createdAt?: number; queuedAt?: number; gangTimeoutSeconds?: number; pending?: TaskRange[] } = {}): JobRecord {
  return {
    id: over.id ?? 'g',
    tenant: 't',
    queue: 'q',
    spec: {
      name: 'gang',
      command: ['train'],
      env: {},
      resources: { cpu: 1000, gpu: 1000 },
      tasks: 4,
      priority: 0,
      labels: {},
      gang: true,
      ...(over.gangTimeoutSeconds !== undefined ? { gangTimeoutSeconds: over.gangTimeoutSeconds } : {}),
    },
    phase: 'Queued',
    pending: over.pending ?? [
      { start: 0, end: 2, attempt: 1 },
      { start: 3, end: 4, attempt: 2 },
    ],
    counts: { succeeded: 0, failed: 1, cancelled: 0 },
    createdAt: over.createdAt ?? 0,
    ...(over.queuedAt !== undefined ? { queuedAt: over.queuedAt } : {}),
  };
}

const taint: FilterRefusal = {
  status: {
    code: 'Unschedulable',
    plugin: 'TaintToleration',
    reason: 'taint dedicated=ml:NoSchedule',
    detail: { kind: 'taint', key: 'dedicated', value: 'ml', effect: 'NoSchedule' },
  },
  nodes: 3,
};
const permitRefused: Status = { code: 'GangBlocked', plugin: 'Gang', reason: 'gang: only 2 of 4 tasks fit at once', detail: { kind: 'gang', tasks: 4 } };
const quotaStatus: Status = { code: 'QuotaLimited', plugin: 'Quota', reason: 'quota of queue q', detail: { kind: 'quota', queue: 'q' } };

function unplaced(over: Partial<Unplaced> = {}): Unplaced {
  return { jobId: 'g', tasks: 4, filtered: [], full: 0, quotaLimited: false, gangBlocked: true, statuses: [], ...over };
}

const MIN = 60_000;

describe('expiredGangs', () => {
  const table: Array<{
    name: string;
    unplaced: Unplaced;
    job: JobRecord;
    now: number;
    /** The failure's message and its failed count, or null when the gang keeps waiting. */
    fails: { message: string; failed: number } | null;
  }> = [
    {
      // gangBlocked false: plain work waits however long
      name: 'work that is not a blocked gang never expires',
      unplaced: unplaced({ gangBlocked: false }),
      job: job({ queuedAt: 0 }),
      now: 100 * MIN,
      fails: null,
    },
    {
      // 599 999 − 0 < 600 · 1000
      name: 'a gang within the default timeout keeps waiting',
      unplaced: unplaced(),
      job: job({ queuedAt: 0 }),
      now: 600_000 - 1,
      fails: null,
    },
    {
      // 600 000 − 0 ≥ 600 000; failed 1 + pending (2 − 0) + (4 − 3) = 1 + 3 = 4
      name: 'a gang at the default 600 s fails',
      unplaced: unplaced({ filtered: [taint] }),
      job: job({ queuedAt: 0 }),
      now: 600_000,
      fails: { message: 'gang of 4 tasks could not start together within 600 s: 3 nodes: taint dedicated=ml:NoSchedule', failed: 4 },
    },
    {
      // 61 000 − 1000 = 60 000 ≥ 60 · 1000
      name: "a gang past its job's own timeout fails",
      unplaced: unplaced({ full: 2 }),
      job: job({ queuedAt: 1000, gangTimeoutSeconds: 60 }),
      now: 61_000,
      fails: { message: 'gang of 4 tasks could not start together within 60 s: 2 nodes without free room', failed: 4 },
    },
    {
      // 60 999 − 1000 = 59 999 < 60 000
      name: "a gang within its job's own timeout keeps waiting",
      unplaced: unplaced({ full: 2 }),
      job: job({ queuedAt: 1000, gangTimeoutSeconds: 60 }),
      now: 60_999,
      fails: null,
    },
    {
      // no queuedAt: 600 000 − createdAt 0 ≥ 600 000
      name: 'a gang never queued counts from its creation',
      unplaced: unplaced(),
      job: job({ createdAt: 0 }),
      now: 600_000,
      fails: { message: 'gang of 4 tasks could not start together within 600 s', failed: 4 },
    },
    {
      // queuedAt wins over createdAt: 600 000 − 300 000 = 300 000 < 600 000
      name: 'a gang counts from when it was queued, not created',
      unplaced: unplaced(),
      job: job({ createdAt: 0, queuedAt: 300_000 }),
      now: 600_000,
      fails: null,
    },
    {
      // Permit's reason, then the filters, then the full nodes, then quota (the Quota status itself is left out:
      // its sentence says it); failed 1 + 1 pending = 2
      name: 'the message names every reason it waited for',
      unplaced: unplaced({ statuses: [quotaStatus, permitRefused], filtered: [taint], full: 1, quotaLimited: true }),
      job: job({ queuedAt: 0, pending: [{ start: 3, end: 4, attempt: 1 }] }),
      now: 700_000,
      fails: {
        message:
          'gang of 4 tasks could not start together within 600 s: gang: only 2 of 4 tasks fit at once; 3 nodes: taint dedicated=ml:NoSchedule; ' +
          '1 nodes without free room; the queue quota is too small for all tasks at once',
        failed: 2,
      },
    },
  ];
  it.each(table)('$name', ({ unplaced: u, job: j, now, fails }) => {
    const got = expiredGangs([u], new Map([[j.id, j]]), now);
    const want = fails && [
      {
        jobId: 'g',
        next: {
          ...j,
          phase: 'Failed',
          pending: [],
          finishedAt: now,
          reason: { code: 'gang_unschedulable', message: fails.message },
          counts: { succeeded: 0, failed: fails.failed, cancelled: 0 },
        },
      },
    ];
    expect(got).toEqual(want || []);
  });

  it('skips gangs whose job is not known and leaves the job it read unchanged', () => {
    const j = job({ queuedAt: 0 });
    const before = structuredClone(j);
    const got = expiredGangs([unplaced({ jobId: 'gone' }), unplaced()], new Map([[j.id, j]]), DEFAULT_GANG_TIMEOUT_SECONDS * 1000);
    expect(got.map((f) => f.jobId)).toEqual(['g']);
    expect(j).toEqual(before);
  });
});
