/**
 * The cordons the scheduler leader writes to consolidate (see `plugins/consolidation` in
 * libs/scheduling): set only where a node has none (an operator's cordon stays as it is), lifted
 * only while it is still the one written (an operator's cordon written over it is never lifted).
 * Both fenced by the leader's key.
 */
import { type Cordon, CONSOLIDATION_CORDON_REASON } from '@batchapi/api';
import type { Compare, EtcdStore } from './etcd';

/**
 * Cordons `node` to empty it: a drain with its deadline at `now`, so its `tasks` are stopped and
 * requeued at once and are not placed back on it. `allocRevision` is the mod revision of the node's
 * allocation the plan saw (undefined: it had none): a bind or a release since then refuses the
 * write, so the drain stops exactly the tasks the plan checked. Returns the write's revision, or
 * undefined when it was refused.
 */
export async function cordonForConsolidation(
  store: EtcdStore,
  fence: Compare,
  node: string,
  tasks: number,
  now: number,
  allocRevision: string | undefined,
): Promise<string | undefined> {
  const key = store.keys.cordon(node);
  const cordon: Cordon = {
    node,
    reason: `${CONSOLIDATION_CORDON_REASON}: emptying the node, its ${tasks} task${tasks === 1 ? '' : 's'} fit on the other nodes in use (lifted once it is empty)`,
    by: 'batchapi',
    at: now,
    drainDeadline: now,
    consolidation: { tasks },
  };
  const alloc = store.keys.alloc(node);
  const res = await store.txn(
    [fence, { key, absent: true }, allocRevision === undefined ? { key: alloc, absent: true } : { key: alloc, modRevision: allocRevision }],
    [{ put: key, value: cordon }],
  );
  return res.succeeded ? res.revision : undefined;
}

/** Lifts a consolidation cordon if it is still the version `modRevision` (the one read). Returns whether this call lifted it. */
export async function liftConsolidationCordon(store: EtcdStore, fence: Compare, node: string, modRevision: string): Promise<boolean> {
  const key = store.keys.cordon(node);
  const res = await store.txn([fence, { key, modRevision }], [{ delete: key }]);
  return res.succeeded;
}
