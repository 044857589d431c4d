/**
 * The consolidation cordon's writes against real etcd: set only where the node has no cordon and
 * its allocation is the one the plan saw; lifted only while it is still the one written; neither
 * under a fence that no longer holds.
 */
import type { Cordon, NodeAllocation } from '@batchapi/api';
import { cordonForConsolidation, liftConsolidationCordon } from '@batchapi/store';
import { type LeaderStore, startLeaderStore, stopLeaderStore } from './store-fixture';

let s: LeaderStore;
beforeAll(async () => {
  s = await startLeaderStore('/consolidation-test/', 'scheduler');
});
afterAll(() => stopLeaderStore(s));

const NOW = 1_000_000;
const alloc: NodeAllocation = { used: { cpu: 1000 }, devices: {} };

/** Writes `node`'s allocation and returns its mod revision. */
async function allocate(node: string): Promise<string> {
  return (await s.store.txn([], [{ put: s.store.keys.alloc(node), value: alloc }])).revision;
}

it('cordons a node whose allocation is the one the plan saw, and lifts its own cordon', async () => {
  const { store, leader } = s;
  const rev = await allocate('n1');
  const written = await cordonForConsolidation(store, leader.fence(), 'n1', 1, NOW, rev);
  expect(written).toBeDefined();
  const c = (await store.get<Cordon>(store.keys.cordon('n1')))!;
  expect([c.value.consolidation, c.value.drainDeadline, c.modRevision]).toEqual([{ tasks: 1 }, NOW, written]);
  expect(await liftConsolidationCordon(store, leader.fence(), 'n1', c.modRevision)).toBe(true);
  expect(await store.get(store.keys.cordon('n1'))).toBeUndefined();
});

it('refuses to cordon when the allocation changed since the plan (a bind or a release): the drain would stop tasks no plan checked', async () => {
  const { store, leader } = s;
  const seen = await allocate('n2');
  await allocate('n2'); // a bind since the plan
  expect(await cordonForConsolidation(store, leader.fence(), 'n2', 1, NOW, seen)).toBeUndefined();
  // a node the plan saw with no allocation, which has one now
  await allocate('n3');
  expect(await cordonForConsolidation(store, leader.fence(), 'n3', 1, NOW, undefined)).toBeUndefined();
  expect(await store.get(store.keys.cordon('n2'))).toBeUndefined();
  expect(await store.get(store.keys.cordon('n3'))).toBeUndefined();
});

it("never writes over an operator's cordon, nor lifts one written over its own", async () => {
  const { store, leader } = s;
  const rev = await allocate('n4');
  const operators: Cordon = { node: 'n4', reason: 'disk', by: 'ops', at: NOW };
  await store.txn([], [{ put: store.keys.cordon('n4'), value: operators }]);
  expect(await cordonForConsolidation(store, leader.fence(), 'n4', 1, NOW, rev)).toBeUndefined();
  expect((await store.get<Cordon>(store.keys.cordon('n4')))!.value).toEqual(operators);

  const rev5 = await allocate('n5');
  const ours = (await cordonForConsolidation(store, leader.fence(), 'n5', 1, NOW, rev5))!;
  await store.txn([], [{ put: store.keys.cordon('n5'), value: { ...operators, node: 'n5' } }]); // an operator's cordon over it
  expect(await liftConsolidationCordon(store, leader.fence(), 'n5', ours)).toBe(false);
  expect((await store.get<Cordon>(store.keys.cordon('n5')))!.value.by).toBe('ops');
});

it('writes nothing under a fence that no longer holds', async () => {
  const { store, leader } = s;
  const rev = await allocate('n6');
  const stale = { key: store.keys.leader('scheduler'), createRevision: '1' };
  expect(await cordonForConsolidation(store, stale, 'n6', 1, NOW, rev)).toBeUndefined();
  const ours = (await cordonForConsolidation(store, leader.fence(), 'n6', 1, NOW, rev))!;
  expect(await liftConsolidationCordon(store, stale, 'n6', ours)).toBe(false);
  expect(await store.get(store.keys.cordon('n6'))).toBeDefined();
});
