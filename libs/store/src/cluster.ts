/**
 * One fresh read of the cluster from etcd, as plain values: what a snapshot is built from when
 * no informer cache is at hand (admission's why-pending and queue views, the node listing).
 * Each prefix is listed at its own revision: a view for people, not for decisions that write.
 */
import type { Binding, Cordon, GpuUsage, JobRecord, NodeAllocation, NodeRecord, Queue, SemaphoreRecord, Tenant } from '@batchapi/api';
import type { EtcdStore } from './etcd';
import { allocationsByNode } from './nodes';

/** The nodes, with what each has allocated and the cordons on them. */
export interface Fleet {
  nodes: NodeRecord[];
  /** Each node's allocation by node name (absent: nothing allocated). */
  allocs: Map<string, NodeAllocation>;
  cordons: Cordon[];
}

/** The whole cluster: the fleet, the tenants and queues, every job, every live binding, the semaphores and the leader's last GPU usage. */
export interface ClusterRead extends Fleet {
  queues: Queue[];
  tenants: Tenant[];
  jobs: JobRecord[];
  bindings: Binding[];
  semaphores: SemaphoreRecord[];
  /** As the scheduler leader last stored it (a few seconds behind). @default absent when none was stored */
  gpuUsage?: GpuUsage;
}

/** Reads every node, allocation and cordon. */
export async function readFleet(store: EtcdStore): Promise<Fleet> {
  const [nodes, allocs, cordons] = await Promise.all([
    store.listAll<NodeRecord>(store.keys.nodes()),
    store.listAll<NodeAllocation>(store.keys.allocs()),
    store.listAll<Cordon>(store.keys.cordons()),
  ]);
  return { nodes: values(nodes.items), allocs: allocationsByNode(store.keys, allocs.items), cordons: values(cordons.items) };
}

/** Reads the whole cluster (see `ClusterRead`): fit for `buildSnapshot` as it is. */
export async function readCluster(store: EtcdStore): Promise<ClusterRead> {
  const [fleet, queues, tenants, jobs, bindings, semaphores, gpuUsage] = await Promise.all([
    readFleet(store),
    store.listAll<Queue>(store.keys.queues()),
    store.listAll<Tenant>(store.keys.tenants()),
    store.listAll<JobRecord>(store.keys.jobs()),
    store.listAll<Binding>(store.keys.bindings()),
    store.listAll<SemaphoreRecord>(store.keys.semaphores()),
    store.get<GpuUsage>(store.keys.gpuUsage()),
  ]);
  return {
    ...fleet,
    queues: values(queues.items),
    tenants: values(tenants.items),
    jobs: values(jobs.items),
    bindings: values(bindings.items),
    semaphores: values(semaphores.items),
    ...(gpuUsage ? { gpuUsage: gpuUsage.value } : {}),
  };
}

function values<T>(items: Array<{ value: T }>): T[] {
  return items.map((kv) => kv.value);
}
