/**
 * Backfill with reservations through whole cycles (`buildSnapshot` → `schedule` →
 * `MemoryPlanner`), "why pending" on the same snapshots, and the property that the explanation
 * agrees with placement when reservations are held.
 */
import fc from 'fast-check';
import { type BackfillSettings, buildSnapshot, explainJob, MemoryPlanner, schedule } from '@batchapi/scheduling';
import { boundTasks, jobRecord, nodeRecord, queue, T0 } from './fixtures';

const S = 1000;
const backfill: BackfillSettings = { maxReservations: 1, runtimeSeconds: () => 3600 };

describe('backfill in a cycle', () => {
  // Nodes a and b of 4 GPUs. At T0 'run-a' takes 2 GPUs of a (timeout 600 s) and 'run-b' 2 of b (timeout 1800 s).
  // At T0 + 60 s: 'big' (4 GPUs, a gang of 1) cannot start — each node has 2 free. Its soonest start is a, at
  // T0 + 600 s (b at T0 + 1800 s). Then 'long' (1 GPU, no timeout) and 'short' (1 GPU, timeout 300 s) arrive.
  const setup = async () => {
    const p = new MemoryPlanner({
      nodes: [nodeRecord('a', { cpu: 8, gpu: 4 }, { labels: { host: 'a' } }), nodeRecord('b', { cpu: 8, gpu: 4 }, { labels: { host: 'b' } })],
      jobs: [
        jobRecord('run-a', 1, { cpu: 1, gpu: 2 }, { spec: { selector: { host: 'a' }, timeoutSeconds: 600 } }),
        jobRecord('run-b', 1, { cpu: 1, gpu: 2 }, { createdAt: T0 + 1, spec: { selector: { host: 'b' }, timeoutSeconds: 1800 } }),
      ],
      queues: [queue('q')],
    });
    await p.apply(schedule(buildSnapshot(p.state(), T0)));
    expect([boundTasks(p.bindings, 'run-a'), boundTasks(p.bindings, 'run-b')]).toEqual([1, 1]);
    p.jobs.set('big', jobRecord('big', 1, { cpu: 1, gpu: 4 }, { createdAt: T0 + 10 * S, spec: { gang: true } }));
    p.jobs.set('long-1', jobRecord('long-1', 1, { cpu: 1, gpu: 1 }, { createdAt: T0 + 20 * S }));
    p.jobs.set('long-2', jobRecord('long-2', 1, { cpu: 1, gpu: 1 }, { createdAt: T0 + 21 * S }));
    p.jobs.set('long-3', jobRecord('long-3', 1, { cpu: 1, gpu: 1 }, { createdAt: T0 + 22 * S }));
    p.jobs.set('short', jobRecord('short', 1, { cpu: 1, gpu: 1 }, { createdAt: T0 + 23 * S, spec: { timeoutSeconds: 300 } }));
    return p;
  };

  it('without reservations the 1-GPU jobs take the free GPUs of both nodes', async () => {
    const p = await setup();
    const plan = schedule(buildSnapshot(p.state(), T0 + 60 * S));
    // 4 GPUs free (2 on a, 2 on b); big needs 4 on one node; long-1..3 and short take all 4.
    expect(plan.placements.reduce((n, x) => n + x.count, 0)).toBe(4);
    expect(plan.reservations).toEqual([]);
  });

  it('with a reservation, a is held for big from T0 + 600 s: unbounded work only on b, the 300 s job backfills a', async () => {
    const p = await setup();
    const plan = schedule(buildSnapshot(p.state(), T0 + 60 * S), { backfill });
    await p.apply(plan);
    expect(plan.reservations).toEqual([expect.objectContaining({ jobId: 'big', start: T0 + 600 * S, nodes: [expect.objectContaining({ node: 'a' })] })]);
    // long-1, long-2 on b (2 free); long-3 waits (a is held, it may run past T0 + 600 s); short ends by T0 + 360 s ≤ 600 s: on a.
    const on = (job: string) => p.bindings.filter((b) => b.jobId === job).map((b) => b.node);
    expect([on('long-1'), on('long-2'), on('long-3'), on('short')]).toEqual([['b'], ['b'], [], ['a']]);
  });

  it('why-pending shows the reservation with its start as the ETA, and tells the unbounded job what would let it backfill', async () => {
    const p = await setup();
    const s = buildSnapshot(p.state(), T0 + 60 * S);
    const big = explainJob(s, p.jobs.get('big')!, 'scheduler', { backfill });
    expect(big.messages).toContain(
      `reserved: room on 1 node (a) for all 1 tasks from ${new Date(T0 + 600 * S).toISOString()}, in 9m (ETA, from running tasks' timeouts and runtime estimates); other work runs there meanwhile only if its timeoutSeconds ends it before then`,
    );
    const long = explainJob(s, p.jobs.get('long-3')!, 'scheduler', { backfill });
    expect(long.placeableNow).toBe(0);
    // Start − now = 600 − 60 = 540 s.
    expect(long.messages).toContain(
      '1 node is reserved for job big (backfill): without timeoutSeconds it may still run then; a timeoutSeconds of at most 540 would let it run there now',
    );
  });

  it('a wrong estimate moves the start: a task past its estimate counts as ending now, and nothing unbounded backfills', async () => {
    // run-a has no timeout and a 60 s estimate; at T0 + 120 s it overran: big's start is now (on a), long work stays off a.
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 8, gpu: 4 })], jobs: [jobRecord('run-a', 1, { cpu: 1, gpu: 2 })], queues: [queue('q')] });
    await p.apply(schedule(buildSnapshot(p.state(), T0)));
    p.jobs.set('big', jobRecord('big', 1, { cpu: 1, gpu: 4 }, { createdAt: T0 + S }));
    p.jobs.set('long', jobRecord('long', 1, { cpu: 1, gpu: 1 }, { createdAt: T0 + 2 * S }));
    const plan = schedule(buildSnapshot(p.state(), T0 + 120 * S), { backfill: { maxReservations: 1, runtimeSeconds: () => 60 } });
    expect(plan.reservations?.[0]).toMatchObject({ jobId: 'big', start: T0 + 120 * S });
    expect(plan.placements).toEqual([]);
    const why = explainJob(buildSnapshot(p.state(), T0 + 120 * S), p.jobs.get('big')!, 'scheduler', {
      backfill: { maxReservations: 1, runtimeSeconds: () => 60 },
    });
    expect(why.messages.some((m) => m.includes('as soon as the tasks running past their expected end there stop (ETA: now)'))).toBe(true);
  });
});

const arbNode = fc.record({ cpu: fc.integer({ min: 1, max: 16 }), gpu: fc.constantFrom(0, 2, 4) });
const arbJob = fc.record({
  tasks: fc.integer({ min: 1, max: 8 }),
  cpu: fc.integer({ min: 1, max: 6 }),
  gpu: fc.constantFrom(0, 0, 1, 2),
  priority: fc.constantFrom(0, 0, 5),
  queue: fc.constantFrom('q1', 'q2'),
  gang: fc.boolean(),
  timeout: fc.constantFrom(undefined, 30, 600, 7200),
  age: fc.integer({ min: 0, max: 1000 }),
});

describe('property: with reservations, the explanation of every waiting job agrees with placement', () => {
  it('holds on generated clusters', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(arbNode, { minLength: 1, maxLength: 6 }),
        fc.array(arbJob, { minLength: 1, maxLength: 8 }),
        fc.array(arbJob, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 3 }),
        async (nodes, running, waiting, maxReservations) => {
          const p = new MemoryPlanner({ nodes: nodes.map((n, i) => nodeRecord(`n${i}`, { cpu: n.cpu, gpu: n.gpu })), queues: [queue('q1'), queue('q2')] });
          const toRecord = (j: (typeof running)[number], id: string, createdAt: number) =>
            jobRecord(
              id,
              j.tasks,
              { cpu: j.cpu, gpu: j.gpu },
              { queue: j.queue, createdAt, spec: { priority: j.priority, gang: j.gang, ...(j.timeout ? { timeoutSeconds: j.timeout } : {}) } },
            );
          running.forEach((j, i) => p.jobs.set(`r${i}`, toRecord(j, `r${i}`, T0 - 10_000 + j.age)));
          await p.apply(schedule(buildSnapshot(p.state(), T0)));
          waiting.forEach((j, i) => p.jobs.set(`w${i}`, toRecord(j, `w${i}`, T0 + j.age)));
          const s = buildSnapshot(p.state(), T0 + 2000);
          const settings: BackfillSettings = { maxReservations, runtimeSeconds: () => 300 };
          const plan = schedule(s, { backlog: { maxJobs: Number.POSITIVE_INFINITY }, backfill: settings });
          for (const w of s.work) {
            const placed = plan.placements.filter((x) => x.jobId === w.jobId).reduce((n, x) => n + x.count, 0);
            const why = explainJob(s, s.jobs.get(w.jobId)!, 'scheduler', { backfill: settings });
            expect({ job: w.jobId, placeableNow: why.placeableNow }).toEqual({ job: w.jobId, placeableNow: placed });
            const reserved = plan.reservations?.some((r) => r.jobId === w.jobId);
            expect({ job: w.jobId, reserved: why.messages.some((m) => m.startsWith('reserved:')) }).toEqual({ job: w.jobId, reserved: !!reserved });
          }
        },
      ),
      { numRuns: 200, seed: 20261203 },
    );
  });
});
