import type { ResourceVector } from '@batchapi/api';
import type { PendingWork } from '../../index';
import { dominantShare, type FairShareInput, fairShareOrder, type PlaceStep } from './index';

const GiB = 2 ** 30;

describe('dominantShare', () => {
  const table: Array<{ name: string; usage: ResourceVector; capacity: ResourceVector; weight?: number; want: number }> = [
    // max(2000/8000, 4/32) = max(0.25, 0.125) = 0.25
    { name: 'the largest share of any resource', usage: { cpu: 2000, memory: 4 * GiB }, capacity: { cpu: 8000, memory: 32 * GiB }, want: 0.25 },
    // max(1000/64000, 1000/8000) = max(0.015625, 0.125) = 0.125: one GPU of 8 dominates one core of 64
    { name: 'a scarce resource dominates', usage: { cpu: 1000, gpu: 1000 }, capacity: { cpu: 64_000, gpu: 8000 }, want: 0.125 },
    // 0.25 ÷ 2 = 0.125
    { name: 'a weight of 2 halves the share', usage: { cpu: 2000 }, capacity: { cpu: 8000 }, weight: 2, want: 0.125 },
    // 0.25 ÷ 0.5 = 0.5
    { name: 'a weight below 1 raises the share', usage: { cpu: 2000 }, capacity: { cpu: 8000 }, weight: 0.5, want: 0.5 },
    // gpu is not in the capacity: ignored → max(1000/8000) = 0.125
    { name: 'a resource the capacity lacks is ignored', usage: { cpu: 1000, gpu: 4000 }, capacity: { cpu: 8000 }, want: 0.125 },
    // capacity gpu 0: ignored (no division by zero) → 0
    { name: 'a resource of zero capacity is ignored', usage: { gpu: 1000 }, capacity: { gpu: 0 }, want: 0 },
    // nothing held → 0
    { name: 'no usage is no share', usage: {}, capacity: { cpu: 8000 }, want: 0 },
  ];
  it.each(table)('$name', ({ usage, capacity, weight, want }) => {
    expect(dominantShare(usage, capacity, weight)).toBeCloseTo(want, 12);
  });
});

/**
 * Drives `fairShareOrder` with a fake engine: each call places min(limit, tasks left, budget
 * left) tasks, lowers `w.tasks` and the budget, and is recorded as `jobId×placed`.
 */
function run(work: PendingWork[], fair: FairShareInput, budget: number) {
  const calls: string[] = [];
  const placed = new Map<string, number>();
  let left = budget;
  const place = (w: PendingWork, limit: number): PlaceStep => {
    const want = Math.min(limit, w.tasks);
    const n = Math.min(want, left);
    w.tasks -= n;
    left -= n;
    calls.push(`${w.jobId}×${n}`);
    placed.set(w.queue, (placed.get(w.queue) ?? 0) + n);
    return { placed: n, blocked: n < want };
  };
  const blocked = fairShareOrder(work, fair, () => left, place);
  return { calls, placed: Object.fromEntries(placed), blocked: [...blocked].map((w) => w.jobId) };
}

const work = (jobId: string, queue: string, tasks: number, priority = 0): PendingWork => ({
  jobId,
  queue,
  priority,
  createdAt: 0,
  resources: { cpu: 1000 },
  tasks,
});

describe('fairShareOrder: progressive filling between queues', () => {
  // 8 cores; every task takes 1 core = 0.125 of the cluster (÷ its queue's weight), exact in binary
  const capacity = { cpu: 8000 };
  const table: Array<{
    name: string;
    work: PendingWork[];
    usage?: Record<string, ResourceVector>;
    weights?: Record<string, number>;
    budget: number;
    calls: string[];
    placed: Record<string, number>;
  }> = [
    {
      // shares (a, b): (0, 0) → a (tie by name) → (0.125, 0) → b, limit ⌊0.125 / 0.125⌋ = 1 → (0.125, 0.125)
      // → a → …: one task per step, shares never more than 0.125 apart; budget 6 → 3 + 3
      name: 'two queues of equal weight alternate one task at a time',
      work: [work('a1', 'a', 10), work('b1', 'b', 10)],
      budget: 6,
      calls: ['a1×1', 'b1×1', 'a1×1', 'b1×1', 'a1×1', 'b1×1'],
      placed: { a: 3, b: 3 },
    },
    {
      // a's task is worth 0.125 ÷ 2 = 0.0625: (0, 0) → a .0625 → b .125 → a .125 → a .1875 (tie, by name)
      // → b .25 → a .25 → a .3125 → b .375 → a .375: 6 to a, 3 to b, 2:1 as the weights
      name: 'weights 2:1 give the heavier queue twice the tasks',
      work: [work('a1', 'a', 10), work('b1', 'b', 10)],
      weights: { a: 2 },
      budget: 9,
      calls: ['a1×1', 'b1×1', 'a1×1', 'a1×1', 'b1×1', 'a1×1', 'a1×1', 'b1×1', 'a1×1'],
      placed: { a: 6, b: 3 },
    },
    {
      // b already holds 3 cores (0.375): a catches up in one step of ⌊(0.375 − 0) / 0.125⌋ = 3 tasks;
      // then (0.375, 0.375) → a (tie, by name) → b: budget 5 → 3 + 1 + 1
      name: 'a queue behind catches up in one step',
      work: [work('a1', 'a', 10), work('b1', 'b', 10)],
      usage: { b: { cpu: 3000 } },
      budget: 5,
      calls: ['a1×3', 'a1×1', 'b1×1'],
      placed: { a: 4, b: 1 },
    },
    {
      // b's priority-5 work goes before any priority-0 work, though b holds more (0.625 > 0):
      // level 5 has only b → all its 2 tasks in one step (no other queue's share to stop at)
      name: 'work of a higher priority level goes first',
      work: [work('a1', 'a', 2, 0), work('b0', 'b', 2, 0), work('b5', 'b', 2, 5)],
      usage: { b: { cpu: 5000 } },
      budget: 100,
      // level 0 after b5: shares a 0, b 0.875 → a may take ⌊0.875 / 0.125⌋ = 7 ≥ its 2 tasks → then b0 alone its 2
      calls: ['b5×2', 'a1×2', 'b0×2'],
      placed: { b: 4, a: 2 },
    },
    {
      // one queue only: no next share to stop at → all its 4 tasks in one call
      name: 'a queue alone places all its work at once',
      work: [work('a1', 'a', 4)],
      budget: 100,
      calls: ['a1×4'],
      placed: { a: 4 },
    },
  ];
  it.each(table)('$name', ({ work: w, usage, weights, budget, calls, placed }) => {
    const fair: FairShareInput = {
      capacity,
      usage: new Map(Object.entries(usage ?? {})),
      weights: weights ? new Map(Object.entries(weights)) : undefined,
    };
    const got = run(w, fair, budget);
    expect(got.calls).toEqual(calls);
    expect(got.placed).toEqual(placed);
  });

  it('keeps the shares of two equal queues within one task of each other after every step', () => {
    const a = work('a1', 'a', 50);
    const b = work('b1', 'b', 50);
    const spread: number[] = [];
    let left = 80;
    fairShareOrder(
      [a, b],
      { capacity, usage: new Map() },
      () => left,
      (w, limit) => {
        const n = Math.min(limit, w.tasks, left);
        w.tasks -= n;
        left -= n;
        spread.push(Math.abs(50 - a.tasks - (50 - b.tasks)));
        return { placed: n, blocked: false };
      },
    );
    // 80 tasks, 40 each, never more than one apart
    expect({ a: 50 - a.tasks, b: 50 - b.tasks }).toEqual({ a: 40, b: 40 });
    expect(Math.max(...spread)).toBe(1);
  });

  it('returns the work that left blocked, and goes on with the other queues', () => {
    // a1 finds no room (places 0, blocked): it leaves the pass; b1 then takes every task
    const a1 = work('a1', 'a', 3);
    const b1 = work('b1', 'b', 3);
    const calls: string[] = [];
    const left = fairShareOrder(
      [a1, b1],
      { capacity, usage: new Map() },
      () => 100,
      (w, limit) => {
        const n = w.queue === 'a' ? 0 : Math.min(limit, w.tasks);
        w.tasks -= n;
        calls.push(`${w.jobId}×${n}`);
        return { placed: n, blocked: n < Math.min(limit, w.tasks + n) };
      },
    );
    expect(calls).toEqual(['a1×0', 'b1×3']);
    expect([...left]).toEqual([a1]);
  });
});
