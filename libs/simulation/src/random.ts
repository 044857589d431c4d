/**
 * The seeded generator of scenarios and benchmarks: mulberry32, so the same seed gives the same
 * inputs on every machine and run. Not for anything secret.
 */

/** A generator of numbers in [0, 1) from `seed` (a 32-bit integer; other numbers are truncated to one). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
