/**
 * A service starts while one etcd member of three is down. The client sends each call once
 * (a re-sent txn can read as a conflict), so a lease grant or member registration picked for
 * the dead member failed with "No connection established" and the process exited 1 at start.
 * A call that certainly never left is sent again to another member.
 */
import { runService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { ConnectionPool } from 'etcd3/lib/connection-pool';

let etcd: LocalEtcd;

beforeAll(async () => {
  etcd = await startEtcd({ members: 3 });
  etcd.kill(2);
  // What is tested is a member down, not an election under way: if the killed member led raft,
  // wait until the other two have a leader (a write through them lands) before the service starts.
  const survivors = new EtcdStore({ endpoints: etcd.endpoints.slice(0, 2) });
  try {
    for (let i = 0; ; i++) {
      const ok = await survivors.txn([], [{ put: '/md-probe', value: i }]).then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (i > 50) throw new Error('the two remaining etcd members never elected a leader');
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await survivors.close();
  }
});
afterAll(async () => {
  ConnectionPool.deterministicOrder = false;
  await etcd.stop();
});

describe('runService with one etcd member down', () => {
  it('takes its lease, registers and answers ready when the dead member is the first one its client tries', async () => {
    // Every call tries the last endpoint first: the dead member.
    ConnectionPool.deterministicOrder = true;
    const svc = await runService({
      name: 'probe',
      config: { etcdEndpoints: etcd.endpoints, etcdPrefix: '/md/', port: 0, host: '127.0.0.1', advertiseHost: '127.0.0.1', logLevel: 'silent' },
    });
    try {
      const res = await fetch(`${svc.url}/readyz`);
      expect(res.status).toBe(200);
      const member = await svc.ctx.store.get(svc.ctx.store.keys.member('probe', svc.ctx.config.instanceId));
      expect(member?.value).toMatchObject({ service: 'probe', url: expect.any(String) });
    } finally {
      await svc.close();
    }
  });
});
