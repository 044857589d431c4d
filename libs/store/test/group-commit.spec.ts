/**
 * Group commit (`GroupCommit`) against a real etcd: writes that arrive while one is in flight go
 * together in one transaction, and each still gets the answer it would have had alone — its own
 * compare failing refuses it (nothing of it written) without refusing the others of its batch, a
 * lost fence refuses all; and the batching itself (`takeBatch`) keeps within the limits and never
 * writes one key twice in a transaction.
 */
import { type Compare, DEFAULT_TXN_LIMITS, EtcdStore, GroupCommit, type LocalEtcd, type Op, type PendingWrite, startEtcd, takeBatch } from '@batchapi/store';

let etcd: LocalEtcd;
let store: EtcdStore;

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/gc/' });
});
afterAll(async () => {
  await store.close();
  await etcd.stop();
});

/** A fence as a leader holds one: a key and the revision that created it. */
async function fenceOf(name: string): Promise<Compare> {
  await store.txn([], [{ put: `leaders/${name}`, value: { holder: name } }]);
  return { key: `leaders/${name}`, createRevision: (await store.get<unknown>(`leaders/${name}`))!.createRevision };
}

/** Creates `key` only if absent, fenced: one reconcile's write. */
const create = (fence: Compare, key: string, value: unknown): [Compare[], Op[]] => [[fence, { key, absent: true }], [{ put: key, value }]];

it('sends the writes that arrive while one is in flight together, each answered with the revision it landed at', async () => {
  const fence = await fenceOf('batch');
  const commits = new GroupCommit(store, { maxInFlight: 1 });
  // the first goes at once; the three after it wait for it and go as one transaction
  const answers = await Promise.all(['a', 'b', 'c', 'd'].map((k) => commits.txn(...create(fence, `batch/${k}`, { k }))));
  expect(answers.map((a) => a.succeeded)).toEqual([true, true, true, true]);
  expect(new Set(answers.slice(1).map((a) => a.revision)).size).toBe(1);
  expect(BigInt(answers[1].revision)).toBeGreaterThan(BigInt(answers[0].revision));
  expect(commits.sent).toEqual({ transactions: 2, writes: 4 });
  for (const k of ['a', 'b', 'c', 'd']) expect((await store.get<{ k: string }>(`batch/${k}`))?.value).toEqual({ k });
});

it('refuses only the write whose own compare fails: the others of its batch land, and nothing of the refused one is written', async () => {
  const fence = await fenceOf('conflict');
  await store.txn([], [{ put: 'conflict/taken', value: { by: 'someone else' } }]);
  const commits = new GroupCommit(store, { maxInFlight: 1 });
  const [first, ok1, refused, ok2] = await Promise.all([
    commits.txn(...create(fence, 'conflict/first', 1)),
    commits.txn(...create(fence, 'conflict/x', 1)),
    // its key exists: its compare fails, the batch's transaction with it
    commits.txn(
      [fence, { key: 'conflict/taken', absent: true }],
      [
        { put: 'conflict/taken', value: { by: 'us' } },
        { put: 'conflict/side', value: 1 },
      ],
    ),
    commits.txn(...create(fence, 'conflict/y', 1)),
  ]);
  expect([first.succeeded, ok1.succeeded, refused.succeeded, ok2.succeeded]).toEqual([true, true, false, true]);
  expect((await store.get<unknown>('conflict/taken'))?.value).toEqual({ by: 'someone else' });
  expect(await store.get<unknown>('conflict/side')).toBeUndefined();
  expect((await store.get<unknown>('conflict/x'))?.value).toBe(1);
  expect((await store.get<unknown>('conflict/y'))?.value).toBe(1);
  // the first alone, the batch of three refused, then each of the three alone
  expect(commits.sent).toEqual({ transactions: 5, writes: 7 });
});

it('refuses every write of a deposed leader (its fence gone), writing none', async () => {
  const fence = await fenceOf('deposed');
  const stale: Compare = { key: fence.key, createRevision: String(BigInt((fence as { createRevision: string }).createRevision) - 1n) };
  const commits = new GroupCommit(store, { maxInFlight: 1 });
  const answers = await Promise.all(['a', 'b', 'c'].map((k) => commits.txn(...create(stale, `deposed/${k}`, 1))));
  expect(answers.map((a) => a.succeeded)).toEqual([false, false, false]);
  for (const k of ['a', 'b', 'c']) expect(await store.get<unknown>(`deposed/${k}`)).toBeUndefined();
});

describe('takeBatch', () => {
  const fence: Compare = { key: 'leaders/x', createRevision: '5' };
  const write = (...keys: string[]): PendingWrite => ({
    compares: [fence, ...keys.map((key) => ({ key, absent: true as const }))],
    ops: keys.map((k) => ({ put: k, value: 1, json: '1' })),
  });
  it.each([
    // [the queue, limits, writes in the first transaction]
    { name: 'one write', queue: [write('a')], maxOps: 128, n: 1 },
    // 3 writes × 1 op = 3 ops; compares: the fence once + 3 = 4
    { name: 'three that fit', queue: [write('a'), write('b'), write('c')], maxOps: 128, n: 3 },
    // ops 2 + 2 = 4 ≤ 4, compares 1 + 2 + 2 = 5 > 4: the second waits
    { name: 'compares over the limit (the shared fence counted once)', queue: [write('a', 'b'), write('c', 'd')], maxOps: 4, n: 1 },
    // compares 1 + 1 + 1 = 3, ops 2 ≤ 3; a third would make 4
    { name: 'as many as the limit allows', queue: [write('a'), write('b'), write('c')], maxOps: 3, n: 2 },
    // the second puts "a" again: etcd refuses a key twice in one transaction
    { name: 'a key written twice', queue: [write('a'), write('a'), write('b')], maxOps: 128, n: 1 },
    // a first write over the limits by itself still goes (alone: its own answer, as without batching)
    { name: 'a first write over the limits', queue: [write('a', 'b', 'c'), write('d')], maxOps: 2, n: 1 },
  ])('$name → $n', ({ queue, maxOps, n }) => {
    expect(takeBatch(queue, { ...DEFAULT_TXN_LIMITS, maxOps })).toBe(n);
  });
});

it("hands a batch's error (etcd unreachable, an answer lost) to every write of it, as each alone would have had it", async () => {
  // the transaction's sender alone is replaced: whether a batch's error reaches each of its writes is the batcher's own logic
  const lost = new Error('outcome unknown');
  let calls = 0;
  const commits = new GroupCommit(
    {
      txn: async () => {
        calls++;
        if (calls === 1) return { succeeded: true, revision: '10' };
        throw lost;
      },
    },
    { maxInFlight: 1 },
  );
  const fence: Compare = { key: 'leaders/x', createRevision: '5' };
  const results = await Promise.allSettled(['a', 'b', 'c'].map((k) => commits.txn(...create(fence, k, 1))));
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
  expect(results.slice(1).map((r) => (r as PromiseRejectedResult).reason)).toEqual([lost, lost]);
  expect(calls).toBe(2); // the two after the first went as one, and were not sent again
});
