import { recordPreemptions, repeatExempt } from './damping';

const M = 60_000;

describe('repeatExempt', () => {
  it.each([
    // exempt when |{t : now − t < window}| ≥ max
    { name: '3 stops in 10 min reach a limit of 3', times: [0, 2 * M, 4 * M], now: 5 * M, max: 3, exempt: true, kept: 3 },
    { name: '2 stops stay under a limit of 3', times: [0, 2 * M], now: 5 * M, max: 3, exempt: false, kept: 2 },
    { name: 'the oldest left the window: 10 min − 0 = 600 000 is not < 600 000', times: [0, 2 * M, 4 * M], now: 10 * M, max: 3, exempt: false, kept: 2 },
    { name: 'a limit of 0 is off', times: [0, M, 2 * M, 3 * M], now: 4 * M, max: 0, exempt: false, kept: 4 },
    { name: 'a limit of 1: once is enough', times: [9 * M], now: 10 * M, max: 1, exempt: true, kept: 1 },
  ])('$name', ({ times, now, max, exempt, kept }) => {
    const r = repeatExempt(new Map([['j', times]]), now, { maxPreemptions: max, windowMs: 10 * M });
    expect(r.exempt.has('j')).toBe(exempt);
    expect(r.recent.get('j')?.length ?? 0).toBe(kept);
  });

  it('forgets jobs with no stop left in the window', () => {
    const r = repeatExempt(new Map([['gone', [0]]]), 11 * M, { maxPreemptions: 1, windowMs: 10 * M });
    expect(r.recent.has('gone')).toBe(false);
  });
});

describe('recordPreemptions', () => {
  it('records one stop per job per cycle, however many of its tasks were stopped', () => {
    const v = (jobId: string) => ({ task: { jobId } });
    const before = new Map([['a', [0]]]);
    const after = recordPreemptions(before, [v('a'), v('a'), v('b')], 5);
    expect(Object.fromEntries(after)).toEqual({ a: [0, 5], b: [5] });
    expect(before.get('a')).toEqual([0]);
  });
});
