/** A seeded PRNG (mulberry32), so every benchmark run generates the same instance. */
export { mulberry32 as rng } from '@batchapi/simulation';

/** Fisher–Yates shuffle in place with the given PRNG. */
export function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/** Writes a progress line to stderr. */
export function progress(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** The p-th percentile (0–100) of ascending numbers; NaN when there are none. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}
