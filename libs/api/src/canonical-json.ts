/**
 * Canonical JSON: the same value always gives the same text, whatever the order of its objects'
 * keys — what digests of requests (idempotency) and of a step's inputs (cache keys) are taken over.
 */

/**
 * `value` as JSON with every object's keys sorted (arrays keep their order). A property whose value
 * is `undefined` is left out, as `JSON.stringify` leaves it out, so `{a: 1, b: undefined}` and
 * `{a: 1}` are one text.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
