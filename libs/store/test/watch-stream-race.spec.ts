/**
 * etcd3 carries every watcher of a client on one stream and throws out of the stream's `data`
 * event for a reply whose watch it cannot find ("Failed to find watcher for IWatchResponse",
 * `etcd3/lib/watch.js`) — an uncaught exception that killed a quota replica. Two legitimate
 * interleavings deliver such a reply: one read from a stream the client just tore down (the
 * informer cancels a stream whose watch went unacknowledged; grpc-js still emits the replies it
 * had read), and one for a watch the client no longer knows arriving on the current stream (a
 * cancel racing with etcd). Neither may throw, and the informers must go on without missing a
 * change. The replies are the real stream's, injected where the race puts them.
 */
import { EventEmitter } from 'node:events';
import { EtcdStore, type Informer, type LocalEtcd, startEtcd, type WatchEvent } from '@batchapi/store';
import { waitUntil } from '@batchapi/proc';

let etcd: LocalEtcd;
let store: EtcdStore;
let writer: EtcdStore;
const faults: string[] = [];
const informers: Informer[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/wsr/', onWatchStreamFault: (err) => faults.push(err.message) });
  writer = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/wsr/' });
});
afterAll(async () => {
  for (const i of informers) await i.stop();
  await store.close();
  await writer.close();
  await etcd.stop();
});

interface Manager {
  state: number;
  stream?: EventEmitter;
  watchers: Array<{ id: string | null }>;
}
const managerOf = (s: EtcdStore) => (s.client as unknown as { watchManager: Manager }).watchManager;

async function informed(prefix: string): Promise<string[]> {
  const seen: string[] = [];
  informers.push(
    await store.inform<string>(prefix, {
      onSync: () => undefined,
      onEvent: (ev: WatchEvent<string>) => {
        if (ev.type === 'put') seen.push(ev.key);
      },
    }),
  );
  return seen;
}

async function connected(): Promise<Manager> {
  const m = managerOf(store);
  await waitUntil(() => m.state === 2 && m.watchers.every((w) => w.id !== null), { timeoutMs: 5000 });
  expect(m.watchers.every((w) => w.id !== null)).toBe(true);
  return m;
}

/** A reply as etcd sends it for watch `id`: one put under `/wsr/a/`. */
function reply(id: string, key: string): unknown {
  return {
    header: { revision: '999999' },
    watch_id: id,
    created: false,
    canceled: false,
    compact_revision: '0',
    cancel_reason: '',
    events: [
      { type: 'Put', kv: { key: Buffer.from(key), value: Buffer.from('"x"'), mod_revision: '999999', create_revision: '999999', version: '1', lease: '0' } },
    ],
  };
}

it('drops the replies of a torn-down stream instead of throwing, and the informers resume', async () => {
  const a = await informed('/wsr/a/');
  const b = await informed('/wsr/b/');
  const m = await connected();
  const old = m.stream!;
  const ids = m.watchers.map((w) => w.id!);
  // The stream fails (what cancelling it does); the replies grpc-js had read come after.
  old.emit('error', new Error('14 UNAVAILABLE: the stream was torn down'));
  expect(() => old.emit('data', reply(ids[0], '/wsr/a/stale'))).not.toThrow();
  // Once the client is on a new stream (watch ids count from 0 again), an old reply must not reach a new watcher.
  await waitUntil(() => m.state === 2 && m.stream !== old && m.watchers.every((w) => w.id !== null), { timeoutMs: 5000 });
  expect(() => old.emit('data', reply(ids[1], '/wsr/a/misrouted'))).not.toThrow();
  await writer.txn(
    [],
    [
      { put: '/wsr/a/1', value: 1 },
      { put: '/wsr/b/1', value: 1 },
    ],
  );
  await waitUntil(() => a.includes('/wsr/a/1') && b.includes('/wsr/b/1'), { timeoutMs: 5000 });
  expect(a).toEqual(['/wsr/a/1']);
  expect(b).toEqual(['/wsr/b/1']);
});

it('reports a reply for a watch the client no longer knows on its current stream, resyncs, and misses nothing', async () => {
  const c = await informed('/wsr/c/');
  const m = await connected();
  expect(() => m.stream!.emit('data', reply('4242', '/wsr/c/unknown'))).not.toThrow();
  expect(faults.some((f) => f.includes('Failed to find watcher for IWatchResponse'))).toBe(true);
  await writer.txn([], [{ put: '/wsr/c/1', value: 1 }]);
  await waitUntil(() => c.includes('/wsr/c/1'), { timeoutMs: 5000 });
  expect(c).toEqual(['/wsr/c/1']);
});
