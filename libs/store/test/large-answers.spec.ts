/**
 * Reads whose answer is over the client's receive limit (`maxResponseBytes`) ask for fewer keys
 * instead of failing: a page of all keys, a page of a few hundred, a transaction of many keys or
 * prefixes, and an informer's first listing. Found by the nemesis at 200 submits/s for 10 minutes:
 * a quota replica's start listed ~5,000 live workflows in one 5,000-key page of 5.2 MB, over
 * grpc-js's 4 MiB default, and every restart failed the same way (`RESOURCE_EXHAUSTED: Received
 * message larger than max`) while 73,000 accepted jobs waited. Here the limit is 256 KiB and the
 * prefix holds 300 values of 4 KiB (1.2 MB), against a real etcd of one member: etcd3 would count
 * each refusal against the member in its circuit, which shuts it out for 5 s after 3 in a row, so
 * the refusals reach it as FAILED_PRECONDITION (a test reads many prefixes whose splits refuse 3
 * times in a row, and then reads again). And a listing
 * read in pages at one revision starts again when etcd compacts that revision between its pages
 * (the same nemesis run, once the first was fixed: a scheduler's start listing ~76,000 jobs).
 */
import { COMPACTED_RESTARTS, EtcdStore, type LocalEtcd, MAX_TXN_OPS, ResponseTooLargeError, startEtcd, type Versioned } from '@batchapi/store';

const LIMIT = 256 * 1024;
const VALUE = 'x'.repeat(4096);
const KEYS = 300;
const key = (p: string, i: number) => `/big/${p}/${String(i).padStart(4, '0')}`;

let etcd: LocalEtcd;
let store: EtcdStore;
/** The store's calls since the test began, as `onCall` saw them. */
let calls: Array<{ op: string; ok: boolean }>;

beforeAll(async () => {
  etcd = await startEtcd();
  calls = [];
  store = new EtcdStore({ endpoints: etcd.endpoints, maxResponseBytes: LIMIT, onCall: (op, _s, ok) => calls.push({ op, ok }) });
  for (const p of ['a', 'b', 'c'])
    for (let i = 0; i < KEYS; i += 50)
      await store.txn(
        [],
        Array.from({ length: 50 }, (_, k) => ({ put: key(p, i + k), value: { i: i + k, pad: VALUE } })),
      );
});
afterAll(async () => {
  await store?.close();
  await etcd?.stop();
});
beforeEach(() => {
  calls = [];
});

const indices = (items: Array<Versioned<{ i: number }>>) => items.map((kv) => kv.value.i);
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);

it('lists every key of a prefix whose answer is over the limit, page by page at one revision', async () => {
  const { items, revision } = await store.listAll<{ i: number }>('/big/a/');
  expect(indices(items)).toEqual(upTo(KEYS));
  expect(new Set(items.map((kv) => kv.modRevision)).size).toBeGreaterThan(1); // written over several revisions…
  expect(BigInt(revision)).toBeGreaterThanOrEqual(BigInt(items.at(-1)!.modRevision)); // …and read at one at or after them
  // The first page (5,000 keys asked, the 300 there, ~1.24 MB) was refused once; a count-only read
  // said 300 keys, and the next page asked for keys in proportion: 300 × 0.8 × 262,144 ÷ ~1.24 MB ≈ 50
  // (~205 KB), which fit, as did the pages after it. Halving would have been refused 3 times.
  expect(calls.filter((c) => !c.ok).length).toBe(1);
});

it('lists all keys with list() too, ascending and descending', async () => {
  expect(indices((await store.list<{ i: number }>('/big/b/')).items)).toEqual(upTo(KEYS));
  const down = await store.list<{ i: number }>('/big/b/', { descending: true });
  expect([indices(down.items), down.more]).toEqual([upTo(KEYS).reverse(), false]);
});

it('gives a shorter page with `more` when a page of `limit` keys is over the limit, and the pages cover every key once', async () => {
  const seen: number[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.list<{ i: number }>('/big/c/', { limit: 200, startAfter: after });
    pages++;
    seen.push(...indices(page.items));
    if (!page.more) break;
    expect(page.items.length).toBeLessThan(200); // 200 × 4 KiB = 800 KiB: split
    after = page.items.at(-1)!.key;
  }
  expect(seen).toEqual(upTo(KEYS));
  expect(pages).toBeGreaterThan(2);
});

it('reads many keys in transactions split while their answer is over the limit', async () => {
  const keys = upTo(KEYS).map((i) => key('a', i));
  expect(keys.length).toBeGreaterThan(2 * MAX_TXN_OPS); // three transactions of up to 128 keys, 512 KiB each
  const got = await store.getMany<{ i: number }>([...keys, '/big/a/none']);
  expect(got.map((kv) => kv?.value.i)).toEqual([...upTo(KEYS), undefined]);
});

it('lists many prefixes in a transaction split while its answer is over the limit', async () => {
  const lists = await store.listMany<{ i: number }>(['/big/a/', '/big/none/', '/big/b/', '/big/c/'], 100);
  expect(lists.map(indices)).toEqual([upTo(KEYS), [], upTo(KEYS), upTo(KEYS)]);
});

it('keeps the member in use after refusals in a row (etcd3 would shut it out for 5 s after 3)', async () => {
  // The transaction of four prefixes (~330 KB: one heavy, three empty) is refused, then two of them
  // (the heavy one's ~330 KB still), then the heavy one's first page: 3 refusals with no answer between.
  const lists = await store.listMany<{ i: number }>(['/big/a/', '/big/n1/', '/big/n2/', '/big/n3/'], 80);
  expect(lists.map((l) => l.length)).toEqual([KEYS, 0, 0, 0]);
  expect(calls.filter((c) => !c.ok).length).toBeGreaterThanOrEqual(3);
  expect(indices((await store.list<{ i: number }>('/big/b/', { limit: 2 })).items)).toEqual([0, 1]);
});

it('starts an informer over such a prefix', async () => {
  let synced: number[] = [];
  const informer = await store.inform<{ i: number }>('/big/b/', { onSync: (items) => (synced = indices(items)), onEvent: () => {} });
  try {
    expect(synced).toEqual(upTo(KEYS));
  } finally {
    await informer.stop();
  }
});

it('throws ResponseTooLargeError, sent once, only for an answer that cannot be split (one value over the limit)', async () => {
  // Never happens with etcd's own limits (it takes no value over 1.5 MiB, the client reads 64 MiB):
  // here one 4 KiB value over a 1 KiB limit.
  const failed: string[] = [];
  const small = new EtcdStore({ endpoints: etcd.endpoints, maxResponseBytes: 1024, onCall: (op, _s, ok) => !ok && failed.push(op) });
  try {
    await expect(small.get('/big/a/0000')).rejects.toBeInstanceOf(ResponseTooLargeError);
    expect(failed).toEqual(['range']); // not re-sent (a read that fails otherwise is, up to 3 times)
    failed.length = 0;
    await expect(small.list('/big/a/', { limit: 4 })).rejects.toBeInstanceOf(ResponseTooLargeError);
    expect(failed).toEqual(['range', 'range']); // 4 keys, then 1 (4 × 0.8 × 1 KiB ÷ ~16 KiB rounds down to none: at least 1)
  } finally {
    await small.close();
  }
});

describe('a listing that spans a compaction', () => {
  /** Compacts etcd at its current revision (after one more write, so there is a revision to drop). */
  async function compactNow(): Promise<void> {
    const { revision } = await store.txn([], [{ put: '/big/tick', value: Date.now() }]);
    await store.client.kv.compact({ revision, physical: true });
  }

  it.each([
    ['listAll', () => store.listAll<{ i: number }>('/big/a/', 50)],
    ['list of all keys, split by the answer limit', () => store.list<{ i: number }>('/big/a/')],
  ])('%s starts again at a new revision when its revision is compacted between pages', async (_what, read) => {
    // A later page is read at the first's revision (and, unlike the first, names no prefix to the
    // seam): the first such read is preceded by a compaction.
    let compacted = false;
    store.seam = async (call, send) => {
      if (call.op === 'range' && !call.read && !compacted) {
        compacted = true;
        await compactNow();
      }
      return send();
    };
    try {
      const { items, revision } = await read();
      expect(compacted).toBe(true);
      expect(indices(items)).toEqual(upTo(KEYS));
      expect(new Set(items.map((kv) => kv.key)).size).toBe(KEYS);
      // the listing that answered began after the compaction: at the revision of the write that preceded it or later
      expect(BigInt(revision)).toBeGreaterThanOrEqual(BigInt((await store.get('/big/tick'))!.modRevision));
    } finally {
      store.seam = undefined;
    }
  });

  it('gives up after COMPACTED_RESTARTS tries, with the store error', async () => {
    let firsts = 0;
    store.seam = async (call, send) => {
      if (call.op === 'range' && call.read) firsts++;
      else if (call.op === 'range') await compactNow(); // before every later page
      return send();
    };
    try {
      await expect(store.listAll('/big/a/', 50)).rejects.toThrow(/required revision has been compacted/);
      expect(firsts).toBe(COMPACTED_RESTARTS + 1); // the listing and its restarts
    } finally {
      store.seam = undefined;
    }
  });
});
