/**
 * Whole cycles in memory: `schedule` decides on a snapshot, `MemoryPlanner` applies the plan,
 * the next snapshot is built from the result. No store, no clock: each cycle runs in milliseconds.
 */
import { buildSnapshot, MemoryPlanner, type Plan, schedule, type ScheduleOptions } from '@batchapi/scheduling';
import { boundTasks, cordon, jobRecord, nodeRecord, queue, T0 } from './fixtures';

async function cycle(p: MemoryPlanner, now: number, opts: ScheduleOptions = {}): Promise<Plan> {
  const plan = schedule(buildSnapshot(p.state(), now), opts);
  await p.apply(plan);
  return plan;
}

const preemption = { budget: new Map<string, number>(), protectMs: 60_000 };

describe('schedule + MemoryPlanner: whole cycles', () => {
  it('binds what fits, marks the job Running, and the next cycle sees the room taken', async () => {
    // 2 nodes × 4 cores; 6 one-core tasks → all 6 bound (8 cores); a second job of 3 → 2 bound (8 − 6)
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 4 }), nodeRecord('b', { cpu: 4 })], jobs: [jobRecord('j1', 6, { cpu: 1 })] });
    const first = await cycle(p, T0);
    expect(first.binds.map((b) => b.jobId)).toEqual(['j1']);
    expect(boundTasks(p.bindings, 'j1')).toBe(6);
    expect(p.jobs.get('j1')).toMatchObject({ phase: 'Running', pending: [] });
    p.jobs.set('j2', jobRecord('j2', 3, { cpu: 1 }, { createdAt: T0 + 1 }));
    await cycle(p, T0 + 10);
    expect(boundTasks(p.bindings, 'j2')).toBe(2);
    expect(p.jobs.get('j2')!.pending).toEqual([{ start: 2, end: 3, attempt: 1 }]);
  });

  it("records the node's GPU model on the groups of GPU work only (usage by GPU model)", async () => {
    // an H100 node with 2 GPUs, a CPU node without a model label: a 2-task 1-GPU job lands on the H100 node,
    // a CPU job on either; only the GPU job's binding names the model
    const p = new MemoryPlanner({
      nodes: [nodeRecord('h', { cpu: 8, gpu: 2 }, { labels: { 'gpu.model': 'H100' } }), nodeRecord('c', { cpu: 8 })],
      jobs: [jobRecord('gpu-job', 2, { cpu: 1, gpu: 1 }), jobRecord('cpu-job', 2, { cpu: 1 })],
    });
    await cycle(p, T0);
    expect(p.bindings.filter((b) => b.jobId === 'gpu-job').map((b) => [b.node, b.gpuModel])).toEqual([['h', 'H100']]);
    expect(p.bindings.filter((b) => b.jobId === 'cpu-job').every((b) => b.gpuModel === undefined)).toBe(true);
  });

  it("gives a finished binding's room to the next cycle", async () => {
    // 1 node × 2 cores: j1 (2 × 1 core) fills it, j2 waits; j1's binding ends → j2 binds
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 2 })], jobs: [jobRecord('j1', 2, { cpu: 1 })] });
    await cycle(p, T0);
    p.jobs.set('j2', jobRecord('j2', 2, { cpu: 1 }, { createdAt: T0 + 1 }));
    await cycle(p, T0 + 10);
    expect(boundTasks(p.bindings, 'j2')).toBe(0);
    for (const b of p.bindings.filter((x) => x.jobId === 'j1')) p.release(b);
    await cycle(p, T0 + 20);
    expect(boundTasks(p.bindings, 'j2')).toBe(2);
  });

  it('decides without writing: the snapshot and its records are unchanged by schedule', () => {
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 4 })], jobs: [jobRecord('j', 3, { cpu: 1 })] });
    const before = JSON.stringify([...p.jobs.values()]);
    const s = buildSnapshot(p.state(), T0);
    const plan = schedule(s);
    expect(plan.binds).toHaveLength(1);
    expect(JSON.stringify([...p.jobs.values()])).toBe(before);
    expect(s.nodes[0].used).toEqual({});
    expect(p.bindings).toHaveLength(0);
  });

  it('skips retries still in their backoff and cordoned nodes', async () => {
    // tasks 0-1 placeable now, 2-3 not before T0 + 5000; node b cordoned → 2 bound on a
    const job = jobRecord(
      'j',
      4,
      { cpu: 1 },
      {
        pending: [
          { start: 0, end: 2, attempt: 1 },
          { start: 2, end: 4, attempt: 2, notBefore: T0 + 5000 },
        ],
      },
    );
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 8 }), nodeRecord('b', { cpu: 8 })], jobs: [job], cordons: [cordon('b')] });
    await cycle(p, T0);
    expect(p.bindings.map((b) => [b.node, b.start, b.end, b.attempt])).toEqual([['a', 0, 2, 1]]);
    await cycle(p, T0 + 5000);
    expect(p.bindings.map((b) => [b.node, b.start, b.end, b.attempt])).toEqual([
      ['a', 0, 2, 1],
      ['a', 2, 4, 2],
    ]);
  });

  it.each([
    // [backoff ends of two jobs' pending ranges (ms after T0; none = placeable now), the snapshot's nextEligibleAt (ms after T0)]
    ['none backing off', [[], []], undefined],
    ['the earliest of several, across jobs', [[9000, 3000], [5000]], 3000],
    ['only those still ahead: an end at now or before is placeable now', [[0, -1000], [7000]], 7000],
    ['none ahead', [[0], [-1]], undefined],
  ] as const)('keeps the first end of a retry backoff after now (%s)', (_name, ends, expected) => {
    const jobs = ends.map((list, j) =>
      jobRecord(
        `j${j}`,
        list.length + 1,
        { cpu: 1 },
        {
          pending: [{ start: 0, end: 1, attempt: 1 }, ...list.map((e, i) => ({ start: i + 1, end: i + 2, attempt: 2, notBefore: T0 + e }))],
        },
      ),
    );
    const s = buildSnapshot(new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 8 })], jobs }).state(), T0);
    expect(s.nextEligibleAt).toBe(expected === undefined ? undefined : T0 + expected);
  });

  it('fails a gang blocked past its timeout, with the reasons, and leaves a younger one waiting', async () => {
    // 8 cores; gangs of 10 one-core tasks: "old" queued 601 s ago (timeout 600 s) fails, "young" (1 s) waits
    const p = new MemoryPlanner({
      nodes: [nodeRecord('a', { cpu: 8 })],
      jobs: [
        jobRecord('old', 10, { cpu: 1 }, { queuedAt: T0 - 601_000, spec: { gang: true } }),
        jobRecord('young', 10, { cpu: 1 }, { queuedAt: T0 - 1_000, spec: { gang: true } }),
      ],
    });
    const plan = await cycle(p, T0);
    expect(plan.gangFailures.map((g) => g.jobId)).toEqual(['old']);
    expect(p.jobs.get('old')).toMatchObject({ phase: 'Failed', pending: [], counts: { failed: 10 }, reason: { code: 'gang_unschedulable' } });
    expect(p.jobs.get('old')!.reason!.message).toMatch(/could not start together within 600 s: gang: only 8 of 10 tasks fit at once/);
    expect(p.jobs.get('young')!.phase).toBe('Queued');
    expect(p.bindings).toHaveLength(0);
  });

  it('preempts lower-priority work only when nothing could be placed, and never within the protection window', async () => {
    // node of 4 cores full with 4 low-priority tasks bound at T0; a priority-10 job of 2 cores arrives
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 4 })], jobs: [jobRecord('low', 4, { cpu: 1 })] });
    await cycle(p, T0);
    p.jobs.set('high', jobRecord('high', 1, { cpu: 2 }, { createdAt: T0 + 1, spec: { priority: 10 } }));
    // 30 s later: inside the 60 s window → nothing
    expect((await cycle(p, T0 + 30_000, { preemption })).stops).toEqual([]);
    // 61 s later: the 2 newest... all bound at once, so 2 tasks by index, asked to stop for "high"
    const plan = await cycle(p, T0 + 61_000, { preemption });
    expect(plan.stops.map((s) => s.cause)).toEqual(['preempt', 'preempt']);
    expect(plan.preempted.every((v) => v.forJob === 'high')).toBe(true);
    expect(p.bindings[0].preempt).toHaveLength(2);
    expect(p.bindings[0].preemptRequestedAt).toBe(T0 + 61_000);
  });

  it('reclaims borrowed quota for a lender below its nominal, as few tasks as it needs', async () => {
    // cohort c: lender nominal 4, borrower nominal 0; 4 cores all held by the borrower;
    // the lender asks for 3 one-core tasks → 3 borrowed tasks asked to stop (not 4)
    const queues = [queue('lender', { cpu: 4 }, { cohort: 'c' }), queue('borrower', { cpu: 0 }, { cohort: 'c' })];
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 8 })], queues, jobs: [jobRecord('b', 4, { cpu: 1 }, { queue: 'borrower' })] });
    await cycle(p, T0);
    expect(boundTasks(p.bindings, 'b')).toBe(4);
    p.jobs.set('l', jobRecord('l', 3, { cpu: 1 }, { queue: 'lender', createdAt: T0 + 1 }));
    const plan = await cycle(p, T0 + 1000, { preemption });
    expect(plan.binds).toEqual([]);
    expect(plan.stops.map((s) => s.cause)).toEqual(['reclaim', 'reclaim', 'reclaim']);
    expect(plan.reclaimed.every((v) => v.forJob === 'l' && v.task.queue === 'borrower')).toBe(true);
    // the next cycle counts the stopping tasks as on their way out: it asks for none more
    expect((await cycle(p, T0 + 2000, { preemption })).stops).toEqual([]);
  });

  it('considers at most maxJobs pending jobs and rotates the window over the rest', async () => {
    // 5 jobs of 1 task, maxJobs 2: heads (1 queue → 1 head) + a window of 1 over the other 4
    const p = new MemoryPlanner({
      nodes: [nodeRecord('a', { cpu: 64 })],
      jobs: [1, 2, 3, 4, 5].map((i) => jobRecord(`j${i}`, 1, { cpu: 1 }, { createdAt: T0 + i })),
    });
    const plan = await cycle(p, T0 + 10, { backlog: { maxJobs: 2 } });
    expect(plan.considered).toBe(2);
    expect(plan.deferred).toBe(3);
    expect(p.bindings).toHaveLength(2);
  });
});
