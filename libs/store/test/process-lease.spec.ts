/**
 * The process lease's self-fence against a real etcd member, with the path between them
 * stalled by a proxy: a renewal reply read late must not make the lease look alive.
 */
import { EtcdStore, type LocalEtcd, monotonicMs, startEtcd } from '@batchapi/store';
import { waitFor, waitUntil } from '@batchapi/proc';
import { TcpProxy } from './tcp-proxy';

let etcd: LocalEtcd;
let proxy: TcpProxy;
let direct: EtcdStore;

beforeAll(async () => {
  etcd = await startEtcd();
  proxy = await TcpProxy.start(etcd.endpoints[0]);
  direct = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/pl/' });
});
afterAll(async () => {
  await direct.close();
  await proxy.close();
  await etcd.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ProcessLease', () => {
  it('stays fenced when renewal replies that etcd sent before the lease expired are read after it expired', async () => {
    const store = new EtcdStore({ endpoints: [proxy.url], prefix: '/pl/' });
    const lease = await store.grantLease(2);
    // A key on the lease tells, through a direct connection, when etcd has expired it.
    await direct.txn([], [{ put: '/pl/probe', value: 1, lease: lease.id }]);
    await sleep(800);
    expect(lease.alive()).toBe(true);

    // Replies stop coming back; keep-alives still reach etcd (which renews and answers) for
    // longer than the keep-alive period (TTL/3 ≈ 667 ms), so at least one answer is held.
    proxy.holdDownstream();
    await sleep(900);
    // Now nothing reaches etcd: its last renewal is behind us and the lease expires there.
    proxy.holdUpstream();
    const probe = await waitFor(
      () => direct.get('/pl/probe'),
      (kv) => kv === undefined,
      { timeoutMs: 10_000 },
    );
    expect(probe).toBeUndefined();

    // The held replies (renewals etcd made before the lease expired) now arrive.
    proxy.releaseDownstream();
    const alive: boolean[] = [];
    for (let i = 0; i < 30; i++) {
      alive.push(lease.alive());
      await sleep(20);
    }
    expect(alive.filter(Boolean)).toHaveLength(0);
    expect(lease.sinceRenewalMs()).toBeGreaterThan(2000);
    await lease.revoke();
    await store.close();
  });

  it('after 2×TTL without an acknowledged renewal, gives the lease up only once etcd says it is gone', async () => {
    // The lease's clock jumps 5 s ahead (a stall of this process looks the same): 2×TTL have
    // passed on it since the last acknowledged send, while etcd still holds the lease.
    let offset = 0;
    const store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/pl/' });
    const lease = await store.grantLease(2, { clock: () => Date.now() + offset });
    let lost = 0;
    lease.onLost(() => lost++);
    offset = 5000;
    expect(lease.alive()).toBe(false); // the self-fence holds at once
    await sleep(1500);
    // etcd answered that it still holds the lease, and the renewals sent since count again.
    expect(lost).toBe(0);
    expect(lease.alive()).toBe(true);
    // Gone in etcd: now it is given up — once its fence (renewed until the revoke) has ended, within the 2 s TTL.
    await direct.client.leaseClient.leaseRevoke({ ID: lease.id });
    expect(await waitUntil(() => lost === 1, { timeoutMs: 3000 })).toBe(true);
    expect(lease.alive()).toBe(false);
    await lease.revoke();
    await store.close();
  });

  it('keeps a healthy lease alive and reports each renewal by its send time', async () => {
    const store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/pl/' });
    const lease = await store.grantLease(2);
    const renewals: Array<{ sentAt: number; readAt: number }> = [];
    lease.onRenewed((sentAt) => renewals.push({ sentAt, readAt: monotonicMs() }));
    const samples: boolean[] = [];
    for (let i = 0; i < 30; i++) {
      samples.push(lease.alive());
      await sleep(100);
    }
    expect(samples.every(Boolean)).toBe(true);
    // 3 s at one keep-alive per 667 ms: at least 3 renewals, each sent before its reply was read
    expect(renewals.length).toBeGreaterThanOrEqual(3);
    for (const r of renewals) expect(r.sentAt).toBeLessThanOrEqual(r.readAt);
    await lease.revoke();
    await store.close();
  });
});
