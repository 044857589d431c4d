/**
 * `maxRunning` through whole cycles (`buildSnapshot` → `schedule` → `MemoryPlanner`): every
 * placement path — the per-job pass, batch fill, fair share, gangs, backfill reservations,
 * preemption and reclaim — places at most what the limit leaves room for, counted from the job
 * record alone; and "why pending" says when the limit holds tasks back.
 */
import { type BackfillSettings, buildSnapshot, explainJob, MemoryPlanner, type Plan, schedule, type ScheduleOptions } from '@batchapi/scheduling';
import { boundTasks, jobRecord, nodeRecord, queue, T0 } from './fixtures';

async function cycle(p: MemoryPlanner, now: number, opts: ScheduleOptions = {}): Promise<Plan> {
  const plan = schedule(buildSnapshot(p.state(), now), opts);
  await p.apply(plan);
  return plan;
}

const preemption = { budget: new Map<string, number>(), protectMs: 0 };

describe('maxRunning in whole cycles', () => {
  it('binds at most maxRunning of a 100-task array, one more for each that ends, and all complete', async () => {
    // 2 nodes × 64 cores, 100 one-core tasks, maxRunning 5: room for 128, yet 5 bound per cycle at most;
    // each cycle 2 bindings end → 2 slots → 2 bound. 5 + ⌈95 / …⌉ cycles, never more than 5 in flight.
    const p = new MemoryPlanner({
      nodes: [nodeRecord('a', { cpu: 64 }), nodeRecord('b', { cpu: 64 })],
      jobs: [jobRecord('arr', 100, { cpu: 1 }, { spec: { maxRunning: 5 } })],
    });
    let now = T0;
    let most = 0;
    for (let i = 0; i < 200 && p.jobs.get('arr')!.phase !== 'Succeeded'; i++) {
      await cycle(p, (now += 1000));
      const bound = boundTasks(p.bindings, 'arr');
      most = Math.max(most, bound);
      expect(bound).toBeLessThanOrEqual(5);
      // The oldest binding ends (its tasks succeeded): its slots free in the job record.
      const first = p.bindings.find((b) => b.jobId === 'arr');
      if (first) p.succeed(first, now);
    }
    expect(most).toBe(5);
    expect(p.jobs.get('arr')).toMatchObject({ phase: 'Succeeded', counts: { succeeded: 100, failed: 0, cancelled: 0 } });
  });

  it('counts retries in backoff as pending (not in flight) and places only eligible tasks within the limit', () => {
    // 10 tasks, maxRunning 3: 4 succeeded, pending [0,2) now and [2,4) after a backoff → inFlight = 10 − 4 − 4 = 2;
    // room = 3 − 2 = 1 → 1 of the 2 eligible tasks is placeable, 1 held; at T0 + 5 s all 4 are eligible: still 1, 3 held
    const job = jobRecord(
      'r',
      10,
      { cpu: 1 },
      {
        phase: 'Running',
        counts: { succeeded: 4, failed: 0, cancelled: 0 },
        pending: [
          { start: 0, end: 2, attempt: 2 },
          { start: 2, end: 4, attempt: 2, notBefore: T0 + 5000 },
        ],
        spec: { maxRunning: 3 },
      },
    );
    const s = buildSnapshot({ jobs: [job], nodes: [nodeRecord('a', { cpu: 8 })], allocs: new Map(), queues: [], bindings: [], cordons: [] }, T0);
    expect(s.work).toEqual([expect.objectContaining({ jobId: 'r', tasks: 1, runLimit: { limit: 3, running: 2, held: 1 } })]);
    const later = buildSnapshot({ jobs: [job], nodes: [], allocs: new Map(), queues: [], bindings: [], cordons: [] }, T0 + 5000);
    expect(later.work[0]).toMatchObject({ tasks: 1, runLimit: { held: 3 } });
  });

  it('batch fill packs a tier of simultaneous jobs within each one’s limit', async () => {
    // two plain jobs submitted at one instant (a batch-fill tier, the limited one first by id): 50 × 1 core with
    // maxRunning 3, 10 × 1 core without; 1 node × 20 cores → the limited job gets 3 (not 20), the other its 10
    const p = new MemoryPlanner({
      nodes: [nodeRecord('a', { cpu: 20 })],
      jobs: [jobRecord('a-lim', 50, { cpu: 1 }, { spec: { maxRunning: 3 } }), jobRecord('b-free', 10, { cpu: 1 })],
    });
    await cycle(p, T0);
    expect([boundTasks(p.bindings, 'a-lim'), boundTasks(p.bindings, 'b-free')]).toEqual([3, 10]);
  });

  it('fair share between queues gives a limited queue no more than its limit', async () => {
    // queues x and y of weight 1; x's job 40 × 1 core maxRunning 4, y's 40 × 1 core; 1 node × 16 cores
    // → x 4 (its limit), y the other 12
    const p = new MemoryPlanner({
      nodes: [nodeRecord('a', { cpu: 16 })],
      queues: [queue('x'), queue('y')],
      jobs: [jobRecord('jx', 40, { cpu: 1 }, { queue: 'x', spec: { maxRunning: 4 } }), jobRecord('jy', 40, { cpu: 1 }, { queue: 'y', createdAt: T0 + 1 })],
    });
    await cycle(p, T0 + 10);
    expect([boundTasks(p.bindings, 'jx'), boundTasks(p.bindings, 'jy')]).toEqual([4, 12]);
  });

  it('a gang whose limit covers it starts whole', async () => {
    // gang of 4 with maxRunning 4 (admission refuses less): all 4 bound together
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 8 })], jobs: [jobRecord('g', 4, { cpu: 1 }, { spec: { gang: true, maxRunning: 4 } })] });
    await cycle(p, T0);
    expect(boundTasks(p.bindings, 'g')).toBe(4);
  });

  it('preemption stops only as many tasks as the limit leaves room for', async () => {
    // node of 4 cores full with 4 low-priority tasks; a priority-10 job of 4 × 1 core with maxRunning 1
    // → 1 victim (room for 1 task), not 4
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 4 })], jobs: [jobRecord('low', 4, { cpu: 1 })] });
    await cycle(p, T0);
    p.jobs.set('high', jobRecord('high', 4, { cpu: 1 }, { createdAt: T0 + 1, spec: { priority: 10, maxRunning: 1 } }));
    const plan = await cycle(p, T0 + 61_000, { preemption });
    expect(plan.preempted.map((v) => v.forJob)).toEqual(['high']);
  });

  it('reclaim asks back only the quota the limit can use', async () => {
    // cohort c: lender nominal 4, borrower holds all 4 cores; the lender's job of 3 × 1 core has maxRunning 1 → 1 reclaimed
    const queues = [queue('lender', { cpu: 4 }, { cohort: 'c' }), queue('borrower', { cpu: 0 }, { cohort: 'c' })];
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 4 })], queues, jobs: [jobRecord('b', 4, { cpu: 1 }, { queue: 'borrower' })] });
    await cycle(p, T0);
    p.jobs.set('l', jobRecord('l', 3, { cpu: 1 }, { queue: 'lender', createdAt: T0 + 1, spec: { maxRunning: 1 } }));
    const plan = await cycle(p, T0 + 1000, { preemption });
    expect(plan.reclaimed.map((v) => v.forJob)).toEqual(['l']);
  });

  it('a job at its limit gets no backfill reservation; the next blocked job does', async () => {
    // node of 2 GPUs: 'run' holds 1 GPU (timeout 600 s); 'lim' (1 GPU × 3, maxRunning 1) has 1 bound;
    // 'big' (2 GPUs) is the first blocked work that can use a reservation: lim at its limit places nothing and holds nothing
    const backfill: BackfillSettings = { maxReservations: 1, runtimeSeconds: () => 3600 };
    const p = new MemoryPlanner({
      nodes: [nodeRecord('a', { cpu: 8, gpu: 2 })],
      jobs: [jobRecord('lim', 3, { cpu: 1, gpu: 1 }, { spec: { maxRunning: 1, timeoutSeconds: 600 } })],
    });
    await cycle(p, T0);
    expect(boundTasks(p.bindings, 'lim')).toBe(1);
    p.jobs.set('big', jobRecord('big', 1, { cpu: 1, gpu: 2 }, { createdAt: T0 + 1 }));
    const plan = await cycle(p, T0 + 1000, { backfill });
    expect(plan.reservations?.map((r) => r.jobId)).toEqual(['big']);
    expect(boundTasks(p.bindings, 'lim')).toBe(1);
  });

  it('why pending says the job is at its limit, and counts its held tasks as pending', async () => {
    const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 64 })], jobs: [jobRecord('arr', 1000, { cpu: 1 }, { spec: { maxRunning: 50 } })] });
    await cycle(p, T0);
    expect(boundTasks(p.bindings, 'arr')).toBe(50);
    const why = explainJob(buildSnapshot(p.state(), T0 + 1000), p.jobs.get('arr')!, 'scheduler');
    expect(why).toMatchObject({ pendingTasks: 950, placeableNow: 0, blockers: [], counterfactuals: [] });
    expect(why.messages).toContain('at its limit of 50 running tasks (maxRunning): 950 tasks wait for a slot');
    // 10 end: 10 slots; why says 10 fit now and the other 940 wait
    p.succeed(p.bindings[0], T0 + 2000);
    const after = explainJob(buildSnapshot(p.state(), T0 + 3000), p.jobs.get('arr')!, 'scheduler');
    expect(after.placeableNow).toBe(50);
    expect(after.messages).toContain('50 of 950 pending tasks fit now and will be placed by the next cycle');
  });
});
