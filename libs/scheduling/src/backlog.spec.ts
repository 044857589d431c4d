import { boundWork } from './backlog';
import { queueOrder } from './plugins/queue-sort';
import type { PendingWork } from './snapshot';

const work = (queue: string, i: number, priority = 0): PendingWork => ({
  jobId: `${queue}-${String(i).padStart(4, '0')}`,
  queue,
  priority,
  createdAt: i,
  resources: { cpu: 1000 },
  tasks: 1,
});

describe('boundWork: the pending jobs one cycle considers', () => {
  it('keeps all work, as given, when it fits in the bound', () => {
    const all = [work('a', 3), work('b', 1), work('a', 2)];
    const w = boundWork(all, 3);
    expect(w.work).toEqual(all);
    expect(w.deferred).toBe(0);
  });

  it('takes the heads of every queue first, round robin, so a long queue does not hide a short one', () => {
    // a: 100 old jobs; b: 2 jobs newer than all of a's. Bound 10: 5 from the heads (a0, b0, a1, b1, a2), 5 from the rest.
    const all = [...Array.from({ length: 100 }, (_, i) => work('a', i)), work('b', 1000), work('b', 1001)];
    const w = boundWork(all, 10);
    expect(w.work).toHaveLength(10);
    expect(w.deferred).toBe(92);
    expect(w.work.map((x) => x.jobId)).toEqual(expect.arrayContaining(['a-0000', 'a-0001', 'a-0002', 'b-1000', 'b-1001']));
    expect([...w.work].sort(queueOrder)).toEqual(w.work);
  });

  it('puts the higher priority work of a queue in its head', () => {
    const all = [...Array.from({ length: 50 }, (_, i) => work('a', i)), work('a', 999, 5)];
    expect(boundWork(all, 4).work.map((x) => x.jobId)).toContain('a-0999');
  });

  it('rotates over the rest: every job is considered within ceil(rest / window) cycles', () => {
    // 1,000 jobs, bound 100: 50 heads every cycle, and a window of 50 over the other 950 → 19 cycles.
    const all = Array.from({ length: 1000 }, (_, i) => work(i % 3 ? 'a' : 'b', i));
    const seen = new Set<string>();
    let cursor = 0;
    for (let c = 0; c < 19; c++) {
      const w = boundWork(all, 100, cursor);
      expect(w.work).toHaveLength(100);
      for (const x of w.work) seen.add(x.jobId);
      cursor = w.cursor;
    }
    expect(seen.size).toBe(1000);
  });
});
