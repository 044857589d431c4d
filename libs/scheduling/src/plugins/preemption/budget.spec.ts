import { preemptionBudget } from './budget';

describe('preemptionBudget', () => {
  const NOW = 1_000_000;
  const table: Array<{
    name: string;
    stoppedAt: Record<string, number[]>;
    perMinute: number;
    budget: Record<string, number>;
    recent: Record<string, number[]>;
  }> = [
    { name: 'no stops: no entry (unlimited)', stoppedAt: {}, perMinute: 100, budget: {}, recent: {} },
    // 3 − 2 = 1
    {
      name: 'stops inside the minute count',
      stoppedAt: { q: [NOW - 1000, NOW - 59_999] },
      perMinute: 3,
      budget: { q: 1 },
      recent: { q: [NOW - 1000, NOW - 59_999] },
    },
    // NOW − 60 000 is exactly a minute old: out of the window → 3 − 1 = 2
    { name: 'a stop a minute old has left the window', stoppedAt: { q: [NOW - 60_000, NOW - 1] }, perMinute: 3, budget: { q: 2 }, recent: { q: [NOW - 1] } },
    // max(0, 2 − 4) = 0
    {
      name: 'never below zero',
      stoppedAt: { q: [NOW - 1, NOW - 2, NOW - 3, NOW - 4] },
      perMinute: 2,
      budget: { q: 0 },
      recent: { q: [NOW - 1, NOW - 2, NOW - 3, NOW - 4] },
    },
    { name: 'queues are counted apart', stoppedAt: { a: [NOW - 1], b: [] }, perMinute: 1, budget: { a: 0, b: 1 }, recent: { a: [NOW - 1], b: [] } },
  ];
  it.each(table)('$name', ({ stoppedAt, perMinute, budget, recent }) => {
    const out = preemptionBudget(new Map(Object.entries(stoppedAt)), NOW, perMinute);
    expect(Object.fromEntries(out.budget)).toEqual(budget);
    expect(Object.fromEntries(out.recent)).toEqual(recent);
  });
});
