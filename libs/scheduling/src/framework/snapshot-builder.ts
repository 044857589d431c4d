/**
 * The one snapshot builder. Everything that decides or explains placement — the scheduler's
 * cycle, "why pending" (the scheduler's RPC and admission's fallback), the queue views and the
 * cluster gauges — builds its view of the cluster here, from the same records, with the same
 * predicates, so an explanation is made on exactly what a cycle would see.
 */
import {
  addResources,
  type Binding,
  type Cordon,
  countTasks,
  type GpuUsage,
  type JobRecord,
  type NodeAllocation,
  type NodeRecord,
  type Queue,
  type ResourceVector,
  namesSemaphores,
  type SemaphoreRecord,
  type TaskRange,
  type Tenant,
  type WhyJob,
} from '@batchapi/api';
import { type FairShareInput, type ResourcePrices } from '../plugins/fair-share';
import { type RequestShape, requestShapes } from '../plugins/fragmentation-gradient';
import type { RunningTask } from '../plugins/preemption';
import { agePendingWork, agingOf, NO_AGING, type PriorityAging } from '../plugins/priority-aging';
import { chargeOf, QuotaLedger, queueUsageOf } from '../plugins/quota/ledger';
import { tasksThatFit } from '../plugins/resource-fit';
import { countSemaphores, grantOne, grantSemaphores, type SemaphoreCount } from '../plugins/semaphores';
import { anyCap, type CapCount, capOne, countCaps, grantCaps, type RunningCaps, tenantsOfQueues } from '../plugins/running-caps';
import type { TopologyLevel } from '../plugins/topology';
import { DEFAULT_FILTERS } from './profile';
import { type NodeSnapshot, type PendingWork, toNodeSnapshot, toPendingWork } from '../snapshot';

/** The records a snapshot is built from: what the scheduler's cache holds, or a fresh read of etcd. */
export interface ClusterState {
  /** Jobs; those not waiting for placement (see `wantsPlacement`) are skipped. */
  jobs: Iterable<JobRecord>;
  nodes: Iterable<NodeRecord>;
  /** Each node's allocation, by node name (absent: nothing allocated). Nodes gone with an allocation left still count against their queues. */
  allocs: ReadonlyMap<string, NodeAllocation | undefined>;
  queues: Iterable<Queue>;
  /** Live bindings (running work). */
  bindings: Iterable<Binding>;
  cordons: Iterable<Cordon>;
  /** Semaphore records (their capacities; what is held is counted from `jobs`). @default none */
  semaphores?: Iterable<SemaphoreRecord>;
  /** Tenants (their running caps). @default none */
  tenants?: Iterable<Tenant>;
  /** GPU-seconds by hour of each queue and tenant (`gpuHoursPerDay`), advanced to about `now` by the scheduler leader. @default none used */
  gpuUsage?: GpuUsage;
}

/** Options of `buildSnapshot`. */
export interface SnapshotOptions {
  /** Each queue's decayed past usage (see `decayUsage`), added to what it holds now for fair share. @default none */
  history?: ReadonlyMap<string, ResourceVector>;
  /** Cluster-wide priority aging, for queues without their own settings. @default NO_AGING */
  aging?: PriorityAging;
  /** Cluster-wide fair-share prices (GPU-model-priced fair share); queues' own `prices` go over them. @default none (plain DRF) */
  prices?: ResourcePrices;
  /** The topology levels, top first, that work's `topology` names (see `plugins/topology`). @default DEFAULT_TOPOLOGY_LEVELS */
  topology?: readonly TopologyLevel[];
  /** Weight of the domain score (work without `topology` goes to the fullest rack it fits, see `domainScore`); 0 turns it off. @default DEFAULT_DOMAIN_SCORE_WEIGHT */
  domainScoreWeight?: number;
  /** Nodes nominated for waiting jobs' tasks by a re-pack (job id → one node per task; see `plugins/nomination`). @default none */
  nominated?: ReadonlyMap<string, readonly string[]>;
  /**
   * When the nominations were made (epoch ms), one instant for all or one per job: a task of the job
   * bound on a nominated node at or after it has used that node's entry, which is no longer offered
   * (a kept nomination must not hold a later task back for a node its sibling took). A job missing
   * from the map has every entry offered. @default none: every entry is offered
   */
  nominatedSince?: number | ReadonlyMap<string, number>;
}

/** Everything a scheduling decision is made from, as of `now`. Read-only: placement copies what it changes. */
export interface ClusterSnapshot {
  /** The instant the snapshot is of (epoch ms): retries still in backoff are not placeable yet. */
  now: number;
  /** Every job waiting for placement, by id. */
  jobs: ReadonlyMap<string, JobRecord>;
  /** Their tasks placeable at `now`, one piece per job with at least one, at their effective (aged) priority, within their semaphores' grants. */
  work: PendingWork[];
  /** A job's placeable tasks at `now` as this snapshot sees them: aged with its queue's settings (see `agePendingWork`), within what its semaphores granted it (see `plugins/semaphores`). */
  pendingOf(job: WhyJob): PendingWork;
  /** Every semaphore and mutex named or recorded, with what is held and what this snapshot granted. */
  semaphores: ReadonlyMap<string, SemaphoreCount>;
  /** Every queue's and tenant's running caps, with what runs, what this snapshot granted and the GPU-hours used. */
  caps: RunningCaps;
  /** Each queue's tenant. */
  tenantOf: ReadonlyMap<string, string>;
  /** The aging settings of a queue (its own, else the cluster-wide ones). */
  agingOf(queue: string): PriorityAging;
  /** The nodes that take new work (not cordoned). */
  nodes: NodeSnapshot[];
  /** Labels of every registered node, cordoned ones too (a task's charge depends on its node's GPU model). */
  labels: ReadonlyMap<string, Record<string, string>>;
  /** Cordons by node. */
  cordons: ReadonlyMap<string, Cordon>;
  /** Registered nodes that are cordoned. */
  cordonedNodes: number;
  /** Registered nodes whose executor drains for a graceful stop (not cordoned): they take no new work either. */
  drainingNodes: number;
  queues: readonly Queue[];
  /** What each queue's live tasks hold now, charged per node. */
  usage: ReadonlyMap<string, ResourceVector>;
  /** Inputs of dominant resource fairness between queues (capacity of the nodes that take work; usage plus history). */
  fair: FairShareInput;
  /** The request mix (pending and running) that GPU fragmentation is measured against. */
  shapes: RequestShape[];
  bindings: readonly Binding[];
  /** Every task of every live binding (computed on first use: a large array has many). */
  running(): RunningTask[];
  /** A fresh quota ledger over `queues` and `usage` (placement takes from its own copy). */
  ledger(): QuotaLedger;
  /** The topology levels, top first, when set (`SnapshotOptions.topology`). @default DEFAULT_TOPOLOGY_LEVELS */
  topology?: readonly TopologyLevel[];
  /** The domain score's weight, when set (`SnapshotOptions.domainScoreWeight`). @default DEFAULT_DOMAIN_SCORE_WEIGHT */
  domainScoreWeight?: number;
  /**
   * The earliest instant after `now` (epoch ms) at which a waiting job's retry backoff ends and its
   * tasks become placeable, when one is still backing off: a scheduler that saw no change since
   * cycles again then. @default undefined: no task is backing off
   */
  nextEligibleAt?: number;
}

/**
 * True when some node of `nodes` could ever run one task of `w`: its capacity holds the task and
 * the default filters (selector, taints, resource kinds) let it on, whatever runs there now.
 */
export function runnableOnSome(w: PendingWork, nodes: readonly NodeSnapshot[]): boolean {
  return nodes.some((n) => tasksThatFit(w.resources, n.capacity) >= 1 && DEFAULT_FILTERS.every((f) => !f.filter(w, n)));
}

/** Tasks of each nominated job bound on each node at or after `since`: the nominations they used (job id → node → tasks). */
function nominationsUsed(
  bindings: readonly Binding[],
  nominated: ReadonlyMap<string, readonly string[]>,
  since: number | ReadonlyMap<string, number>,
): Map<string, Map<string, number>> {
  const used = new Map<string, Map<string, number>>();
  for (const b of bindings) {
    const from = typeof since === 'number' ? since : since.get(b.jobId);
    if (from === undefined || b.boundAt < from || !nominated.has(b.jobId)) continue;
    let byNode = used.get(b.jobId);
    if (!byNode) used.set(b.jobId, (byNode = new Map()));
    byNode.set(b.node, (byNode.get(b.node) ?? 0) + (b.end - b.start));
  }
  return used;
}

/** A job's nominated nodes less one entry per task already bound on that node since the nominations. */
export function unusedNominations(nominated: readonly string[], used: ReadonlyMap<string, number> | undefined): string[] {
  if (!used) return [...nominated];
  const left = new Map(used);
  return nominated.filter((node) => {
    const n = left.get(node) ?? 0;
    if (n <= 0) return true;
    left.set(node, n - 1);
    return false;
  });
}

/** The earlier of `earliest` and the first end of a backoff in `pending` after `now` (epoch ms). */
function backoffEnd(pending: readonly TaskRange[], now: number, earliest: number | undefined): number | undefined {
  for (const r of pending) {
    if (r.notBefore !== undefined && r.notBefore > now && (earliest === undefined || r.notBefore < earliest)) earliest = r.notBefore;
  }
  return earliest;
}

/** True for jobs with tasks to place: queued or running, not being cancelled, with pending tasks. */
export function wantsPlacement(j: JobRecord): boolean {
  return (j.phase === 'Queued' || j.phase === 'Running') && j.cancelRequestedAt === undefined && countTasks(j.pending) > 0;
}

/** Builds the snapshot of `state` as of `now`. */
export function buildSnapshot(state: ClusterState, now: number, opts: SnapshotOptions = {}): ClusterSnapshot {
  const queues = [...state.queues];
  const queueByName = new Map(queues.map((q) => [q.name, q]));
  const aging = opts.aging ?? NO_AGING;
  const agingByQueue = new Map<string, PriorityAging>();
  const agingOfQueue = (name: string): PriorityAging => {
    let a = agingByQueue.get(name);
    if (!a) agingByQueue.set(name, (a = agingOf(queueByName.get(name), aging)));
    return a;
  };
  const agedOf = (j: WhyJob): PendingWork => agePendingWork(toPendingWork(j, now), now, agingOfQueue(j.queue));
  const jobs = new Map<string, JobRecord>();
  let work: PendingWork[] = [];
  const bindings = [...state.bindings];
  const usedNominations =
    opts.nominated?.size && opts.nominatedSince !== undefined ? nominationsUsed(bindings, opts.nominated, opts.nominatedSince) : undefined;
  // Live jobs that name semaphores or locks: their running tasks hold units.
  const holding: JobRecord[] = [];
  const live: JobRecord[] = [];
  let nextEligibleAt: number | undefined;
  for (const j of state.jobs) {
    live.push(j);
    if (namesSemaphores(j.spec)) holding.push(j);
    if (!wantsPlacement(j)) continue;
    jobs.set(j.id, j);
    nextEligibleAt = backoffEnd(j.pending, now, nextEligibleAt);
    const w = agedOf(j);
    const nominated = opts.nominated?.get(j.id);
    if (nominated?.length) {
      const left = unusedNominations(nominated, usedNominations?.get(j.id));
      if (left.length) w.nominated = left;
    }
    if (w.tasks > 0) work.push(w);
  }
  const cordons = new Map<string, Cordon>();
  for (const c of state.cordons) cordons.set(c.node, c);
  const nodes: NodeSnapshot[] = [];
  const labels = new Map<string, Record<string, string>>();
  let cordonedNodes = 0;
  let drainingNodes = 0;
  for (const n of state.nodes) {
    labels.set(n.name, n.labels);
    if (cordons.has(n.name)) {
      cordonedNodes++;
      continue;
    }
    // Its executor is stopping (SIGTERM): what is bound to it now is handed back, so place nothing there.
    if (n.draining) {
      drainingNodes++;
      continue;
    }
    nodes.push(toNodeSnapshot(n, state.allocs.get(n.name)));
  }
  // Work no node could ever run (selector, taints, resource kinds or amounts) takes no cap slot and no unit.
  const feasible = (w: PendingWork) => runnableOnSome(w, nodes);
  // Running caps first (a queue's or tenant's slots), then semaphores on what the caps left.
  const tenantOf = tenantsOfQueues(queues);
  const caps = countCaps(live, queues, state.tenants ?? [], state.gpuUsage, now);
  const capping = anyCap(caps);
  const granted = new Map<string, PendingWork>();
  if (capping) {
    for (const w of grantCaps(work, caps, tenantOf, feasible)) if (w.capWait) granted.set(w.jobId, w);
    work = work.map((w) => granted.get(w.jobId) ?? w);
  }
  const semaphores = countSemaphores(holding, state.semaphores ?? []);
  if (holding.length > 0) {
    for (const w of grantSemaphores(work, jobs, semaphores, feasible)) if (w.semaphoreWait) granted.set(w.jobId, w);
    work = work.map((w) => granted.get(w.jobId) ?? w);
  }
  if (granted.size > 0) work = work.filter((w) => w.tasks > 0);
  // A job this snapshot did not grant for (not waiting, or just submitted): what is left for it.
  const pendingOf = (j: WhyJob): PendingWork => {
    const got = granted.get(j.id);
    if (got) return got;
    if (jobs.has(j.id)) return agedOf(j);
    const w = capping ? capOne(agedOf(j), cloneCaps(caps), tenantOf) : agedOf(j);
    return w.capWait ? w : grantOne(w, j, new Map(cloneCounts(semaphores)));
  };
  const usage = queueUsageOf(state.allocs, (n) => labels.get(n));
  const fairUsage = new Map(usage);
  for (const [q, h] of opts.history ?? []) fairUsage.set(q, addResources(fairUsage.get(q) ?? {}, h));
  const capacity = nodes.reduce<ResourceVector>((acc, n) => addResources(acc, chargeOf(n.capacity, n.labels)), {});
  const shapes = requestShapes([
    ...work.map((w) => ({ resources: w.resources, count: w.tasks })),
    ...bindings.map((b) => ({ resources: b.resources, count: b.end - b.start })),
  ]);
  let running: RunningTask[] | undefined;
  return {
    now,
    jobs,
    work,
    pendingOf,
    semaphores,
    caps,
    tenantOf,
    agingOf: agingOfQueue,
    nodes,
    labels,
    cordons,
    cordonedNodes,
    drainingNodes,
    queues,
    usage,
    fair: {
      capacity,
      usage: fairUsage,
      weights: new Map(queues.map((q) => [q.name, q.weight ?? 1])),
      ...(opts.prices && Object.keys(opts.prices).length ? { prices: opts.prices } : {}),
      ...(queues.some((q) => q.prices) ? { queuePrices: new Map(queues.flatMap((q) => (q.prices ? [[q.name, q.prices] as const] : []))) } : {}),
    },
    shapes,
    bindings,
    running: () => (running ??= runningTasks(bindings)),
    ledger: () => new QuotaLedger(queues, usage),
    ...(opts.topology ? { topology: opts.topology } : {}),
    ...(opts.domainScoreWeight !== undefined ? { domainScoreWeight: opts.domainScoreWeight } : {}),
    ...(nextEligibleAt !== undefined ? { nextEligibleAt } : {}),
  };
}

/** Every task of every live binding, as preemption and reclaim see it. */
export function runningTasks(bindings: Iterable<Binding>): RunningTask[] {
  const out: RunningTask[] = [];
  for (const b of bindings) {
    const stopping = new Set([...(b.preempt ?? []), ...(b.cancel ?? [])]);
    for (let i = b.start; i < b.end; i++) {
      out.push({
        jobId: b.jobId,
        queue: b.queue,
        node: b.node,
        groupStart: b.start,
        attempt: b.attempt,
        index: i,
        priority: b.priority ?? 0,
        resources: b.resources,
        devices: b.devices[i - b.start] ?? [],
        boundAt: b.boundAt,
        stopping: !!b.cancelRequested || stopping.has(i),
        ...(stopping.has(i) && b.preemptRequestedAt !== undefined ? { stopRequestedAt: b.preemptRequestedAt } : {}),
      });
    }
  }
  return out;
}

/** The jobs of `queue` waiting for placement, in the order the cycle tries them (`queueOrder` of their pending work at the snapshot's instant). */
export function waitingIn(s: ClusterSnapshot, queue: string, compare: (a: PendingWork, b: PendingWork) => number): JobRecord[] {
  return [...s.jobs.values()]
    .filter((j) => j.queue === queue)
    .map((j) => ({ j, w: s.pendingOf(j) }))
    .sort((a, b) => compare(a.w, b.w))
    .map(({ j }) => j);
}

function cloneCaps(caps: RunningCaps): RunningCaps {
  const copy = (m: ReadonlyMap<string, CapCount>) => new Map([...m].map(([k, c]) => [k, { ...c }]));
  return { queues: copy(caps.queues), tenants: copy(caps.tenants) };
}

function cloneCounts(counts: ReadonlyMap<string, SemaphoreCount>): Array<[string, SemaphoreCount]> {
  return [...counts].map(([id, c]) => [id, { ...c, holders: new Map(c.holders) }]);
}
