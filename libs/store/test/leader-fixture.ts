/** A store test's usual set-up: one etcd member, a store under `prefix`, a process lease and an elected role on it. */
import { campaign, EtcdStore, type Leadership, type LocalEtcd, type ProcessLease, startEtcd } from '@batchapi/store';

export interface LeaderStore {
  etcd: LocalEtcd;
  store: EtcdStore;
  lease: ProcessLease;
  leader: Leadership;
}

/** Starts the member and wins `role` as identity `L` on a 5 s lease. */
export async function startLeaderStore(prefix: string, role: string): Promise<LeaderStore> {
  const etcd = await startEtcd();
  const store = new EtcdStore({ endpoints: etcd.endpoints, prefix });
  const lease = await store.grantLease(5);
  const leader = await campaign(store, role, 'L', lease);
  return { etcd, store, lease, leader };
}

/** Revokes the lease, closes the store and stops the member. */
export async function stopLeaderStore(s: Pick<LeaderStore, 'etcd' | 'store' | 'lease'>): Promise<void> {
  await s.lease.revoke();
  await s.store.close();
  await s.etcd.stop();
}
