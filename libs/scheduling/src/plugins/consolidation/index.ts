/**
 * Consolidation (opt-in): pick nodes to empty so that the work on them runs on fewer nodes — what
 * Karpenter's `WhenEmptyOrUnderutilized` consolidation, the descheduler's HighNodeUtilization and
 * cluster-autoscaler's scale-down simulation do. Online placement cannot know the pieces that
 * will complete a node (they arrive later); once arrivals settle, moving the tasks of the
 * least-used nodes into the room left on the others frees whole nodes.
 *
 * A node qualifies only when every task on it may move and all of them — together with the tasks
 * of the nodes already chosen in the same pass — fit into the free room of the other nodes in use
 * (best-fit decreasing, with the placement's own filters: resource fit with GPU devices,
 * selectors, taints, image). Candidates are tried least-utilized first (dominant share of
 * capacity, GPUs counted), bounded by a disruption budget (nodes per pass) and a step bound.
 * Pure: the snapshot, options and `now` in; the nodes to empty and where their tasks fit out. The
 * caller cordons the chosen nodes with a drain deadline of now (the drain machinery stops and
 * requeues the tasks, the cordon keeps them off the node) and lifts its own cordon once the node
 * is empty.
 */
import { GPU_MILLI, type JobTopology, type ResourceVector } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';
import { DEFAULT_FILTERS } from '../../framework/profile';
import type { NodeSnapshot, PendingWork, Placement, Toleration } from '../../snapshot';
import type { RunningTask } from '../preemption';
import { fitsOne, pickDevices } from '../resource-fit';

/** The job label that keeps a job's tasks where they run: consolidation never moves them (Karpenter's `do-not-disrupt`). */
export const DO_NOT_DISRUPT_LABEL = 'batchapi.io/do-not-disrupt';

/** What consolidation needs to know of a running task's job. */
export interface ConsolidationJob {
  /** Node labels its tasks need. @default {} */
  selector?: Record<string, string>;
  /** Taints its tasks tolerate. @default [] */
  tolerations?: Toleration[];
  /** Container image: only nodes with a runtime take it. @default none */
  image?: string;
  /** All tasks start together: moved only when every running task of the job moves in the pass. @default false */
  gang?: boolean;
  /** A job with `topology.required` is never moved (its domain was chosen for all of it). @default none */
  topology?: JobTopology;
  /** The job's labels: `DO_NOT_DISRUPT_LABEL` = "true" keeps it in place. @default {} */
  labels?: Record<string, string>;
  /** Submit time (epoch ms, or the simulation's seconds): the queue order a `placer` sees. @default 0 */
  createdAt?: number;
}

/**
 * The placement the moved tasks will get: given them as pending work and the other nodes in use
 * (their rooms as this pass left them), where they go. A caller passes the live placement
 * (`placeTasks` with the cycle's profile) so that what the check found is what the next cycle
 * does; without one, best-fit decreasing.
 */
export type ConsolidationPlacer = (work: PendingWork[], nodes: NodeSnapshot[]) => readonly Placement[];

/** Settings of a consolidation pass. */
export interface ConsolidationOptions {
  /** A node whose newest task was bound less than this long ago is not a candidate (Karpenter's `consolidateAfter`), in milliseconds. @default 300000 */
  consolidateAfterMs?: number;
  /** A task bound less than this long ago is never moved (the preemption exempt time), in milliseconds. @default 60000 */
  protectMs?: number;
  /** Jobs at their preemption repeat limit (see `repeatExempt`): never moved. @default none */
  exemptJobs?: ReadonlySet<string>;
  /** A task bound longer ago than this is never moved: a move restarts it, so this bounds the work lost per task, in milliseconds. @default none (any age) */
  maxTaskAgeMs?: number;
  /** Most nodes emptied in one pass (the disruption budget). @default 1 */
  maxNodesPerPass?: number;
  /** Most nodes emptied in one pass, as a fraction of the nodes in use (at least 1 node). @default 0.1 */
  maxNodeFraction?: number;
  /** Most (task, node) fit checks in one pass, a placer's run counted as each of its tasks against each node it is offered; past it the pass stops with what it chose. @default 200000 */
  maxSteps?: number;
  /** @default DEFAULT_FILTERS */
  filters?: readonly FilterPlugin[];
  /** Where the moved tasks fit: the live placement. @default best-fit decreasing with `filters` */
  placer?: ConsolidationPlacer;
}

export const DEFAULT_CONSOLIDATION: Required<Omit<ConsolidationOptions, 'exemptJobs' | 'filters' | 'placer' | 'maxTaskAgeMs'>> = {
  consolidateAfterMs: 300_000,
  protectMs: 60_000,
  maxNodesPerPass: 1,
  maxNodeFraction: 0.1,
  maxSteps: 200_000,
};

/** Why a node in use was not chosen. */
export type ConsolidationSkip =
  | 'recent-work'
  | 'protected'
  | 'too-old'
  | 'repeat-limit'
  | 'do-not-disrupt'
  | 'gang'
  | 'topology'
  | 'unknown-job'
  | 'stopping'
  | 'target'
  | 'no-room'
  | 'budget'
  | 'steps';

/** A task to move and the node its room was found on (the next cycle places it; the target is what the check found). */
export interface ConsolidationMove {
  task: RunningTask;
  to: string;
}

/** What a pass decided. */
export interface ConsolidationPlan {
  /** Nodes to empty, in the order chosen. */
  nodes: string[];
  moves: ConsolidationMove[];
  /** Nodes in use not chosen, and why (the first reason found). */
  skipped: Array<{ node: string; reason: ConsolidationSkip }>;
  /** Fit checks spent. */
  steps: number;
}

interface Room {
  node: NodeSnapshot;
  free: ResourceVector;
  devices: Record<string, number>;
  tasks: RunningTask[];
}

/** Dominant share of a node's capacity in use, GPUs counted: max over resources of used / capacity. */
export function utilizationOf(n: NodeSnapshot): number {
  let u = 0;
  for (const [k, cap] of Object.entries(n.capacity)) if (cap > 0) u = Math.max(u, (n.used[k] ?? 0) / cap);
  return u;
}

/** The disruption budget of a pass over `inUse` nodes: min(maxNodesPerPass, max(1, ⌊maxNodeFraction × inUse⌋)). */
export function consolidationBudget(inUse: number, o: ConsolidationOptions = {}): number {
  const perPass = o.maxNodesPerPass ?? DEFAULT_CONSOLIDATION.maxNodesPerPass;
  const fraction = o.maxNodeFraction ?? DEFAULT_CONSOLIDATION.maxNodeFraction;
  return Math.max(0, Math.min(perPass, Math.max(1, Math.floor(fraction * inUse))));
}

/**
 * The nodes to empty at `now`. `nodes`: the nodes that take work (uncordoned, not draining);
 * `running`: every live task (tasks on other nodes are ignored); `jobOf`: a running job's
 * placement traits (undefined: unknown, never moved).
 */
export function planConsolidation(
  nodes: readonly NodeSnapshot[],
  running: readonly RunningTask[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  now: number,
  o: ConsolidationOptions = {},
): ConsolidationPlan {
  const after = o.consolidateAfterMs ?? DEFAULT_CONSOLIDATION.consolidateAfterMs;
  const protectMs = o.protectMs ?? DEFAULT_CONSOLIDATION.protectMs;
  const maxSteps = o.maxSteps ?? DEFAULT_CONSOLIDATION.maxSteps;
  const filters = o.filters ?? DEFAULT_FILTERS;
  const rooms = new Map<string, Room>();
  for (const n of nodes) rooms.set(n.name, { node: n, free: freeOf(n), devices: { ...n.devices }, tasks: [] });
  const nodesOfJob = new Map<string, Set<string>>();
  for (const t of running) {
    const r = rooms.get(t.node);
    if (!r) continue;
    r.tasks.push(t);
    let s = nodesOfJob.get(t.jobId);
    if (!s) nodesOfJob.set(t.jobId, (s = new Set()));
    s.add(t.node);
  }
  const inUse = [...rooms.values()].filter((r) => r.tasks.length > 0);
  const budget = consolidationBudget(inUse.length, o);
  const candidates = inUse.sort((a, b) => utilizationOf(a.node) - utilizationOf(b.node) || (a.node.name < b.node.name ? -1 : 1));
  const chosen = new Set<string>();
  const targets = new Set<string>();
  const moves: ConsolidationMove[] = [];
  const skipped: ConsolidationPlan['skipped'] = [];
  const workOf = new Map<string, PendingWork>();
  let steps = 0;
  let stopped: ConsolidationSkip | undefined;
  for (const c of candidates) {
    const name = c.node.name;
    if (stopped) {
      skipped.push({ node: name, reason: stopped });
      continue;
    }
    if (chosen.size >= budget) {
      stopped = 'budget';
      skipped.push({ node: name, reason: stopped });
      continue;
    }
    // A node that received moves of this pass must keep them.
    const reason = targets.has(name) ? 'target' : unmovable(c, jobOf, nodesOfJob, chosen, now, after, protectMs, o.exemptJobs, o.maxTaskAgeMs);
    if (reason) {
      skipped.push({ node: name, reason });
      continue;
    }
    const others = [...rooms.values()].filter((r) => r !== c && !chosen.has(r.node.name) && r.tasks.length > 0);
    // A placer's run is counted as every (task, node) pair it may weigh, before it runs: the bound
    // holds however large the cluster (one placement over 10,000 nodes is 10,000 steps a task).
    if (o.placer && steps + c.tasks.length * others.length > maxSteps) {
      stopped = 'steps';
      skipped.push({ node: name, reason: stopped });
      continue;
    }
    const placed = o.placer ? placeWith(o.placer, c, others, jobOf) : bestFitDecreasing(c, others, jobOf, filters, workOf, maxSteps - steps);
    steps += placed.steps;
    if (!placed.taken) {
      if (steps >= maxSteps) stopped = 'steps';
      skipped.push({ node: name, reason: stopped ?? 'no-room' });
      continue;
    }
    for (const x of placed.taken) take(x.room, x.task.resources, x.devices);
    chosen.add(name);
    for (const x of placed.taken) {
      targets.add(x.room.node.name);
      moves.push({ task: x.task, to: x.room.node.name });
    }
  }
  return { nodes: [...chosen], moves, skipped, steps: Math.min(steps, maxSteps) };
}

interface Taken {
  room: Room;
  task: RunningTask;
  devices: number[];
}

/**
 * Best-fit decreasing of `c`'s tasks into `others` (left as they were): each task, heaviest first,
 * to the node it fits that it leaves least free. Every fit check is a step; undefined `taken`
 * when a task fits nowhere or the steps run out.
 */
function bestFitDecreasing(
  c: Room,
  others: readonly Room[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  filters: readonly FilterPlugin[],
  workOf: Map<string, PendingWork>,
  maxSteps: number,
): { taken?: Taken[]; steps: number } {
  const tasks = [...c.tasks].sort(
    (a, b) => weight(b.resources, c.node.capacity) - weight(a.resources, c.node.capacity) || a.jobId.localeCompare(b.jobId) || a.index - b.index,
  );
  const taken: Taken[] = [];
  let steps = 0;
  let ok = true;
  for (const t of tasks) {
    const work = workFor(t, jobOf(t.jobId)!, workOf);
    let best: Room | undefined;
    let bestSlack = Infinity;
    for (const r of others) {
      if (++steps > maxSteps) break;
      if (!fitsOne(t.resources, r.free) || pickDevices(r.devices, r.node.gpuCount, t.resources.gpu ?? 0) === undefined) continue;
      if (filters.some((f) => f.filter(work, r.node))) continue;
      const slack = slackAfter(r, t.resources);
      if (slack < bestSlack || (slack === bestSlack && best && r.node.name < best.node.name)) {
        best = r;
        bestSlack = slack;
      }
    }
    if (steps > maxSteps || !best) {
      ok = false;
      break;
    }
    taken.push({ room: best, task: t, devices: take(best, t.resources) });
  }
  // The rooms are left as they were: the caller takes what it keeps.
  for (const x of [...taken].reverse()) give(x.room, x.task.resources, x.devices);
  return ok ? { taken, steps } : { steps: Math.min(steps, maxSteps) };
}

/** `c`'s tasks placed by `placer` on `others` (one piece of work per job); one step per task. */
function placeWith(
  placer: ConsolidationPlacer,
  c: Room,
  others: readonly Room[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
): { taken?: Taken[]; steps: number } {
  const byJob = new Map<string, RunningTask[]>();
  for (const t of c.tasks) byJob.set(t.jobId, [...(byJob.get(t.jobId) ?? []), t]);
  const work: PendingWork[] = [...byJob].map(([jobId, ts]) => {
    const job = jobOf(jobId)!;
    const t = ts[0];
    return {
      jobId,
      queue: t.queue,
      priority: t.priority,
      createdAt: job.createdAt ?? 0,
      resources: t.resources,
      tasks: ts.length,
      ...(job.selector ? { selector: job.selector } : {}),
      ...(job.tolerations ? { tolerations: job.tolerations } : {}),
      ...(job.image ? { image: job.image } : {}),
    };
  });
  const byName = new Map(others.map((r) => [r.node.name, r]));
  const nodes = others.map((r) => ({ ...r.node, used: usedOf(r), devices: { ...r.devices } }));
  const placements = placer(work, nodes);
  // Every (task, node) pair the placer may have weighed (what the pass's step bound counts).
  const steps = c.tasks.length * others.length;
  const taken: Taken[] = [];
  const left = new Map([...byJob].map(([id, ts]) => [id, [...ts]]));
  for (const p of placements) {
    const room = byName.get(p.node);
    const ts = left.get(p.jobId);
    if (!room || !ts) return { steps };
    for (let k = 0; k < p.count; k++) {
      const task = ts.shift();
      if (!task) return { steps };
      taken.push({ room, task, devices: p.devices[k] ?? [] });
    }
  }
  return [...left.values()].every((ts) => ts.length === 0) ? { taken, steps } : { steps };
}

function usedOf(r: Room): ResourceVector {
  const used: ResourceVector = {};
  for (const [k, cap] of Object.entries(r.node.capacity)) used[k] = cap - (r.free[k] ?? 0);
  return used;
}
/** Why the tasks of `c` may not move (undefined: they all may). */
function unmovable(
  c: Room,
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  nodesOfJob: ReadonlyMap<string, ReadonlySet<string>>,
  chosen: ReadonlySet<string>,
  now: number,
  after: number,
  protectMs: number,
  exempt: ReadonlySet<string> | undefined,
  maxAge = Infinity,
): ConsolidationSkip | undefined {
  let newest = -Infinity;
  for (const t of c.tasks) newest = Math.max(newest, t.boundAt);
  if (now - newest < after) return 'recent-work';
  for (const t of c.tasks) {
    if (t.stopping) return 'stopping';
    if (now - t.boundAt < protectMs) return 'protected';
    if (now - t.boundAt > maxAge) return 'too-old';
    if (exempt?.has(t.jobId)) return 'repeat-limit';
    const job = jobOf(t.jobId);
    if (!job) return 'unknown-job';
    if (job.labels?.[DO_NOT_DISRUPT_LABEL] === 'true') return 'do-not-disrupt';
    if (job.topology?.required) return 'topology';
    // A gang moves whole: every node holding one of its tasks is this one or chosen already.
    if (job.gang) for (const n of nodesOfJob.get(t.jobId) ?? []) if (n !== c.node.name && !chosen.has(n)) return 'gang';
  }
  return undefined;
}

/** The task as the filters see work: one task of its job's shape. */
function workFor(t: RunningTask, job: ConsolidationJob, cache: Map<string, PendingWork>): PendingWork {
  let w = cache.get(t.jobId);
  if (!w) {
    w = {
      jobId: t.jobId,
      queue: t.queue,
      priority: t.priority,
      createdAt: 0,
      resources: t.resources,
      tasks: 1,
      ...(job.selector ? { selector: job.selector } : {}),
      ...(job.tolerations ? { tolerations: job.tolerations } : {}),
      ...(job.image ? { image: job.image } : {}),
    };
    cache.set(t.jobId, w);
  }
  return w;
}

function freeOf(n: NodeSnapshot): ResourceVector {
  const free: ResourceVector = {};
  for (const [k, cap] of Object.entries(n.capacity)) free[k] = cap - (n.used[k] ?? 0);
  return free;
}

/** Share of `cap` a request takes, summed over its dimensions (the decreasing order). */
function weight(need: ResourceVector, cap: ResourceVector): number {
  let w = 0;
  for (const [k, v] of Object.entries(need)) if (v > 0 && cap[k]) w += v / cap[k];
  return w;
}

/** Free share of the node left after taking `need`, summed over its capacity's dimensions (best fit: the least). */
function slackAfter(r: Room, need: ResourceVector): number {
  let s = 0;
  for (const [k, cap] of Object.entries(r.node.capacity)) if (cap > 0) s += ((r.free[k] ?? 0) - (need[k] ?? 0)) / cap;
  return s;
}

/** Takes `need` from the room, on `devices` when given (else the devices `pickDevices` picks); returns the devices. */
function take(r: Room, need: ResourceVector, given?: readonly number[]): number[] {
  for (const [k, v] of Object.entries(need)) r.free[k] = (r.free[k] ?? 0) - v;
  const share = need.gpu ?? 0;
  const devices = given ? [...given] : (pickDevices(r.devices, r.node.gpuCount, share) ?? []);
  for (const d of devices) r.devices[d] = (r.devices[d] ?? 0) + (share >= GPU_MILLI ? GPU_MILLI : share);
  return devices;
}

function give(r: Room, need: ResourceVector, devices: readonly number[]): void {
  for (const [k, v] of Object.entries(need)) r.free[k] = (r.free[k] ?? 0) + v;
  const share = need.gpu ?? 0;
  for (const d of devices) r.devices[d] = Math.max(0, (r.devices[d] ?? 0) - (share >= GPU_MILLI ? GPU_MILLI : share));
}

export {
  bestFitDecreasingPlacer,
  DEFAULT_MAX_MOVES_PER_NODE,
  freeShare,
  planRepack,
  type RepackMove,
  type RepackOptions,
  type RepackPlan,
  taskMovable,
} from './repack';
export * from './defragment';
