/**
 * Priority aging and preemption thrash damping through whole cycles (`buildSnapshot` →
 * `schedule` → `MemoryPlanner`) and "why pending" (`explainJob`) on the same snapshots.
 */
import { buildSnapshot, explainJob, MemoryPlanner, type Plan, schedule, type ScheduleOptions, type SnapshotOptions } from '@batchapi/scheduling';
import { boundTasks, jobRecord, nodeRecord, queue, T0 } from './fixtures';

const M = 60_000;

async function cycle(p: MemoryPlanner, now: number, opts: ScheduleOptions = {}, snap: SnapshotOptions = {}): Promise<Plan> {
  const plan = schedule(buildSnapshot(p.state(), now, snap), opts);
  await p.apply(plan);
  return plan;
}

describe('priority aging in a cycle', () => {
  // 1 node × 1 core. low (prio 0, submitted at T0) and fresh (prio 10, submitted at T0 + 15 min) wait.
  const setup = (queues = [queue('q')]) =>
    new MemoryPlanner({
      nodes: [nodeRecord('a', { cpu: 1 })],
      jobs: [jobRecord('low', 1, { cpu: 1 }), jobRecord('fresh', 1, { cpu: 1 }, { createdAt: T0 + 15 * M, spec: { priority: 10 } })],
      queues,
    });

  it('without aging, fresh higher-priority work goes first', async () => {
    const p = setup();
    await cycle(p, T0 + 15 * M);
    expect(boundTasks(p.bindings, 'fresh')).toBe(1);
  });

  it('with the cluster-wide setting: low waited 15 min at 60/h → 0 + 15 > 10, so low goes first', async () => {
    const p = setup();
    await cycle(p, T0 + 15 * M, {}, { aging: { perHour: 60, max: 100 } });
    expect(boundTasks(p.bindings, 'low')).toBe(1);
  });

  it("a queue's own settings win over the cluster-wide ones: a cap of 5 keeps low at 0 + 5 < 10", async () => {
    const p = setup([queue('q', {}, { priorityAgingMax: 5 })]);
    await cycle(p, T0 + 15 * M, {}, { aging: { perHour: 60, max: 100 } });
    expect(boundTasks(p.bindings, 'fresh')).toBe(1);
  });

  it('why-pending names the effective priority when aging raised it', () => {
    const p = setup([queue('q', {}, { priorityAgingMax: 5 })]);
    const s = buildSnapshot(p.state(), T0 + 15 * M, { aging: { perHour: 60, max: 100 } });
    const why = explainJob(s, p.jobs.get('low')!, 'scheduler');
    // 15 min at 60/h = 15, capped at 5 → effective 5; fresh (10) is ahead
    expect(why.messages[0]).toBe('effective priority 5 = priority 0 + 5 for waiting 15m (aging 60/hour, at most 5, reached)');
    expect(why.tasksAhead).toBe(1);
  });
});

describe('thrash damping in a cycle', () => {
  // 1 node × 2 cores full with `victim` (prio 0, 2 tasks); `urgent` (prio 10) wants both cores.
  const setup = async (boundAgo: number) => {
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 2 })], jobs: [jobRecord('victim', 2, { cpu: 1 })] });
    await cycle(p, T0 - boundAgo);
    p.jobs.set('urgent', jobRecord('urgent', 1, { cpu: 2 }, { createdAt: T0, spec: { priority: 10 } }));
    return p;
  };
  const preemption = (extra: Partial<NonNullable<ScheduleOptions['preemption']>> = {}) => ({ budget: new Map<string, number>(), protectMs: 60_000, ...extra });

  it('preempts tasks that ran longer than the exempt time', async () => {
    const p = await setup(2 * M);
    const plan = await cycle(p, T0, { preemption: preemption() });
    expect(plan.preempted.map((v) => v.task.jobId)).toEqual(['victim', 'victim']);
    expect(plan.held).toEqual([]);
  });

  it('does not preempt tasks started 30 s ago (< 60 s), reports it held, and why-pending says so', async () => {
    const p = await setup(30_000);
    const plan = await cycle(p, T0, { preemption: preemption() });
    expect(plan.preempted).toEqual([]);
    expect(plan.held).toEqual([
      {
        jobId: 'urgent',
        protectedTasks: [
          { jobId: 'victim', queue: 'q', reason: 'exempt-time' },
          { jobId: 'victim', queue: 'q', reason: 'exempt-time' },
        ],
      },
    ]);
    const why = explainJob(buildSnapshot(p.state(), T0), p.jobs.get('urgent')!, 'scheduler', { preemption: preemption() });
    expect(why.messages).toContain(
      'not preempting lower-priority work for it: the tasks it would stop are protected from thrashing: 2 tasks started less than the preemption exempt time ago (60 s)',
    );
  });

  it('does not preempt a job at its repeat limit', async () => {
    const p = await setup(2 * M);
    const plan = await cycle(p, T0, { preemption: preemption({ exemptJobs: new Set(['victim']) }) });
    expect(plan.preempted).toEqual([]);
    expect(plan.held?.[0].protectedTasks.map((t) => t.reason)).toEqual(['repeat-limit', 'repeat-limit']);
  });
});
