import type { PendingWork } from '../snapshot';
import { ShapeIds, shapeKey } from './shape-ids';

const work = (extra: Partial<PendingWork>): PendingWork => ({
  jobId: 'j',
  queue: 'q',
  priority: 0,
  createdAt: 0,
  resources: { cpu: 1000 },
  tasks: 1,
  ...extra,
});

describe('ShapeIds', () => {
  // Each row: two pieces of work, whether backfill counts the timeout, and whether their shape keys
  // (the JSON text of resources, selector, tolerations, timeout, topology, image) are equal.
  it.each<[string, Partial<PendingWork>, Partial<PendingWork>, boolean, boolean]>([
    ['equal resources, no selector', { resources: { cpu: 1000, memory: 2 ** 30 } }, { resources: { cpu: 1000, memory: 2 ** 30 } }, false, true],
    // one millicore apart: 1000 vs 1001
    ['resources one millicore apart', { resources: { cpu: 1000 } }, { resources: { cpu: 1001 } }, false, false],
    // {"cpu":1,"memory":2} vs {"memory":2,"cpu":1}: JSON writes keys in their order, so two keys
    ['the same resources in another order', { resources: { cpu: 1, memory: 2 } }, { resources: { memory: 2, cpu: 1 } }, false, false],
    // a key more: {"cpu":1000} vs {"cpu":1000,"gpu":0}
    ['a resource more, even of 0', { resources: { cpu: 1000 } }, { resources: { cpu: 1000, gpu: 0 } }, false, false],
    // JSON writes −0 as 0, and −0 === 0: one shape
    ['−0 and 0 are one shape', { resources: { cpu: 1000, gpu: -0 } }, { resources: { cpu: 1000, gpu: 0 } }, false, true],
    // an undefined amount is left out of the JSON: {"cpu":1000} both
    ['an undefined amount is no amount', { resources: { cpu: 1000, gpu: undefined as unknown as number } }, { resources: { cpu: 1000 } }, false, true],
    // null vs {}: no selector is not an empty one
    ['no selector and an empty selector differ', {}, { selector: {} }, false, false],
    ['equal selectors', { selector: { zone: 'z1' } }, { selector: { zone: 'z1' } }, false, true],
    ['selectors of other values', { selector: { zone: 'z1' } }, { selector: { zone: 'z2' } }, false, false],
    // the hash reads values; "ab" + "c" vs "a" + "bc" in key and value
    ['selector keys and values split elsewhere', { selector: { ab: 'c' } }, { selector: { a: 'bc' } }, false, false],
    // tolerations null vs [] vs one: "null", "[]", "[{…}]"
    ['no tolerations and an empty list differ', {}, { tolerations: [] }, false, false],
    ['equal tolerations', { tolerations: [{ key: 'gpu' }] }, { tolerations: [{ key: 'gpu' }] }, false, true],
    // the timeout counts only with backfill
    ['timeouts apart, without backfill', { timeoutSeconds: 60 }, { timeoutSeconds: 120 }, false, true],
    ['timeouts apart, with backfill', { timeoutSeconds: 60 }, { timeoutSeconds: 120 }, true, false],
    ['a timeout and none, with backfill', { timeoutSeconds: 60 }, {}, true, false],
    ['an image and none', { image: 'a' }, {}, false, false],
    // any image is "image"
    ['two images', { image: 'a' }, { image: 'b' }, false, true],
    ['a topology and none', { topology: { required: 'rack' } }, {}, false, false],
    // 0.1 + 0.2 is 0.30000000000000004, another number than 0.3 and another JSON text
    ['fractions that print apart', { resources: { gpu: 0.1 + 0.2 } }, { resources: { gpu: 0.3 } }, false, false],
  ])('%s', (_name, a, b, withTimeout, same) => {
    const ids = new ShapeIds(withTimeout);
    const wa = work(a);
    const wb = work(b);
    expect(shapeKey(wa, withTimeout) === shapeKey(wb, withTimeout)).toBe(same);
    // in either order, and again (the second call finds the shape numbered)
    expect(ids.of(wa) === ids.of(wb)).toBe(same);
    expect(ids.of(wb) === ids.of(wa)).toBe(same);
    const other = new ShapeIds(withTimeout);
    expect(other.of(wb) === other.of(wa)).toBe(same);
    // every plain shape of one hash: the exact comparison alone tells them apart
    const collide = new ShapeIds(withTimeout, true);
    expect(collide.of(wa) === collide.of(wb)).toBe(same);
    expect(collide.of(wb) === collide.of(wa)).toBe(same);
  });

  it('tells apart shapes of one hash by their values alone: two resources, a selector or none', () => {
    const ids = new ShapeIds(false, true);
    const shapes: Array<Partial<PendingWork>> = [
      {},
      { selector: {} },
      { selector: { zone: 'z1' } },
      { resources: { memory: 1000 } },
      { resources: { cpu: 1000, memory: 1 } },
      { resources: { memory: 1, cpu: 1000 } },
    ];
    // six keys, six numbers, each found again
    const first = shapes.map((x) => ids.of(work(x)));
    expect(new Set(first).size).toBe(6);
    expect(shapes.map((x) => ids.of(work(x)))).toEqual(first);
  });

  it('numbers work as its shape key does, on random work of every kind', () => {
    let seed = 11;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    for (const [withTimeout, oneHash] of [
      [false, false],
      [true, false],
      [false, true],
    ]) {
      const ids = new ShapeIds(withTimeout, oneHash);
      const byKey = new Map<string, number>();
      for (let k = 0; k < 5000; k++) {
        const resources: Record<string, number> = {};
        for (const name of rand() < 0.2 ? ['memory', 'cpu'] : ['cpu', 'memory', 'gpu'])
          if (rand() < 0.8) resources[name] = pick([0, -0, 1, 1000, 0.25, 2 ** 33, 2 ** 33 + 1, NaN, Infinity]);
        const w = work({
          resources,
          ...(rand() < 0.5 ? {} : { selector: rand() < 0.2 ? {} : { [pick(['zone', 'gpu.model'])]: pick(['z1', 'z2', 'A100']) } }),
          ...(rand() < 0.1 ? { tolerations: rand() < 0.5 ? [] : [{ key: 'gpu' }] } : {}),
          ...(rand() < 0.3 ? { timeoutSeconds: pick([60, 120]) } : {}),
          ...(rand() < 0.05 ? { image: 'img' } : {}),
        });
        const key = shapeKey(w, withTimeout);
        const id = ids.of(w);
        if (!byKey.has(key)) byKey.set(key, id);
        expect([key, id]).toEqual([key, byKey.get(key)]);
      }
      // one number per key, and no two keys of one number
      expect(new Set(byKey.values()).size).toBe(byKey.size);
      expect(ids.size).toBe(byKey.size);
    }
  });
});
