/**
 * `GET /v1/nodes/events` over real HTTP against a real etcd: the listing of `GET /v1/nodes` first
 * as it is, then at each change of a node's record, allocation or cordon — an uncordon, which
 * deletes the cordon's key, included. Each GPU device shows the milli-GPU its tasks hold.
 * Operators only: a tenant gets 403. The console's nodes page follows it. Each prefix has its own
 * watch: a change one of them delivers after another's newer one (held back here by wrapping the
 * admission store's `inform`, with etcd's own events) is still sent.
 */
import type { NodeAllocation, NodeRecord, NodeView } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { startAdmission, TokenAuthenticator } from '../src';
import { type InformerHook, hookInformers } from './informer-hook';
import { nextWithin, sseEvents } from './sse';
import { teamTokens } from './tokens';

let etcd: LocalEtcd;
let store: EtcdStore;
let admission: RunningService;
/** Sets what happens to the next informer over `alloc/` (see `hookInformers`). */
let nextAllocInformer: (hook: InformerHook) => void;

const node = (name: string, gpus: number): NodeRecord => ({
  name,
  capacity: { cpu: 4000, memory: 8 * 1024 ** 3, ...(gpus ? { gpu: gpus * 1000 } : {}) },
  labels: {},
  taints: [],
  gpus: Array.from({ length: gpus }, (_, index) => ({ index, model: 'A100', memoryMiB: 81920, uuid: `GPU-${name}-${index}` })),
  url: 'http://127.0.0.1:1',
  registeredAt: Date.now(),
});

/** The `data` of each `nodes` event of a stream, in order, as they arrive. */
async function* nodeEvents(signal: AbortSignal): AsyncGenerator<NodeView[]> {
  for await (const e of sseEvents<{ nodes: NodeView[] }>(`${admission.url}/v1/nodes/events`, 'nodes', { authorization: 'Bearer token-op' }, signal))
    yield e.nodes;
}

const operator = (method: string, path: string, body?: unknown) =>
  fetch(`${admission.url}${path}`, {
    method,
    headers: { authorization: 'Bearer token-op', ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  admission = await startAdmission({ tokens: new TokenAuthenticator(teamTokens()), config: { etcdEndpoints: etcd.endpoints, logLevel: 'error' } });
  const hook = hookInformers(admission.ctx.store);
  nextAllocInformer = (h) => hook(admission.ctx.store.keys.allocs(), h);
  await store.txn(
    [],
    [node('gpu-1', 2), node('cpu-1', 0)].map((n) => ({ put: store.keys.node(n.name), value: n })),
  );
});
afterAll(async () => {
  await admission?.close();
  await store?.close();
  await etcd?.stop();
});

describe('GET /v1/nodes/events', () => {
  it('sends the nodes, then a new listing at each allocation, cordon and uncordon', async () => {
    const abort = new AbortController();
    const events = nodeEvents(abort.signal);
    const first = (await events.next()).value as NodeView[];
    expect(first.map((n) => n.name)).toEqual(['cpu-1', 'gpu-1']);
    expect(first[1].gpuDevices).toEqual([
      { index: 0, model: 'A100', milliUsed: 0 },
      { index: 1, model: 'A100', milliUsed: 0 },
    ]);

    // A whole GPU and half of another held on gpu-1: device 0 full, device 1 shared.
    const alloc: NodeAllocation = { used: { cpu: 2000, gpu: 1500 }, devices: { '0': 1000, '1': 500 } };
    await store.txn([], [{ put: store.keys.alloc('gpu-1'), value: alloc }]);
    const allocated = (await events.next()).value as NodeView[];
    expect(allocated[1].gpuDevices.map((d) => d.milliUsed)).toEqual([1000, 500]);
    expect(allocated[1].allocated).toEqual(((await (await operator('GET', '/v1/nodes')).json()) as { nodes: NodeView[] }).nodes[1].allocated);

    expect((await operator('POST', '/v1/nodes/cpu-1/cordon', { reason: 'disk check' })).status).toBe(200);
    const cordoned = (await events.next()).value as NodeView[];
    expect(cordoned[0].cordon).toMatchObject({ reason: 'disk check', by: 'ops' });

    // The uncordon deletes the cordon's key: the listing without it still goes out (at the delete's revision).
    expect((await operator('DELETE', '/v1/nodes/cpu-1/cordon')).status).toBe(200);
    const uncordoned = (await events.next()).value as NodeView[];
    expect(uncordoned[0].cordon).toBeUndefined();
    abort.abort();
  });

  it("sends a change one prefix's watch delivers after another prefix's newer one", async () => {
    expect((await operator('POST', '/v1/nodes/gpu-1/cordon', { reason: 'fan check' })).status).toBe(200);
    // The allocations' informer: its listing reaches the stream (then `listed`), its events wait in `held`.
    const held: Array<() => void> = [];
    const listed = new Promise<void>((r) => {
      nextAllocInformer({
        wrap: (handlers) => ({
          onSync: (items, revision) => {
            handlers.onSync(items, revision);
            r();
          },
          onEvent: (ev) => held.push(() => handlers.onEvent(ev)),
        }),
      });
    });
    const abort = new AbortController();
    const events = nodeEvents(abort.signal);
    try {
      expect(((await events.next()).value as NodeView[])[1].cordon).toMatchObject({ reason: 'fan check' });
      await listed; // the allocation below comes as an event, not in the listing
      // cpu-1's allocation (its event held back), then gpu-1's uncordon (newer): the uncordon goes out first.
      await store.txn([], [{ put: store.keys.alloc('cpu-1'), value: { used: { cpu: 3000 }, devices: {} } }]);
      expect((await operator('DELETE', '/v1/nodes/gpu-1/cordon')).status).toBe(200);
      const uncordoned = (await events.next()).value as NodeView[];
      expect([uncordoned[1].cordon, uncordoned[0].allocated.cpu]).toEqual([undefined, undefined]);
      // The allocation's event comes now, older than the id already sent: it must still go out.
      for (const deliver of held) deliver();
      const allocated = await nextWithin(events, 10_000);
      expect(allocated === 'none' ? allocated : allocated[0].allocated.cpu).toBe('3');
    } finally {
      abort.abort();
    }
  });

  it('refuses a tenant (403)', async () => {
    const res = await fetch(`${admission.url}/v1/nodes/events`, { headers: { authorization: 'Bearer token-a' } });
    expect(res.status).toBe(403);
    await res.body?.cancel();
  });
});
