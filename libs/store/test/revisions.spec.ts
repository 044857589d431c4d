/**
 * `prefixUnchangedBetween` against a real etcd: it vouches for an idle prefix, and not for one
 * with a put, an update or a delete in the interval, nor for an interval whose start was compacted.
 */
import { EtcdStore, type LocalEtcd, prefixUnchangedBetween, startEtcd } from '../src';

let etcd: LocalEtcd;
let store: EtcdStore;
beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
});
afterAll(async () => {
  await store.close();
  await etcd.stop();
});

const put = async (key: string) => BigInt((await store.txn([], [{ put: key, value: 1 }])).revision);
const del = async (key: string) => BigInt((await store.txn([], [{ delete: key }])).revision);

it('tells an idle prefix from one with a put, an update or a delete in the interval', async () => {
  const a = await put('/t/p/a');
  await put('/t/p/b');
  const idleFrom = await put('/t/other/x'); // elsewhere: not a change of /t/p/
  const idleTo = await put('/t/other/y');
  expect(await prefixUnchangedBetween(store, '/t/p/', idleFrom, idleTo)).toBe(true);
  expect(await prefixUnchangedBetween(store, '/t/p/', a, idleTo)).toBe(false); // b was created after a

  const beforeUpdate = await put('/t/other/z');
  const updated = await put('/t/p/a');
  expect(await prefixUnchangedBetween(store, '/t/p/', beforeUpdate, updated)).toBe(false);

  const beforeDelete = await put('/t/other/w');
  const deleted = await del('/t/p/b');
  expect(await prefixUnchangedBetween(store, '/t/p/', beforeDelete, deleted)).toBe(false);
  expect(await prefixUnchangedBetween(store, '/t/p/', deleted, await put('/t/other/v'))).toBe(true);
});

it('cannot vouch for an interval whose start was compacted', async () => {
  const from = await put('/t/c/a');
  const to = await put('/t/other/c');
  await store.client.kv.compact({ revision: String(to) });
  expect(await prefixUnchangedBetween(store, '/t/c/', from, to)).toBe(false);
});
