/**
 * The simulator: replays a workload against a node inventory with the live scheduler's
 * placement code (`placeTasks` from libs/scheduling, the same phases and plugins) on a
 * virtual clock. No etcd, no processes: "what would the cluster do with this?".
 */
import { addResources, GPU_MILLI, type ResourceVector } from '@batchapi/api';
import {
  mostEver,
  type NodeSnapshot,
  type PendingWork,
  type PlacementPolicy,
  packingScores,
  placeTasks,
  QuotaLedger,
  requestShapes,
  type ScorePlugin,
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
}

interface Running {
  at: number;
  node: NodeSnapshot;
  resources: ResourceVector;
  devices: number[][];
  queue: string;
  share: number;
  count: number;
}

interface Job extends PendingWork {
  duration: number | null;
}

/** Runs the simulation to the end of the workload. */
export function simulate(nodesIn: readonly NodeSnapshot[], workload: readonly Submission[], opts: SimulationOptions = {}): SimulationResult {
  const clock = opts.clock ?? (() => performance.now());
  const started = clock();
  const nodes = nodesIn.map((n) => ({ ...n, used: { ...n.used }, devices: { ...n.devices } }));
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const queues = new Map((opts.queues ?? []).map((q) => [q.name, q]));
  const capacity = nodes.reduce<ResourceVector>((acc, n) => addResources(acc, n.capacity), {});
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

  const advance = (to: number) => {
    for (const [k, v] of Object.entries(allocated)) integral[k] = (integral[k] ?? 0) + v * (to - now);
    now = to;
  };

  while (next < subs.length || running.size > 0) {
    const t = Math.min(next < subs.length ? subs[next].submitAt : Infinity, running.peek()?.at ?? Infinity);
    advance(t);
    // Completions at t free their resources.
    while (running.size > 0 && running.peek()!.at <= t) {
      const r = running.pop()!;
      release(r);
      completed += r.count;
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
      });
    }
    cycle(t);
    if (opts.onCycle) {
      const waiting = new Map<string, number>();
      for (const j of pending) waiting.set(j.queue, (waiting.get(j.queue) ?? 0) + j.tasks);
      opts.onCycle(t, queueUsed, waiting);
    }
    events++;
    if (opts.onProgress && events % (opts.progressEvery ?? 1000) === 0) {
      opts.onProgress({ time: t, placed, pending: pending.reduce((n, j) => n + j.tasks, 0), running: running.size, events });
    }
  }

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
  };

  function cycle(t: number): void {
    if (pending.length === 0) return;
    const quota = new QuotaLedger([...queues.values()], queueUsed);
    const weights = new Map([...queues.values()].map((q) => [q.name, q.weight]));
    const { placements } = placeTasks(pending, nodes, {
      quota,
      policy: opts.policy,
      scores: opts.scores ?? packingScores(requestShapes([...pending.map((j) => ({ resources: j.resources, count: j.tasks })), ...held.values()])),
      maxTasks: Number.MAX_SAFE_INTEGER,
      fairShare: opts.fairShare === false ? undefined : { capacity, usage: queueUsed, weights },
    });
    if (placements.length === 0) return;
    const jobs = new Map(pending.map((j) => [j.jobId, j]));
    for (const p of placements) {
      const job = jobs.get(p.jobId)!;
      const node = byName.get(p.node)!;
      const share = job.resources.gpu ?? 0;
      const r: Running = {
        at: job.duration === null ? Infinity : t + job.duration,
        node,
        resources: job.resources,
        devices: p.devices,
        queue: job.queue,
        share,
        count: p.count,
      };
      hold(r);
      job.tasks -= p.count;
      placed += p.count;
      placedByQueue[job.queue] = (placedByQueue[job.queue] ?? 0) + p.count;
      nodesUsed.add(node.name);
      if (job.duration === null) forever += p.count;
      else running.push(r);
    }
    for (let i = pending.length - 1; i >= 0; i--) if (pending[i].tasks === 0) pending.splice(i, 1);
  }

  function hold(r: Running): void {
    change(r, 1);
  }
  function release(r: Running): void {
    change(r, -1);
  }
  function change(r: Running, sign: 1 | -1): void {
    r.node.used = addResources(r.node.used, r.resources, sign * r.count);
    allocated = addResources(allocated, r.resources, sign * r.count);
    queueUsed.set(r.queue, addResources(queueUsed.get(r.queue) ?? {}, r.resources, sign * r.count));
    const shape = JSON.stringify(r.resources);
    const h = held.get(shape) ?? { resources: r.resources, count: 0 };
    h.count += sign * r.count;
    if (h.count > 0) held.set(shape, h);
    else held.delete(shape);
    const each = r.share >= GPU_MILLI ? GPU_MILLI : r.share;
    for (const ds of r.devices) for (const d of ds) r.node.devices[d] = (r.node.devices[d] ?? 0) + sign * each;
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
