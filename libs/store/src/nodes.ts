/** Node records the system writes itself (quarantine), and reading nodes and their allocations by name. */
import type { Cordon, NodeAllocation, NodeRecord, QuarantineCause } from '@batchapi/api';
import { type Compare, type EtcdStore, MAX_TXN_OPS, type Op } from './etcd';
import type { Keys } from './keys';

/**
 * Each node's allocation by node name, from key-values listed or watched under `keys.allocs()`;
 * a key that is not an `alloc(node)` key is left out.
 */
export function allocationsByNode(keys: Keys, items: Iterable<{ key: string; value: NodeAllocation }>): Map<string, NodeAllocation> {
  const byNode = new Map<string, NodeAllocation>();
  for (const { key, value } of items) {
    const node = keys.nodeOfAlloc(key);
    if (node !== undefined) byNode.set(node, value);
  }
  return byNode;
}

/** A registered node by name; undefined when none is (its executor's lease ended, or it never ran). */
export async function getNode(store: EtcdStore, name: string): Promise<NodeRecord | undefined> {
  return (await store.get<NodeRecord>(store.keys.node(name)))?.value;
}

/** What a node has allocated; undefined when nothing ever was. */
export async function getAllocation(store: EtcdStore, node: string): Promise<NodeAllocation | undefined> {
  return (await store.get<NodeAllocation>(store.keys.alloc(node)))?.value;
}

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

/** Registers nodes on an executor's lease (they vanish with it), in transactions of at most `MAX_TXN_OPS` puts. */
export async function registerNodes(store: EtcdStore, nodes: readonly NodeRecord[], leaseId: string): Promise<void> {
  for (let i = 0; i < nodes.length; i += MAX_TXN_OPS) {
    await store.txn(
      [],
      nodes.slice(i, i + MAX_TXN_OPS).map((node): Op => ({ put: store.keys.node(node.name), value: node, lease: leaseId })),
    );
  }
}

/**
 * Changes a registered node's record by compare-and-swap, fenced by the executor's lease: the
 * change lands only if the record is still the one read and still attached to `leaseId`.
 * Returns the record as it was when `change` decided, and whether the write landed; undefined
 * when the node is not registered or `change` returns undefined (nothing to write).
 */
export async function updateNodeRecord(
  store: EtcdStore,
  name: string,
  leaseId: string,
  change: (node: NodeRecord) => NodeRecord | undefined,
): Promise<{ was: NodeRecord; updated: boolean } | undefined> {
  const key = store.keys.node(name);
  const cur = await store.get<NodeRecord>(key);
  if (!cur) return undefined;
  const next = change(cur.value);
  if (!next) return undefined;
  const res = await store.txn(
    [
      { key, modRevision: cur.modRevision },
      { key, lease: leaseId },
    ],
    [{ put: key, value: next, lease: leaseId }],
  );
  return { was: cur.value, updated: res.succeeded };
}
