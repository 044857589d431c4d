/**
 * Records an operator or a seed replaces whole (tenants, queues): create-or-replace by
 * compare-and-swap on what was read, so a concurrent change is never overwritten unseen.
 */
import type { EtcdStore } from './etcd';
import { CasConflictError } from './errors';
import { MAX_CAS_ATTEMPTS } from './jobs';

/** What `putVersioned` did: wrote a new record, replaced one, or found the same value there already. */
export type VersionedPut = 'created' | 'replaced' | 'unchanged';

/**
 * Creates or replaces the record at `key` with `value`, by compare-and-swap on the revision it
 * read (absent: only if still absent). A concurrent change makes it read again and retry; a
 * stored value equal to `value` is left as it is (`unchanged`, nothing written).
 * @param name - what the record is, for the error, e.g. `queue q-1`. @default the key's last segment
 * @throws CasConflictError when the record changed on each of `MAX_CAS_ATTEMPTS` tries (its id is the key's last segment)
 */
export async function putVersioned(store: EtcdStore, key: string, value: unknown, name = lastSegment(key)): Promise<VersionedPut> {
  const wanted = JSON.stringify(value);
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await store.get(key);
    if (cur && JSON.stringify(cur.value) === wanted) return 'unchanged';
    const res = await store.txn([cur ? { key, modRevision: cur.modRevision } : { key, absent: true }], [{ put: key, value }]);
    if (res.succeeded) return cur ? 'replaced' : 'created';
  }
  throw new CasConflictError(`${name} kept changing over ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, lastSegment(key));
}

function lastSegment(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}
