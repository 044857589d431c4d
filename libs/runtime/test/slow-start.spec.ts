/**
 * A service whose start outlasts its lease (a loaded machine: building the Nest app holds the
 * event loop the keep-alives wait for). Found by the fast fault subset under two CPU hogs: the
 * admission replica restarted after its kill -9 took its lease, spent longer than the 2 s TTL
 * building its app, and then registered its member record on the expired lease — "requested
 * lease not found" thrown out of `runService`, exit 1, never ready, the scenario failed. The lost
 * lease must be handled like a loss at any later time: a new lease and the record on it.
 */
import { Injectable, type OnModuleInit } from '@nestjs/common';
import { runService } from '@batchapi/runtime';
import { type LocalEtcd, startEtcd } from '@batchapi/store';

let etcd: LocalEtcd;

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd.stop();
});

/** Holds the event loop at start for longer than the lease TTL plus etcd's expiry check. */
@Injectable()
class SlowToStart implements OnModuleInit {
  onModuleInit(): void {
    const until = Date.now() + 3500;
    while (Date.now() < until) {
      /* a slow, synchronous start */
    }
  }
}

it('comes up, on a new lease with its member record, when its lease expired while the app was built', async () => {
  const svc = await runService({
    name: 'slow',
    providers: [SlowToStart],
    config: {
      etcdEndpoints: etcd.endpoints,
      etcdPrefix: '/slow/',
      port: 0,
      host: '127.0.0.1',
      advertiseHost: '127.0.0.1',
      logLevel: 'silent',
      leaseTtlSeconds: 2,
    },
  });
  try {
    const { store } = svc.ctx;
    const key = store.keys.member('slow', svc.ctx.config.instanceId);
    // The watchdog takes a new lease and registers on it (the first one is gone in etcd).
    const deadline = Date.now() + 5000;
    let member = await store.get<{ url?: string }>(key);
    while (!(member?.value.url && svc.ctx.lease.alive()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      member = await store.get<{ url?: string }>(key);
    }
    expect(member?.value).toMatchObject({ service: 'slow', url: expect.any(String) });
    expect(svc.ctx.lease.alive()).toBe(true);
    expect((await fetch(`${svc.url}/readyz`)).status).toBe(200);
    // The record is on the live lease: it would go with it.
    expect((await store.txn([{ key, lease: svc.ctx.lease.id }], [])).succeeded).toBe(true);
  } finally {
    await svc.close();
  }
}, 30000);
