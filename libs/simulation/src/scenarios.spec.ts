import { agingScenario, backfillScenario, churnScenario, pricedScenario, SCENARIOS } from './scenarios';
import { consolidationScenario } from './consolidation-scenario';
import { defragmentScenario } from './defragment-scenario';

describe('simulate scenarios', () => {
  it('aging: a priority-0 job behind a steady priority-10 stream starts within the bound its settings imply', () => {
    // 1 node × 4 slots, 60 s tasks, a priority-10 job every 12 s (5/min against 4/min served), low submitted at 300 s.
    // Aging 60/h: low ranks with fresh priority-10 work after 10 × 3600 / 60 = 600 s. Ahead of it ever: the 75 jobs
    // submitted before 300 + 600 = 900 s (at 0, 12, …, 888). Bound = ceil((75 + 1) / 4) × 60 = 19 × 60 = 1140 s.
    const r = agingScenario();
    console.log(JSON.stringify(r));
    expect(r).toMatchObject({ catchUpSeconds: 600, ahead: 75, boundSeconds: 1140, holds: true });
    expect(r.waitSeconds).toBeLessThanOrEqual(1140);
    // Without aging it waits for the whole stream (7,200 s) and its backlog to drain.
    expect(r.waitWithoutAgingSeconds).toBeGreaterThan(7200 - 300);
  });

  it('aging with a cap below the priority gap gives no bound, and the job waits for the stream', () => {
    const r = agingScenario({ aging: { perHour: 60, max: 9 }, streamSeconds: 1800 });
    expect(r.catchUpSeconds).toBe(Infinity);
    expect(r.waitSeconds).toBeGreaterThan(1800 - 300);
  });

  it('churn: two queues reclaiming from each other stop fewer tasks with thrash damping, within slots × 60 / exempt time a minute', () => {
    // 2 nodes × 8 cores, queues a and b (cohort c, 8 cores nominal each) burst 16 one-core tasks of 50 s
    // every 2 minutes, b 30 s after a. Undamped: each b burst reclaims the 8 cores a borrowed (8 stops, 15 bursts = 120).
    // Damped (60 s exempt time, 2 stops per job in 10 min): a task must run 60 s before it may be reclaimed; these run 50 s.
    const r = churnScenario();
    console.log(JSON.stringify(r));
    expect(r.undamped).toMatchObject({ stops: 120, peakPerMinute: 8, completed: 480 });
    expect(r.damped).toMatchObject({ stops: 0, completed: 480 });
    expect(r.boundPerMinute).toBe(16);
    expect(r.holds).toBe(true);
  });

  it('churn with tasks longer than the exempt time: damping stops fewer, within the bound a minute', () => {
    // Bursts of 10 one-core tasks of 90 s, b 50 s after a: a borrows, b's burst reclaims tasks a has run 50 s,
    // their requeued copies borrow again, and so on. Damped: only tasks that ran 60 s or more are stopped,
    // and no job more than twice in 10 minutes; peak ≤ 16 × 60 / 60 = 16 a minute.
    const r = churnScenario({ tasksPerBurst: 10, taskSeconds: 90, offsetSeconds: 50, minutes: 20 });
    console.log(JSON.stringify(r));
    expect(r.undamped).toMatchObject({ stops: 56, peakPerMinute: 6 });
    expect(r.damped).toMatchObject({ stops: 22, peakPerMinute: 4 });
    expect(r.damped.peakPerMinute).toBeLessThanOrEqual(r.boundPerMinute);
    expect(r.damped.completed).toBe(r.undamped.completed);
  });

  it('priced fair share: the queue whose GPUs cost less gets its share of a contested pool', () => {
    // a holds 1 of 4 H100, b 6 of 16 T4. Plain DRF: a 0.25 < b 0.375 → a takes 13 of 16 cores.
    // Priced (H100 4, T4 0.5): a 4/24 = 0.167 > b 3/24 = 0.125 → b first; then the cpu dimension (k/40) evens it: 8 and 8.
    const r = pricedScenario();
    console.log(JSON.stringify(r));
    expect(r.plain).toEqual({ a: 13, b: 3 });
    expect(r.priced).toEqual({ a: 8, b: 8 });
  });

  it('backfill: a 64-GPU gang in a stream of 1-GPU jobs starts within 2 × the timeout with a reservation, and waits for the stream without', () => {
    // 8 nodes × 8 GPUs; a 1-GPU job every 6 s for 14,400 s, 100–600 s each (timeoutSeconds 600): ~92% of the GPUs busy.
    // The gang (8 × 8 GPUs) arrives at 1,800 s. With one reservation every GPU it needs is free within the largest
    // timeout (600 s) of what runs once it is first among blocked work; bound 2 × 600 = 1,200 s.
    const r = backfillScenario();
    console.log(JSON.stringify(r));
    expect(r.holds).toBe(true);
    expect(r.withReservations.gangWaitSeconds).toBeLessThanOrEqual(1200);
    // Without reservations the stream keeps taking the GPUs it frees: the gang starts only after the stream (14,400 s) ends.
    expect(r.withoutReservations.gangWaitSeconds).toBeGreaterThan(14_400 - 1800);
    // The cost: GPUs held idle while the nodes drain for it (less than the 64 × 600 s = 10.7 GPU-hours the drain can take).
    expect(r.withReservations.idleGpuHoursWhileGangWaited).toBeLessThanOrEqual((64 * 600) / 3600);
  });

  it('backfill: in a lightly loaded cluster the gang waits at most one timeout', () => {
    // A slow stream (a job every 60 s: ~9% load): the gang's nodes drain at once; it waits at most one timeout.
    const r = backfillScenario({ everySeconds: 60, streamSeconds: 3600 });
    expect(r.withReservations.gangWaitSeconds).toBeLessThanOrEqual(600);
  });

  it('consolidation: with batch work that ends, moving only young tasks keeps the makespan; moving any age costs node-hours', () => {
    // 24 nodes × 32 cores, 300 one-task jobs over 4 h, 5 min–3 h each (about half loaded). With the age bound
    // (600 s, the default) a move loses at most 10 minutes of a task; without it long tasks restart late.
    const r = consolidationScenario();
    console.log(JSON.stringify(r));
    expect(r.on.makespan).toBe(r.off.makespan);
    expect(r.on.moved).toBeLessThan(r.onAnyAge.moved);
    expect(r.onAnyAge.nodeHours).toBeGreaterThan(r.off.nodeHours);
    expect(r.off.moved).toBe(0);
    // Re-pack keeps the age bound too: the makespan is kept.
    expect(r.onRepack.makespan).toBe(r.off.makespan);
  });

  it('defragment: 4-GPU jobs among a 1-GPU stream wait less when a few tasks move to give them a node', () => {
    // 8 nodes × 8 GPUs, 680 one-GPU jobs of 5–15 min over 2 h (about 90% loaded), a 4-GPU job of 20 min every 24 min.
    // Off, a 4-GPU job waits until some node happens to have 4 GPUs free at once; on, a pass (every 10 s while
    // work waits) moves the fewest young 1-GPU tasks to give it one. The same stream in both runs.
    const r = defragmentScenario();
    console.log(JSON.stringify(r));
    const total = (x: Array<number | null>) => x.reduce<number>((a, b) => a + (b ?? Infinity), 0);
    expect(r.off.moved).toBe(0);
    expect(r.on.served).toBeGreaterThan(0);
    expect(r.on.moved).toBeGreaterThan(0);
    // Each served job cost at most the pass's budget of moves (8).
    expect(r.on.moved).toBeLessThanOrEqual(8 * r.on.served);
    expect(total(r.on.bigWaits)).toBeLessThan(total(r.off.bigWaits));
  });

  it('defragment-gang: gangs of 2 × 4 GPUs among a 1-GPU stream wait less when a pass makes room on two nodes at once', () => {
    // 8 nodes × 8 GPUs, 620 one-GPU jobs of 5–15 min over 2 h (about 82% loaded), a gang of 2 × 4 GPUs of 20 min
    // every ~17 min. Off, a gang waits until two nodes happen to have 4 GPUs free at the same time; on, one pass
    // moves the fewest young 1-GPU tasks to give both members a node (before: no pass ever served a gang).
    const r = SCENARIOS['defragment-gang']();
    console.log(JSON.stringify(r));
    const total = (x: Array<number | null>) => x.reduce<number>((a, b) => a + (b ?? Infinity), 0);
    expect(r.off.moved).toBe(0);
    expect(r.on.served).toBeGreaterThan(0);
    // A gang's room costs at most the pass's budget of moves (8).
    expect(r.on.moved).toBeLessThanOrEqual(8 * r.on.served);
    expect(r.on.gangWaits.every((w) => w !== null)).toBe(true);
    expect(total(r.on.gangWaits)).toBeLessThan(total(r.off.gangWaits));
  });
});
