import fc from 'fast-check';
import type { ResourceVector } from '@batchapi/api';
import { QuotaLedger, type QuotaLedger as Ledger, type QuotaQueue, type RunningTask } from '../../index';
import { planReclaim } from './index';

const cpu = (n: number): ResourceVector => ({ cpu: n * 1000 });
const usage = (entries: Record<string, number>) => new Map(Object.entries(entries).map(([q, n]) => [q, cpu(n)]));

describe('planReclaim: which borrowed tasks a lender takes back', () => {
  // lender and borrower share cohort c with 10 cores each (all lendable: guaranteed 0, pool 20);
  // solo has no cohort. The borrower runs one-core tasks 0..n−1, task i bound at t = i (higher = newer).
  const queues: QuotaQueue[] = [
    { name: 'lender', cohort: 'c', nominal: cpu(10) },
    { name: 'borrower', cohort: 'c', nominal: cpu(10) },
    { name: 'solo', nominal: cpu(10) },
  ];
  const borrowerTasks = (n: number): RunningTask[] =>
    Array.from({ length: n }, (_, i) => ({
      jobId: 'b',
      queue: 'borrower',
      node: 'n',
      groupStart: 0,
      attempt: 1,
      index: i,
      priority: 0,
      resources: cpu(1),
      devices: [],
      boundAt: i,
      stopping: false,
    }));
  const table: Array<{
    name: string;
    held: Record<string, number>;
    demand: { queue: string; tasks: number };
    budget?: number;
    maxVictims?: number;
    /** Thrash damping: now, protectMs, and exempt jobs. */
    damping?: { now: number; protectMs: number; exempt?: string[] };
    victims: number[];
  }> = [
    {
      // poolUsed = 15 → room(lender) = 0 + 20 − 15 = 5 ≥ 3 wanted: nothing to take back
      name: 'no victims when the cohort still has room',
      held: { borrower: 15 },
      demand: { queue: 'lender', tasks: 3 },
      victims: [],
    },
    {
      // room(lender) = 20 − 20 = 0; target = min(4, 10 − 0) = 4 → 4 victims, newest first: 19, 18, 17, 16
      name: 'as many victims as the demand needs, newest first',
      held: { borrower: 20 },
      demand: { queue: 'lender', tasks: 4 },
      victims: [19, 18, 17, 16],
    },
    {
      // room(lender) = 20 − (12 + 8) = 0; within nominal 10 − 8 = 2 → target = min(5, 2) = 2 → 11, 10
      name: "only the part of the demand within the lender's nominal",
      held: { borrower: 12, lender: 8 },
      demand: { queue: 'lender', tasks: 5 },
      victims: [11, 10],
    },
    {
      // target = min(6, 10) = 6, but maxVictims 2 → 19, 18
      name: 'at most maxVictims in one pass',
      held: { borrower: 20 },
      demand: { queue: 'lender', tasks: 6 },
      maxVictims: 2,
      victims: [19, 18],
    },
    {
      // target 6, but the borrower may lose only 1 more this window → 19
      name: "within the borrower's budget",
      held: { borrower: 20 },
      demand: { queue: 'lender', tasks: 6 },
      budget: 1,
      victims: [19],
    },
    {
      // now = 20, protectMs = 3: tasks bound at 18 and 19 are protected (20 − 18 = 2 < 3) → the
      // next newest unprotected ones: 17, 16, 15
      name: 'never a task bound less than protectMs ago',
      held: { borrower: 20 },
      demand: { queue: 'lender', tasks: 3 },
      damping: { now: 20, protectMs: 3 },
      victims: [17, 16, 15],
    },
    {
      // every borrowed task belongs to job b, preempted too often lately: nothing is taken back
      name: 'never a task of a job at its repeat limit',
      held: { borrower: 20 },
      demand: { queue: 'lender', tasks: 3 },
      damping: { now: 20, protectMs: 0, exempt: ['b'] },
      victims: [],
    },
    {
      // solo has no cohort: it lent nothing, so it takes nothing back
      name: 'a queue without a cohort never reclaims',
      held: { borrower: 20, solo: 10 },
      demand: { queue: 'solo', tasks: 3 },
      victims: [],
    },
  ];
  it.each(table)('$name', ({ held, demand, budget, maxVictims, damping, victims }) => {
    const ledger = new QuotaLedger(queues, usage(held));
    const got = planReclaim(
      ledger,
      [{ jobId: 'want', queue: demand.queue, charge: cpu(1), tasks: demand.tasks }],
      borrowerTasks(held.borrower ?? 0),
      (t) => t.resources,
      {
        budget: budget === undefined ? undefined : new Map([['borrower', budget]]),
        maxVictims,
        ...(damping ? { now: damping.now, protectMs: damping.protectMs, exemptJobs: new Set(damping.exempt ?? []) } : {}),
      },
    );
    expect(got.map((v) => v.task.index)).toEqual(victims);
    expect(got.every((v) => v.forJob === 'want')).toBe(true);
  });
});

describe('planReclaim', () => {
  const running = (queue: string, n: number, priority: number, boundAt: number): RunningTask[] =>
    Array.from({ length: n }, (_, i) => ({
      jobId: `${queue}-${priority}-${boundAt}`,
      queue,
      node: 'n',
      groupStart: 0,
      attempt: 1,
      index: i,
      priority,
      resources: cpu(1),
      devices: [],
      boundAt,
      stopping: false,
    }));
  const cohort = (): QuotaQueue[] => [
    { name: 'lender', cohort: 'c', nominal: cpu(10) },
    { name: 'borrower', cohort: 'c', nominal: cpu(10) },
    { name: 'other', cohort: 'x', nominal: cpu(10) },
  ];

  it('stops only as many borrowed tasks as the lender needs, lowest priority then newest first', () => {
    // borrower holds 18 (8 borrowed): 6 at priority 5 bound at t=1, 6 at priority 0 bound at t=1, 6 at priority 0 bound at t=2
    const tasks = [...running('borrower', 6, 5, 1), ...running('borrower', 6, 0, 1), ...running('borrower', 6, 0, 2), ...running('other', 5, 0, 3)];
    const ledger = new QuotaLedger(cohort(), usage({ borrower: 18, lender: 0, other: 5 }));
    // the lender wants 5 one-core tasks: room = 20 − 18 = 2 → 3 victims needed
    const victims = planReclaim(ledger, [{ jobId: 'want', queue: 'lender', charge: cpu(1), tasks: 5 }], tasks, (t) => t.resources);
    expect(victims.map((v) => v.task.jobId)).toEqual(['borrower-0-2', 'borrower-0-2', 'borrower-0-2']);
  });

  it("never reclaims for work beyond the demanding queue's own nominal, nor from queues within theirs", () => {
    // lender already holds 10 (its whole nominal): its further work would borrow → no victims
    const ledger: Ledger = new QuotaLedger(cohort(), usage({ borrower: 10, lender: 10 }));
    expect(planReclaim(ledger, [{ jobId: 'w', queue: 'lender', charge: cpu(1), tasks: 3 }], running('borrower', 10, 0, 1), (t) => t.resources)).toEqual([]);
  });

  it('respects the per-queue budget', () => {
    const ledger = new QuotaLedger(cohort(), usage({ borrower: 20 }));
    const victims = planReclaim(ledger, [{ jobId: 'w', queue: 'lender', charge: cpu(1), tasks: 10 }], running('borrower', 20, 0, 1), (t) => t.resources, {
      budget: new Map([['borrower', 4]]),
    });
    expect(victims).toHaveLength(4);
  });
});

/**
 * The scan planReclaim did before it kept a cursor per queue: every demand walked every running
 * task (O(demands × running), seconds of blocked event loop under a backlog). Kept here as the
 * reference the cursor version must agree with, victim for victim.
 */
function planReclaimByScan(
  ledger: QuotaLedger,
  demands: Parameters<typeof planReclaim>[1],
  running: RunningTask[],
  chargeFor: (t: RunningTask) => ResourceVector,
  budgetIn?: Map<string, number>,
  max = 1000,
) {
  const victims: Array<{ task: RunningTask; forJob: string }> = [];
  const budget = new Map(budgetIn ?? []);
  const taken = new Set<RunningTask>();
  const order = [...running]
    .filter((t) => !t.stopping)
    .sort((a, b) => a.priority - b.priority || b.boundAt - a.boundAt || (a.jobId < b.jobId ? -1 : 1) || a.index - b.index);
  for (const d of demands) {
    const q = ledger.queue(d.queue);
    if (!q?.cohort) continue;
    const used = ledger.usage(d.queue);
    let target = d.tasks;
    for (const [r, amount] of Object.entries(d.charge))
      if (amount > 0 && r in q.nominal) target = Math.min(target, Math.floor(Math.max(0, q.nominal[r] - (used[r] ?? 0)) / amount));
    if (target === 0) continue;
    for (const t of order) {
      if (ledger.allows(d.queue, d.charge) >= target || victims.length >= max) break;
      if (taken.has(t) || t.queue === d.queue) continue;
      if (ledger.queue(t.queue)?.cohort !== q.cohort) continue;
      const borrowed = ledger.borrowed(t.queue);
      if (!Object.keys(d.charge).some((r) => (d.charge[r] ?? 0) > 0 && (borrowed[r] ?? 0) > 0)) continue;
      const left = budget.get(t.queue);
      if (left !== undefined && left <= 0) continue;
      if (left !== undefined) budget.set(t.queue, left - 1);
      taken.add(t);
      ledger.take(t.queue, chargeFor(t), -1);
      victims.push({ task: t, forJob: d.jobId });
    }
    const granted = Math.min(target, ledger.allows(d.queue, d.charge));
    if (Number.isFinite(granted) && granted > 0) ledger.take(d.queue, d.charge, granted);
  }
  return victims;
}

describe('property: planReclaim picks exactly the victims of a full scan of the running tasks', () => {
  it('agrees with the scan for random cohorts, usage, running tasks, demands and budgets', () => {
    const names = ['a', 'b', 'c', 'd'];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            cohort: fc.constantFrom('x', 'y', undefined),
            nominal: fc.integer({ min: 0, max: 12 }),
            borrow: fc.option(fc.integer({ min: 0, max: 8 })),
          }),
          { minLength: 4, maxLength: 4 },
        ),
        fc.array(
          fc.record({
            queue: fc.constantFrom(...names),
            priority: fc.integer({ min: 0, max: 2 }),
            boundAt: fc.integer({ min: 0, max: 5 }),
            cores: fc.integer({ min: 1, max: 2 }),
            stopping: fc.boolean(),
          }),
          { maxLength: 40 },
        ),
        fc.array(fc.record({ queue: fc.constantFrom(...names), cores: fc.integer({ min: 1, max: 3 }), tasks: fc.integer({ min: 1, max: 8 }) }), {
          maxLength: 6,
        }),
        fc.option(fc.dictionary(fc.constantFrom(...names), fc.integer({ min: 0, max: 5 }))),
        fc.integer({ min: 1, max: 30 }),
        (qs, tasks, ds, budget, max) => {
          const queues: QuotaQueue[] = qs.map((q, i) => ({
            name: names[i],
            ...(q.cohort ? { cohort: q.cohort } : {}),
            nominal: cpu(q.nominal),
            ...(q.borrow !== null ? { borrowingLimit: cpu(q.borrow) } : {}),
          }));
          const running: RunningTask[] = tasks.map((t, i) => ({
            jobId: `j${i % 7}`,
            queue: t.queue,
            node: 'n',
            groupStart: 0,
            attempt: 1,
            index: i,
            priority: t.priority,
            resources: cpu(t.cores),
            devices: [],
            boundAt: t.boundAt,
            stopping: t.stopping,
          }));
          const held = new Map<string, ResourceVector>();
          for (const t of running) held.set(t.queue, { cpu: (held.get(t.queue)?.cpu ?? 0) + (t.resources.cpu ?? 0) });
          const demands = ds.map((d, i) => ({ jobId: `w${i}`, queue: d.queue, charge: cpu(d.cores), tasks: d.tasks }));
          const budgets = budget ? new Map(Object.entries(budget)) : undefined;
          const got = planReclaim(new QuotaLedger(queues, held), demands, running, (t) => t.resources, { budget: budgets, maxVictims: max });
          const want = planReclaimByScan(new QuotaLedger(queues, held), demands, running, (t) => t.resources, budgets, max);
          expect(got.map((v) => [v.task.index, v.forJob])).toEqual(want.map((v) => [v.task.index, v.forJob]));
        },
      ),
      { numRuns: 500 },
    );
  });
});
