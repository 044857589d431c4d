import fc from 'fast-check';
import type { ResourceVector } from '@batchapi/api';
import { placeTasks } from '../../index';
import type { RunningTask } from '../../index';
import { chargeOf, decayUsage, planReclaim, type QuotaLedger as Ledger, QuotaLedger, type QuotaQueue } from '../../index';
import type { NodeSnapshot, PendingWork } from '../../index';

const cpu = (n: number): ResourceVector => ({ cpu: n * 1000 });
const usage = (entries: Record<string, number>) => new Map(Object.entries(entries).map(([q, n]) => [q, cpu(n)]));

describe('QuotaLedger: room with cohorts, borrowing and lending limits', () => {
  const table: Array<{ name: string; queues: QuotaQueue[]; used: Record<string, number>; room: Record<string, number> }> = [
    {
      // no cohort: room = nominal − used = 10 − 4 = 6
      name: 'a queue alone has its nominal minus what it holds',
      queues: [{ name: 'a', nominal: cpu(10) }],
      used: { a: 4 },
      room: { a: 6 },
    },
    {
      // pool = 10 + 10 = 20, poolUsed = 4 + 0; a: min(∞, 0 + 20 − 4) = 16; b: 20 − 4 = 16
      name: 'a cohort lends idle nominal to its members',
      queues: [
        { name: 'a', cohort: 'c', nominal: cpu(10) },
        { name: 'b', cohort: 'c', nominal: cpu(10) },
      ],
      used: { a: 4 },
      room: { a: 16, b: 16 },
    },
    {
      // a: min(10 + 3 − 4, 16) = 9 (borrowing limit 3); b: 16
      name: 'a borrowing limit caps what a queue takes beyond its nominal',
      queues: [
        { name: 'a', cohort: 'c', nominal: cpu(10), borrowingLimit: cpu(3) },
        { name: 'b', cohort: 'c', nominal: cpu(10) },
      ],
      used: { a: 4 },
      room: { a: 9, b: 16 },
    },
    {
      // b lends 2: guaranteed(b) = 8; pool = 10 + 2 = 12; poolUsed = max(0, 4 − 0) = 4
      // a: 0 + 12 − 4 = 8; b: max(0, 8 − 0) + 12 − 4 = 16
      name: "a lending limit keeps the rest of a queue's nominal for itself",
      queues: [
        { name: 'a', cohort: 'c', nominal: cpu(10) },
        { name: 'b', cohort: 'c', nominal: cpu(10), lendingLimit: cpu(2) },
      ],
      used: { a: 4 },
      room: { a: 8, b: 16 },
    },
    {
      // a borrowed all of b's idle 10: pool 20, poolUsed 20 → a: 0; b: 0 + 20 − 20 = 0 (b must reclaim)
      name: 'capacity borrowed away leaves the lender no room until it reclaims',
      queues: [
        { name: 'a', cohort: 'c', nominal: cpu(10) },
        { name: 'b', cohort: 'c', nominal: cpu(10) },
      ],
      used: { a: 20 },
      room: { a: 0, b: 0 },
    },
  ];
  it.each(table)('$name', ({ queues, used, room }) => {
    const l = new QuotaLedger(queues, usage(used));
    for (const [q, n] of Object.entries(room)) expect(l.room(q).cpu).toBe(n * 1000);
  });

  it('takes and gives back, keeping the cohort pool consistent', () => {
    const l = new QuotaLedger(
      [
        { name: 'a', cohort: 'c', nominal: cpu(10) },
        { name: 'b', cohort: 'c', nominal: cpu(10) },
      ],
      new Map(),
    );
    l.take('a', cpu(1), 15); // a borrows 5 of b's
    expect(l.room('b').cpu).toBe(5000);
    expect(l.borrowed('a').cpu).toBe(5000);
    l.take('a', cpu(1), -15);
    expect(l.room('b').cpu).toBe(20_000);
  });

  it('limits GPUs per model on nodes labelled with it, besides the plain gpu total', () => {
    // queue: 8 GPUs in all, of which at most 2 H100; nodes: 4 H100 and 4 A100
    const l = new QuotaLedger([{ name: 'q', nominal: { gpu: 8000, 'gpu:H100': 2000 } }], new Map());
    const nodes: NodeSnapshot[] = ['H100', 'A100'].map((model) => ({
      name: model,
      capacity: { cpu: 64_000, gpu: 4000 },
      used: {},
      devices: {},
      gpuCount: 4,
      labels: { 'gpu.model': model },
      taints: [],
    }));
    const work: PendingWork[] = [{ jobId: 'j', queue: 'q', priority: 0, createdAt: 0, resources: { cpu: 1000, gpu: 1000 }, tasks: 8 }];
    const { placements } = placeTasks(work, nodes, { quota: l });
    const on = (n: string) => placements.filter((p) => p.node === n).reduce((s, p) => s + p.count, 0);
    // 2 on H100 (its model quota), 4 on A100 (the node's size): 6 of 8
    expect(on('H100')).toBe(2);
    expect(on('A100')).toBe(4);
    expect(chargeOf({ gpu: 500 }, { 'gpu.model': 'H100' })).toEqual({ gpu: 500, 'gpu:H100': 500 });
  });
});

describe('decayUsage', () => {
  it.each([
    // one half-life: 8·½ + 0·½ = 4
    { prev: 8, held: 0, dt: 60, h: 60, want: 4 },
    // two half-lives: 8·¼ + 4·¾ = 5
    { prev: 8, held: 4, dt: 120, h: 60, want: 5 },
    // no time passed: unchanged
    { prev: 8, held: 100, dt: 0, h: 60, want: 8 },
    // half-life 0: only what is held now
    { prev: 8, held: 3, dt: 1, h: 0, want: 3 },
  ])('prev $prev, held $held, after $dt s with half-life $h s → $want', ({ prev, held, dt, h, want }) => {
    const out = decayUsage(usage({ q: prev }), usage({ q: held }), dt * 1000, h * 1000);
    expect(out.get('q')!.cpu / 1000).toBeCloseTo(want, 9);
  });

  it('puts a queue that just ran a lot behind one that ran little', () => {
    // a held 8 of 8 cores for 10 min (half-life 5 min): history 8·(1 − 2^−2) = 6; b none
    const history = decayUsage(new Map(), usage({ a: 8 }), 600_000, 300_000);
    expect(history.get('a')!.cpu).toBeCloseTo(6000, 6);
    const nodes: NodeSnapshot[] = [{ name: 'n', capacity: cpu(8), used: {}, devices: {}, gpuCount: 0, labels: {}, taints: [] }];
    const work: PendingWork[] = [
      { jobId: 'a1', queue: 'a', priority: 0, createdAt: 0, resources: cpu(1), tasks: 8 },
      { jobId: 'b1', queue: 'b', priority: 0, createdAt: 1, resources: cpu(1), tasks: 8 },
    ];
    // shares start a 6/8, b 0: b takes cores until it reaches 6, then they alternate: b 7, a 1
    const { placements } = placeTasks(work, nodes, { fairShare: { capacity: cpu(8), usage: history, granularity: 1e-9 } });
    const of = (j: string) => placements.filter((p) => p.jobId === j).reduce((s, p) => s + p.count, 0);
    expect(of('b1')).toBe(7);
    expect(of('a1')).toBe(1);
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

describe('property: no sequence of admissions and completions puts a queue over its quota', () => {
  it('holds for random cohorts, limits, placements and completions', () => {
    const queue = fc.record({
      nominal: fc.integer({ min: 0, max: 20 }),
      borrow: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
      lend: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
      cohort: fc.constantFrom('c1', 'c2', undefined),
    });
    const step = fc.oneof(
      fc.record({ kind: fc.constant('submit' as const), q: fc.nat(3), tasks: fc.integer({ min: 1, max: 30 }), size: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('finish' as const), q: fc.nat(3), tasks: fc.integer({ min: 1, max: 30 }) }),
    );
    fc.assert(
      fc.property(fc.array(queue, { minLength: 4, maxLength: 4 }), fc.array(step, { maxLength: 40 }), (qs, steps) => {
        const queues: QuotaQueue[] = qs.map((q, i) => ({
          name: `q${i}`,
          nominal: cpu(q.nominal),
          ...(q.cohort ? { cohort: q.cohort } : {}),
          ...(q.borrow !== undefined ? { borrowingLimit: cpu(q.borrow) } : {}),
          ...(q.lend !== undefined ? { lendingLimit: cpu(q.lend) } : {}),
        }));
        const nodes: NodeSnapshot[] = [{ name: 'n', capacity: cpu(1000), used: {}, devices: {}, gpuCount: 0, labels: {}, taints: [] }];
        const held = new Map<string, number[]>(queues.map((q) => [q.name, []])); // per-task cores
        for (const s of steps) {
          const name = `q${s.q}`;
          if (s.kind === 'finish') {
            held.get(name)!.splice(0, s.tasks);
            continue;
          }
          const used = new Map(queues.map((q) => [q.name, cpu(held.get(q.name)!.reduce((a, b) => a + b, 0))]));
          const work: PendingWork[] = [{ jobId: 'j', queue: name, priority: 0, createdAt: 0, resources: cpu(s.size), tasks: s.tasks }];
          const { placements } = placeTasks(work, nodes, { quota: new QuotaLedger(queues, used) });
          for (const p of placements) for (let k = 0; k < p.count; k++) held.get(name)!.push(s.size);
          // Invariant 5: each queue within nominal + borrowing limit; each cohort within Σ nominal,
          // and borrowing only from what the others lend.
          const sum = (q: QuotaQueue) => held.get(q.name)!.reduce((a, b) => a + b, 0) * 1000;
          for (const q of queues) {
            const cap = q.cohort ? q.nominal.cpu + (q.borrowingLimit?.cpu ?? Infinity) : q.nominal.cpu;
            if (sum(q) > cap) return false;
          }
          for (const c of ['c1', 'c2']) {
            const members = queues.filter((q) => q.cohort === c);
            const guaranteed = (q: QuotaQueue) => q.nominal.cpu - Math.min(q.lendingLimit?.cpu ?? q.nominal.cpu, q.nominal.cpu);
            const pool = members.reduce((a, q) => a + q.nominal.cpu - guaranteed(q), 0);
            const poolUsed = members.reduce((a, q) => a + Math.max(0, sum(q) - guaranteed(q)), 0);
            if (poolUsed > pool) return false;
          }
        }
        return true;
      }),
      { numRuns: 300 },
    );
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
