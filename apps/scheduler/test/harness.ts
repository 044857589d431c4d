/** What the scheduler suites share: the node, queue, job and binding records they write and read. */
import type { Binding, JobRecord, NodeRecord } from '@batchapi/api';
import type { EtcdStore } from '@batchapi/store';

/** A registered node with `cpu` cores, `memoryBytes` (default 64 GiB) and `gpus` whole GPUs, no labels or taints. */
export function nodeRecord(name: string, cpu: number, gpus = 0, memoryBytes = 64 * 2 ** 30): NodeRecord {
  return {
    name,
    capacity: { cpu: cpu * 1000, memory: memoryBytes, ...(gpus ? { gpu: gpus * 1000 } : {}) },
    labels: {},
    taints: [],
    gpus: [],
    url: 'http://127.0.0.1:1',
    registeredAt: 0,
  };
}

/** Writes a node record as its executor would (without a lease). */
export async function putNode(store: EtcdStore, node: NodeRecord): Promise<void> {
  await store.txn([], [{ put: store.keys.node(node.name), value: node }]);
}

/** Writes queue `q` of tenant `t` with `nominal` quota (normalized units; a resource it does not name is unlimited). */
export async function putQueue(store: EtcdStore, nominal: Record<string, number> = {}): Promise<void> {
  await store.txn([], [{ put: store.keys.queue('q'), value: { name: 'q', tenant: 't', nominal } }]);
}

/** A `Queued` job of `tasks` identical tasks (resources in normalized units) in queue `q` of tenant `t`, created now. */
export function queuedJob(id: string, tasks: number, resources: Record<string, number>): JobRecord {
  return {
    id,
    tenant: 't',
    queue: 'q',
    phase: 'Queued',
    createdAt: Date.now(),
    spec: { name: id, command: ['true'], env: {}, resources, tasks, priority: 0, labels: {} },
    pending: [{ start: 0, end: tasks, attempt: 1 }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
  };
}

/** Every live binding. */
export async function allBindings(store: EtcdStore): Promise<Binding[]> {
  return (await store.listAll<Binding>(store.keys.bindings())).items.map((kv) => kv.value);
}
