/**
 * Group commit (`GroupCommit`) against a real etcd: writes that arrive while one is in flight go
 * together in one transaction, and each still gets the answer it would have had alone — its own
 * compare failing refuses it (nothing of it written) without refusing the others of its batch, a
 * lost fence refuses all; and the batching itself (`takeBatch`) keeps within the limits and never
 * writes one key twice in a transaction.
 */
import {
  type Compare,
  DEFAULT_TXN_LIMITS,
  EtcdStore,
  GroupCommit,
  type LocalEtcd,
  type Op,
  OutcomeUnknownError,
  type PendingWrite,
  startEtcd,
  takeBatch,
} from '@batchapi/store';
import { GRPCDeadlineExceededError } from 'etcd3';

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
  it.each<{ name: string; queue: Array<PendingWrite & { alone?: boolean }>; maxOps: number; n: number }>([
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
    // the second compares "x" (absent), which the first puts: merged, its compare would read "x" before the first's put
    {
      name: 'a write comparing a key an earlier one writes',
      queue: [write('x'), { compares: [fence, { key: 'x', absent: true }], ops: [{ put: 'y', value: 1, json: '1' }] }],
      maxOps: 128,
      n: 1,
    },
    // the second puts "y", which the first compares: write skew (A: y absent → put x; B: x absent → put y) both landing
    {
      name: 'a write putting a key an earlier one compares',
      queue: [{ compares: [fence, { key: 'y', absent: true }], ops: [{ put: 'x', value: 1, json: '1' }] }, write('y')],
      maxOps: 128,
      n: 1,
    },
    // a failed batch's write goes by itself, and ends the batch before it
    { name: 'a write to be sent alone', queue: [write('a'), { ...write('b'), alone: true }], maxOps: 128, n: 1 },
    { name: 'a write to be sent alone, first', queue: [{ ...write('a'), alone: true }, write('b')], maxOps: 128, n: 1 },
  ])('$name → $n', ({ queue, maxOps, n }) => {
    expect(takeBatch(queue, { ...DEFAULT_TXN_LIMITS, maxOps })).toBe(n);
  });
});

it("hands a batch's error (an answer lost) to every write of it, as each alone would have had it: OutcomeUnknownError, to be resolved by reading", async () => {
  // The merged transaction is sent and lands; its answer is lost on the way back (the store's test seam).
  let lostAnswers = 0;
  const lossy = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/gc/' });
  lossy.seam = async (call, send) => {
    const out = await send();
    if (call.op === 'txn' && (call.ops?.length ?? 0) > 1) {
      lostAnswers++;
      throw new GRPCDeadlineExceededError('deadline exceeded (answer lost after commit, test seam)');
    }
    return out;
  };
  try {
    const fence = await fenceOf('lost');
    const commits = new GroupCommit(lossy, { maxInFlight: 1 });
    const results = await Promise.allSettled(['a', 'b', 'c'].map((k) => commits.txn(...create(fence, `lost/${k}`, 1))));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
    for (const r of results.slice(1)) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(OutcomeUnknownError);
    // the two after the first went as one transaction, sent once and not again; it did land: the outcome was unknown, not a failure
    expect(lostAnswers).toBe(1);
    expect(commits.sent).toEqual({ transactions: 2, writes: 3 });
    for (const k of ['b', 'c']) expect((await store.get<unknown>(`lost/${k}`))?.value).toBe(1);
  } finally {
    await lossy.close();
  }
});
