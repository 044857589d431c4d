/** Starting a local etcd: it makes sure the etcd answering at its URL is its own. */
import { freePort } from '@batchapi/proc';
import { EtcdStore, startEtcd } from '../src';

it('starts on fresh ports when its client port was taken before it bound it, never talking to the etcd that took it', async () => {
  // What one CI run saw: another suite's etcd took the port between freePort and this one's bind; this member
  // exited, the other etcd answered its health check, and a test that stopped "its" etcd (the exited one) still wrote.
  const other = await startEtcd();
  const ours = await startEtcd({ ports: [Number(new URL(other.endpoints[0]).port), await freePort()] });
  const a = new EtcdStore({ endpoints: other.endpoints });
  const b = new EtcdStore({ endpoints: ours.endpoints });
  try {
    expect(ours.endpoints[0]).not.toBe(other.endpoints[0]);
    expect(ours.members[0].process.exitCode).toBeNull();
    await b.txn([], [{ put: 'written-to-ours', value: 1 }]);
    expect((await b.get('written-to-ours'))?.value).toBe(1);
    expect(await a.get('written-to-ours')).toBeUndefined();
  } finally {
    await Promise.all([a.close(), b.close()]);
    await Promise.all([ours.stop(), other.stop()]);
  }
});
