import { recordNodeFailure } from './quarantine';

describe('recordNodeFailure', () => {
  const policy = { failures: 3, windowMs: 600_000 };
  it.each([
    // first failure: 1 of 3
    { times: [], now: 1_000, want: { times: [1_000], quarantine: false } },
    // third within 10 min (0, 5, 9 min): quarantine
    { times: [0, 300_000], now: 540_000, want: { times: [0, 300_000, 540_000], quarantine: true } },
    // the first fell out of the window (11 min ago): 2 of 3
    { times: [0, 300_000], now: 660_000, want: { times: [300_000, 660_000], quarantine: false } },
  ])('failures at $times, another at $now → $want.quarantine', ({ times, now, want }) => {
    expect(recordNodeFailure(times, now, policy)).toEqual(want);
  });
});
