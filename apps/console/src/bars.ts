/**
 * Quota and capacity bars, pure: quantities as the API formats them (`"1500m"`, `"4Gi"`, `0.5`)
 * read back to numbers, and how wide each part of a bar is.
 */

const SUFFIX: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

/** A quantity as a number in its base unit (cores, bytes, GPUs); NaN for text that is not one. */
export function amount(q: string | number | undefined): number {
  if (q === undefined) return 0;
  if (typeof q === 'number') return q;
  const m = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(q.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * (m[2] ? SUFFIX[m[2]] : 1);
}

/** One resource of a queue: its quantities and the bar's parts as fractions of the bar (0–1). */
export interface QuotaBar {
  resource: string;
  nominal?: string | number;
  used: string | number;
  borrowed?: string | number;
  /** Used within the nominal quota. */
  within: number;
  /** Used beyond it, borrowed from the cohort. */
  beyond: number;
  /** Where the nominal quota ends (1 when it is the bar's end; absent without a quota). */
  quotaAt?: number;
}

/** Resources in the order a person reads them: CPU, memory, GPUs (then each model), then the rest by name. */
export function resourceOrder(names: Iterable<string>): string[] {
  const rank = (n: string) => (n === 'cpu' ? 0 : n === 'memory' ? 1 : n === 'gpu' ? 2 : n.startsWith('gpu:') ? 3 : 4);
  return [...new Set(names)].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * A queue's bars, one per resource it has a quota for or uses. The bar spans the larger of the
 * nominal quota and the use; without a quota (unlimited) it spans the use.
 */
export function quotaBars(
  nominal: Record<string, string | number>,
  used: Record<string, string | number>,
  borrowed: Record<string, string | number> = {},
): QuotaBar[] {
  return resourceOrder([...Object.keys(nominal), ...Object.keys(used)]).map((resource) => {
    const n = nominal[resource] === undefined ? undefined : amount(nominal[resource]);
    const u = amount(used[resource]);
    const span = Math.max(n ?? 0, u);
    const within = span === 0 ? 0 : Math.min(u, n ?? u) / span;
    const beyond = span === 0 ? 0 : Math.max(0, u - (n ?? u)) / span;
    return {
      resource,
      ...(nominal[resource] !== undefined ? { nominal: nominal[resource], quotaAt: span === 0 ? 1 : n! / span } : {}),
      used: used[resource] ?? 0,
      ...(borrowed[resource] !== undefined ? { borrowed: borrowed[resource] } : {}),
      within,
      beyond,
    };
  });
}

/** How full a GPU device is, for its square: `free`, `partial` (fractional tasks share it) or `full`. */
export function deviceFill(milliUsed: number): 'free' | 'partial' | 'full' {
  return milliUsed <= 0 ? 'free' : milliUsed >= 1000 ? 'full' : 'partial';
}
