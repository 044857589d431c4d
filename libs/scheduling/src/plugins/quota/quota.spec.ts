import fc from 'fast-check';
import type { ResourceVector } from '@batchapi/api';
import { placeTasks } from '../../index';
import { chargeOf, decayUsage, QuotaLedger, type QuotaQueue } from '../../index';
import type { NodeSnapshot, PendingWork } from '../../index';

const cpu = (n: number): ResourceVector => ({ cpu: n * 1000 });
const usage = (entries: Record<string, number>) => new Map(Object.entries(entries).map(([q, n]) => [q, cpu(n)]));

/** Queues `a` and `b` of 10 cores each in cohort `c`, with what `a` and `b` add or change. */
const cohortOfTwo = (a: Partial<QuotaQueue> = {}, b: Partial<QuotaQueue> = {}): QuotaQueue[] => [
  { name: 'a', cohort: 'c', nominal: cpu(10), ...a },
  { name: 'b', cohort: 'c', nominal: cpu(10), ...b },
];

describe('QuotaLedger: room with cohorts, borrowing and lending limits', () => {
  const table: Array<{ name: string; queues: QuotaQueue[]; used: Record<string, number>; room: Record<string, number> }> = [
    // no cohort: room = nominal − used = 10 − 4 = 6
    { name: 'a queue alone has its nominal minus what it holds', queues: [{ name: 'a', nominal: cpu(10) }], used: { a: 4 }, room: { a: 6 } },
    // pool = 10 + 10 = 20, poolUsed = 4 + 0; a: min(∞, 0 + 20 − 4) = 16; b: 20 − 4 = 16
    { name: 'a cohort lends idle nominal to its members', queues: cohortOfTwo(), used: { a: 4 }, room: { a: 16, b: 16 } },
    // a: min(10 + 3 − 4, 16) = 9 (borrowing limit 3); b: 16
    {
      name: 'a borrowing limit caps what a queue takes beyond its nominal',
      queues: cohortOfTwo({ borrowingLimit: cpu(3) }),
      used: { a: 4 },
      room: { a: 9, b: 16 },
    },
    // b lends 2: guaranteed(b) = 8; pool = 10 + 2 = 12; poolUsed = max(0, 4 − 0) = 4
    // a: 0 + 12 − 4 = 8; b: max(0, 8 − 0) + 12 − 4 = 16
    {
      name: "a lending limit keeps the rest of a queue's nominal for itself",
      queues: cohortOfTwo({}, { lendingLimit: cpu(2) }),
      used: { a: 4 },
      room: { a: 8, b: 16 },
    },
    // a borrowed all of b's idle 10: pool 20, poolUsed 20 → a: 0; b: 0 + 20 − 20 = 0 (b must reclaim)
    { name: 'capacity borrowed away leaves the lender no room until it reclaims', queues: cohortOfTwo(), used: { a: 20 }, room: { a: 0, b: 0 } },
  ];
  it.each(table)('$name', ({ queues, used, room }) => {
    const l = new QuotaLedger(queues, usage(used));
    for (const [q, n] of Object.entries(room)) expect(l.room(q).cpu).toBe(n * 1000);
  });

  it('takes and gives back, keeping the cohort pool consistent', () => {
    const l = new QuotaLedger(cohortOfTwo(), new Map());
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
