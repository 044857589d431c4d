/** Reading the liveness records of a service's processes (`members/{service}/{id}`; the runtime writes them, bound to each process lease). */
import type { EtcdStore } from './etcd';

/** The member records of one service's live processes, in id order. `T` is the record's shape as its writer (the runtime) defines it. */
export async function listMembers<T>(store: EtcdStore, service: string): Promise<T[]> {
  return (await store.list<T>(store.keys.membersOf(service))).items.map((kv) => kv.value);
}
