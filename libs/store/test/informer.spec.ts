/**
 * Informers against a real 3-member etcd whose members are killed, restarted, paused and
 * compacted under them: no change is ever missed, the view's revision never goes back, and
 * stopping never waits on a member that does not answer.
 */
import { Watcher } from 'etcd3';
import { waitFor, waitUntil } from '@batchapi/proc';
import { TcpProxy } from './tcp-proxy';
import { EtcdStore, type Informer, type Op, type InformerHandlers, type LocalEtcd, startEtcd, type Versioned, type WatchEvent } from '@batchapi/store';

let etcd: LocalEtcd;
/** Writes go to the members the informers are not connected to. */
let writer: EtcdStore;

beforeAll(async () => {
  etcd = await startEtcd({ members: 3 });
  writer = new EtcdStore({ endpoints: etcd.endpoints.slice(1), prefix: '/inf/' });
});
// A failed test must not leave member 0 down or paused for the next one.
afterEach(async () => {
  const m0 = etcd.members[0].process;
  m0.kill('SIGCONT');
  if (m0.exitCode !== null || m0.signalCode !== null) await restarted(0);
});
afterAll(async () => {
  await writer.close();
  await etcd.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One write, re-sent until it lands (a killed raft leader makes the first tries time out; re-putting the same value is harmless here). */
function write(ops: Op[]): Promise<{ revision: string }> {
  return waitFor(
    () => writer.txn([], ops),
    () => true,
    { timeoutMs: 30_000, intervalMs: 100 },
  );
}

/** Waits until `ok` holds, failing the test with `what` it waited for after `timeoutMs`. */
async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  if (!(await waitUntil(ok, { timeoutMs }))) throw new Error(`timed out waiting for ${what}`);
}

/** Waits until member `i` answers again after a restart. */
async function restarted(i: number): Promise<void> {
  etcd.restart(i);
  await until(`member ${i} to answer`, async () => {
    try {
      return (await fetch(`${etcd.endpoints[i]}/health`, { signal: AbortSignal.timeout(500) })).ok;
    } catch {
      return false;
    }
  });
}

/** A view kept by an informer's handlers, with what the handlers saw. */
function viewOf(): { view: Map<string, unknown>; syncs: number; perKey: Map<string, bigint[]>; handlers: InformerHandlers<unknown> } {
  const v = { view: new Map<string, unknown>(), syncs: 0, perKey: new Map<string, bigint[]>() };
  const handlers: InformerHandlers<unknown> = {
    onSync: (items: Array<Versioned<unknown>>) => {
      v.syncs++;
      v.view.clear();
      for (const kv of items) v.view.set(kv.key, kv.value);
    },
    onEvent: (ev: WatchEvent<unknown>) => {
      if (ev.type === 'put') v.view.set(ev.key, ev.value);
      else v.view.delete(ev.key);
      v.perKey.set(ev.key, [...(v.perKey.get(ev.key) ?? []), BigInt(ev.modRevision)]);
    },
  };
  return {
    ...v,
    handlers,
    get syncs() {
      return v.syncs;
    },
  } as never;
}

async function compactNow(): Promise<string> {
  const rev = (await writer.list('/inf/', { limit: 1 })).revision;
  await writer.client.kv.compact({ revision: rev, physical: true });
  return rev;
}

describe('Informer', () => {
  it('misses no change when its member dies right after acknowledging a resumed watch, before sending the events it owed', async () => {
    // Only member 0: the test knows which member the watch is on.
    const store = new EtcdStore({ endpoints: [etcd.endpoints[0]], prefix: '/inf/' });
    const v = viewOf();
    const informer = await store.inform('/inf/resume/', v.handlers);
    await write([{ put: '/inf/resume/before', value: 0 }]);
    await until('the first key', () => v.view.has('/inf/resume/before'));

    etcd.kill(0);
    for (let i = 0; i < 20; i++) await write([{ put: `/inf/resume/k${i}`, value: i }]);
    // The interleaving: member 0 comes back, acknowledges the re-created watch (its `created`
    // reply carries the current revision, past the 20 writes) and dies before its next sync
    // of lagging watches (every 100 ms) sends the 20 events.
    const emit = Watcher.prototype.emit;
    let armed = true;
    Watcher.prototype.emit = function (this: Watcher, event: string | symbol, ...args: unknown[]) {
      if (armed && event === 'connected') {
        armed = false;
        etcd.kill(0);
      }
      return emit.call(this, event, ...args);
    } as typeof emit;
    try {
      etcd.restart(0);
      await until('the trap to fire', () => !armed);
    } finally {
      Watcher.prototype.emit = emit;
    }
    await restarted(0);
    await until('all 20 keys written while member 0 was away', () => Array.from({ length: 20 }, (_, i) => v.view.has(`/inf/resume/k${i}`)).every(Boolean));
    expect(v.syncs).toBe(1);
    await informer.stop();
    await store.close();
  });

  it('relists after a compaction past its revision while it was disconnected, and its view is right', async () => {
    await write([
      { put: '/inf/compact/stays', value: 0 },
      { put: '/inf/compact/goes', value: 0 },
      { put: '/inf/compact/changes', value: 0 },
    ]);
    const store = new EtcdStore({ endpoints: [etcd.endpoints[0]], prefix: '/inf/' });
    const v = viewOf();
    const informer = await store.inform('/inf/compact/', v.handlers);
    const before = BigInt(informer.revision);
    etcd.kill(0);
    await write([{ delete: '/inf/compact/goes' }]);
    await write([{ put: '/inf/compact/changes', value: 1 }]);
    await write([{ put: '/inf/compact/new', value: 2 }]);
    await compactNow();
    await restarted(0);
    const expected = new Map(Object.entries({ '/inf/compact/stays': 0, '/inf/compact/changes': 1, '/inf/compact/new': 2 }));
    await until('the view to match etcd', () => v.view.size === 3 && [...expected].every(([k, val]) => v.view.get(k) === val));
    expect(v.syncs).toBe(1); // the relist came as events, not as a second sync
    expect(BigInt(informer.revision)).toBeGreaterThan(before);
    // and it watches again: a later write arrives
    await write([{ put: '/inf/compact/after', value: 3 }]);
    await until('a write after the relist', () => v.view.get('/inf/compact/after') === 3);
    const t = Date.now();
    await informer.stop();
    expect(Date.now() - t).toBeLessThan(500);
    await store.close();
  });

  it('stops at once while its member is paused, and another informer on it misses nothing written meanwhile', async () => {
    const store = new EtcdStore({ endpoints: [etcd.endpoints[0]], prefix: '/inf/' });
    const stopping = await store.inform('/inf/pause/', viewOf().handlers);
    const v = viewOf();
    const staying = await store.inform('/inf/pause/', v.handlers);
    etcd.kill(0, 'SIGSTOP');
    try {
      for (let i = 0; i < 10; i++) await write([{ put: `/inf/pause/k${i}`, value: i }]);
      const t = Date.now();
      await stopping.stop();
      expect(Date.now() - t).toBeLessThan(500);
    } finally {
      etcd.kill(0, 'SIGCONT');
    }
    await until('the 10 keys written during the pause', () => v.view.size === 10);
    await staying.stop();
    await store.close();
  });

  it('re-watches on a new stream when its member takes connections but does not answer: watchers do not pile up, and it resumes once the member answers', async () => {
    // The client reaches member 0 only, through a proxy that can drop its connections.
    const proxy = await TcpProxy.start(etcd.endpoints[0]);
    const store = new EtcdStore({ endpoints: [proxy.url], prefix: '/inf/' });
    const manager = (store.client as unknown as { watchManager: { watchers: unknown[] } }).watchManager;
    const v = viewOf();
    const informer = await store.inform('/inf/stuck/', v.handlers, { watchAckTimeoutMs: 300 });
    etcd.kill(0, 'SIGSTOP');
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, manager.watchers.length);
    }, 20);
    try {
      // The watch is lost with its connection; every new one goes to the paused member and is never acknowledged.
      proxy.dropConnections();
      for (let i = 0; i < 5; i++) await write([{ put: `/inf/stuck/k${i}`, value: i }]);
      await sleep(5000);
    } finally {
      etcd.kill(0, 'SIGCONT');
    }
    await until('the 5 keys written during the pause', () => v.view.size === 5, 15_000);
    clearInterval(sampler);
    // One informer, one watcher: an unacknowledged one is never left queued behind a new one.
    expect(most).toBeLessThanOrEqual(1);
    await informer.stop();
    await store.close();
    await proxy.close();
  });

  it('does not tear down a watch stream that is answering while hundreds of informers re-watch on it at once (their acknowledgements queue)', async () => {
    // etcd3 creates a client's watches one at a time on its one stream: after the stream is lost,
    // 1,000 informers re-watching queue behind each other for longer than one's acknowledgement
    // timeout. A nemesis run saw the stream torn down again and again (hundreds of workflows, one
    // informer each), and workflows waited on step jobs long finished.
    const proxy = await TcpProxy.start(etcd.endpoints[0]);
    const store = new EtcdStore({ endpoints: [proxy.url], prefix: '/inf/' });
    const views = Array.from({ length: 1000 }, () => viewOf());
    // Started 100 at a time: 1,000 initial listings at once, each with its 2 s deadline, on a
    // saturated machine (a CI run beside other suites) timed out three in a row and opened the
    // client's circuit, failing the set-up; the re-watch after the drop is what is under test.
    const informers: Informer[] = [];
    for (let i = 0; i < views.length; i += 100)
      informers.push(
        ...(await Promise.all(
          views.slice(i, i + 100).map((v, k) => store.inform(`/inf/many/${i + k}/`, v.handlers, { watchAckTimeoutMs: 250, relistEveryMs: 0 })),
        )),
      );
    try {
      const writeAll = async (key: string) => {
        for (let i = 0; i < 1000; i += 100) await write(views.slice(i, i + 100).map((_, k) => ({ put: `/inf/many/${i + k}/${key}`, value: i + k })));
      };
      // all 1,000 watching before the stream is lost
      await writeAll('a');
      await until('every informer to see its first key', () => views.every((v) => v.view.size === 1), 30_000);
      store.watchStreamResets = 0;
      proxy.dropConnections();
      // every informer has re-watched once this write reaches all of them
      await sleep(1000);
      await writeAll('b');
      await until('every informer to see its second key', () => views.every((v) => v.view.size === 2), 30_000);
      // The stream made after the drop is the only one: no informer tore it down while it answered.
      expect(store.watchStreamResets).toBe(0);
    } finally {
      await Promise.all(informers.map((i) => i.stop()));
      await store.close();
      await proxy.close();
    }
  });

  it('relists page by page, keys only, and fetches the values of only the keys whose revision differs from its view', async () => {
    const store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/inf/' });
    const keys = Array.from({ length: 6000 }, (_, i) => `/inf/many/k${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 128) await write(keys.slice(i, i + 128).map((k) => ({ put: k, value: k })));
    const events: Array<WatchEvent<unknown>> = [];
    const informer = await store.inform('/inf/many/', { onSync: () => undefined, onEvent: (ev) => events.push(ev) }, { relistEveryMs: 200 });
    const pages = jest.spyOn(store, 'keysAt');
    const fetched = jest.spyOn(store, 'getMany');
    // The view goes wrong three ways, as after missed events: a stale revision, a key missing, a key that is gone.
    const known = (informer as unknown as { known: Map<string, bigint> }).known;
    known.set(keys[0], 1n);
    known.delete(keys[5999]);
    known.set('/inf/many/gone', 5n);
    await until('the relist corrected the view', () => events.length >= 3);
    const relists = pages.mock.calls.length;
    await until('two more relists', () => pages.mock.calls.length >= relists + 4);
    await informer.stop();
    expect(events.map((e) => [e.type, e.key])).toEqual(
      expect.arrayContaining([
        ['put', keys[0]],
        ['put', keys[5999]],
        ['delete', '/inf/many/gone'],
      ]),
    );
    expect(events).toHaveLength(3);
    expect(events.find((e) => e.key === keys[0])!.value).toBe(keys[0]);
    // 6,000 keys in pages of 5,000 without values; values only of the two keys that differed.
    expect(pages.mock.calls.every(([, , limit]) => limit === 5000)).toBe(true);
    expect(fetched.mock.calls.flatMap(([ks]) => ks).sort()).toEqual([keys[0], keys[5999]]);
    await store.close();
  });

  it('never goes back in revision while relisting under a steady stream of writes', async () => {
    const store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/inf/' });
    const v = viewOf();
    const informer = await store.inform('/inf/steady/', v.handlers, { relistEveryMs: 150 });
    const revisions: bigint[] = [];
    const sampler = setInterval(() => revisions.push(BigInt(informer.revision)), 5);
    for (let i = 0; i < 200; i++) {
      await write([{ put: `/inf/steady/k${i % 20}`, value: i }]);
      if (i % 7 === 0) await write([{ delete: `/inf/steady/k${(i + 3) % 20}` }]);
    }
    const { items, revision } = await writer.listAll('/inf/steady/');
    await informer.waitForRevision(revision);
    clearInterval(sampler);
    expect(new Map(items.map((kv) => [kv.key, kv.value]))).toEqual(v.view);
    for (let i = 1; i < revisions.length; i++) expect(revisions[i]).toBeGreaterThanOrEqual(revisions[i - 1]);
    for (const [key, revs] of v.perKey) for (let i = 1; i < revs.length; i++) if (revs[i] < revs[i - 1]) throw new Error(`${key} went back: ${revs.join(',')}`);
    await informer.stop();
    await store.close();
  });

  it('advances its revision on an idle prefix (progress notifications), so a caller can wait for a revision', async () => {
    const store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/inf/' });
    const informer: Informer = await store.inform('/inf/idle/', viewOf().handlers);
    const elsewhere = await write([{ put: '/inf/other/x', value: 1 }]);
    expect(BigInt(informer.revision)).toBeLessThan(BigInt(elsewhere.revision));
    // etcd's progress interval here is 2 s
    await informer.waitForRevision(elsewhere.revision, AbortSignal.timeout(10_000));
    expect(BigInt(informer.revision)).toBeGreaterThanOrEqual(BigInt(elsewhere.revision));
    const waiting = informer.waitForRevision(BigInt(elsewhere.revision) + 1000n);
    await informer.stop();
    await expect(waiting).rejects.toThrow('was stopped');
    await store.close();
  });
});
