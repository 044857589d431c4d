import { type PendingWork, placeTasks, queueOrder } from '../../index';
import { parseResources } from '@batchapi/api';
import { agePendingWork, agingBoost, agingCatchUpMs, agingOf, NO_AGING } from './index';

const H = 3_600_000;
const M = 60_000;

describe('agingBoost', () => {
  it.each([
    // boost = min(max, floor(perHour × wait / 1 h))
    { name: 'off by default', wait: 10 * H, aging: NO_AGING, boost: 0 },
    { name: 'no wait, no boost', wait: 0, aging: { perHour: 10, max: 100 }, boost: 0 },
    { name: 'a clock skew (negative wait) adds nothing', wait: -5 * M, aging: { perHour: 10, max: 100 }, boost: 0 },
    { name: '10/h for 30 min → floor(5) = 5', wait: 30 * M, aging: { perHour: 10, max: 100 }, boost: 5 },
    { name: '10/h for 35 min → floor(5.83) = 5 (whole points)', wait: 35 * M, aging: { perHour: 10, max: 100 }, boost: 5 },
    { name: '1/h for 59 min → floor(0.98) = 0', wait: 59 * M, aging: { perHour: 1, max: 100 }, boost: 0 },
    { name: '1/h for exactly 3 h → 3', wait: 3 * H, aging: { perHour: 1, max: 100 }, boost: 3 },
    { name: '60/h for 1 min → 1 point a minute', wait: M, aging: { perHour: 60, max: 100 }, boost: 1 },
    { name: '10/h for 48 h → 480, capped at 100', wait: 48 * H, aging: { perHour: 10, max: 100 }, boost: 100 },
    { name: 'a cap of 0 turns it off', wait: 48 * H, aging: { perHour: 10, max: 0 }, boost: 0 },
    { name: '0.5/h for 5 h → floor(2.5) = 2', wait: 5 * H, aging: { perHour: 0.5, max: 10 }, boost: 2 },
  ])('$name', ({ wait, aging, boost }) => {
    expect(agingBoost(wait, aging)).toBe(boost);
  });
});

describe('agingCatchUpMs', () => {
  it.each([
    // ceil(gap × 1 h / perHour)
    { name: 'priority 0 reaches 10 at 60/h after 10 min', from: 0, to: 10, aging: { perHour: 60, max: 100 }, ms: 10 * M },
    { name: 'priority 0 reaches 5 at 2/h after 2.5 h', from: 0, to: 5, aging: { perHour: 2, max: 100 }, ms: 2.5 * H },
    { name: 'already there', from: 7, to: 5, aging: { perHour: 2, max: 100 }, ms: 0 },
    { name: 'cap below the gap: never', from: 0, to: 50, aging: { perHour: 60, max: 49 }, ms: undefined },
    { name: 'aging off: never', from: 0, to: 1, aging: NO_AGING, ms: undefined },
    { name: '3/h for a gap of 1: ceil(1 200 000) ms = 20 min', from: 0, to: 1, aging: { perHour: 3, max: 10 }, ms: 20 * M },
  ])('$name', ({ from, to, aging, ms }) => {
    const got = agingCatchUpMs(from, to, aging);
    expect(got).toBe(ms);
    // The bound is tight: at it the boost closes the gap, a millisecond earlier it does not.
    if (got !== undefined && got > 0) {
      expect(agingBoost(got, aging)).toBeGreaterThanOrEqual(to - from);
      expect(agingBoost(got - 1, aging)).toBeLessThan(to - from);
    }
  });
});

describe('agingOf', () => {
  it("takes the queue's own fields, else the cluster-wide setting, field by field", () => {
    const cluster = { perHour: 6, max: 20 };
    expect(agingOf(undefined, cluster)).toEqual(cluster);
    expect(agingOf({ priorityAgingPerHour: 60 }, cluster)).toEqual({ perHour: 60, max: 20 });
    expect(agingOf({ priorityAgingPerHour: 0, priorityAgingMax: 5 }, cluster)).toEqual({ perHour: 0, max: 5 });
  });
});

const work = (jobId: string, priority: number, createdAt: number, queue = 'q'): PendingWork => ({
  jobId,
  queue,
  priority,
  createdAt,
  resources: parseResources({ cpu: '1' }),
  tasks: 1,
});

describe('agePendingWork', () => {
  it('raises the effective priority and keeps the submitted one; the input is not changed', () => {
    const w = work('old', 2, 0);
    // 60/h, 5 min waited → +5: effective 7, base 2
    expect(agePendingWork(w, 5 * M, { perHour: 60, max: 10 })).toMatchObject({ priority: 7, basePriority: 2 });
    expect(w).toEqual(work('old', 2, 0));
    // no boost: the same object back, no basePriority
    expect(agePendingWork(w, 30_000, { perHour: 60, max: 10 })).toBe(w);
  });

  it('puts long-waiting low-priority work ahead of fresh higher-priority work in queue order and placement', () => {
    // 1 slot. low (prio 0) waited 15 min at 60/h → 0 + 15 = 15; fresh (prio 10) → 10: low goes first.
    const now = 15 * M;
    const aging = { perHour: 60, max: 100 };
    const ws = [work('fresh', 10, now), work('low', 0, 0)].map((w) => agePendingWork(w, now, aging));
    expect([...ws].sort(queueOrder).map((w) => w.jobId)).toEqual(['low', 'fresh']);
    const node = { name: 'n', capacity: parseResources({ cpu: '1' }), used: {}, devices: {}, gpuCount: 0, labels: {}, taints: [] };
    expect(placeTasks(ws, [node]).placements.map((p) => p.jobId)).toEqual(['low']);
    // Without aging, fresh wins.
    expect(placeTasks([work('fresh', 10, now), work('low', 0, 0)], [node]).placements.map((p) => p.jobId)).toEqual(['fresh']);
  });
});
