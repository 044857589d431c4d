/**
 * The scheduler's cache, built from informers (list then watch) on jobs, nodes, node
 * allocations, live bindings, tenants, queues, semaphores and the stored GPU usage. Standbys keep it warm too, so a new leader starts
 * placing at once. It is never trusted over etcd: every bind compares the revisions it saw.
 */
import type {
  Binding,
  Cordon,
  GpuUsage,
  JobRecord,
  NodeAllocation,
  NodeRecord,
  Queue,
  ResourceVector,
  RuntimeEstimates,
  SemaphoreRecord,
  Tenant,
} from '@batchapi/api';
import { type ClusterState, learnedRuntimesOf, queueUsageOf, tasksInFlight, wantsPlacement } from '@batchapi/scheduling';
import { allocationsByNode, type EtcdStore, type Informer, prefixUnchangedBetween, type Versioned, type WatchEvent } from '@batchapi/store';

/** A keyed map kept current by one informer. */
class Mirror<T> {
  readonly items = new Map<string, Versioned<T>>();
  informer?: Informer;
  /** A revision up to which etcd confirmed that the prefix did not change beyond the informer's view. */
  private vouched = 0n;
  constructor(
    readonly prefix: string,
    private readonly keep: (v: T) => boolean = () => true,
  ) {}

  async start(store: EtcdStore, changed: () => void): Promise<void> {
    this.informer = await store.inform<T>(this.prefix, {
      onSync: (items) => {
        this.items.clear();
        for (const kv of items) if (this.keep(kv.value)) this.items.set(kv.key, kv);
        changed();
      },
      onEvent: (ev: WatchEvent<T>) => {
        if (ev.type === 'put' && ev.value !== undefined && this.keep(ev.value)) {
          const prev = this.items.get(ev.key);
          this.items.set(ev.key, {
            key: ev.key,
            value: ev.value,
            modRevision: ev.modRevision,
            createRevision: ev.createRevision ?? prev?.createRevision ?? ev.modRevision,
          });
        } else this.items.delete(ev.key);
        changed();
      },
    });
  }

  /** Revision up to which this mirror's view is complete: its informer's, or a later one vouched for by etcd. */
  get revision(): bigint {
    const seen = BigInt(this.informer?.revision ?? '0');
    return seen > this.vouched ? seen : this.vouched;
  }

  /**
   * Resolves once the view is complete up to `upTo`: at once when etcd confirms that the prefix
   * did not change after the informer's revision (an idle prefix), else when the informer has
   * delivered every change up to it (an event, or a progress notification) — or, at the latest,
   * after `pollMs`, for the caller to ask again. Throws when etcd does not answer.
   */
  async catchUp(store: EtcdStore, upTo: bigint, pollMs: number, signal: AbortSignal): Promise<void> {
    const seen = this.revision;
    if (seen >= upTo) return;
    if (await prefixUnchangedBetween(store, this.prefix, seen, upTo)) {
      if (upTo > this.vouched) this.vouched = upTo;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.informer?.waitForRevision(upTo, signal).catch(() => undefined),
      new Promise((r) => {
        timer = setTimeout(r, pollMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }
}

/** The revisions a cycle's writes compare: what its snapshot was built from. */
export interface CycleVersions {
  jobs: Map<string, Versioned<JobRecord>>;
  allocs: Map<string, Versioned<NodeAllocation> | undefined>;
  /** The create revision of each node's key: a bind compares it (the node's executor is still the one seen). */
  nodeRevisions: Map<string, string>;
}

export class SchedulerCache {
  readonly jobs: Mirror<JobRecord>;
  readonly nodes: Mirror<NodeRecord>;
  readonly allocs: Mirror<NodeAllocation>;
  readonly bindings: Mirror<Binding>;
  readonly queues: Mirror<Queue>;
  readonly cordons: Mirror<Cordon>;
  readonly semaphores: Mirror<SemaphoreRecord>;
  readonly tenants: Mirror<Tenant>;
  /** The GPU usage the leader last stored (`gpu-usage`): what a standby's views count from. */
  readonly storedGpuUsage: Mirror<GpuUsage>;
  /** The runtime estimates the archiver learned from the history (`runtime-estimates`), for backfill. */
  readonly runtimeEstimates: Mirror<RuntimeEstimates>;
  /** The leader's defragmentation nominations in force (`defragmenting`, unchecked): what a standby's "why pending" names. */
  readonly defragmenting: Mirror<unknown>;
  /** The scheduler's leader key (`leaders/scheduler`): whose term a stored `defragmenting` record must be. */
  readonly leaderKey: Mirror<unknown>;
  /** The leader's own GPU usage, advanced as time passes (see `plugins/running-caps`); over `storedGpuUsage` while set. @default none */
  gpuUsage?: GpuUsage;
  /** Set by every change; a cycle clears it. */
  dirty = true;
  synced = false;

  constructor(private readonly store: EtcdStore) {
    const k = store.keys;
    // Jobs waiting for nodes, and jobs with tasks bound or running: they hold semaphore units and
    // running-cap slots (counted, never stored).
    this.jobs = new Mirror<JobRecord>(k.jobs(), (j) => wantsPlacement(j) || tasksInFlight(j) > 0);
    this.nodes = new Mirror<NodeRecord>(k.nodes());
    this.allocs = new Mirror<NodeAllocation>(k.allocs());
    this.bindings = new Mirror<Binding>(k.bindings());
    this.queues = new Mirror<Queue>(k.queues());
    this.cordons = new Mirror<Cordon>(k.cordons());
    this.semaphores = new Mirror<SemaphoreRecord>(k.semaphores());
    this.tenants = new Mirror<Tenant>(k.tenants());
    this.storedGpuUsage = new Mirror<GpuUsage>(k.gpuUsage());
    this.runtimeEstimates = new Mirror<RuntimeEstimates>(k.runtimeEstimates());
    this.defragmenting = new Mirror<unknown>(k.defragmenting());
    this.leaderKey = new Mirror<unknown>(k.leader('scheduler'));
  }

  async start(): Promise<void> {
    const changed = () => {
      this.dirty = true;
    };
    for (const m of this.mirrors()) await m.start(this.store, changed);
    this.synced = true;
  }

  async stop(): Promise<void> {
    await Promise.all(this.mirrors().map(async (m) => m.informer?.stop()));
  }

  /**
   * Waits until every mirror's view is complete up to `revision` — a new leader's election
   * revision, so that it decides nothing from a view without the last writes of the leader before
   * it (a queue's quota is a sum over all nodes; a bind compares only the nodes it touches).
   * Returns false, without waiting longer, once `keepWaiting` says so (leadership lost, shutdown).
   * @param pollMs how often to check `keepWaiting` and ask etcd again, in milliseconds
   */
  async catchUpTo(revision: bigint, keepWaiting: () => boolean, pollMs: number): Promise<boolean> {
    const stop = new AbortController();
    try {
      for (;;) {
        const behind = this.mirrors().filter((m) => m.revision < revision);
        if (behind.length === 0) return true;
        if (!keepWaiting()) return false;
        // etcd unreachable: the next round asks again (or leadership is lost meanwhile).
        await Promise.all(behind.map((m) => m.catchUp(this.store, revision, pollMs, stop.signal))).catch(() => sleep(pollMs));
      }
    } finally {
      stop.abort();
    }
  }

  /** Each mirror's revision, by key prefix. */
  revisions(): Record<string, bigint> {
    return Object.fromEntries(this.mirrors().map((m) => [m.prefix, m.revision]));
  }

  /**
   * True once the caches reflect every write up to `revision` (the scheduler's own last bind, which
   * writes jobs, allocations and bindings in one transaction). All three: a cycle that saw a bind's
   * allocation but not yet its binding (separate watches) counted the room as taken with no
   * expected end, so backfill found no start for blocked work and let unbounded work take room
   * a reservation should have held.
   */
  caughtUp(revision: bigint): boolean {
    return this.jobs.revision >= revision && this.allocs.revision >= revision && this.bindings.revision >= revision;
  }

  /** A registered node as cached. */
  node(name: string): NodeRecord | undefined {
    return this.nodes.items.get(this.store.keys.node(name))?.value;
  }

  /** Allocation of a node as cached (undefined when the node has none yet). */
  alloc(node: string): Versioned<NodeAllocation> | undefined {
    return this.allocs.items.get(this.store.keys.alloc(node));
  }

  /** The cordon of a node, if an operator set one. */
  cordon(node: string): Cordon | undefined {
    return this.cordons.items.get(this.store.keys.cordon(node))?.value;
  }

  /** The cached jobs waiting for placement (the cache also keeps running jobs: their tasks hold semaphore units and cap slots). */
  *waitingJobs(): IterableIterator<JobRecord> {
    for (const { value } of this.jobs.items.values()) if (wantsPlacement(value)) yield value;
  }

  /** The cached records, as `buildSnapshot` takes them, and the revisions of the same records (read in one synchronous stretch: they agree). */
  state(): { state: ClusterState; versions: CycleVersions } {
    const jobs = new Map<string, Versioned<JobRecord>>();
    for (const j of this.jobs.items.values()) jobs.set(j.value.id, j);
    const allocs = new Map<string, Versioned<NodeAllocation> | undefined>();
    const nodeRevisions = new Map<string, string>();
    for (const { value: n, createRevision } of this.nodes.items.values()) {
      nodeRevisions.set(n.name, createRevision);
      allocs.set(n.name, this.alloc(n.name));
    }
    const gpuUsage = this.gpuUsage ?? this.stored();
    return {
      state: {
        jobs: [...jobs.values()].map((j) => j.value),
        nodes: [...this.nodes.items.values()].map((n) => n.value),
        allocs: allocationsByNode(this.store.keys, this.allocs.items.values()),
        queues: [...this.queues.items.values()].map((q) => q.value),
        bindings: [...this.bindings.items.values()].map((b) => b.value),
        cordons: [...this.cordons.items.values()].map((c) => c.value),
        semaphores: [...this.semaphores.items.values()].map((s) => s.value),
        tenants: [...this.tenants.items.values()].map((t) => t.value),
        ...(gpuUsage ? { gpuUsage } : {}),
      },
      versions: { jobs, allocs, nodeRevisions },
    };
  }

  /** Resources held by each queue's live tasks, with `gpu:<model>` charged on nodes that name their GPU model. */
  queueUsage(): Map<string, ResourceVector> {
    return queueUsageOf(allocationsByNode(this.store.keys, this.allocs.items.values()), (n) => this.node(n)?.labels);
  }

  /** The GPU usage the leader last stored, if any. */
  stored(): GpuUsage | undefined {
    return this.storedGpuUsage.items.get(this.store.keys.gpuUsage())?.value;
  }

  /** The runtime estimates learned from the history, if the archiver stored any (a record of another shape — hand-written, another version — is ignored). */
  learnedRuntimes(): RuntimeEstimates | undefined {
    return learnedRuntimesOf(this.runtimeEstimates.items.get(this.store.keys.runtimeEstimates())?.value);
  }

  /** The leader's stored defragmentation nominations as last seen (unchecked; see `storedDefragmentation`), with their revision. */
  storedDefragmenting(): { value: unknown; modRevision: string } | undefined {
    return this.defragmenting.items.get(this.store.keys.defragmenting());
  }

  /** The term of the scheduler leader as last seen: its leader key's create revision; undefined while none is. */
  leaderTerm(): string | undefined {
    return this.leaderKey.items.get(this.store.keys.leader('scheduler'))?.createRevision;
  }

  private mirrors() {
    return [
      this.tenants,
      this.queues,
      this.cordons,
      this.semaphores,
      this.nodes,
      this.allocs,
      this.bindings,
      this.jobs,
      this.storedGpuUsage,
      this.runtimeEstimates,
      this.defragmenting,
      this.leaderKey,
    ];
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
