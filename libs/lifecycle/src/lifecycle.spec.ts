import { ApiError, type GroupStatus, type JobRecord, jsonBytes, MAX_CANCELLED_TASK_RANGES, type NodeAllocation } from '@batchapi/api';
import {
  applyGroupOutcomes,
  failPending,
  MAX_NODE_LOST_ATTEMPTS,
  markBound,
  NODE_LOST,
  onlyReleased,
  requestCancel,
  requestTaskCancel,
  retryDelayMs,
  taskCancelled,
  retryNotBefore,
} from './lifecycle';

const job = (tasks: number, extra: Partial<JobRecord> = {}): JobRecord => ({
  id: 'j',
  tenant: 't',
  queue: 'q',
  phase: 'Running',
  createdAt: 0,
  spec: { name: 'j', command: ['x'], env: {}, resources: { cpu: 1000 }, tasks, priority: 0, labels: {} },
  pending: [],
  counts: { succeeded: 0, failed: 0, cancelled: 0 },
  ...extra,
});
const group = (start: number, attempt: number, tasks: GroupStatus['tasks']): GroupStatus => ({
  jobId: 'j',
  tenant: 't',
  queue: 'q',
  node: 'n',
  start,
  end: start + tasks.length,
  attempt,
  resources: {},
  devices: [],
  boundAt: 0,
  tasks,
});

describe('applyGroupOutcomes', () => {
  it('counts outcomes and ends the job Succeeded when all succeeded', () => {
    const next = applyGroupOutcomes(job(2), [group(0, 1, [{ state: 'Succeeded' }, { state: 'Succeeded' }])], 5);
    expect(next).toMatchObject({ phase: 'Succeeded', finishedAt: 5, counts: { succeeded: 2, failed: 0, cancelled: 0 } });
  });

  it('ends Failed when any task failed', () => {
    const next = applyGroupOutcomes(job(2), [group(0, 1, [{ state: 'Succeeded' }, { state: 'Failed', exitCode: 3 }])], 5);
    expect(next.phase).toBe('Failed');
  });

  it('requeues tasks lost with their node at the next attempt, merged into ranges', () => {
    // tasks 4 and 5 lost at attempt 1 → pending [4,6) at attempt 2; job keeps running
    const lost = { state: 'Failed' as const, reason: NODE_LOST };
    const next = applyGroupOutcomes(job(6, { counts: { succeeded: 4, failed: 0, cancelled: 0 } }), [group(4, 1, [lost, lost])], 5);
    expect(next.pending).toEqual([{ start: 4, end: 6, attempt: 2 }]);
    expect(next.phase).toBe('Running');
  });

  it(`counts a node loss as a failure at attempt ${MAX_NODE_LOST_ATTEMPTS}`, () => {
    const next = applyGroupOutcomes(job(1), [group(0, MAX_NODE_LOST_ATTEMPTS, [{ state: 'Failed', reason: NODE_LOST }])], 5);
    expect(next).toMatchObject({ phase: 'Failed', pending: [], counts: { failed: 1 } });
  });
});

describe('requestCancel and markBound', () => {
  it('cancels pending tasks at once; the job ends when live groups report', () => {
    // 10 tasks: 4 bound, 6 pending → 6 cancelled now; still Running until the 4 report
    const bound = markBound(job(10, { phase: 'Queued', pending: [{ start: 0, end: 10, attempt: 1 }] }), [{ start: 0, end: 4 }], 1);
    const cancelled = requestCancel(bound, 2);
    expect(cancelled).toMatchObject({ phase: 'Running', pending: [], counts: { cancelled: 6 }, cancelRequestedAt: 2 });
    const done = applyGroupOutcomes(
      cancelled,
      [
        group(
          0,
          1,
          Array.from({ length: 4 }, () => ({ state: 'Cancelled' as const })),
        ),
      ],
      3,
    );
    expect(done).toMatchObject({ phase: 'Cancelled', finishedAt: 3, counts: { cancelled: 10 } });
  });
});

describe('requestTaskCancel: one task of a job', () => {
  const four = () => job(4, { pending: [{ start: 0, end: 4, attempt: 1 }] });
  it.each([
    // [case, job, index, running, expected pending, expected cancelledTasks, expected counts.cancelled, expected phase]
    [
      'a pending task ends at once: 0..4 minus 2 = [0,2) and [3,4)',
      four(),
      2,
      false,
      [
        [0, 2],
        [3, 4],
      ],
      [[2, 3]],
      1,
      'Running',
    ],
    [
      'a bound task is only marked: pending unchanged, nothing counted until its executor reports',
      job(4, { pending: [{ start: 3, end: 4, attempt: 1 }] }),
      1,
      true,
      [[3, 4]],
      [[1, 2]],
      0,
      'Running',
    ],
    [
      'next to an earlier one it merges: [1,2) + 2 = [1,3)',
      job(4, { pending: [{ start: 2, end: 4, attempt: 1 }], cancelledTasks: [{ start: 1, end: 2 }] }),
      2,
      false,
      [[3, 4]],
      [[1, 3]],
      1,
      'Running',
    ],
    // 3 succeeded + this one cancelled = 4 of 4 ended, none failed: Cancelled (not every task ran)
    [
      'the last pending task of a job whose others succeeded ends it Cancelled',
      job(4, { pending: [{ start: 3, end: 4, attempt: 1 }], counts: { succeeded: 3, failed: 0, cancelled: 0 } }),
      3,
      false,
      [],
      [[3, 4]],
      1,
      'Cancelled',
    ],
    // 2 succeeded + 1 failed + this one = 4: one failed, so Failed
    [
      '... and Failed when one of them failed',
      job(4, { pending: [{ start: 3, end: 4, attempt: 2 }], counts: { succeeded: 2, failed: 1, cancelled: 0 } }),
      3,
      false,
      [],
      [[3, 4]],
      1,
      'Failed',
    ],
  ] as const)('%s', (_case, j, index, running, pending, cancelled, count, phase) => {
    const next = requestTaskCancel(j, index, running, 5);
    if (typeof next === 'string') throw new Error(next);
    expect(next.pending.map((r) => [r.start, r.end])).toEqual(pending);
    expect(next.cancelledTasks?.map((r) => [r.start, r.end])).toEqual(cancelled);
    expect(next.counts.cancelled).toBe(count);
    expect(next.phase).toBe(phase);
  });

  it.each([
    ['the job ended', job(4, { phase: 'Succeeded' }), 0, false, 'job_ended'],
    [
      'already cancelled: nothing changes',
      job(4, { pending: [{ start: 0, end: 1, attempt: 1 }], cancelledTasks: [{ start: 2, end: 3 }] }),
      2,
      true,
      'unchanged',
    ],
    ['not pending, not running: it ended', job(4, { pending: [{ start: 0, end: 1, attempt: 1 }] }), 2, false, 'task_ended'],
  ] as const)('refuses or ignores when %s', (_case, j, index, running, expected) => {
    expect(requestTaskCancel(j, index, running, 5)).toBe(expected);
  });

  it(`refuses a cancel that would record more than ${MAX_CANCELLED_TASK_RANGES} ranges`, () => {
    // every other task cancelled: ranges [0,1), [2,3), … — one more apart from them is one range too many
    const cancelledTasks = Array.from({ length: MAX_CANCELLED_TASK_RANGES }, (_, i) => ({ start: 2 * i, end: 2 * i + 1 }));
    const j = job(3 * MAX_CANCELLED_TASK_RANGES, { pending: [{ start: 0, end: 3 * MAX_CANCELLED_TASK_RANGES, attempt: 1 }], cancelledTasks });
    expect(requestTaskCancel(j, 2 * MAX_CANCELLED_TASK_RANGES + 1, false, 5)).toBe('too_many_ranges');
    // 1 joins [0,1) and [2,3) into [0,3): one range fewer, accepted
    expect(typeof requestTaskCancel(j, 1, false, 5)).toBe('object');
  });

  it.each([
    // [outcome of the cancelled task 1, succeeded, failed, cancelled]: never requeued, whatever it was
    ['Cancelled (its executor stopped it)', { state: 'Cancelled' as const }, 1, 0, 1],
    ['Preempted (stopped for other work meanwhile)', { state: 'Preempted' as const }, 1, 0, 1],
    ['Failed with its node lost', { state: 'Failed' as const, reason: NODE_LOST }, 1, 0, 1],
    ['Failed on its own (exit 3), although retries remain', { state: 'Failed' as const, reason: 'Error' as const, exitCode: 3 }, 1, 1, 0],
    ['Succeeded before the stop arrived', { state: 'Succeeded' as const }, 2, 0, 0],
  ])('a cancelled task that ended %s is not run again', (_case, outcome, succeeded, failed, cancelled) => {
    const j = job(2, { cancelledTasks: [{ start: 1, end: 2 }], spec: { ...job(2).spec, retry: { maxAttempts: 5, backoffSeconds: 0 } } });
    const next = applyGroupOutcomes(j, [group(0, 1, [{ state: 'Succeeded' }, outcome])], 9);
    expect(next.pending).toEqual([]);
    expect(next.counts).toEqual({ succeeded, failed, cancelled });
    expect(next.phase).toBe(failed ? 'Failed' : cancelled ? 'Cancelled' : 'Succeeded');
    expect(taskCancelled(next, 1)).toBe(true);
  });

  it("counts nothing for a cancelled task that has not ended (a report of its group's other tasks ending)", () => {
    const j = job(3, { cancelledTasks: [{ start: 1, end: 2 }] });
    // task 0 ended, task 1 (cancelled) still stopping, task 2 running: 1 succeeded, nothing else yet
    const next = applyGroupOutcomes(j, [group(0, 1, [{ state: 'Succeeded' }, { state: 'Running' }, { state: 'Running' }])], 9);
    expect(next.counts).toEqual({ succeeded: 1, failed: 0, cancelled: 0 });
    expect(next.phase).toBe('Running');
  });
});

describe('preempted tasks', () => {
  it('go back to pending at the next attempt and count as nothing', () => {
    // task 1 of [0,2) preempted at attempt 1 → pending [1,2)@2; task 0 succeeded
    const next = applyGroupOutcomes(job(2), [group(0, 1, [{ state: 'Succeeded' }, { state: 'Preempted' }])], 5);
    expect(next).toMatchObject({ phase: 'Running', pending: [{ start: 1, end: 2, attempt: 2 }], counts: { succeeded: 1, failed: 0, cancelled: 0 } });
  });
});

describe('retry policy', () => {
  const retry = { maxAttempts: 3, backoffSeconds: 10, failFastOnExitCodes: [2] };
  it.each([
    // attempt 1 failed with code 1: retried at attempt 2 after 10 s ± 20%, rounded up to a 1 s grid
    ['retries a failure', { state: 'Failed' as const, reason: 'Error' as const, exitCode: 1 }, 1, true],
    ['stops at maxAttempts', { state: 'Failed' as const, reason: 'Error' as const, exitCode: 1 }, 3, false],
    ['fails fast on a listed exit code', { state: 'Failed' as const, reason: 'Error' as const, exitCode: 2 }, 1, false],
    ['retries an OOM kill', { state: 'Failed' as const, reason: 'OOMKilled' as const }, 1, true],
  ])('%s', (_n, task, attempt, requeued) => {
    const next = applyGroupOutcomes(job(1, { spec: { ...job(1).spec, retry } }), [group(0, attempt, [task])], 1_000_000);
    if (requeued) {
      expect(next.pending).toHaveLength(1);
      expect(next.pending[0]).toMatchObject({ start: 0, end: 1, attempt: attempt + 1 });
      // 10 s × 2^(attempt − 1) ± 20%, then up to one grid step (a tenth of the delay, ≥ 1 s) later
      const wait = next.pending[0].notBefore! - 1_000_000;
      expect(wait).toBeGreaterThanOrEqual(8000 * 2 ** (attempt - 1));
      expect(wait).toBeLessThanOrEqual(12000 * 2 ** (attempt - 1) + Math.max(1000, 1200 * 2 ** (attempt - 1)));
      expect(next.phase).toBe('Running');
    } else {
      expect(next).toMatchObject({ pending: [], phase: 'Failed', counts: { failed: 1 } });
    }
  });

  it('caps the backoff and spreads it across jobs', () => {
    const p = { maxAttempts: 10, backoffSeconds: 10, maxBackoffSeconds: 60 };
    // attempt 8: 10 × 2^7 = 1280 s, capped at 60 s ± 20%
    expect(retryDelayMs(p, 8, 'j/0')).toBeLessThanOrEqual(72_000);
    const delays = new Set(Array.from({ length: 20 }, (_, i) => retryDelayMs(p, 1, `j/${i}`)));
    expect(delays.size).toBeGreaterThan(10);
  });

  it.each([
    // [what, offsets of the two failures from a grid boundary (minus the job's delay), ms between their notBefore]
    // both land in (boundary, boundary + 301 ms] once the delay is added: one 1 s grid step → the same time
    ['two tasks failing 300 ms apart within one grid step share a time', [1, 301], 0],
    // 100 ms before and 200 ms after a boundary: consecutive steps → 1 s apart
    ['two tasks failing 300 ms apart across a grid boundary are one step apart', [-100, 200], 1000],
  ] as const)('retryNotBefore: %s', (_name, [a, b], apart) => {
    const p = { maxAttempts: 3, backoffSeconds: 10 };
    // job j, attempt 1: delay 10 s ± 20% drawn from "j/1"; grid step: 1 s (the largest of 60/15/5/1 s ≤ delay / 10 ≈ 1 s)
    const delay = retryDelayMs(p, 1, 'j/1');
    const boundary = 2_000_000;
    const [x, y] = [retryNotBefore(p, 1, 'j', boundary - delay + a), retryNotBefore(p, 1, 'j', boundary - delay + b)];
    expect(y - x).toBe(apart);
    expect(x % 1000).toBe(0);
  });

  it('keeps the record of a job with 15,000 retried tasks small: their pending ranges merge instead of one range per task', () => {
    const retry = { maxAttempts: 3, backoffSeconds: 10 };
    // 15,000 tasks in 150 groups of 100, every task fails attempt 1; one group reports every 10 ms (1.5 s in all)
    const fail = Array.from({ length: 100 }, () => ({ state: 'Failed' as const, reason: 'Error' as const, exitCode: 1 }));
    let j = job(15_000, { spec: { ...job(15_000).spec, retry } });
    const t0 = 1_000_000;
    for (let k = 0; k < 150; k++) j = applyGroupOutcomes(j, [group(k * 100, 1, fail)], t0 + k * 10);
    // one job and attempt: one delay (10 s ± 20%) on a 1 s grid; 1.5 s of reports cross at most 2 grid
    // boundaries → at most 3 ranges (per-task jitter gave 15,000 ranges, ~900 KB of record)
    expect(j.pending.length).toBeLessThanOrEqual(3);
    expect(j.pending.reduce((n, r) => n + r.end - r.start, 0)).toBe(15_000);
    expect(jsonBytes(j)).toBeLessThan(1024);
    // once their backoff is over, the next write merges them into one: [0, 15000) at attempt 2
    const later = applyGroupOutcomes({ ...j, spec: { ...j.spec, tasks: 15_001 }, pending: [...j.pending] }, [group(15_000, 1, [fail[0]])], t0 + 60_000);
    expect(later.pending[0]).toEqual({ start: 0, end: 15_000, attempt: 2 });
  });
});

describe('failPending', () => {
  const reason = { code: 'bind_too_large', message: 'too large' };
  it.each([
    // [what, job, expected]
    // 4 pending, nothing running: all 4 fail → Failed now
    [
      'a queued job',
      job(4, { phase: 'Queued', pending: [{ start: 0, end: 4, attempt: 1 }] }),
      { phase: 'Failed', pending: [], finishedAt: 7, reason, counts: { failed: 4 } },
    ],
    // 10 tasks: 3 succeeded, 3 running, 4 pending → 4 fail now; Running until the 3 report
    [
      'a job with running tasks',
      job(10, { pending: [{ start: 6, end: 10, attempt: 1 }], counts: { succeeded: 3, failed: 0, cancelled: 0 } }),
      { phase: 'Running', pending: [], reason, counts: { succeeded: 3, failed: 4 } },
    ],
    [
      'a finished job (unchanged)',
      job(1, { phase: 'Succeeded', counts: { succeeded: 1, failed: 0, cancelled: 0 } }),
      { phase: 'Succeeded', counts: { succeeded: 1, failed: 0 } },
    ],
  ])('%s', (_name, j, want) => {
    const next = failPending(j, reason, 7);
    expect(next).toMatchObject(want);
    if (want.phase === 'Running') expect(next.finishedAt).toBeUndefined();
  });
});

describe('ApiError.fromBody', () => {
  it.each([
    [{ error: { code: 'not_found', message: 'job x not found', id: 'x' } }, 404, 'not_found'],
    // no envelope (a proxy's page): the code follows the status
    ['<html>bad gateway</html>', 502, 'unavailable'],
    ['Forbidden', 403, 'permission_denied'],
    [{}, 418, 'internal'],
  ])('%j with %i → %s', async (body, status, code) => {
    expect(ApiError.fromBody(status, body).code).toBe(code);
  });
});

describe('onlyReleased', () => {
  const a = (cpu: number, gpu0 = 0): NodeAllocation => ({ used: { cpu, memory: 0 }, devices: gpu0 ? { '0': gpu0 } : {} });
  it.each([
    // [seen, now, a decision on seen still fits on now]
    ['nothing changed', a(2000), a(2000), true],
    ['a task gave 1 core back: 2000 → 1000', a(2000), a(1000), true],
    ['someone took a core: 2000 → 3000', a(2000), a(3000), false],
    ['a GPU share given back: device 0 500 → 0', a(1000, 500), a(1000), true],
    ['a GPU share taken: device 0 0 → 500', a(1000), a(1000, 500), false],
    ['a resource not used before is now: memory 0 → 1', a(1000), { used: { cpu: 1000, memory: 1 }, devices: {} }, false],
  ])('%s', (_name, seen, now, want) => {
    expect(onlyReleased(seen, now)).toBe(want);
  });
});
