import type { RuntimeEstimates } from '@batchapi/api';
import type { BackfillSettings } from './index';
import { learnedRuntimeSeconds, MAX_RUNTIME_ESTIMATE_SECONDS, withLearnedRuntimes } from './learned';

const learned: RuntimeEstimates = {
  at: 0,
  from: 0,
  quantile: 0.9,
  queues: { train: { seconds: 12_959.2, samples: 40 }, etl: { seconds: 0.2, samples: 900 }, huge: { seconds: 1e9, samples: 30 } },
};
// configured: the default 3600 s, and dev set by an operator to 600 s
const settings: BackfillSettings = {
  maxReservations: 1,
  runtimeSeconds: (q) => (q === 'dev' || q === 'train-ops' ? 600 : 3600),
  configured: (q) => q === 'dev' || q === 'train-ops',
};

describe('learnedRuntimeSeconds', () => {
  it.each<[string, number | undefined]>([
    ['train', 12_960], // 12,959.2 s rounded up
    ['etl', 1], // 0.2 s: at least 1
    ['huge', MAX_RUNTIME_ESTIMATE_SECONDS], // 1e9 s: at most 30 days
    ['nope', undefined], // no estimate
    ['toString', undefined], // not an own key
  ])('%s → %s', (queue, want) => {
    expect(learnedRuntimeSeconds(learned, queue)).toBe(want);
  });
});

describe('withLearnedRuntimes', () => {
  it.each<[string, RuntimeEstimates | undefined, number]>([
    ['train', learned, 12_960], // learned, over the default
    ['dev', { ...learned, queues: { ...learned.queues, dev: { seconds: 50, samples: 100 } } }, 600], // an operator's setting wins
    ['other', learned, 3600], // neither: the default
    ['train', undefined, 3600], // nothing learned yet
    ['train', { ...learned, queues: {} }, 3600], // nothing with enough samples
  ])('%s with %p → %s s', (queue, l, want) => {
    expect(withLearnedRuntimes(settings, l).runtimeSeconds(queue)).toBe(want);
  });
  it('keeps the other settings', () => {
    expect(withLearnedRuntimes(settings, learned).maxReservations).toBe(1);
  });
});
