/**
 * The simulator: replays a workload against a node inventory with the live scheduler's
 * placement code (`placeTasks` from libs/scheduling, the same phases and plugins) on a
 * virtual clock. No etcd, no processes: "what would the cluster do with this?".
 */
import { addResources, GPU_MILLI, type ResourceVector } from '@batchapi/api';
import {
  agingBoost,
  type BackfillInput,
  chargeOf,
  DEFAULT_DOMAIN_SCORE_WEIGHT,
  DEFAULT_RUNTIME_ESTIMATE_SECONDS,
  DEFAULT_TOPOLOGY_LEVELS,
  domainScore,
  expectedEnd,
  mostEver,
  type NodeSnapshot,
  type PendingWork,
  type PlacementPolicy,
  packingScores,
  placeTasks,
  planReclaim,
  preemptionBudget,
  preemptionPass,
  type PriorityAging,
  QuotaLedger,
  type Release,
  type RepeatLimit,
  repeatExempt,
  type ResourcePrices,
  requestShapes,
  withinLimit,
  type RunningTask,
  type ScorePlugin,
  type Victim,
  type CapCount,
  grantCaps,
  type ConsolidationJob,
  DEFAULT_CONSOLIDATION,
  DEFAULT_REPEAT_LIMIT,
  planConsolidation,
  planDefragment,
  DEFAULT_DEFRAGMENT_MAX_MOVES,
  planRepack,
  type RepackOptions,
  type ConsolidationMove,
  type RepackMove,
} from '@batchapi/scheduling';
import { MinHeap } from './heap';
import type { SimQueue, Submission } from './inputs';

/** What `simulate` answers (the last line of `batch simulate`). */
export interface SimulationResult {
  placed: number;
  pending: number;
  completed: number;
  rejected: number;
  nodesUsed: number;
  /** Seconds until the last task finished; null when some task never finishes. */
  makespan: number | null;
  placedByQueue: Record<string, number>;
  /** Time-weighted share of each resource's capacity that was allocated. */
  allocation: Record<string, number>;
  wallSeconds: number;
  decisionsPerSecond: number;
  /** Tasks stopped by preemption and reclaim, by cause (only with `preemption`). */
  stopped?: { preempt: number; reclaim: number };
  /** What consolidation did once the workload's events were over (only with `consolidation`). */
  consolidation?: SimConsolidationResult;
  /** What defragmentation did (only with `defragment`). */
  defragment?: SimDefragmentResult;
}

/** What the consolidation passes did. */
export interface SimConsolidationResult {
  /** Passes that emptied at least one node. */
  passes: number;
  /** Tasks moved (stopped, requeued and placed again): the cost. */
  moved: number;
  /** Nodes holding tasks when the workload's events were over (before the settling passes), and after the last pass. */
  nodesInUseBefore: number;
  nodesInUse: number;
  /** Nodes in use integrated over virtual time until the events were over, in node-seconds (what an autoscaler would pay for). */
  nodeSeconds: number;
  /** Of `passes`, those that re-packed (only with `repack`). */
  repackPasses?: number;
}

/**
 * Consolidation in the simulation (the live `BATCH_CONSOLIDATION_*`): passes of
 * `planConsolidation` empty the least-used nodes whose tasks fit the room of the others, checked
 * with the simulation's own placement. While tasks run and end, a pass runs every
 * `intervalSeconds` that nothing waits (as the live leader's); once the workload's events are over
 * (tasks that never end still run: the cluster settled), passes follow each other
 * `max(consolidateAfterSeconds, protectSeconds)` of virtual time apart until one frees nothing.
 * Moved tasks are stopped (a task that ends runs its whole duration again) and placed again by the
 * live placement code with the emptied nodes cordoned (the cordon is lifted after the placement, as
 * the live leader does once the node is empty).
 */
export interface SimConsolidation {
  /** Most nodes emptied per pass. @default 1 */
  maxNodesPerPass?: number;
  /** Most nodes emptied per pass, as a fraction of the nodes in use (at least 1). @default 0.1 */
  maxNodeFraction?: number;
  /** A node whose newest task is younger than this is not emptied, in seconds. @default 300 */
  consolidateAfterSeconds?: number;
  /** A task younger than this is not moved, in seconds (the preemption exempt time). @default 60 */
  protectSeconds?: number;
  /** Most passes once the events are over. @default 1000 */
  maxPasses?: number;
  /** Least virtual time between two passes while tasks run and end, in seconds (the live leader's 10 s). @default 10 */
  intervalSeconds?: number;
  /** The repeat limit moves count toward (its window in milliseconds). @default DEFAULT_REPEAT_LIMIT (3 in 10 minutes) */
  repeat?: RepeatLimit;
  /** A task running longer than this is not moved (a move restarts it: its work so far is lost), in seconds; 0 = any age. @default 600 (the live `BATCH_CONSOLIDATION_MAX_TASK_AGE`) */
  maxTaskAgeSeconds?: number;
  /** When a pass empties no node, re-pack (`planRepack`): move tasks between nodes so that some can be emptied (live: `BATCH_CONSOLIDATION_REPACK_MAX_MOVES` > 0). @default false */
  repack?: boolean;
  /** Most tasks a re-pack pass moves per node it empties (the live `BATCH_CONSOLIDATION_REPACK_MAX_MOVES`). @default 100 */
  maxMovesPerNode?: number;
  /** A re-pack's moved tasks wait with the nodes it planned for them nominated (`PendingWork.nominated`); false: placed as plain waiting work. @default true */
  nominate?: boolean;
}

/**
 * Defragmentation for waiting work in the simulation (the live `BATCH_DEFRAGMENT_MAX_MOVES`): while
 * work waits, a pass of `planDefragment` every `intervalSeconds`, checked with the simulation's own
 * placement; its moved tasks are stopped (a task that ends runs its whole duration again) and wait
 * with their destinations nominated, the waiting job with the freed node, and the next cycle (at
 * once: stops free room at once here) places them.
 */
export interface SimDefragment {
  /** Most tasks a pass stops. @default 8 */
  maxMoves?: number;
  /** Least virtual time between two passes, in seconds (the live leader's 10 s). @default 10 */
  intervalSeconds?: number;
  /** A task younger than this is not moved, in seconds (the preemption exempt time). @default 60 */
  protectSeconds?: number;
  /** A task running longer than this is not moved, in seconds; 0 = any age. @default 600 */
  maxTaskAgeSeconds?: number;
  /** The repeat limit moves count toward (its window in milliseconds). @default DEFAULT_REPEAT_LIMIT (3 in 10 minutes) */
  repeat?: RepeatLimit;
}

/** What the defragmentation passes did. */
export interface SimDefragmentResult {
  /** Passes that served a waiting job. */
  passes: number;
  /** Tasks moved (stopped, requeued and placed again): the cost. */
  moved: number;
  /** Waiting jobs given a node. */
  served: number;
}

/** Preemption and reclaim in the simulation, as the live scheduler's post-filter phase runs them. */
export interface SimPreemption {
  /** A task bound less than this long ago is never preempted, in seconds (PreemptExemptTime). @default 60 */
  protectSeconds?: number;
  /** A task bound less than this long ago is never reclaimed, in seconds. @default 0 */
  reclaimProtectSeconds?: number;
  /** The repeat limit (its window in milliseconds, as the live setting). @default off */
  repeat?: RepeatLimit;
  /** Victims each queue may lose in any sliding minute. @default 100 */
  perQueuePerMinute?: number;
  /** Besides events, a cycle runs this often while work waits (the live scheduler's idle cycle), in seconds. @default 5 */
  tickSeconds?: number;
}

/** Backfill in the simulation. */
export interface SimBackfill {
  /** Most reservations per cycle. @default 1 */
  maxReservations?: number;
  /** Runtime estimate of a task without `timeoutSeconds`, in seconds. @default 3600 */
  runtimeSeconds?: number;
}

/** Options of a simulation. */
export interface SimulationOptions {
  /** Queues with quotas; without them every queue is unlimited. @default [] */
  queues?: SimQueue[];
  /** @default "bin-pack" */
  policy?: PlacementPolicy;
  /** Score plugins of bin packing. @default packingScores of the request mix pending and running (as the live scheduler) */
  scores?: readonly ScorePlugin[];
  /** Dominant resource fairness between queues (weights from the queues file, else 1). @default true */
  fairShare?: boolean;
  /** Called about every `progressEvery` events with the virtual time and counts. */
  onProgress?: (p: { time: number; placed: number; pending: number; running: number; events: number }) => void;
  /** @default 1000 */
  progressEvery?: number;
  /** Explains each rejected submission. */
  onReject?: (s: Submission, reason: string) => void;
  /**
   * Called after each scheduling cycle with the virtual time, what each queue holds and the
   * tasks each queue still has waiting (for fairness measurements).
   */
  onCycle?: (time: number, held: ReadonlyMap<string, ResourceVector>, waiting: ReadonlyMap<string, number>) => void;
  /** Wall clock for `wallSeconds`, in milliseconds. @default performance.now */
  clock?: () => number;
  /** Priority aging of waiting work (cluster-wide; a queue's own settings are not read from the queues file). @default off */
  aging?: PriorityAging;
  /** Fair-share prices (GPU-model-priced fair share): queues hold and the cluster offers `gpu:<model>` of labelled nodes. @default none (plain DRF) */
  prices?: ResourcePrices;
  /** Preemption and reclaim with their thrash damping. @default off (placement only) */
  preemption?: SimPreemption;
  /**
   * Backfill with reservations, as the live cycle runs it: running tasks are expected to end at
   * their `timeoutSeconds`, else after `runtimeSeconds` (the scheduler knows no true durations).
   * @default off
   */
  backfill?: SimBackfill;
  /**
   * The batching window: cycles run at most this often, so work that arrives meanwhile waits for
   * the next one and is placed together with what arrived beside it (the live scheduler's
   * `BATCH_PLACEMENT_WINDOW`), in seconds. @default 0: a cycle at every event
   */
  batchWindowSeconds?: number;
  /**
   * Weight of the domain score (`domainScore`: work without `topology` goes to the racks already in
   * use), as the live `BATCH_TOPOLOGY_SCORE_WEIGHT`; 0 turns it off. Ignored when `scores` is given.
   * @default DEFAULT_DOMAIN_SCORE_WEIGHT
   */
  domainScoreWeight?: number;
  /** Called when tasks of a job start on a node (virtual time in seconds). */
  onStart?: (time: number, jobId: string, tasks: number, node: string) => void;
  /** Consolidation once the workload's events are over. @default off */
  consolidation?: SimConsolidation;
  /** Defragmentation for waiting work (`planDefragment`). @default off */
  defragment?: SimDefragment;
  /** Called for each task stopped by preemption or reclaim (virtual time in seconds). */
  onStop?: (time: number, victim: Victim, cause: 'preempt' | 'reclaim') => void;
}

interface Running {
  at: number;
  /** The job, when it may be stopped (simulations with preemption). */
  job?: Job;
  boundAt: number;
  /** Group id and its task indices already stopped. */
  id: number;
  stopped: Set<number>;
  node: NodeSnapshot;
  resources: ResourceVector;
  devices: number[][];
  queue: string;
  share: number;
  count: number;
}

interface Job extends PendingWork {
  duration: number | null;
  /** The submission's `maxRunning`. @default unlimited */
  maxRunning?: number;
  /** Its tasks placed and not yet ended or stopped (what `maxRunning` counts). */
  inFlight: number;
}

/** Runs the simulation to the end of the workload. */
/**
 * A simulated time (seconds, floating) as the whole epoch milliseconds every pass reads: one
 * rounding for "now" and for bind times alike, so a pass exactly `consolidateAfter` or `protect`
 * after a bind sees it as that old (300 s × 1000 in floating point can read 299,999.99… ms).
 */
function msAt(seconds: number): number {
  return Math.round(seconds * 1000);
}

export function simulate(nodesIn: readonly NodeSnapshot[], workload: readonly Submission[], opts: SimulationOptions = {}): SimulationResult {
  const clock = opts.clock ?? (() => performance.now());
  const started = clock();
  const nodes = nodesIn.map((n) => ({ ...n, used: { ...n.used }, devices: { ...n.devices } }));
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const queues = new Map((opts.queues ?? []).map((q) => [q.name, q]));
  // Tasks of each queue placed and not yet ended or stopped (what its maxRunningTasks counts).
  const queueInFlight = new Map<string, number>();
  const capped = [...queues.values()].some((q) => q.maxRunningTasks !== undefined);
  const noTenants = new Map<string, string>();
  const queueCaps = () => ({
    queues: new Map(
      [...queues.values()].map((q): [string, CapCount] => [
        q.name,
        {
          kind: 'queue',
          name: q.name,
          ...(q.maxRunningTasks !== undefined ? { maxRunningTasks: q.maxRunningTasks } : {}),
          running: queueInFlight.get(q.name) ?? 0,
          granted: 0,
          waitingTasks: 0,
          gpuHoursUsed: 0,
        },
      ]),
    ),
    tenants: new Map<string, CapCount>(),
  });
  const capacity = nodes.reduce<ResourceVector>((acc, n) => addResources(acc, opts.prices ? chargeOf(n.capacity, n.labels) : n.capacity), {});
  const subs = [...workload].sort((a, b) => a.submitAt - b.submitAt || a.line - b.line);
  const running = new MinHeap<Running>();
  const pending: Job[] = [];
  const queueUsed = new Map<string, ResourceVector>();
  /** Tasks holding resources, by request shape: with the pending ones, the request mix packing scores against. */
  const held = new Map<string, { resources: ResourceVector; count: number }>();
  const placedByQueue: Record<string, number> = {};
  const nodesUsed = new Set<string>();
  let allocated: ResourceVector = {};
  const integral: ResourceVector = {};
  let placed = 0,
    completed = 0,
    rejected = 0,
    forever = 0,
    events = 0;
  let now = 0,
    lastFinish = 0,
    next = 0;
  const pre = opts.preemption;
  const tick = pre ? (pre.tickSeconds ?? 5) : Infinity;
  /** Running groups by id (simulations with preemption: victims are picked among them; with backfill: their expected ends). */
  const live = new Map<number, Running>();
  const tracked = !!pre || !!opts.backfill || !!opts.consolidation || !!opts.defragment;
  /** Nodes cordoned by a consolidation pass: placement leaves them out. */
  let cordoned: ReadonlySet<string> = new Set();
  let groups = 0,
    lastCycle = -Infinity;
  const window = opts.batchWindowSeconds ?? 0;
  /** An event came within the window of the last cycle: a cycle is owed at `lastCycle + window`. */
  let owed = false;
  const stopped = { preempt: 0, reclaim: 0 };
  /** Times of recent stops (ms) per victim queue (the budget) and per job (the repeat limit). */
  let stoppedAt = new Map<string, number[]>();
  let jobStops = new Map<string, number[]>();

  const cons = opts.consolidation;
  const consolidated: SimConsolidationResult = { passes: 0, moved: 0, nodesInUseBefore: 0, nodesInUse: 0, nodeSeconds: 0 };
  let nextPass = 0;
  const defrag = opts.defragment;
  const defragmented: SimDefragmentResult = { passes: 0, moved: 0, served: 0 };
  let nextDefrag = 0;
  const inUse = () => nodes.filter((n) => Object.values(n.used).some((v) => v > 0)).length;
  const advance = (to: number) => {
    if (cons && to > now) consolidated.nodeSeconds += inUse() * (to - now);
    for (const [k, v] of Object.entries(allocated)) integral[k] = (integral[k] ?? 0) + v * (to - now);
    now = to;
  };

  while (next < subs.length || running.size > 0 || owed) {
    const t = Math.min(
      next < subs.length ? subs[next].submitAt : Infinity,
      running.peek()?.at ?? Infinity,
      pending.length > 0 ? lastCycle + tick : Infinity,
      owed ? lastCycle + window : Infinity,
      // A consolidation pass is owed while tasks run (and end) and nothing waits.
      cons && running.size > 0 && pending.length === 0 ? Math.max(nextPass, now) : Infinity,
      // A defragmentation pass is owed while work waits.
      defrag && running.size > 0 && pending.length > 0 ? Math.max(nextDefrag, now) : Infinity,
    );
    advance(t);
    // Completions at t free their resources.
    while (running.size > 0 && running.peek()!.at <= t) {
      const r = running.pop()!;
      release(r);
      if (r.job) r.job.inFlight -= r.count - r.stopped.size;
      queueInFlight.set(r.queue, (queueInFlight.get(r.queue) ?? 0) - (r.count - r.stopped.size));
      live.delete(r.id);
      completed += r.count - r.stopped.size;
      lastFinish = Math.max(lastFinish, r.at);
    }
    // Submissions at t join the queues (or are refused when one task can never fit the quota).
    while (next < subs.length && subs[next].submitAt <= t) {
      const s = subs[next++];
      const q = queues.get(s.queue);
      const over = q && overQuota(s.resources, q, queues.values());
      if (over) {
        rejected++;
        opts.onReject?.(s, over);
        continue;
      }
      pending.push({
        jobId: `${s.line}:${s.name}`,
        queue: s.queue,
        priority: s.priority,
        createdAt: s.submitAt,
        resources: s.resources,
        tasks: s.tasks,
        selector: s.selector,
        tolerations: s.tolerations,
        gang: s.gang,
        duration: s.duration,
        inFlight: 0,
        ...(s.maxRunning !== undefined ? { maxRunning: s.maxRunning } : {}),
        ...(s.timeoutSeconds !== undefined ? { timeoutSeconds: s.timeoutSeconds } : {}),
        ...(s.topology ? { topology: s.topology } : {}),
      });
    }
    // Within the window of the last cycle: this event's work waits for the owed one.
    if (t < lastCycle + window) {
      owed = true;
      continue;
    }
    owed = false;
    lastCycle = t;
    // Stops free room at once in the simulation: the preemptors are placed by the next cycle, at the same instant.
    for (let k = 0; k < 3 && cycle(t); k++);
    if (opts.onCycle) {
      const waiting = new Map<string, number>();
      for (const j of pending) waiting.set(j.queue, (waiting.get(j.queue) ?? 0) + j.tasks);
      opts.onCycle(t, queueUsed, waiting);
    }
    if (defrag && pending.length > 0 && t >= nextDefrag) {
      nextDefrag = t + (defrag.intervalSeconds ?? 10);
      defragmentPass(defrag, t);
    }
    if (cons && pending.length === 0 && t >= nextPass) {
      nextPass = t + (cons.intervalSeconds ?? 10);
      consolidationPass(cons, t);
    }
    events++;
    if (opts.onProgress && events % (opts.progressEvery ?? 1000) === 0) {
      opts.onProgress({ time: t, placed, pending: pending.reduce((n, j) => n + j.tasks, 0), running: running.size, events });
    }
  }

  const consolidation = cons ? consolidate(cons) : undefined;
  const pendingTasks = pending.reduce((n, j) => n + j.tasks, 0);
  const makespan = pendingTasks === 0 && forever === 0 ? lastFinish : null;
  const allocation: Record<string, number> = {};
  for (const [k, cap] of Object.entries(capacity)) {
    if (cap <= 0) continue;
    const share = makespan ? (integral[k] ?? 0) / (cap * makespan) : (allocated[k] ?? 0) / cap;
    allocation[k === 'gpu' ? 'gpu' : k] = round(share);
  }
  for (const k of ['cpu', 'memory', 'gpu']) allocation[k] ??= 0;
  const wallSeconds = (clock() - started) / 1000;
  return {
    placed,
    pending: pendingTasks,
    completed,
    rejected,
    nodesUsed: nodesUsed.size,
    makespan,
    placedByQueue,
    allocation,
    wallSeconds: round(wallSeconds),
    decisionsPerSecond: wallSeconds > 0 ? Math.round(placed / wallSeconds) : placed,
    ...(pre ? { stopped } : {}),
    ...(consolidation ? { consolidation } : {}),
    ...(defrag ? { defragment: defragmented } : {}),
  };

  /** What consolidation, re-pack and defragmentation read of each running job. */
  function consolidationJobs(): Map<string, ConsolidationJob> {
    const jobs = new Map<string, ConsolidationJob>();
    for (const r of live.values())
      if (r.job)
        jobs.set(r.job.jobId, {
          createdAt: r.job.createdAt,
          selector: r.job.selector,
          tolerations: r.job.tolerations,
          gang: r.job.gang,
          ...(r.job.topology ? { topology: r.job.topology } : {}),
        });
    return jobs;
  }

  /** One defragmentation pass at `t`: the moved tasks stopped, they and the served job nominated, and a cycle at once. */
  function defragmentPass(d: SimDefragment, t: number): void {
    const nowMs = msAt(t);
    const repeat = repeatExempt(jobStops, nowMs, d.repeat ?? DEFAULT_REPEAT_LIMIT);
    jobStops = repeat.recent;
    const jobs = consolidationJobs();
    const waitingWork = pending.map((j) => withinLimit(j, j.maxRunning, j.inFlight)).filter((w) => w.tasks > 0);
    const plan = planDefragment(nodes, runningTasks(), waitingWork, (id) => jobs.get(id), nowMs, {
      protectMs: (d.protectSeconds ?? 60) * 1000,
      exemptJobs: repeat.exempt,
      ...((d.maxTaskAgeSeconds ?? 600) > 0 ? { maxTaskAgeMs: (d.maxTaskAgeSeconds ?? 600) * 1000 } : {}),
      maxMoves: d.maxMoves ?? DEFAULT_DEFRAGMENT_MAX_MOVES,
      placer: (work, open) =>
        placeTasks(work, open, { policy: opts.policy, scores: opts.scores ?? cycleScores(), maxTasks: Number.MAX_SAFE_INTEGER, batchWindow: window })
          .placements,
    });
    if (plan.targets.length === 0) return;
    const byId = new Map(pending.map((j) => [j.jobId, j]));
    const nominatedJobs = new Set<Job>();
    const nominate = (job: Job | undefined, node: string) => {
      if (!job) return;
      job.nominated = [...(job.nominated ?? []), node];
      nominatedJobs.add(job);
    };
    for (const m of plan.moves) nominate(live.get(m.task.groupStart)?.job, m.nominated ?? m.to);
    for (const x of plan.targets) for (const node of x.nodes) nominate(byId.get(x.jobId), node);
    for (const m of plan.moves) stop(t, { task: m.task, forJob: '' }, 'consolidate');
    for (const jobId of new Set(plan.moves.map((m) => m.task.jobId))) jobStops.set(jobId, [...(jobStops.get(jobId) ?? []), nowMs]);
    defragmented.moved += plan.moves.length;
    defragmented.served += plan.targets.length;
    defragmented.passes++;
    cycle(t);
    for (const job of nominatedJobs) delete job.nominated;
  }

  /** The settling passes once the events are over (see `SimConsolidation`), and what all passes did. */
  function consolidate(c: SimConsolidation): SimConsolidationResult {
    consolidated.nodesInUseBefore = inUse();
    const nodeSeconds = consolidated.nodeSeconds;
    const afterS = c.consolidateAfterSeconds ?? DEFAULT_CONSOLIDATION.consolidateAfterMs / 1000;
    const protectS = c.protectSeconds ?? DEFAULT_CONSOLIDATION.protectMs / 1000;
    for (let pass = 0; pass < (c.maxPasses ?? 1000) && pending.length === 0; pass++) {
      const t = now + Math.max(afterS, protectS, 1);
      advance(t);
      // The placement is free to differ from the plan's fit: a pass that freed nothing net (its
      // tasks went to nodes that were empty) ends the passes, as the live leader would find the same.
      // With re-pack, a pass whose emptying freed nothing net is followed by a re-pack at once.
      if (!consolidationPass(c, t) && !(c.repack && consolidationPass(c, t, true))) break;
    }
    consolidated.nodesInUse = inUse();
    // The settling passes' virtual time is not the workload's.
    consolidated.nodeSeconds = nodeSeconds;
    return consolidated;
  }

  /** One consolidation pass at `t` (`repackOnly`: the re-pack alone): true when it left fewer nodes in use. */
  function consolidationPass(c: SimConsolidation, t: number, repackOnly = false): boolean {
    const afterS = c.consolidateAfterSeconds ?? DEFAULT_CONSOLIDATION.consolidateAfterMs / 1000;
    const protectS = c.protectSeconds ?? DEFAULT_CONSOLIDATION.protectMs / 1000;
    // Moves count toward the repeat limit, as the live leader counts them.
    const nowMs = msAt(t);
    const repeat = repeatExempt(jobStops, nowMs, c.repeat ?? DEFAULT_REPEAT_LIMIT);
    jobStops = repeat.recent;
    const jobs = consolidationJobs();
    const options = {
      consolidateAfterMs: afterS * 1000,
      protectMs: protectS * 1000,
      exemptJobs: repeat.exempt,
      ...((c.maxTaskAgeSeconds ?? 600) > 0 ? { maxTaskAgeMs: (c.maxTaskAgeSeconds ?? 600) * 1000 } : {}),
      ...(c.maxNodesPerPass !== undefined ? { maxNodesPerPass: c.maxNodesPerPass } : {}),
      ...(c.maxNodeFraction !== undefined ? { maxNodeFraction: c.maxNodeFraction } : {}),
      // The check is the placement the next cycle runs: what it finds room for is where the tasks go.
      placer: (work, open) =>
        placeTasks(work, open, { policy: opts.policy, scores: opts.scores ?? cycleScores(), maxTasks: Number.MAX_SAFE_INTEGER, batchWindow: window })
          .placements,
    } satisfies RepackOptions;
    const tasks = runningTasks();
    let plan: { nodes: string[]; moves: ConsolidationMove[] } = repackOnly
      ? { nodes: [], moves: [] }
      : planConsolidation(nodes, tasks, (id) => jobs.get(id), nowMs, options);
    if (plan.nodes.length === 0 && c.repack) {
      plan = planRepack(nodes, tasks, (id) => jobs.get(id), nowMs, {
        ...options,
        ...(c.maxMovesPerNode !== undefined ? { maxMovesPerNode: c.maxMovesPerNode } : {}),
        nominate: c.nominate !== false,
      });
      if (plan.nodes.length > 0) consolidated.repackPasses = (consolidated.repackPasses ?? 0) + 1;
    }
    if (plan.nodes.length === 0) return false;
    const before = inUse();
    // A re-pack's moved tasks wait with the nodes it planned for them nominated, for the next cycle.
    const nominatedJobs = new Set<Job>();
    for (const m of plan.moves as RepackMove[]) {
      const job = live.get(m.task.groupStart)?.job;
      if (!job || !m.nominated) continue;
      job.nominated = [...(job.nominated ?? []), m.nominated];
      nominatedJobs.add(job);
    }
    for (const m of plan.moves) stop(t, { task: m.task, forJob: '' }, 'consolidate');
    for (const jobId of new Set(plan.moves.map((m) => m.task.jobId))) jobStops.set(jobId, [...(jobStops.get(jobId) ?? []), nowMs]);
    consolidated.moved += plan.moves.length;
    consolidated.passes++;
    // Placed again with the emptied nodes cordoned; the cordon lifted after (what could not be placed goes anywhere).
    cordoned = new Set(plan.nodes);
    cycle(t);
    for (const job of nominatedJobs) delete job.nominated;
    cordoned = new Set();
    cycle(t);
    return inUse() < before;
  }

  /** One cycle: placement, then (with `preemption`) reclaim and preemption. True when it stopped tasks. */
  function cycle(t: number): boolean {
    if (pending.length === 0) return false;
    const quota = new QuotaLedger([...queues.values()], queueUsed);
    const weights = new Map([...queues.values()].map((q) => [q.name, q.weight]));
    // A job's maxRunning, as the live snapshot applies it: at most `maxRunning − inFlight` of its tasks are placeable.
    const limited = pending.map((j) => withinLimit(j, j.maxRunning, j.inFlight)).filter((w) => w.tasks > 0);
    const agedAll = opts.aging ? limited.map((w) => aged1(w, t, opts.aging!)) : limited;
    // A queue's maxRunningTasks, as the live snapshot applies it (`plugins/running-caps`): slots in priority, then age, order.
    const aged = capped ? grantCaps(agedAll, queueCaps(), noTenants).filter((w) => w.tasks > 0) : agedAll;
    const open = cordoned.size ? nodes.filter((n) => !cordoned.has(n.name)) : nodes;
    const { placements, unplaced } = placeTasks(aged, open, {
      quota,
      policy: opts.policy,
      scores: opts.scores ?? cycleScores(),
      maxTasks: Number.MAX_SAFE_INTEGER,
      batchWindow: window,
      fairShare: opts.fairShare === false ? undefined : { capacity, usage: queueUsed, weights, ...(opts.prices ? { prices: opts.prices } : {}) },
      ...(opts.backfill ? { backfill: backfillAt(t, opts.backfill) } : {}),
    });
    const jobs = new Map(pending.map((j) => [j.jobId, j]));
    for (const p of placements) {
      const job = jobs.get(p.jobId)!;
      const node = byName.get(p.node)!;
      const share = job.resources.gpu ?? 0;
      // A task still running at its timeout is stopped, as the executor does.
      const runs = job.timeoutSeconds !== undefined ? Math.min(job.duration ?? Infinity, job.timeoutSeconds) : job.duration;
      const r: Running = {
        at: runs === null ? Infinity : t + runs,
        job,
        boundAt: t,
        id: groups++,
        stopped: new Set(),
        node,
        resources: job.resources,
        devices: p.devices,
        queue: job.queue,
        share,
        count: p.count,
      };
      hold(r);
      if (tracked) live.set(r.id, r);
      opts.onStart?.(t, job.jobId, p.count, p.node);
      job.tasks -= p.count;
      job.inFlight += p.count;
      queueInFlight.set(job.queue, (queueInFlight.get(job.queue) ?? 0) + p.count);
      placed += p.count;
      placedByQueue[job.queue] = (placedByQueue[job.queue] ?? 0) + p.count;
      nodesUsed.add(node.name);
      if (runs === null) forever += p.count;
      else running.push(r);
    }
    for (let i = pending.length - 1; i >= 0; i--) if (pending[i].tasks === 0) pending.splice(i, 1);
    if (!pre || unplaced.length === 0) return false;
    return postFilter(t, quota, unplaced, placements.length, jobs, aged);
  }

  /** The live cycle's scores: packing against the request mix pending and running, and the domain score on the nodes as they are now. */
  function cycleScores(): ScorePlugin[] {
    const packing = packingScores(requestShapes([...pending.map((j) => ({ resources: j.resources, count: j.tasks })), ...held.values()]));
    const domain = domainScore(nodes, DEFAULT_TOPOLOGY_LEVELS, opts.domainScoreWeight ?? DEFAULT_DOMAIN_SCORE_WEIGHT);
    return domain ? [...packing, domain] : packing;
  }

  /** The backfill input of a cycle at `t` (seconds): every live group's expected end (its timeout, else the estimate; never before now). */
  function backfillAt(t: number, b: SimBackfill): BackfillInput {
    const estimate = b.runtimeSeconds ?? DEFAULT_RUNTIME_ESTIMATE_SECONDS;
    const now = msAt(t);
    const releases: Release[] = [];
    for (const r of live.values()) {
      const count = r.count - r.stopped.size;
      if (count > 0)
        releases.push({ node: r.node.name, at: expectedEnd(msAt(r.boundAt), r.job?.timeoutSeconds, estimate, now), resources: r.resources, count });
    }
    return { now, releases, maxReservations: b.maxReservations ?? 1, runtimeSeconds: () => estimate };
  }

  /** Reclaim for quota-limited work; preemption when nothing was placed (as `scheduleSteps`). Stops the victims at once. */
  function postFilter(
    t: number,
    ledger: QuotaLedger,
    unplaced: ReturnType<typeof placeTasks>['unplaced'],
    placedCount: number,
    jobs: Map<string, Job>,
    aged: readonly PendingWork[],
  ): boolean {
    const p = pre!;
    const nowMs = msAt(t);
    const b = preemptionBudget(stoppedAt, nowMs, p.perQueuePerMinute ?? 100);
    stoppedAt = b.recent;
    const r = p.repeat ? repeatExempt(jobStops, nowMs, p.repeat) : undefined;
    if (r) jobStops = r.recent;
    const exemptJobs = r?.exempt;
    const tasks = runningTasks();
    const demands = unplaced
      .filter((u) => u.quotaLimited)
      .map((u) => ({ jobId: u.jobId, queue: jobs.get(u.jobId)!.queue, charge: jobs.get(u.jobId)!.resources, tasks: u.tasks }));
    const reclaimed = demands.length
      ? planReclaim(ledger, demands, tasks, (x) => chargeOf(x.resources, byName.get(x.node)?.labels), {
          budget: b.budget,
          now: nowMs,
          protectMs: (p.reclaimProtectSeconds ?? 0) * 1000,
          exemptJobs,
        })
      : [];
    let preempted: Victim[] = [];
    if (placedCount === 0) {
      const byId = new Map(aged.map((w) => [w.jobId, w]));
      const candidates = unplaced.filter((u) => !u.quotaLimited && byId.has(u.jobId)).map((u) => ({ ...byId.get(u.jobId)!, tasks: u.tasks }));
      if (candidates.length)
        preempted = preemptionPass(candidates, nodes, tasks, { now: nowMs, protectMs: (p.protectSeconds ?? 60) * 1000, budget: b.budget, exemptJobs }).victims;
    }
    for (const [victims, cause] of [
      [reclaimed, 'reclaim'],
      [preempted, 'preempt'],
    ] as const)
      for (const v of victims) stop(t, v, cause);
    const all = [...reclaimed, ...preempted];
    for (const v of all) stoppedAt.set(v.task.queue, [...(stoppedAt.get(v.task.queue) ?? []), nowMs]);
    for (const jobId of new Set(all.map((v) => v.task.jobId))) jobStops.set(jobId, [...(jobStops.get(jobId) ?? []), nowMs]);
    return all.length > 0;
  }

  function runningTasks(): RunningTask[] {
    const out: RunningTask[] = [];
    for (const r of live.values()) {
      if (!r.job) continue;
      for (let i = 0; i < r.count; i++) {
        if (r.stopped.has(i)) continue;
        out.push({
          jobId: r.job.jobId,
          queue: r.queue,
          node: r.node.name,
          groupStart: r.id,
          attempt: 1,
          index: i,
          priority: r.job.priority,
          resources: r.resources,
          devices: r.devices[i] ?? [],
          // Whole milliseconds, as the passes' now: a pass exactly consolidateAfter after a bind must see it as old enough (in floating seconds × 1000 it is 299999.99…).
          boundAt: msAt(r.boundAt),
          stopping: false,
        });
      }
    }
    return out;
  }

  /** Stops one task now: its room comes back, the task waits again (its work is lost: it runs its whole duration again). */
  function stop(t: number, v: Victim, cause: 'preempt' | 'reclaim' | 'consolidate'): void {
    const r = live.get(v.task.groupStart)!;
    r.stopped.add(v.task.index);
    changeOne(r, v.task.index, -1);
    if (cause !== 'consolidate') stopped[cause]++;
    placed--;
    placedByQueue[r.queue]--;
    const job = r.job!;
    if (job.tasks === 0) pending.push(job);
    job.tasks++;
    job.inFlight--;
    queueInFlight.set(r.queue, (queueInFlight.get(r.queue) ?? 0) - 1);
    if (r.stopped.size === r.count) live.delete(r.id);
    if (cause !== 'consolidate') opts.onStop?.(t, v, cause);
  }

  function hold(r: Running): void {
    change(r, 1);
  }
  function release(r: Running): void {
    change(r, -1);
  }
  function change(r: Running, sign: 1 | -1): void {
    const devices = r.stopped.size ? r.devices.filter((_, i) => !r.stopped.has(i)) : r.devices;
    changeTasks(r, r.count - r.stopped.size, devices, sign);
  }
  function changeOne(r: Running, index: number, sign: 1 | -1): void {
    changeTasks(r, 1, [r.devices[index] ?? []], sign);
  }
  function changeTasks(r: Running, count: number, devices: number[][], sign: 1 | -1): void {
    r.node.used = addResources(r.node.used, r.resources, sign * count);
    allocated = addResources(allocated, r.resources, sign * count);
    queueUsed.set(r.queue, addResources(queueUsed.get(r.queue) ?? {}, opts.prices ? chargeOf(r.resources, r.node.labels) : r.resources, sign * count));
    const shape = JSON.stringify(r.resources);
    const h = held.get(shape) ?? { resources: r.resources, count: 0 };
    h.count += sign * count;
    if (h.count > 0) held.set(shape, h);
    else held.delete(shape);
    const each = r.share >= GPU_MILLI ? GPU_MILLI : r.share;
    for (const ds of devices) for (const d of ds) r.node.devices[d] = (r.node.devices[d] ?? 0) + sign * each;
  }
}

function overQuota(perTask: ResourceVector, q: SimQueue, all: Iterable<SimQueue>): string | undefined {
  const limits = mostEver(q, all);
  for (const [name, amount] of Object.entries(perTask)) {
    const most = limits[name];
    if (most === undefined) continue;
    if (amount > most) return `one task asks ${amount} ${name}, more than queue ${q.name} may ever hold (${most})`;
  }
  return undefined;
}

function round(x: number): number {
  return Math.round(x * 10000) / 10000;
}

/** A waiting job at its effective priority at `t` (seconds): aging as the live snapshot applies it. */
function aged1(j: PendingWork, t: number, aging: PriorityAging): PendingWork {
  const boost = agingBoost((t - j.createdAt) * 1000, aging);
  return boost === 0 ? j : { ...j, priority: j.priority + boost, basePriority: j.priority };
}
