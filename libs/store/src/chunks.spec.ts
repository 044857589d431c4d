import { chunkBySize, ENTRY_OVERHEAD_BYTES, type TxnSize, txnSize } from './chunks';
import { encodedPut } from './etcd';

describe('txnSize', () => {
  it.each([
    // [what, value, bytes of its JSON in UTF-8]
    // "a" × 1000 → 1000 bytes + 2 quotes
    ['ASCII', 'a'.repeat(1000), 1002],
    // "é" is 2 bytes in UTF-8 but 1 UTF-16 unit: 2 × 1000 + 2
    ['é (2 bytes each)', 'é'.repeat(1000), 2002],
    // "€" is 3 bytes: 3 × 1000 + 2 (JSON.stringify(x).length says 1002)
    ['€ (3 bytes each)', '€'.repeat(1000), 3002],
    // "😀" is 4 bytes and 2 UTF-16 units: 4 × 1000 + 2 (length says 2002)
    ['😀 (4 bytes each)', '😀'.repeat(1000), 4002],
  ])('counts a put of %s in UTF-8 bytes of key and JSON value', (_name, value, json) => {
    // key "k/€" = 1 + 1 + 3 bytes; one op with its framing
    expect(txnSize([], [{ put: 'k/€', value }])).toEqual({ compares: 0, ops: 1, bytes: 5 + json + ENTRY_OVERHEAD_BYTES });
    // the same put with its JSON made beforehand (`encodedPut`) is counted from that JSON, the same bytes
    expect(txnSize([], [encodedPut('k/€', value)])).toEqual({ compares: 0, ops: 1, bytes: 5 + json + ENTRY_OVERHEAD_BYTES });
  });

  it('counts an encoded put from the JSON it carries, not by serializing its value again', () => {
    // the value says 2 bytes ("x" with quotes), the JSON carried says 7: what is sent is the JSON
    expect(txnSize([], [{ put: 'k', value: 'x', json: '"xxxxx"' }]).bytes).toBe(1 + 7 + ENTRY_OVERHEAD_BYTES);
  });

  it('counts compares by their keys, and a delete by its key', () => {
    // compare "é" (2 bytes) + delete "ab" (2 bytes), each with framing
    expect(txnSize([{ key: 'é', absent: true }], [{ delete: 'ab' }])).toEqual({ compares: 1, ops: 1, bytes: 4 + 2 * ENTRY_OVERHEAD_BYTES });
  });
});

describe('chunkBySize', () => {
  /** A unit is a string; it takes one op and its UTF-8 bytes (so the arithmetic below is plain). */
  const size = (s: string): TxnSize => ({ compares: 0, ops: 1, bytes: Buffer.byteLength(s) });
  const limits = { maxOps: 4, maxBytes: 1000 };
  it.each([
    // [what, units, base bytes, expected chunks (indices), expected too large (indices)]
    // 300 + 300 + 300 = 900 ≤ 1000; the fourth would make 1200
    ['ASCII: three of 300 bytes a transaction', ['a', 'a', 'a', 'a'].map((c) => c.repeat(300)), 0, [[0, 1, 2], [3]], []],
    // 300 "€" = 900 bytes each (300 UTF-16 units): 900 + 900 > 1000, one a transaction
    ['the same count of "€" takes three times the bytes', ['€', '€', '€'].map((c) => c.repeat(300)), 0, [[0], [1], [2]], []],
    // 200 "😀" = 800 bytes (400 UTF-16 units): two would be 1600
    ['emoji count 4 bytes each', ['😀', '😀'].map((c) => c.repeat(200)), 0, [[0], [1]], []],
    // 400 "€" = 1200 bytes > 1000 alone: reported, never in a chunk; the others share one (600 bytes)
    ['a unit over the limit by itself is reported, the rest still chunked', ['a'.repeat(300), '€'.repeat(400), 'a'.repeat(300)], 0, [[0, 2]], [1]],
    // every chunk carries a 500-byte base (a fence): 500 + 300 = 800, + 300 = 1100 > 1000
    ['the base counts in every transaction', ['a', 'a'].map((c) => c.repeat(300)), 500, [[0], [1]], []],
    // 600 bytes fit an empty transaction, but not beside a 500-byte base
    ['a unit that fits only without the base is too large', ['a'.repeat(600)], 500, [], [0]],
    // 4 ops a transaction: 6 tiny units → 4 + 2
    [
      'ops: at most maxOps a transaction',
      ['a', 'b', 'c', 'd', 'e', 'f'],
      0,
      [
        [0, 1, 2, 3],
        [4, 5],
      ],
      [],
    ],
  ])('%s', (_name, units, baseBytes, chunks, tooLarge) => {
    const out = chunkBySize(
      units.map((u, i) => ({ u, i })),
      (x) => size(x.u),
      { limits, base: { compares: 1, ops: 0, bytes: baseBytes } },
    );
    expect(out.chunks.map((c) => c.map((x) => x.i))).toEqual(chunks);
    expect(out.tooLarge.map((x) => x.i)).toEqual(tooLarge);
  });
});
