import { criticalPath, type DagStep, layoutDag, type TimedStep } from '../src/dag';

const step = (name: string, ...dependsOn: string[]): DagStep => ({ name, dependsOn });
const timed = (name: string, durationMs: number, ...dependsOn: string[]): TimedStep => ({ name, dependsOn, durationMs });

// Boxes 100×40, columns 50 apart, rows 20 apart, a margin of 10: a layer is 150 wide, a row 60 tall.
const SIZES = { nodeWidth: 100, nodeHeight: 40, columnGap: 50, rowGap: 20, margin: 10 };

describe('layoutDag', () => {
  it.each([
    {
      name: 'a chain: one step a layer, in a row',
      steps: [step('a'), step('b', 'a'), step('c', 'b')],
      // x = 10 + layer × 150; width = 2×10 + 3×100 + 2×50 = 420; height = 2×10 + 40 = 60
      placed: { a: [0, 0, 10, 10], b: [1, 0, 160, 10], c: [2, 0, 310, 10] },
      size: [420, 60],
    },
    {
      name: 'a diamond: the middle layer of two, the others centred on it',
      steps: [step('a'), step('b', 'a'), step('c', 'a'), step('d', 'b', 'c')],
      // tallest layer: 2 rows → height 2×10 + 2×40 + 20 = 120; a lone step sits half a row (60 / 2 = 30) lower: y = 40
      // d: mean of b's and c's tops, (10 + 70) / 2 = 40
      placed: { a: [0, 0, 10, 40], b: [1, 0, 160, 10], c: [1, 1, 160, 70], d: [2, 0, 310, 40] },
      size: [420, 120],
    },
    {
      name: 'a later layer sorted by where its dependencies are, so edges do not cross',
      steps: [step('r1'), step('r2'), step('r3'), step('x', 'r3'), step('y', 'r1')],
      // roots at y 10, 70, 130; x follows r3 (130) and y follows r1 (10): y goes first.
      // Two steps under a tallest of three: top = 10 + (3 − 2) × 60 / 2 = 40, so y at 40 and x at 100; height 2×10 + 3×40 + 2×20 = 180
      placed: { r1: [0, 0, 10, 10], r2: [0, 1, 10, 70], r3: [0, 2, 10, 130], x: [1, 1, 160, 100], y: [1, 0, 160, 40] },
      size: [270, 180],
    },
    {
      name: 'a step that depends on two layers above goes below the deeper one',
      steps: [step('a'), step('b', 'a'), step('c', 'a', 'b')],
      // c's layer is 1 + max(layer a = 0, layer b = 1) = 2
      placed: { a: [0, 0, 10, 10], b: [1, 0, 160, 10], c: [2, 0, 310, 10] },
      size: [420, 60],
    },
  ])('$name', ({ steps, placed, size }) => {
    const layout = layoutDag(steps, SIZES);
    expect(Object.fromEntries(layout.steps.map((s) => [s.name, [s.layer, s.row, s.x, s.y]]))).toEqual(placed);
    expect([layout.width, layout.height]).toEqual(size);
  });

  it('draws each edge from the right middle of the dependency to the left middle of the step', () => {
    const layout = layoutDag([step('a'), step('b', 'a'), step('c', 'a'), step('d', 'b', 'c')], SIZES);
    // a at (10, 40): right middle (10 + 100, 40 + 20); b at (160, 10): left middle (160, 10 + 20)
    expect(layout.edges.find((e) => e.from === 'a' && e.to === 'b')).toEqual({ from: 'a', to: 'b', x1: 110, y1: 60, x2: 160, y2: 30 });
    expect(layout.edges).toHaveLength(4);
  });

  it('refuses a dependency on no step, and a cycle', () => {
    expect(() => layoutDag([step('a', 'ghost')])).toThrow('step a depends on ghost, which is not a step');
    expect(() => layoutDag([step('a', 'b'), step('b', 'a')])).toThrow(/cycle/);
  });

  it('lays out nothing as a margin', () => {
    expect(layoutDag([], SIZES)).toMatchObject({ steps: [], edges: [], width: 20, height: 20 });
  });
});

describe('criticalPath', () => {
  it.each([
    {
      name: 'a chain is its own critical path',
      steps: [timed('a', 10), timed('b', 20, 'a'), timed('c', 5, 'b')],
      // 10 + 20 + 5 = 35
      expected: { steps: ['a', 'b', 'c'], totalMs: 35 },
    },
    {
      name: 'a diamond goes through its slower branch',
      steps: [timed('a', 1), timed('b', 10, 'a'), timed('c', 3, 'a'), timed('d', 2, 'b', 'c')],
      // through b: 1 + 10 + 2 = 13; through c: 1 + 3 + 2 = 6
      expected: { steps: ['a', 'b', 'd'], totalMs: 13 },
    },
    {
      name: 'a long lone step beats a chain of short ones',
      steps: [timed('a', 2), timed('b', 2, 'a'), timed('c', 2, 'b'), timed('solo', 7)],
      // chain: 2 + 2 + 2 = 6 < solo: 7
      expected: { steps: ['solo'], totalMs: 7 },
    },
    {
      name: 'before anything ran (all 0), the longest chain by steps',
      steps: [timed('a', 0), timed('b', 0, 'a'), timed('c', 0, 'b'), timed('d', 0, 'a')],
      // a → b → c: 3 steps; a → d: 2
      expected: { steps: ['a', 'b', 'c'], totalMs: 0 },
    },
    {
      name: 'equal chains: the one whose steps come first',
      steps: [timed('a', 5), timed('b', 5), timed('c', 1, 'a', 'b')],
      // a → c: 5 + 1 = 6; b → c: 5 + 1 = 6; a is given first
      expected: { steps: ['a', 'c'], totalMs: 6 },
    },
    {
      name: 'a fan-out map step counts once, at its own duration',
      steps: [timed('split', 1000), timed('shards', 4000, 'split'), timed('reduce', 500, 'shards'), timed('notify', 100, 'split')],
      // split → shards → reduce: 1000 + 4000 + 500 = 5500; split → notify: 1100
      expected: { steps: ['split', 'shards', 'reduce'], totalMs: 5500 },
    },
    { name: 'no steps, no path', steps: [], expected: { steps: [], totalMs: 0 } },
  ])('$name', ({ steps, expected }) => {
    expect(criticalPath(steps)).toEqual(expected);
  });
});
