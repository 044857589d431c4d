/** Node records the system writes itself: quarantine. */
import type { Cordon, QuarantineCause } from '@batchapi/api';
import type { Compare, EtcdStore } from './etcd';

/**
 * Takes a node out of scheduling for repeated node failures: writes its cordon, only if it has
 * none (an operator's cordon stays as it is). `fence` is the leader's compare when the
 * scheduler writes it; an executor quarantining its own node passes its node-lease compare.
 * Returns whether this call quarantined the node.
 */
export async function quarantineNode(
  store: EtcdStore,
  fence: Compare,
  node: string,
  cause: QuarantineCause,
  failures: number,
  detail: string,
  now: number,
): Promise<boolean> {
  const key = store.keys.cordon(node);
  const cordon: Cordon = { node, reason: `quarantined: ${detail}`, by: 'batchapi', at: now, quarantine: { cause, failures } };
  const res = await store.txn([fence, { key, absent: true }], [{ put: key, value: cordon }]);
  return res.succeeded;
}
