/** What the scheduler suites share: an etcd with one scheduler on it, and the node, queue, job and binding records they write and read. */
import type { Binding, JobRecord, NodeRecord } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { startScheduler, type SchedulerOptions } from '../src';
import type { ConsolidationTuning } from '../src/consolidation';

/** A suite's etcd, its store client (queue `q` written) and its one scheduler; filled in `beforeAll`. */
export interface SchedulerSuite {
  etcd: LocalEtcd;
  store: EtcdStore;
  scheduler: RunningService;
}

/**
 * Registers `beforeAll`/`afterAll` that start an etcd, write queue `q`, and start one scheduler
 * on it (2 s lease unless `leaseTtlSeconds`, 100 ms idle / 5 ms busy cycles, logs at `TEST_LOG` or
 * `error`), `tuning` and `clock` over those; and stop all three.
 */
export function useScheduler(
  o: {
    tuning?: SchedulerOptions['tuning'];
    clock?: SchedulerOptions['clock'];
    /** The scheduler's process lease TTL, in seconds. @default 2 */
    leaseTtlSeconds?: number;
  } = {},
): SchedulerSuite {
  const s = {} as SchedulerSuite;
  beforeAll(async () => {
    s.etcd = await startEtcd();
    s.store = new EtcdStore({ endpoints: s.etcd.endpoints });
    await putQueue(s.store);
    s.scheduler = await startScheduler({
      config: { etcdEndpoints: s.etcd.endpoints, leaseTtlSeconds: o.leaseTtlSeconds ?? 2, logLevel: process.env.TEST_LOG ?? 'error' },
      tuning: { idleMs: 100, busyMs: 5, ...o.tuning },
      ...(o.clock ? { clock: o.clock } : {}),
    });
  });
  afterAll(async () => {
    await s.scheduler?.close().catch(() => undefined);
    await s.store?.close();
    await s.etcd?.stop();
  });
  return s;
}

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

/**
 * Consolidation tuning for tests that want passes at once: every 100 ms, no idle time before a node
 * may be emptied, tasks up to 10 min old movable, cordons lifted after 10 min, the whole fleet a
 * pass's budget; consolidation off (`maxNodesPerPass` 0) unless `o` turns it on, as re-pack and
 * defragmentation (`repackMaxMoves`, `defragmentMaxMoves`).
 */
export function eagerConsolidation(o: Partial<ConsolidationTuning> = {}): ConsolidationTuning {
  return { maxNodesPerPass: 0, maxNodeFraction: 1, consolidateAfterMs: 0, maxTaskAgeMs: 600_000, intervalMs: 100, liftAfterMs: 600_000, ...o };
}
