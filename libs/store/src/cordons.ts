/**
 * Operators' cordons and drains at `cordons/{node}`. Last writer wins by design: a newer cordon
 * or drain replaces the older one, and an uncordon removes whichever is there (a quarantine
 * too: see `quarantineNode`, which writes one only where none is).
 */
import type { Cordon } from '@batchapi/api';
import type { EtcdStore } from './etcd';

/** Writes a node's cordon (or drain), replacing any it had. */
export async function setCordon(store: EtcdStore, cordon: Cordon): Promise<void> {
  await store.txn([], [{ put: store.keys.cordon(cordon.node), value: cordon }]);
}

/** Removes a node's cordon, drain or quarantine; a node without one is left as it is. */
export async function clearCordon(store: EtcdStore, node: string): Promise<void> {
  await store.txn([], [{ delete: store.keys.cordon(node) }]);
}
