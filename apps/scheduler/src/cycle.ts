/**
 * One scheduling cycle, in named phases:
 *   snapshot → order & place (pure, libs/scheduling) → plan (bind units) → bind (fenced CAS).
 * Decisions are computed on the cache's snapshot and applied in fenced transactions that
 * compare every revision they relied on; a refused unit is simply decided again next cycle.
 */
import {
  boundWork,
  chargeOf,
  type FairShareInput,
  packingScores,
  type RequestShape,
  requestShapes,
  type NodeSnapshot,
  type PendingWork,
  type Placement,
  type PlacementResult,
  placeTasks,
  planPreemption,
  planReclaim,
  type QuotaDemand,
  QuotaLedger,
  type RunningTask,
  toNodeSnapshot,
  toPendingWork,
  type Unplaced,
  type Victim,
} from '@batchapi/scheduling';
import { type BindResult, type BindUnit, bindPlan, type EtcdStore, type Leadership, requestPreemption, type Versioned } from '@batchapi/store';
import { inSpan, linkTo, startSpan, traceparentOf } from '@batchapi/telemetry';
import { type Span, SpanStatusCode } from '@opentelemetry/api';
import {
  addResources,
  type Binding,
  countTasks,
  eligibleRanges,
  type JobRecord,
  markBound,
  type NodeAllocation,
  type ResourceVector,
  takeTasks,
  type TaskRange,
} from '@batchapi/api';
import type { SchedulerCache } from './cache';

/** Everything one cycle decides from. */
export interface CycleSnapshot {
  work: PendingWork[];
  nodes: NodeSnapshot[];
  jobs: Map<string, Versioned<JobRecord>>;
  allocs: Map<string, Versioned<NodeAllocation> | undefined>;
  /** The create revision of each node's key: a bind compares it (the node's executor is still the one seen). */
  nodeRevisions: Map<string, string>;
  /** Quota room of every queue and cohort; placement takes from it as it places. */
  quota: QuotaLedger;
  /** Inputs of dominant resource fairness between queues. */
  fair: FairShareInput;
  /** The request mix (pending and running) that GPU fragmentation is measured against. */
  shapes: RequestShape[];
}

/**
 * Phase 1 — snapshot: copy what the cache knows into plain values, as of `now` (wall time, ms
 * since the epoch: the cycle's instant, read once by its caller). `history` is each queue's
 * decayed past usage (see `decayUsage`); fair share orders queues by what they hold now plus
 * it, so a queue that just ran a lot waits behind one that ran little.
 */
export function takeSnapshot(cache: SchedulerCache, now: number, history?: Map<string, ResourceVector>): CycleSnapshot {
  const jobs = new Map<string, Versioned<JobRecord>>();
  const work: PendingWork[] = [];
  for (const j of cache.jobs.items.values()) {
    jobs.set(j.value.id, j);
    const w = toPendingWork(j.value, now);
    if (w.tasks > 0) work.push(w);
  }
  const nodes: NodeSnapshot[] = [];
  const allocs = new Map<string, Versioned<NodeAllocation> | undefined>();
  const nodeRevisions = new Map<string, string>();
  for (const { value: n, createRevision } of cache.nodes.items.values()) {
    if (cache.cordon(n.name)) continue; // cordoned: no new work
    nodeRevisions.set(n.name, createRevision);
    const alloc = cache.alloc(n.name);
    allocs.set(n.name, alloc);
    nodes.push(toNodeSnapshot(n, alloc?.value));
  }
  const usage = cache.queueUsage();
  const queues = [...cache.queues.items.values()].map((q) => q.value);
  const weights = new Map(queues.map((q) => [q.name, q.weight ?? 1]));
  const capacity = nodes.reduce<ResourceVector>((acc, n) => addResources(acc, chargeOf(n.capacity, n.labels)), {});
  const fairUsage = new Map(usage);
  for (const [q, h] of history ?? []) fairUsage.set(q, addResources(fairUsage.get(q) ?? {}, h));
  const running = [...cache.bindings.items.values()].map(({ value: b }) => ({ resources: b.resources, count: b.end - b.start }));
  const shapes = requestShapes([...work.map((w) => ({ resources: w.resources, count: w.tasks })), ...running]);
  return { work, nodes, jobs, allocs, nodeRevisions, quota: new QuotaLedger(queues, usage), fair: { capacity, usage: fairUsage, weights }, shapes };
}

/** Phase 2 — place: the pure policy (PreFilter, Filter, Score, Reserve, Permit in `libs/scheduling`). */
export function place(s: CycleSnapshot, maxTasks: number): PlacementResult {
  return placeTasks(s.work, s.nodes, { quota: s.quota, maxTasks, fairShare: s.fair, scores: packingScores(s.shapes) });
}

/**
 * Phase 4b — reclaim: a queue below its nominal quota whose work quota stopped (because other
 * queues of its cohort borrowed the capacity) takes it back: the borrowers' newest,
 * lowest-priority tasks are asked to stop, as few as its waiting tasks need. Runs on the
 * ledger as placement left it; fenced.
 */
export async function reclaim(
  store: EtcdStore,
  cache: SchedulerCache,
  leadership: Leadership,
  s: CycleSnapshot,
  unplaced: Unplaced[],
  now: number,
  budget: Map<string, number>,
): Promise<Victim[]> {
  const byId = new Map(s.work.map((w) => [w.jobId, w]));
  const demands: QuotaDemand[] = unplaced
    .filter((u) => u.quotaLimited)
    .map((u) => {
      const w = byId.get(u.jobId)!;
      return { jobId: u.jobId, queue: w.queue, charge: w.resources, tasks: u.tasks };
    });
  if (demands.length === 0) return [];
  const running = runningTasks(cache);
  const chargeFor = (t: RunningTask) => chargeOf(t.resources, cache.node(t.node)?.labels);
  // Tasks asked to stop lately are on their way out: what they hold is already coming back. A
  // stopped task of a group that still runs keeps its mark but no longer holds anything (the
  // ledger counts from the nodes' allocations), hence the window: longer than any kill grace.
  for (const t of running)
    if (t.stopping && t.stopRequestedAt !== undefined && now - t.stopRequestedAt < STOPPING_WINDOW_MS) s.quota.take(t.queue, chargeFor(t), -1);
  const victims = planReclaim(s.quota, demands, running, chargeFor, { budget });
  if (victims.length === 0) return [];
  await inSpan(
    'schedule.reclaim',
    { attributes: { 'batch.reclaim.victims': victims.length, 'batch.reclaim.for': [...new Set(victims.map((v) => v.forJob))].join(',') } },
    () =>
      requestPreemption(
        store,
        leadership.fence(),
        victims.map((v) => ({ node: v.task.node, jobId: v.task.jobId, start: v.task.groupStart, attempt: v.task.attempt, index: v.task.index })),
        now,
      ),
  );
  return victims;
}

/**
 * Drains: on a cordoned node past its drain deadline, every task still running is preempted
 * (SIGTERM, grace, SIGKILL) and requeued at its next attempt. Fenced.
 */
export async function drainNodes(store: EtcdStore, cache: SchedulerCache, leadership: Leadership, now: number): Promise<number> {
  if (![...cache.cordons.items.values()].some((c) => c.value.drainDeadline !== undefined && c.value.drainDeadline <= now)) return 0;
  const victims: Array<{ node: string; jobId: string; start: number; attempt: number; index: number }> = [];
  for (const { value: b } of cache.bindings.items.values()) {
    const c = cache.cordon(b.node);
    if (!c?.drainDeadline || c.drainDeadline > now || b.cancelRequested) continue;
    const already = new Set(b.preempt ?? []);
    for (let i = b.start; i < b.end; i++) if (!already.has(i)) victims.push({ node: b.node, jobId: b.jobId, start: b.start, attempt: b.attempt, index: i });
  }
  if (victims.length === 0) return 0;
  await requestPreemption(store, leadership.fence(), victims, now);
  return victims.length;
}

/** Most pending jobs one cycle considers unless tuned otherwise (see `boundWork`). */
export const DEFAULT_MAX_JOBS_PER_CYCLE = 2000;

/** A gang waits at most this long to start, unless its job says otherwise, in seconds. */
export const DEFAULT_GANG_TIMEOUT_SECONDS = 600;

/**
 * Gangs that could not start within their timeout fail with the reason, so they neither wait
 * forever nor hold anything (they never reserve room while blocked). Fenced, CAS on the job.
 */
export async function expireGangs(store: EtcdStore, leadership: Leadership, s: CycleSnapshot, unplaced: Unplaced[], now: number): Promise<string[]> {
  const failed: string[] = [];
  for (const u of unplaced) {
    if (!u.gangBlocked) continue;
    const job = s.jobs.get(u.jobId);
    if (!job) continue;
    const timeout = (job.value.spec.gangTimeoutSeconds ?? DEFAULT_GANG_TIMEOUT_SECONDS) * 1000;
    if (now - (job.value.queuedAt ?? job.value.createdAt) < timeout) continue;
    const reasons = [
      ...Object.entries(u.filtered).map(([r, n]) => `${n} nodes: ${r}`),
      ...(u.full ? [`${u.full} nodes without free room`] : []),
      ...(u.quotaLimited ? ['the queue quota is too small for all tasks at once'] : []),
    ];
    const message = `gang of ${job.value.spec.tasks} tasks could not start together within ${timeout / 1000} s${reasons.length ? `: ${reasons.join('; ')}` : ''}`;
    const next: JobRecord = {
      ...job.value,
      phase: 'Failed',
      pending: [],
      finishedAt: now,
      reason: { code: 'gang_unschedulable', message },
      counts: { ...job.value.counts, failed: job.value.counts.failed + countTasks(job.value.pending) },
    };
    const res = await store.txn([leadership.fence(), { key: job.key, modRevision: job.modRevision }], [{ put: job.key, value: next }]);
    if (res.succeeded) failed.push(job.value.id);
  }
  return failed;
}

/** Tuning of the preemption phase. */
export interface PreemptionTuning {
  /** A task bound less than this long ago is never preempted, in milliseconds. @default 60000 */
  protectMs: number;
  /** Victims a queue may lose per minute. @default 100 */
  perQueuePerMinute: number;
}

/** How long after a stop request a task still counts as on its way out, in milliseconds. */
export const STOPPING_WINDOW_MS = 60_000;

/** Every task of every live binding, as preemption sees it. */
export function runningTasks(cache: SchedulerCache): RunningTask[] {
  const out: RunningTask[] = [];
  for (const { value: b } of cache.bindings.items.values()) {
    const stopping = new Set(b.preempt ?? []);
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

/**
 * Phase 5 — preempt (only in a cycle that could place nothing): for higher-priority work left
 * pending, ask executors to stop the fewest lower-priority tasks; the freed room is placed
 * by a later cycle, in priority order.
 */
export async function preempt(
  store: EtcdStore,
  cache: SchedulerCache,
  leadership: Leadership,
  s: CycleSnapshot,
  unplaced: Unplaced[],
  now: number,
  budget: Map<string, number>,
  protectMs: number,
): Promise<Victim[]> {
  const byId = new Map(s.work.map((w) => [w.jobId, w]));
  // Quota-limited work waits for its quota, not for victims; a gang asks for all of its tasks (planPreemption keeps it whole).
  const candidates = unplaced.filter((u) => !u.quotaLimited).map((u) => ({ ...byId.get(u.jobId)!, tasks: u.tasks }));
  if (candidates.length === 0) return [];
  const running = runningTasks(cache);
  const lowest = running.reduce((m, t) => Math.min(m, t.priority), Infinity);
  if (!candidates.some((w) => w.priority > lowest)) return [];
  const victims = planPreemption(candidates, s.nodes, running, { now, protectMs, budget });
  if (victims.length === 0) return [];
  await inSpan(
    'schedule.preempt',
    { attributes: { 'batch.preempt.victims': victims.length, 'batch.preempt.for': [...new Set(victims.map((v) => v.forJob))].join(',') } },
    () =>
      requestPreemption(
        store,
        leadership.fence(),
        victims.map((v) => ({ node: v.task.node, jobId: v.task.jobId, start: v.task.groupStart, attempt: v.task.attempt, index: v.task.index })),
        now,
      ),
  );
  return victims;
}

/** Phase 3 — plan: turn placements into bind units (task ranges taken from each job's pending ranges). */
export function planUnits(s: CycleSnapshot, placements: Placement[], now: number, traceparentFor: (job: JobRecord) => string | undefined): BindUnit[] {
  const byJob = new Map<string, Placement[]>();
  for (const p of placements) byJob.set(p.jobId, [...(byJob.get(p.jobId) ?? []), p]);
  const units: BindUnit[] = [];
  for (const [jobId, ps] of byJob) {
    const job = s.jobs.get(jobId)!;
    const traceparent = traceparentFor(job.value);
    let pending = eligibleRanges(job.value.pending, now);
    const bindings: Binding[] = [];
    const bound: TaskRange[] = [];
    for (const p of ps) {
      const { taken, rest } = takeTasks(pending, p.count);
      pending = rest;
      bound.push(...taken);
      let offset = 0;
      for (const r of taken) {
        const n = r.end - r.start;
        bindings.push({
          jobId,
          tenant: job.value.tenant,
          queue: job.value.queue,
          node: p.node,
          start: r.start,
          end: r.end,
          attempt: r.attempt,
          resources: job.value.spec.resources,
          priority: job.value.spec.priority,
          devices: p.devices.slice(offset, offset + n),
          boundAt: now,
          traceparent,
          command: job.value.spec.command,
          env: job.value.spec.env,
          ...(job.value.spec.timeoutSeconds ? { timeoutSeconds: job.value.spec.timeoutSeconds } : {}),
          ...(job.value.spec.image ? { image: job.value.spec.image } : {}),
          ...(job.value.spec.selector && Object.keys(job.value.spec.selector).length ? { selector: job.value.spec.selector } : {}),
          ...(job.value.spec.items ? { items: job.value.spec.items.slice(r.start, r.end) } : {}),
        });
        offset += n;
      }
    }
    units.push({ job, next: markBound(job.value, bound, now), bindings });
  }
  return units;
}

/** Phase 4 — bind: fenced, compare-and-swap, chunked. */
export function bind(store: EtcdStore, leadership: Leadership, s: CycleSnapshot, units: BindUnit[]): Promise<BindResult> {
  return bindPlan(store, leadership.fence(), units, s.allocs, { nodes: s.nodeRevisions });
}

/** What a cycle did. */
export interface CycleOutcome {
  placed: number;
  /** Victims asked to stop (by queue), when the cycle could place nothing. */
  preempted?: Victim[];
  /** Borrowed tasks asked to stop so that their lenders get their quota back. */
  reclaimed?: Victim[];
  units: number;
  refused: number;
  txns: number;
  revision: bigint;
  /** Pending jobs this cycle considered (at most `maxJobs`). */
  considered: number;
  /** Pending jobs this cycle did not consider (over `maxJobsPerCycle`): the next cycle should come soon. */
  deferred: number;
  /** Where the next cycle's rotating window over the deferred work starts (see `boundWork`). */
  cursor: number;
  /** The longest synchronous phase of the cycle (snapshot, place or plan; it yields between them), in milliseconds. */
  longestPhaseMs: number;
}

/** The per-cycle bound on pending work (see `boundWork`). */
export interface BacklogBound {
  /** Most pending jobs one cycle considers. */
  maxJobs: number;
  /** Start of the rotating window: the previous cycle's `cursor`. @default 0 */
  cursor?: number;
}

/**
 * Lets timers and I/O run between a cycle's phases (the lease keep-alive, its self-fence check,
 * watch events): `setImmediate` runs after the pending I/O callbacks and expired timers.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** The longest of a cycle's synchronous phases (snapshot, bound, place, plan), in milliseconds. */
class PhaseTimer {
  longestMs = 0;
  run<T>(phase: () => T): T {
    const started = performance.now();
    try {
      return phase();
    } finally {
      this.longestMs = Math.max(this.longestMs, performance.now() - started);
    }
  }
}

/**
 * Runs the four phases once, in a `schedule.cycle` span linked to every job it placed. It yields
 * to the event loop between phases, and considers at most `backlog.maxJobs` pending jobs, so no
 * synchronous stretch grows with the backlog (the process lease's keep-alive must keep firing).
 */
export async function runCycle(
  store: EtcdStore,
  cache: SchedulerCache,
  leadership: Leadership,
  now: number,
  maxTasks = 100_000,
  preemption?: { budget: Map<string, number>; protectMs: number },
  history?: Map<string, ResourceVector>,
  backlog: BacklogBound = { maxJobs: DEFAULT_MAX_JOBS_PER_CYCLE },
): Promise<CycleOutcome> {
  const phases = new PhaseTimer();
  const snapshot = phases.run(() => takeSnapshot(cache, now, history));
  await yieldToEventLoop();
  const window = phases.run(() => boundWork(snapshot.work, backlog.maxJobs, backlog.cursor));
  snapshot.work = window.work;
  const bounded = { considered: window.work.length, deferred: window.deferred, cursor: window.cursor };
  await yieldToEventLoop();
  const { placements, unplaced } = phases.run(() => place(snapshot, maxTasks));
  await yieldToEventLoop();
  await expireGangs(store, leadership, snapshot, unplaced, now);
  const reclaimed = preemption && unplaced.length ? await reclaim(store, cache, leadership, snapshot, unplaced, now, preemption.budget) : [];
  await yieldToEventLoop();
  if (placements.length === 0) {
    const preempted =
      preemption && unplaced.length ? await preempt(store, cache, leadership, snapshot, unplaced, now, preemption.budget, preemption.protectMs) : [];
    return { placed: 0, units: 0, refused: 0, txns: 0, revision: 0n, preempted, reclaimed, ...bounded, longestPhaseMs: phases.longestMs };
  }
  const jobs = [...new Set(placements.map((p) => p.jobId))].map((id) => snapshot.jobs.get(id)!.value);
  return inSpan('schedule.cycle', { links: jobs.flatMap((j) => linkTo(j.traceparent)), attributes: { 'batch.cycle.jobs': jobs.length } }, async (cycleSpan) => {
    const cycleLinks = linkTo(traceparentOf());
    // Each job's bind is a span in the job's own trace, linked to the cycle; the executor's run continues it.
    const bindSpans = new Map<string, Span>();
    const units = phases.run(() =>
      planUnits(snapshot, placements, now, (job) => {
        const { span, traceparent } = startSpan('schedule.bind', { parent: job.traceparent, links: cycleLinks, attributes: { 'batch.job.id': job.id } });
        bindSpans.set(job.id, span);
        return traceparent ?? job.traceparent;
      }),
    );
    let result: BindResult;
    try {
      result = await bind(store, leadership, snapshot, units);
    } catch (err) {
      for (const span of bindSpans.values()) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
        span.end();
      }
      throw err;
    }
    endBindSpans(bindSpans, result);
    // A transaction's answer was lost or the store failed: the plan stopped (what was not sent is
    // refused). The cycle fails visibly; the caches show what landed and the next cycle decides again.
    if (result.interrupted) throw result.interrupted;
    const placed = result.bound.reduce((n, u) => n + tasksOf(u), 0);
    cycleSpan.setAttributes({ 'batch.cycle.placed': placed, 'batch.cycle.refused': result.refused.length, 'batch.cycle.txns': result.txns });
    return {
      placed,
      units: units.length,
      refused: result.refused.length,
      txns: result.txns,
      revision: BigInt(result.revision),
      reclaimed,
      ...bounded,
      longestPhaseMs: phases.longestMs,
    };
  });
}

function tasksOf(u: BindUnit): number {
  return u.bindings.reduce((m, b) => m + b.end - b.start, 0);
}

/** Ends each job's bind span once, with what landed (a large unit lands in several parts). */
function endBindSpans(spans: Map<string, Span>, result: BindResult): void {
  const landed = new Map<string, { groups: number; tasks: number; nodes: Set<string> }>();
  for (const u of result.bound) {
    const l = landed.get(u.next.id) ?? { groups: 0, tasks: 0, nodes: new Set<string>() };
    l.groups += u.bindings.length;
    l.tasks += tasksOf(u);
    for (const b of u.bindings) l.nodes.add(b.node);
    landed.set(u.next.id, l);
  }
  const refused = new Set([...result.refused, ...result.tooLarge].map((u) => u.next.id));
  for (const [id, span] of spans) {
    const l = landed.get(id);
    span.setAttributes({
      'batch.groups': l?.groups ?? 0,
      'batch.tasks': l?.tasks ?? 0,
      'batch.nodes': [...(l?.nodes ?? [])].slice(0, 20).join(','),
      'batch.bind.landed': !refused.has(id),
    });
    if (refused.has(id))
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: result.tooLarge.some((u) => u.next.id === id)
          ? 'job too large to bind: failed (bind_too_large)'
          : 'bind refused by a compare (stale view or lost fence)',
      });
    span.end();
  }
}
