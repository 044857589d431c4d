/**
 * Semaphore records (`semaphores/{id}`): created, changed and deleted by compare-and-swap on what
 * was read. Only capacities live here; what is held is never stored — the scheduler counts it
 * from its live jobs' running tasks (see libs/scheduling's `semaphores` plugin), so no unit can
 * be leaked by a crash or held twice by a stale counter.
 */
import { type SemaphoreRecord, semaphoreRecordId } from '@batchapi/api';
import type { EtcdStore, Versioned } from './etcd';
import { CasConflictError } from './errors';
import { MAX_CAS_ATTEMPTS } from './jobs';

/** A semaphore by id (`<tenant>/<name>` or `global/<name>`); undefined when there is none. */
export function getSemaphore(store: EtcdStore, id: string): Promise<Versioned<SemaphoreRecord> | undefined> {
  return store.get<SemaphoreRecord>(store.keys.semaphore(id));
}

/** Every semaphore record. */
export async function listSemaphores(store: EtcdStore): Promise<SemaphoreRecord[]> {
  return (await store.listAll<SemaphoreRecord>(store.keys.semaphores())).items.map((kv) => kv.value);
}

/**
 * Creates a semaphore or changes its capacity and description, keeping when it was created, by
 * compare-and-swap on the record read.
 * @returns the record as stored, and whether it was new
 * @throws CasConflictError when it changed on each of `MAX_CAS_ATTEMPTS` tries
 */
export async function putSemaphore(
  store: EtcdStore,
  s: Omit<SemaphoreRecord, 'createdAt' | 'updatedAt'>,
  now: number,
): Promise<{ record: SemaphoreRecord; created: boolean }> {
  const id = semaphoreRecordId(s);
  const key = store.keys.semaphore(id);
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await store.get<SemaphoreRecord>(key);
    const record: SemaphoreRecord = {
      name: s.name,
      ...(s.tenant !== undefined ? { tenant: s.tenant } : {}),
      capacity: s.capacity,
      ...(s.description !== undefined ? { description: s.description } : {}),
      createdAt: cur?.value.createdAt ?? now,
      updatedAt: now,
    };
    const res = await store.txn([cur ? { key, modRevision: cur.modRevision } : { key, absent: true }], [{ put: key, value: record }]);
    if (res.succeeded) return { record, created: !cur };
  }
  throw new CasConflictError(`semaphore ${id} kept changing over ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, id);
}

/**
 * Deletes a semaphore. Tasks holding its units run on; waiting ones wait until it is created
 * again (why-pending says so).
 * @returns false when there was none
 */
export async function deleteSemaphore(store: EtcdStore, id: string): Promise<boolean> {
  const cur = await getSemaphore(store, id);
  if (!cur) return false;
  const res = await store.txn([{ key: cur.key, modRevision: cur.modRevision }], [{ delete: cur.key }]);
  if (!res.succeeded) throw new CasConflictError(`semaphore ${id} changed meanwhile`, id);
  return true;
}
