import { isMassLoss, lostNodes, recentlyGone } from './index';

describe('lostNodes', () => {
  const AFTER = 12_000; // lease TTL 10 s + grace 2 s
  const table: Array<{
    name: string;
    live: string[];
    holding: string[];
    missingSince: Record<string, number>;
    mono: number;
    expected: { missingSince: Record<string, number>; lost: Array<{ node: string; goneForMs: number }> };
  }> = [
    { name: 'a live node is never missing', live: ['a'], holding: ['a', 'a'], missingSince: {}, mono: 100, expected: { missingSince: {}, lost: [] } },
    {
      name: 'a node first seen missing starts its wait now',
      live: [],
      holding: ['a'],
      missingSince: {},
      mono: 100,
      expected: { missingSince: { a: 100 }, lost: [] },
    },
    // 100 + 11 999 = 12 099: 1 ms short
    {
      name: 'not lost one millisecond before the wait ends',
      live: [],
      holding: ['a'],
      missingSince: { a: 100 },
      mono: 12_099,
      expected: { missingSince: { a: 100 }, lost: [] },
    },
    // 12 100 − 100 = 12 000 ≥ 12 000
    {
      name: 'lost when gone for exactly the wait',
      live: [],
      holding: ['a'],
      missingSince: { a: 100 },
      mono: 12_100,
      expected: { missingSince: { a: 100 }, lost: [{ node: 'a', goneForMs: 12_000 }] },
    },
    {
      name: 'a node that came back is forgotten',
      live: ['a'],
      holding: ['a'],
      missingSince: { a: 100 },
      mono: 50_000,
      expected: { missingSince: {}, lost: [] },
    },
    {
      name: 'a node holding nothing any more is forgotten',
      live: [],
      holding: [],
      missingSince: { a: 100 },
      mono: 50_000,
      expected: { missingSince: {}, lost: [] },
    },
    // b: 30 000 − 5 000 = 25 000 ≥ 12 000; c new
    {
      name: 'several nodes, each on its own clock',
      live: ['a'],
      holding: ['a', 'b', 'c'],
      missingSince: { b: 5_000 },
      mono: 30_000,
      expected: { missingSince: { b: 5_000, c: 30_000 }, lost: [{ node: 'b', goneForMs: 25_000 }] },
    },
  ];
  it.each(table)('$name', ({ live, holding, missingSince, mono, expected }) => {
    const d = lostNodes(new Set(live), holding, new Map(Object.entries(missingSince)), mono, AFTER);
    expect({ missingSince: Object.fromEntries(d.missingSince), lost: d.lost }).toEqual(expected);
  });
});

describe('isMassLoss', () => {
  it.each([
    // [missing, live, mass loss?]
    { missing: 0, live: 0, want: false }, // nothing missing
    { missing: 1, live: 0, want: true }, // every node missing (a one-node cluster: nothing else to run on either)
    { missing: 2, live: 0, want: true }, // every node missing
    { missing: 2, live: 1, want: false }, // 2 of 3 = 67%, but not more than 2 missing
    { missing: 3, live: 2, want: true }, // 3 > 2 and 3 / 5 = 60% ≥ 55%
    { missing: 3, live: 3, want: false }, // 3 / 6 = 50% < 55%
    { missing: 11, live: 9, want: true }, // 11 / 20 = 55% ≥ 55%
    { missing: 10, live: 10, want: false }, // 10 / 20 = 50%
    { missing: 1, live: 99, want: false }, // one node among a hundred: its own trouble
  ])('$missing missing, $live live → $want', ({ missing, live, want }) => {
    expect(isMassLoss(missing, live)).toBe(want);
  });

  it('tells a mass loss from the nodes missing now, lost or not yet', () => {
    const AFTER = 12_000;
    // b and c lost, d missing for 1 s, a live: 3 of 4 missing = 75%, 3 > 2
    const mass = lostNodes(
      new Set(['a']),
      ['a', 'b', 'c', 'd'],
      new Map([
        ['b', 0],
        ['c', 0],
        ['d', 29_000],
      ]),
      30_000,
      AFTER,
    );
    expect(mass.lost.map((l) => l.node)).toEqual(['b', 'c']);
    expect(mass.massLoss).toBe(true);
    // b lost among a, c, d live: 1 of 4
    const one = lostNodes(new Set(['a', 'c', 'd']), ['a', 'b', 'c', 'd'], new Map([['b', 0]]), 30_000, AFTER);
    expect(one.lost.map((l) => l.node)).toEqual(['b']);
    expect(one.massLoss).toBe(false);
  });
});

describe('recentlyGone', () => {
  it('keeps a node gone within the window as gone, forgets it after, and records the live ones now', () => {
    const last = new Map([
      ['a', 1_000], // live now
      ['b', 9_500], // gone; 10 000 − 9 500 = 500 < 1 000: still counted
      ['c', 8_000], // gone; 10 000 − 8 000 = 2 000 ≥ 1 000: forgotten
    ]);
    const { lastLive, gone } = recentlyGone(last, new Set(['a', 'd']), 10_000, 1_000);
    expect([...gone]).toEqual(['b']);
    expect(Object.fromEntries(lastLive)).toEqual({ a: 10_000, b: 9_500, d: 10_000 });
  });

  it('makes a partition of mostly idle nodes a mass loss', () => {
    const AFTER = 12_000;
    // 1 busy node lost, 3 idle ones gone with it, 3 live: 4 of 7 missing = 57% ≥ 55%, 4 > 2
    const live = new Set(['l1', 'l2', 'l3']);
    const with_ = lostNodes(live, ['busy'], new Map([['busy', 0]]), 20_000, AFTER, undefined, new Set(['i1', 'i2', 'i3']));
    expect(with_.lost.map((l) => l.node)).toEqual(['busy']);
    expect(with_.massLoss).toBe(true);
    // without the idle ones: 1 of 4, its own trouble
    expect(lostNodes(live, ['busy'], new Map([['busy', 0]]), 20_000, AFTER).massLoss).toBe(false);
  });
});
