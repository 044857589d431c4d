import { lostNodes } from './index';

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
