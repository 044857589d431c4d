import { amount, deviceFill, quotaBars, resourceOrder } from '../src/bars';

describe('amount', () => {
  it.each([
    ['2', 2],
    ['1500m', 1.5], // 1500 × 0.001
    ['4Gi', 4 * 1024 ** 3],
    ['512Mi', 512 * 1024 ** 2],
    [0.5, 0.5],
    ['1k', 1000],
    [undefined, 0],
  ])('%p is %p', (q, n) => expect(amount(q)).toBe(n));

  it('is NaN for text that is not a quantity', () => expect(amount('lots')).toBeNaN());
});

type Quantities = Record<string, string | number>;
const BAR_CASES: Array<{ name: string; nominal: Quantities; used: Quantities; borrowed?: Quantities; bars: unknown[] }> = [
  {
    name: 'half the CPU quota used',
    nominal: { cpu: '4' },
    used: { cpu: '2' },
    // span = max(4, 2) = 4: within 2 / 4, nothing beyond, the quota ends at the bar's end
    bars: [{ resource: 'cpu', nominal: '4', used: '2', within: 0.5, beyond: 0, quotaAt: 1 }],
  },
  {
    name: 'borrowing beyond the quota',
    nominal: { memory: '4Gi' },
    used: { memory: '8Gi' },
    borrowed: { memory: '4Gi' },
    // span = max(4, 8) = 8 Gi: within 4 / 8, beyond (8 − 4) / 8, the quota ends halfway
    bars: [{ resource: 'memory', nominal: '4Gi', used: '8Gi', borrowed: '4Gi', within: 0.5, beyond: 0.5, quotaAt: 0.5 }],
  },
  {
    name: 'no quota (unlimited): the bar is the use',
    nominal: {},
    used: { gpu: 1.5 },
    // span = 1.5: all within, no quota mark
    bars: [{ resource: 'gpu', used: 1.5, within: 1, beyond: 0 }],
  },
  {
    name: 'a quota nothing uses',
    nominal: { 'gpu:A100': 2 },
    used: {},
    // span = 2: nothing used
    bars: [{ resource: 'gpu:A100', nominal: 2, used: 0, within: 0, beyond: 0, quotaAt: 1 }],
  },
];

describe('quotaBars', () => {
  it.each(BAR_CASES)('$name', ({ nominal, used, borrowed, bars }) => {
    expect(quotaBars(nominal, used, borrowed)).toEqual(bars);
  });
});

describe('resourceOrder', () => {
  it('puts CPU, memory, GPUs and each GPU model first, then the rest by name', () => {
    expect(resourceOrder(['pods', 'gpu:H100', 'memory', 'gpu', 'cpu', 'gpu:A100', 'memory'])).toEqual(['cpu', 'memory', 'gpu', 'gpu:A100', 'gpu:H100', 'pods']);
  });
});

describe('deviceFill', () => {
  it.each([
    [0, 'free'],
    [250, 'partial'], // a quarter of the device, shared
    [999, 'partial'],
    [1000, 'full'],
  ])('%p milli-GPU: %p', (milli, fill) => expect(deviceFill(milli)).toBe(fill));
});
