/**
 * Placement: the pure heart of a scheduling cycle. For each piece of pending work in queue
 * order (priority, then age, then id), the phases are:
 *   PreFilter  — the work's per-task request, queue headroom and gang flag (once per job:
 *                identical tasks form one equivalence class);
 *   Filter     — plugins drop nodes that can never run it (selector, taints, resource kinds);
 *   Score      — plugins rank the rest (bin packing, GPU fragmentation), or name order for
 *                first fit;
 *   Reserve    — tasks fill the best node, then the next, with GPU devices picked per task;
 *   Permit     — a gang that cannot place every task releases what it reserved (so two
 *                half-placed gangs never hold capacity hostage).
 * Snapshot in, placements and reasons out; no I/O, no clock.
 */
import { addResources, GPU_MILLI, type ResourceVector } from '@batchapi/api';
import { DEFAULT_FILTERS, type FilterPlugin } from './filters';
import { fillTier } from './fill';
import { chargeOf, QuotaLedger } from './quota';
import { DEFAULT_SCORES, type ScorePlugin } from './scores';
import type { NodeSnapshot, PendingWork, Placement } from './snapshot';

/** How nodes are ranked. `bin-pack` scores with plugins; `first-fit` takes nodes in name order. */
export type PlacementPolicy = 'bin-pack' | 'first-fit';

/** Options of one placement pass. */
export interface PlacementOptions {
  /** Resources each queue may still take (absent queue or dimension = unlimited); ignored when `quota` is given. */
  queueHeadroom?: Map<string, ResourceVector>;
  /** Quota room of queues and cohorts (borrowing, lending, GPU models); taken from as tasks are placed. @default from `queueHeadroom` */
  quota?: QuotaLedger;
  /** Most tasks placed in one pass. @default 100000 */
  maxTasks?: number;
  /** @default "bin-pack" */
  policy?: PlacementPolicy;
  /** @default DEFAULT_FILTERS */
  filters?: readonly FilterPlugin[];
  /** @default DEFAULT_SCORES */
  scores?: readonly ScorePlugin[];
  /** Pack simultaneous plain work node by node (minimum bin slack) before the per-job pass. @default true for bin-pack */
  batchFill?: boolean;
  /**
   * Dominant resource fairness between queues within each priority: the queue with the lowest
   * weighted dominant share places next. Without it, work goes in queue order. @default off
   */
  fairShare?: FairShareInput;
}

/** What dominant resource fairness needs. */
export interface FairShareInput {
  /** Total capacity the shares are relative to (normalized units). */
  capacity: ResourceVector;
  /** What each queue holds now (normalized units). */
  usage: Map<string, ResourceVector>;
  /** Weight of each queue. @default 1 */
  weights?: Map<string, number>;
  /**
   * Smallest step of dominant share a queue takes at a time (as a fraction of the cluster):
   * the bound on how far from exact fairness one decision can be, traded for speed.
   * @default 0.001
   */
  granularity?: number;
}

/** Why the tasks of a job that were not placed were not. */
export interface Unplaced {
  jobId: string;
  tasks: number;
  /** Nodes refused by each filter reason, e.g. `{"taint dedicated=ml:NoSchedule": 40}`. */
  filtered: Record<string, number>;
  /** Nodes that pass the filters but lack free room for one more task. */
  full: number;
  /** Set when the queue's quota headroom stopped placement. */
  quotaLimited: boolean;
  /** Set when a gang could not place every task and placed none. */
  gangBlocked: boolean;
}

/** What a placement pass decided. */
export interface PlacementResult {
  placements: Placement[];
  unplaced: Unplaced[];
}

/**
 * Deterministic queue order: higher priority, then older; among work submitted at the same
 * instant, larger requests first (decreasing order packs better); then job id.
 */
export function queueOrder(a: PendingWork, b: PendingWork): number {
  return b.priority - a.priority || a.createdAt - b.createdAt || largerFirst(a.resources, b.resources) || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0);
}

/** Larger request first: by GPUs, then cores, then memory. */
function largerFirst(a: ResourceVector, b: ResourceVector): number {
  return (b.gpu ?? 0) - (a.gpu ?? 0) || (b.cpu ?? 0) - (a.cpu ?? 0) || (b.memory ?? 0) - (a.memory ?? 0);
}

/** How many tasks of `need` fit in `free` by the non-device dimensions. */
export function tasksThatFit(need: ResourceVector, free: ResourceVector): number {
  let n = Number.POSITIVE_INFINITY;
  for (const [name, amount] of Object.entries(need)) {
    if (amount <= 0) continue;
    n = Math.min(n, Math.floor((free[name] ?? 0) / amount));
  }
  return Math.max(0, n);
}

/** A ledger of plain per-queue headrooms (no cohorts): each queue may take what its map entry says. */
export function headroomLedger(headroom: Map<string, ResourceVector> | undefined): QuotaLedger {
  return new QuotaLedger(
    [...(headroom ?? [])].map(([name, nominal]) => ({ name, nominal })),
    new Map(),
  );
}

/** Picks devices for one task: `share` milli-GPU. Whole GPUs need fully free devices; a fraction shares one device. Returns undefined when none fit. */
export function pickDevices(devices: Record<string, number>, gpuCount: number, share: number): number[] | undefined {
  if (share <= 0) return [];
  if (share >= GPU_MILLI) {
    const whole = Math.ceil(share / GPU_MILLI);
    const free: number[] = [];
    for (let d = 0; d < gpuCount && free.length < whole; d++) if (!devices[d]) free.push(d);
    return free.length === whole ? free : undefined;
  }
  // Fractional: the fullest device it still fits on, to keep whole devices free.
  let best: number | undefined;
  for (let d = 0; d < gpuCount; d++) {
    const used = devices[d] ?? 0;
    if (used + share <= GPU_MILLI && (best === undefined || used > (devices[best] ?? 0))) best = d;
  }
  return best === undefined ? undefined : [best];
}

/** The nodes that pass a shape's filters, best first, with why the others do not. */
interface Ranked {
  nodes: NodeState[];
  refused: Record<string, number>;
  /** Nodes that passed the filters but had no room for one task when ranked. */
  full: number;
}

/** Mutable per-pass state of one node. */
interface NodeState {
  node: NodeSnapshot;
  free: ResourceVector;
  devices: Record<string, number>;
}

function freeDeviceCount(s: NodeState): number {
  let n = 0;
  for (let d = 0; d < s.node.gpuCount; d++) if (!s.devices[d]) n++;
  return n;
}

/** Places pending work on nodes. Inputs are not changed. */
export function placeTasks(work: readonly PendingWork[], nodes: readonly NodeSnapshot[], opts: PlacementOptions = {}): PlacementResult {
  const filters = opts.filters ?? DEFAULT_FILTERS;
  const scores = opts.policy === 'first-fit' ? [] : (opts.scores ?? DEFAULT_SCORES);
  const states: NodeState[] = [...nodes]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((n) => {
      const free: ResourceVector = {};
      for (const [k, v] of Object.entries(n.capacity)) free[k] = v - (n.used[k] ?? 0);
      return { node: n, free, devices: { ...n.devices } };
    });
  const ledger = opts.quota ?? headroomLedger(opts.queueHeadroom);
  let budget = opts.maxTasks ?? 100_000;
  const placements: Placement[] = [];
  const unplaced: Unplaced[] = [];
  // Equivalence classes: once a request shape found no room in this pass, later work of the same shape skips the scan.
  const noRoom = new Map<string, Unplaced>();
  const rankedByShape = new Map<string, Ranked>();

  const ordered = [...work].sort(queueOrder).map((w) => ({ ...w }));
  if (opts.policy !== 'first-fit' && opts.batchFill !== false) budget -= batchFill(ordered, states, filters, ledger, placements, budget, !!opts.fairShare);

  /**
   * Places up to `limit` tasks of `w` (a gang: all or none). Appends to `placements`, lowers
   * `w.tasks` and the budget; returns the tasks placed and, when it stopped short of `limit`,
   * why (already counted in `unplaced` by the caller when the work leaves the pass).
   */
  // A piece of work comes back to `placeSome` many times under fair share: its shape key is computed once.
  const shapes = new Map<PendingWork, string>();
  const placeSome = (w: PendingWork, limit: number): { placed: number; blocked: boolean; why: Unplaced } => {
    let shape = shapes.get(w);
    if (shape === undefined) shapes.set(w, (shape = shapeOf(w)));
    const known = noRoom.get(shape);
    if (known) return { placed: 0, blocked: true, why: { ...known, jobId: w.jobId, quotaLimited: false, gangBlocked: !!w.gang } };
    // PreFilter
    const limited = ledger.limits(w.queue);
    const allowed = Math.min(w.tasks, limited ? ledger.allows(w.queue, w.resources) : w.tasks);
    const why: Unplaced = { jobId: w.jobId, tasks: 0, filtered: {}, full: 0, quotaLimited: allowed < w.tasks, gangBlocked: false };
    if (w.gang && (allowed < w.tasks || w.tasks > budget)) return { placed: 0, blocked: true, why: { ...why, gangBlocked: true } };
    const want = w.gang ? w.tasks : Math.min(allowed, budget, limit);
    let left = want;
    // Filter + Score, once per request shape per pass: filters do not depend on free room, and
    // within a pass room only shrinks, so the ranking stays usable for the next job of the same
    // shape (a node that can no longer take one task leaves it). Spreading ranks afresh each time.
    const rank = (): Ranked => {
      const r: Ranked = { nodes: [], refused: {}, full: 0 };
      const scored: Array<{ s: NodeState; score: number }> = [];
      for (const s of states) {
        let refused: string | undefined;
        for (const f of filters) if ((refused = f.filter(w, s.node))) break;
        if (refused) {
          r.refused[refused] = (r.refused[refused] ?? 0) + 1;
          continue;
        }
        if (tasksThatFit(w.resources, s.free) === 0) {
          r.full++;
          continue;
        }
        let score = 0;
        if (scores.length) {
          const fd = freeDeviceCount(s);
          for (const p of scores) score += p.weight * p.score(w, s.node, s.free, fd, s.devices);
        }
        scored.push({ s, score });
      }
      if (scores.length) scored.sort((x, y) => y.score - x.score || (x.s.node.name < y.s.node.name ? -1 : 1));
      r.nodes = scored.map((c) => c.s);
      return r;
    };
    let ranked = w.spread ? undefined : rankedByShape.get(shape);
    if (!ranked) {
      ranked = rank();
      if (!w.spread) rankedByShape.set(shape, ranked);
    }
    Object.assign(why.filtered, ranked.refused);
    why.full = ranked.full;
    const candidates = ranked.nodes;
    // Reserve: packing fills the best node, then the next; spreading deals one task per node per round.
    const byNode = new Map<string, Placement>();
    const undo: Array<() => void> = [];
    for (let progress = true; progress && left > 0; progress = progress && !!w.spread) {
      progress = false;
      for (let i = 0; i < candidates.length && left > 0; i++) {
        const s = candidates[i];
        const fit = Math.min(left, tasksThatFit(w.resources, s.free));
        const reserved = reserveOn(s, w, w.spread ? Math.min(1, fit) : fit, limited ? ledger : undefined, undo);
        if (reserved === 0) {
          if (!byNode.has(s.node.name)) why.full++;
          // Full for this shape for the rest of the pass (a gang that gives room back clears the rankings).
          if (!w.spread && fit === 0) candidates.splice(i--, 1);
          continue;
        }
        const p = byNode.get(s.node.name) ?? { jobId: w.jobId, node: s.node.name, count: 0, devices: [] };
        p.count += reserved.length;
        p.devices.push(...reserved);
        byNode.set(s.node.name, p);
        left -= reserved.length;
        progress = true;
      }
    }
    const mine = [...byNode.values()];
    const placed = mine.reduce((n, p) => n + p.count, 0);
    // Permit: a gang places all of its tasks or none.
    if (w.gang && placed < w.tasks) {
      for (let i = undo.length - 1; i >= 0; i--) undo[i]();
      rankedByShape.clear(); // room came back: rankings of this pass are stale
      return { placed: 0, blocked: true, why: { ...why, gangBlocked: true } };
    }
    placements.push(...mine);
    budget -= placed;
    w.tasks -= placed;
    if (placed === 0 && !why.quotaLimited) noRoom.set(shape, why);
    // Blocked: it got less than it asked for (no room, quota, or budget), so it leaves this pass.
    return { placed, blocked: placed < want || want === 0, why };
  };

  if (!opts.fairShare) {
    for (const w of ordered) {
      if (budget <= 0) break;
      if (w.tasks === 0) continue;
      const { why } = placeSome(w, w.tasks);
      if (w.tasks > 0) unplaced.push({ ...why, tasks: w.tasks });
    }
  } else {
    fairPass(ordered, opts.fairShare, () => budget, placeSome, unplaced);
  }
  return { placements, unplaced };
}

/**
 * Reserves up to `want` tasks of `w` on one node (devices picked task by task) and records how
 * to undo it. Returns the devices of each reserved task (empty lists without GPUs), or 0.
 */
function reserveOn(s: NodeState, w: PendingWork, want: number, ledger: QuotaLedger | undefined, undo: Array<() => void>): number[][] | 0 {
  // Quota per node: a GPU task also charges its queue's quota of this node's GPU model.
  const charge = ledger ? chargeOf(w.resources, s.node.labels) : w.resources;
  if (ledger) want = Math.min(want, ledger.allows(w.queue, charge));
  if (want <= 0) return 0;
  const share = w.resources.gpu ?? 0;
  const each = share >= GPU_MILLI ? GPU_MILLI : share;
  const devices: number[][] = [];
  for (let k = 0; k < want; k++) {
    const picked = pickDevices(s.devices, s.node.gpuCount, share);
    if (!picked) break;
    for (const d of picked) s.devices[d] = (s.devices[d] ?? 0) + each;
    devices.push(picked);
  }
  const count = devices.length;
  if (count === 0) return 0;
  for (const [name, amount] of Object.entries(w.resources)) s.free[name] = (s.free[name] ?? 0) - amount * count;
  ledger?.take(w.queue, charge, count);
  undo.push(() => {
    for (const ds of devices) for (const d of ds) s.devices[d] -= each;
    for (const [name, amount] of Object.entries(w.resources)) s.free[name] += amount * count;
    ledger?.take(w.queue, charge, -count);
  });
  return devices;
}

/** Most tasks a batch fill searches over at once. */
const BATCH_FILL_MAX_TASKS = 20_000;

/**
 * The leading tier of the queue — work of one priority submitted at one instant, plain enough
 * (no GPUs, gangs, selectors, tolerations, spreading or quota limit; one queue when fair share
 * is on) — is packed node by node
 * with `fillTier`. Reduces the tasks left in `ordered` and returns how many were placed.
 */
function batchFill(
  ordered: PendingWork[],
  states: NodeState[],
  filters: readonly FilterPlugin[],
  ledger: QuotaLedger,
  placements: Placement[],
  budget: number,
  fair: boolean,
): number {
  const head = ordered[0];
  if (!head) return 0;
  // With fair share on, packing never overrides fairness: only a tier of one queue is filled.
  if (fair && ordered.some((w) => w.queue !== head.queue && w.priority === head.priority && w.createdAt === head.createdAt)) return 0;
  const tier: PendingWork[] = [];
  let tasks = 0;
  for (const w of ordered) {
    const plain =
      !w.gang && !w.spread && !(w.resources.gpu ?? 0) && !Object.keys(w.selector ?? {}).length && !(w.tolerations ?? []).length && !ledger.limits(w.queue);
    if (!plain || w.priority !== head.priority || w.createdAt !== head.createdAt) break;
    tier.push(w);
    tasks += w.tasks;
  }
  if (tier.length < 2 || tasks > Math.min(budget, BATCH_FILL_MAX_TASKS)) return 0;
  const filled = fillTier(tier, states, filters);
  const byId = new Map(tier.map((w) => [w.jobId, w]));
  let placed = 0;
  for (const f of filled) {
    byId.get(f.jobId)!.tasks -= f.count;
    placements.push({ jobId: f.jobId, node: f.node, count: f.count, devices: Array.from({ length: f.count }, () => []) });
    placed += f.count;
  }
  return placed;
}

/** A queue's dominant share: its largest share of any resource, divided by its weight. */
export function dominantShare(usage: ResourceVector, capacity: ResourceVector, weight = 1): number {
  let share = 0;
  for (const [k, v] of Object.entries(usage)) if (capacity[k] > 0) share = Math.max(share, v / capacity[k]);
  return share / weight;
}

/**
 * Progressive filling, priority level by priority level: the queue with the lowest weighted
 * dominant share places its oldest work next, as many tasks as keep it at or below the next
 * queue's share (at least one), until no queue can place more.
 */
function fairPass(
  ordered: PendingWork[],
  fair: FairShareInput,
  budget: () => number,
  placeSome: (w: PendingWork, limit: number) => { placed: number; blocked: boolean; why: Unplaced },
  unplaced: Unplaced[],
): void {
  const usage = new Map([...fair.usage].map(([q, u]) => [q, { ...u }]));
  const weight = (q: string) => fair.weights?.get(q) ?? 1;
  const share = (q: string) => dominantShare(usage.get(q) ?? {}, fair.capacity, weight(q));
  const levels = [...new Set(ordered.map((w) => w.priority))].sort((x, y) => y - x);
  const left = new Set<string>();
  for (const level of levels) {
    // Each queue's work of this level, oldest first (the order is already by age).
    const lists = new Map<string, PendingWork[]>();
    for (const w of ordered) {
      if (w.priority !== level || w.tasks === 0) continue;
      const list = lists.get(w.queue);
      if (list) list.push(w);
      else lists.set(w.queue, [w]);
    }
    while (lists.size > 0 && budget() > 0) {
      const queues = [...lists.keys()].sort((x, y) => share(x) - share(y) || (x < y ? -1 : 1));
      const q = queues[0];
      const w = lists.get(q)![0];
      const perTask = dominantShare(w.resources, fair.capacity, weight(q));
      const next = queues.length > 1 ? share(queues[1]) : Infinity;
      const step = Math.ceil((fair.granularity ?? 0.001) / Math.max(perTask, 1e-12));
      const limit = perTask > 0 && Number.isFinite(next) ? Math.max(1, step, Math.floor((next - share(q)) / perTask)) : w.tasks;
      const { placed, blocked, why } = placeSome(w, limit);
      usage.set(q, addResources(usage.get(q) ?? {}, w.resources, placed));
      if (w.tasks === 0 || blocked) {
        // Done, or blocked for now: it leaves the pass (blocked work counts as unplaced).
        if (w.tasks > 0) {
          unplaced.push({ ...why, tasks: w.tasks });
          left.add(w.jobId);
        }
        const list = lists.get(q)!;
        list.shift();
        if (list.length === 0) lists.delete(q);
      }
    }
  }
  for (const w of ordered)
    if (w.tasks > 0 && !left.has(w.jobId)) unplaced.push({ jobId: w.jobId, tasks: w.tasks, filtered: {}, full: 0, quotaLimited: false, gangBlocked: false });
}

function shapeOf(w: PendingWork): string {
  return JSON.stringify([w.resources, w.selector ?? null, w.tolerations ?? null]);
}

/** First fit (nodes in name order), kept as the simple baseline. */
export function placeFirstFit(work: readonly PendingWork[], nodes: readonly NodeSnapshot[], opts: Omit<PlacementOptions, 'policy'> = {}): Placement[] {
  return placeTasks(work, nodes, { ...opts, policy: 'first-fit' }).placements;
}
