/**
 * The queue views of `GET /v1/queues` from one snapshot: what each queue holds, borrows and
 * waits for, and where waiting jobs stand — the same answer from the scheduler's cache and from
 * admission's fallback, since both call these.
 */
import { buildSnapshot, MemoryPlanner, queuePositions, queueViews, schedule } from '@batchapi/scheduling';
import { jobRecord, nodeRecord, queue, T0 } from './fixtures';

describe('queueViews and queuePositions', () => {
  // One node of 4 cores. Queue a (nominal 2 cores) runs 3 one-core tasks: it holds 3, borrows 1.
  // Queue b (nominal 2) waits with 2 jobs: 5 one-core tasks that do not fit (1 core left, 2-core tasks).
  async function cluster() {
    const p = new MemoryPlanner({
      nodes: [nodeRecord('n', { cpu: 4 })],
      queues: [queue('a', { cpu: 2 }, { cohort: 'c' }), queue('b', { cpu: 2 }, { cohort: 'c', tenant: 'u' })],
      jobs: [jobRecord('run', 3, { cpu: 1 }, { queue: 'a' })],
    });
    await p.apply(schedule(buildSnapshot(p.state(), T0)));
    p.jobs.set('old', jobRecord('old', 2, { cpu: 2 }, { queue: 'b', tenant: 'u', createdAt: T0 + 1 }));
    p.jobs.set('new', jobRecord('new', 3, { cpu: 2 }, { queue: 'b', tenant: 'v', createdAt: T0 + 2 }));
    p.jobs.set('urgent', jobRecord('urgent', 1, { cpu: 2 }, { queue: 'b', tenant: 'v', createdAt: T0 + 3, spec: { priority: 10 } }));
    return buildSnapshot(p.state(), T0 + 10);
  }

  it('shows what each queue holds, borrows, runs and has waiting', async () => {
    const views = Object.fromEntries(queueViews(await cluster()).map((v) => [v.name, v]));
    expect(views.a).toMatchObject({ used: { cpu: '3' }, borrowed: { cpu: '1' }, runningTasks: 3, pendingTasks: 0, pendingJobs: 0, cohort: 'c' });
    // 3 of the node's 4 cores: dominant share 0.75
    expect(views.a.fairShare).toBe(0.75);
    // old 2 + new 3 + urgent 1 = 6 tasks in 3 jobs
    expect(views.b).toMatchObject({ used: {}, borrowed: {}, runningTasks: 0, pendingTasks: 6, pendingJobs: 3, fairShare: 0 });
  });

  it('gives positions in the scheduler order (priority, then age), counting everyone, showing a tenant only its own', async () => {
    const s = await cluster();
    // urgent (priority 10) first, then old, then new
    expect(queuePositions(s, 'b')).toEqual([
      { jobId: 'urgent', position: 1, pendingTasks: 1 },
      { jobId: 'old', position: 2, pendingTasks: 2 },
      { jobId: 'new', position: 3, pendingTasks: 3 },
    ]);
    expect(queuePositions(s, 'b', 'u')).toEqual([{ jobId: 'old', position: 2, pendingTasks: 2 }]);
    expect(queuePositions(s, 'a')).toEqual([]);
  });
});
