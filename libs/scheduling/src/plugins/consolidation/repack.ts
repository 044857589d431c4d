/**
 * Re-pack (opt-in, the step after consolidation): when no node can be emptied into the room the
 * others have left, move tasks between nodes so that some can. Work placed as it arrived was
 * placed well for its moment; once all of it is known, a better packing of the same running tasks
 * exists. This planner computes one over a window of interchangeable nodes and moves only the
 * tasks that packing needs to free nodes — what a defragmenting descheduler does (the Kubernetes
 * descheduler's HighNodeUtilization, Karpenter's multi-node consolidation), bounded by a
 * disruption budget per pass (nodes freed; tasks moved, per node freed) and a step bound.
 *
 * A pass, per pool of interchangeable nodes (same capacity, GPU count, labels and taints: what the
 * filters and the fit see), over the nodes in use whose every task may move (consolidation's
 * rules: `consolidateAfter`, the exempt time, the age bound, the repeat limit, `do-not-disrupt`, no
 * required topology; and never a gang task — a gang is never split — nor a fractional GPU):
 *
 * 1. windows of those nodes, most free room first (the sum over resources of the free share), of
 *    2, 4, 8 … nodes up to the whole pool; a window's tasks are packed afresh on empty copies of its
 *    nodes by the placement, given them at one instant (so its batch fill packs them as a batch);
 * 2. the new packing's bins are matched to the window's nodes so that as many tasks as possible
 *    stay (greedy on the tasks a bin and a node share). A node no bin matched can be emptied; doing
 *    so moves its tasks to their bins' nodes, each of which gives up the tasks not in its bin (which
 *    go to theirs), and so on — the closure; nodes outside it keep all they hold. The unmatched
 *    nodes with the smallest closures are emptied, as many as the node budget allows and the moves
 *    per node (`maxMovesPerNode`) keep: k nodes, at most k × that many moves;
 * 3. the check: the moved tasks, as they will wait — with the nodes the packing planned for them
 *    nominated when `nominate` (see `plugins/nomination`) — placed by the live placement on the
 *    nodes in use minus those emptied, their room as the moves leave it. The plan stands only when
 *    every moved task is placed, within the budget of moves, and at least one node is freed net.
 *
 * Among the windows whose check holds, the one that frees the most nodes (capped by the node
 * budget), then the fewest moves; the search stops growing windows once one frees the budget.
 * When no window's plan holds (typically: its closure moves too many tasks), ejection chains, one
 * node of a pool at a time, most free first, with the steps left (`ejectionChain`): the node's
 * tasks moved to others, each making room by giving up one or two smaller tasks, which move on in
 * turn; checked as a window's, the fewest moves kept.
 * Pure: snapshot, options and `now` in; the nodes to empty and the tasks to stop out.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';
import { DEFAULT_FILTERS } from '../../framework/profile';
import { appendPlacement, type NodeSnapshot, type PendingWork, type Placement } from '../../snapshot';
import type { RunningTask } from '../preemption';
import { fitsOne, pickDevices } from '../resource-fit';
import {
  type ConsolidationJob,
  type ConsolidationMove,
  type ConsolidationOptions,
  type ConsolidationPlacer,
  consolidationBudget,
  DEFAULT_CONSOLIDATION,
  DO_NOT_DISRUPT_LABEL,
} from './index';

/** Settings of a re-pack pass: those of consolidation, and a budget of tasks. */
export interface RepackOptions extends ConsolidationOptions {
  /**
   * Most tasks one pass moves per node it empties (the task side of the disruption budget): a plan
   * that empties k nodes (at most the node budget, `consolidationBudget`) moves at most k × this.
   * With the default node budget (one node a pass) it is the most tasks a pass moves. @default 100
   */
  maxMovesPerNode?: number;
  /**
   * The moved tasks will wait with the nodes the re-pack planned for them nominated
   * (`PendingWork.nominated`, see `RepackMove.nominated`), and the check places them so. Without
   * it the check places them as plain waiting work. @default false
   */
  nominate?: boolean;
}

/** A task to stop: where the check placed it, and (with `nominate`) the node the re-pack planned for it. */
export interface RepackMove extends ConsolidationMove {
  /** The node to nominate for it when it waits again. @default none */
  nominated?: string;
}

/** Most tasks one re-pack pass moves per node it empties unless told (`RepackOptions.maxMovesPerNode`). */
export const DEFAULT_MAX_MOVES_PER_NODE = 100;

/** What a re-pack pass decided. */
export interface RepackPlan {
  /** Nodes to empty (cordoned with a drain deadline of now). */
  nodes: string[];
  /** Every task to stop — those on the nodes to empty and those moved off kept nodes — with the node the check placed it on. */
  moves: RepackMove[];
  /** Nodes in use before, and after the moves as the check placed them. */
  nodesInUse: number;
  nodesInUseAfter: number;
  /** Windows packed (each a placement of its tasks) and ejection chains found, each checked once. */
  windows: number;
  /** Fit checks spent: a placement counted as each of its tasks against each node it is offered. */
  steps: number;
}

/** A node and the running tasks on it. */
export interface Host {
  node: NodeSnapshot;
  tasks: RunningTask[];
}

/**
 * The re-pack at `now`: arguments as `planConsolidation`'s. `o.placer` is the live placement (it
 * both packs the windows, given their tasks at one instant, and checks the moves, given them as
 * they will wait); without one, best-fit decreasing with `o.filters`.
 */
export function planRepack(
  nodes: readonly NodeSnapshot[],
  running: readonly RunningTask[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  now: number,
  o: RepackOptions = {},
): RepackPlan {
  const maxSteps = o.maxSteps ?? DEFAULT_CONSOLIDATION.maxSteps;
  const maxMoves = o.maxMovesPerNode ?? DEFAULT_MAX_MOVES_PER_NODE;
  const placer = o.placer ?? bestFitDecreasingPlacer(o.filters ?? DEFAULT_FILTERS);
  const hosts = new Map<string, Host>();
  for (const n of nodes) hosts.set(n.name, { node: n, tasks: [] });
  for (const t of running) hosts.get(t.node)?.tasks.push(t);
  const inUse = [...hosts.values()].filter((h) => h.tasks.length > 0);
  const none: RepackPlan = { nodes: [], moves: [], nodesInUse: inUse.length, nodesInUseAfter: inUse.length, windows: 0, steps: 0 };
  const budget = consolidationBudget(inUse.length, o);
  if (budget <= 0 || maxMoves <= 0) return none;
  // Pools of interchangeable nodes whose every task may move, most free room first.
  const pools = new Map<string, Host[]>();
  for (const h of inUse) {
    if (!movable(h, jobOf, now, o)) continue;
    const key = poolKey(h.node);
    pools.set(key, [...(pools.get(key) ?? []), h]);
  }
  for (const p of pools.values()) p.sort((a, b) => freeShare(b.node) - freeShare(a.node) || (a.node.name < b.node.name ? -1 : 1));
  const order = [...pools.values()].sort(
    (a, b) => b.reduce((s, h) => s + freeShare(h.node), 0) - a.reduce((s, h) => s + freeShare(h.node), 0) || (a[0].node.name < b[0].node.name ? -1 : 1),
  );
  let best: (RepackPlan & { freed: number }) | undefined;
  let steps = 0;
  let windows = 0;
  // The most nodes freed (within the budget), then the fewest moves.
  const consider = (candidate: (RepackPlan & { freed: number }) | undefined) => {
    if (candidate && (!best || candidate.freed > best.freed || (candidate.freed === best.freed && candidate.moves.length < best.moves.length)))
      best = candidate;
  };
  for (const pool of order) {
    for (let w = Math.min(2, pool.length); w <= pool.length; w = w === pool.length ? Infinity : Math.min(2 * w, pool.length)) {
      if (w < 2) break;
      const window = pool.slice(0, w);
      const tasks = window.flatMap((h) => h.tasks);
      // A window's packing and its check are counted before they run: the bound holds however large.
      const cost = tasks.length * w + 2 * Math.min(tasks.length, maxMoves * budget) * inUse.length;
      if (steps + cost > maxSteps) break;
      steps += cost;
      windows++;
      const target = repackTarget(window, jobOf, placer, budget, maxMoves);
      const candidate = target && checkCandidate(target, inUse, jobOf, placer, maxMoves, !!o.nominate);
      if (!candidate) continue;
      consider(candidate);
      // Larger windows move more tasks; once the budget of nodes is met by a window, stop growing.
      if (candidate.freed >= budget) break;
    }
    if (best && best.freed >= budget) break;
  }
  // No window frees a node: ejection chains, one node at a time, most free first, with the steps left.
  for (const pool of best ? [] : order) {
    for (const victim of pool) {
      if (steps >= maxSteps) break;
      const chain = ejectionChain(victim, pool, best ? best.moves.length - 1 : maxMoves, maxSteps - steps);
      steps += chain.steps;
      if (!chain.candidate) continue;
      // Its check, counted before it runs, as a window's.
      const check = 2 * chain.candidate.moving.length * inUse.length;
      if (steps + check > maxSteps) break;
      steps += check;
      windows++;
      consider(checkCandidate(chain.candidate, inUse, jobOf, placer, maxMoves, !!o.nominate));
    }
  }
  if (!best) return { ...none, windows, steps };
  const { freed: _freed, ...plan } = best;
  return { ...plan, windows, steps };
}

/** A candidate: the nodes to empty and the tasks to stop (those on the nodes to empty among them). */
export interface Candidate {
  empty: Host[];
  moving: RunningTask[];
  /** The node the packing planned for each moving task. */
  targets?: Map<RunningTask, string>;
}

/**
 * The window's tasks packed afresh on empty copies of its nodes (all at one instant), the bins
 * matched to the nodes so that as many tasks as possible stay; undefined when the packing frees no
 * node.
 */
function repackTarget(
  window: readonly Host[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  placer: ConsolidationPlacer,
  budget: number,
  maxMoves: number,
): Candidate | undefined {
  const tasks = window.flatMap((h) => h.tasks);
  const blank = window.map((h) => ({ ...h.node, used: {}, devices: {} }));
  const packed = placer(
    workOf(tasks, jobOf).map((w) => ({ ...w, createdAt: 0, priority: 0 })),
    blank,
  );
  const bins = new Map<string, Map<string, number>>();
  let placedCount = 0;
  for (const p of packed) {
    const bin = bins.get(p.node) ?? new Map<string, number>();
    bin.set(p.jobId, (bin.get(p.jobId) ?? 0) + p.count);
    bins.set(p.node, bin);
    placedCount += p.count;
  }
  if (placedCount !== tasks.length || bins.size >= window.length) return undefined;
  // Bins matched to nodes, most tasks in common first: those tasks stay.
  const onNode = new Map(window.map((h) => [h.node.name, countByJob(h.tasks)]));
  const pairs: Array<{ bin: string; node: string; shared: number }> = [];
  for (const [bin, jobs] of bins)
    for (const [node, have] of onNode) {
      let shared = 0;
      for (const [job, n] of jobs) shared += Math.min(n, have.get(job) ?? 0);
      pairs.push({ bin, node, shared });
    }
  pairs.sort((a, b) => b.shared - a.shared || (a.node < b.node ? -1 : a.node > b.node ? 1 : a.bin < b.bin ? -1 : 1));
  const binOf = new Map<string, string>();
  const taken = new Set<string>();
  for (const p of pairs) {
    if (binOf.has(p.node) || taken.has(p.bin)) continue;
    binOf.set(p.node, p.bin);
    taken.add(p.bin);
  }
  // What each bin's node must give up (its tasks not in the bin) and still wants (the bin's tasks
  // not on it, by job).
  const extra = new Map<string, RunningTask[]>();
  const wanted = new Map<string, string[]>();
  for (const h of window) {
    const bin = binOf.get(h.node.name);
    if (!bin) continue;
    const keep = new Map(bins.get(bin));
    const out: RunningTask[] = [];
    for (const t of [...h.tasks].sort((a, b) => a.index - b.index)) {
      const k = keep.get(t.jobId) ?? 0;
      if (k > 0) keep.set(t.jobId, k - 1);
      else out.push(t);
    }
    extra.set(h.node.name, out);
    for (const [job, n] of keep) for (let k = 0; k < n; k++) wanted.set(job, [...(wanted.get(job) ?? []), h.node.name]);
  }
  // Only the moves the emptied nodes need: their tasks go to their bins' nodes, a node that receives
  // gives up its tasks not in its bin (which go to theirs), and so on. A node that receives nothing
  // keeps all it holds; one that receives ends with a part of its bin, within its capacity.
  const closure = (empty: readonly Host[]): Candidate => {
    const want = new Map([...wanted].map(([job, nodes]) => [job, [...nodes]]));
    const moving: RunningTask[] = [];
    const targets = new Map<RunningTask, string>();
    const receiving = new Set<string>();
    const queue = empty.flatMap((h) => h.tasks);
    for (let i = 0; i < queue.length; i++) {
      const t = queue[i];
      moving.push(t);
      const to = want.get(t.jobId)?.shift();
      if (!to) continue;
      targets.set(t, to);
      if (receiving.has(to)) continue;
      receiving.add(to);
      queue.push(...(extra.get(to) ?? []));
    }
    return { empty: [...empty], moving, targets };
  };
  // The nodes no bin matched may be emptied, those whose emptying moves the fewest tasks first (ties
  // by name): as many as the node budget allows whose closure keeps within the moves per node.
  const unmatched = window
    .filter((h) => !binOf.has(h.node.name))
    .map((h) => ({ h, cost: closure([h]).moving.length }))
    .sort((a, b) => a.cost - b.cost || (a.h.node.name < b.h.node.name ? -1 : 1));
  for (let k = Math.min(budget, unmatched.length); k > 1; k--) {
    const c = closure(unmatched.slice(0, k).map((u) => u.h));
    if (c.moving.length <= k * maxMoves) return c;
  }
  return closure(unmatched.slice(0, 1).map((u) => u.h));
}

/**
 * An ejection chain that empties `victim` (one node, the fewest moves): its tasks, largest first
 * (the sum of their shares of the capacity), each to the node of the pool that it leaves least
 * free; a task that fits on none takes the node where giving up one or two of its tasks, each
 * smaller than it, makes the room (fewest given up, then the least given up, then the least left
 * free), and those join the queue. A task moves once, never back to the node it left, so the chain
 * ends. Undefined when a task finds no room, the moves pass `maxMoves` or the fit checks
 * `maxSteps`. The batch packing of a window finds better packings; this finds the cheap ones the
 * windows' closures miss (a few tasks shifted down a chain of nodes).
 */
export function ejectionChain(
  victim: Host,
  pool: readonly Host[],
  maxMoves: number,
  maxSteps: number,
  leaving: readonly RunningTask[] = victim.tasks,
): { candidate?: Candidate; steps: number } {
  const cap = victim.node.capacity;
  const keys = Object.keys(cap).filter((k) => cap[k] > 0);
  const size = (r: ResourceVector) => keys.reduce((s, k) => s + (r[k] ?? 0) / cap[k], 0);
  const fits = (r: ResourceVector, free: ResourceVector) => keys.every((k) => (r[k] ?? 0) <= (free[k] ?? 0));
  const slack = (r: ResourceVector, free: ResourceVector) => keys.reduce((s, k) => s + ((free[k] ?? 0) - (r[k] ?? 0)) / cap[k], 0);
  const order = (a: RunningTask, b: RunningTask) =>
    size(b.resources) - size(a.resources) || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : a.index - b.index);
  const others = pool.filter((h) => h !== victim);
  const free = new Map(others.map((h) => [h.node.name, freeOf(h.node)]));
  // What each node may give up: the tasks it held before the chain, smallest first.
  const held = new Map(
    others.map((h) => [
      h.node.name,
      [...h.tasks].sort((a, b) => size(a.resources) - size(b.resources) || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : a.index - b.index)),
    ]),
  );
  const moving: RunningTask[] = [];
  const targets = new Map<RunningTask, string>();
  const queue = [...leaving];
  let steps = 0;
  while (queue.length > 0) {
    queue.sort(order);
    const t = queue.shift()!;
    moving.push(t);
    if (moving.length > maxMoves) return { steps };
    const own = size(t.resources);
    let to: string | undefined;
    let give: RunningTask[] = [];
    let rank: number[] | undefined;
    for (const h of others) {
      const name = h.node.name;
      if (name === t.node) continue;
      const room = free.get(name)!;
      const can = held.get(name)!.filter((x) => size(x.resources) < own);
      // This node's fit checks, counted before they run: the node, then each set of tasks given up.
      const cost = 1 + (can.length * (can.length + 1)) / 2;
      if (steps + cost > maxSteps) return { steps };
      steps += fits(t.resources, room) ? 1 : cost;
      if (fits(t.resources, room)) {
        const r = [0, 0, slack(t.resources, room)];
        if (!rank || less(r, rank)) [rank, to, give] = [r, name, []];
        continue;
      }
      for (let i = 0; i < can.length; i++)
        for (let j = i; j < can.length; j++) {
          const out = i === j ? [can[i]] : [can[i], can[j]];
          const more = { ...room };
          for (const x of out) for (const k of keys) more[k] = (more[k] ?? 0) + (x.resources[k] ?? 0);
          if (!fits(t.resources, more)) continue;
          const r = [out.length, out.reduce((s, x) => s + size(x.resources), 0), slack(t.resources, more)];
          if (!rank || less(r, rank)) [rank, to, give] = [r, name, out];
        }
    }
    if (!to) return { steps };
    const room = free.get(to)!;
    for (const x of give) for (const k of keys) room[k] = (room[k] ?? 0) + (x.resources[k] ?? 0);
    for (const k of keys) room[k] = (room[k] ?? 0) - (t.resources[k] ?? 0);
    held.set(
      to,
      held.get(to)!.filter((x) => !give.includes(x)),
    );
    queue.push(...give);
    targets.set(t, to);
  }
  return { candidate: { empty: [victim], moving, targets }, steps };
}

/** Lexicographic order of two ranks of the same length. */
function less(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

/**
 * The check: the moved tasks, as they will wait, placed on the nodes in use but the emptied ones
 * (their room as the moves leave it). Tasks it puts back on their own node stay (checked again
 * without them). Undefined unless every moved task is placed, the moves are within the budget and
 * at least one node is freed net.
 */
function checkCandidate(
  c: Candidate,
  inUse: readonly Host[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  placer: ConsolidationPlacer,
  maxMoves: number,
  nominate: boolean,
): (RepackPlan & { freed: number }) | undefined {
  // The moves per node emptied: k nodes, k × maxMoves.
  maxMoves *= c.empty.length;
  if (c.moving.length > maxMoves) return undefined;
  const emptied = new Set(c.empty.map((h) => h.node.name));
  const targets = nominate ? c.targets : undefined;
  const place = (moving: readonly RunningTask[]) => {
    const gone = new Map<string, RunningTask[]>();
    for (const t of moving) gone.set(t.node, [...(gone.get(t.node) ?? []), t]);
    const kept = inUse.filter((h) => !emptied.has(h.node.name)).map((h) => without(h.node, gone.get(h.node.name) ?? []));
    return { moves: assign(moving, placer(workOf(moving, jobOf, targets), kept), targets), gone };
  };
  const first = place(c.moving);
  if (!first.moves) return undefined;
  let moves: RepackMove[] = first.moves;
  let gone = first.gone;
  const back = moves.filter((m) => m.to === m.task.node);
  if (back.length > 0) {
    const stay = new Set(back.map((m) => m.task));
    const again = place(c.moving.filter((t) => !stay.has(t)));
    if (again.moves) {
      moves = again.moves;
      gone = again.gone;
    } else {
      // The check without them placed the rest differently and failed: keep the first plan, but the
      // tasks it put back on their own node stay where they are (stopping one to restart it there
      // frees nothing; the node's room is the same either way).
      moves = moves.filter((m) => !stay.has(m.task));
      gone = new Map();
      for (const m of moves) gone.set(m.task.node, [...(gone.get(m.task.node) ?? []), m.task]);
    }
  }
  if (moves.length > maxMoves) return undefined;
  const after = new Set(inUse.filter((h) => !emptied.has(h.node.name) && h.tasks.length > (gone.get(h.node.name)?.length ?? 0)).map((h) => h.node.name));
  for (const m of moves) after.add(m.to);
  const freed = inUse.length - after.size;
  if (freed < 1) return undefined;
  return { nodes: c.empty.map((h) => h.node.name), moves, nodesInUse: inUse.length, nodesInUseAfter: after.size, windows: 0, steps: 0, freed };
}

/** The tasks as waiting work: one piece per job (its tasks are alike), with the job's traits. */
export function workOf(
  tasks: readonly RunningTask[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  targets?: ReadonlyMap<RunningTask, string>,
): PendingWork[] {
  const byJob = new Map<string, RunningTask[]>();
  for (const t of tasks) byJob.set(t.jobId, [...(byJob.get(t.jobId) ?? []), t]);
  return [...byJob].map(([jobId, ts]) => {
    const job = jobOf(jobId)!;
    const t = ts[0];
    const nominated = targets ? ts.map((x) => targets.get(x)).filter((n): n is string => !!n) : [];
    return {
      jobId,
      queue: t.queue,
      priority: t.priority,
      createdAt: job.createdAt ?? 0,
      resources: t.resources,
      tasks: ts.length,
      ...(nominated.length ? { nominated } : {}),
      ...(job.selector ? { selector: job.selector } : {}),
      ...(job.tolerations ? { tolerations: job.tolerations } : {}),
      ...(job.image ? { image: job.image } : {}),
    };
  });
}

/** Each moved task paired with the node a placement gave its job; undefined unless every one is placed. */
export function assign(moving: readonly RunningTask[], placements: readonly Placement[], targets?: ReadonlyMap<RunningTask, string>): RepackMove[] | undefined {
  const left = new Map<string, RunningTask[]>();
  for (const t of moving) left.set(t.jobId, [...(left.get(t.jobId) ?? []), t]);
  const moves: RepackMove[] = [];
  for (const p of placements) {
    const ts = left.get(p.jobId);
    for (let k = 0; k < p.count; k++) {
      const task = ts?.shift();
      if (!task) return undefined;
      const nominated = targets?.get(task);
      moves.push({ task, to: p.node, ...(nominated ? { nominated } : {}) });
    }
  }
  return moves.length === moving.length ? moves : undefined;
}

function countByJob(tasks: readonly RunningTask[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of tasks) m.set(t.jobId, (m.get(t.jobId) ?? 0) + 1);
  return m;
}

/** The node with `gone` released: their resources and devices back. */
export function without(n: NodeSnapshot, gone: readonly RunningTask[]): NodeSnapshot {
  if (gone.length === 0) return n;
  const used = { ...n.used };
  const devices = { ...n.devices };
  for (const t of gone) {
    for (const [k, v] of Object.entries(t.resources)) used[k] = (used[k] ?? 0) - v;
    const share = t.resources.gpu ?? 0;
    for (const d of t.devices) devices[d] = Math.max(0, (devices[d] ?? 0) - (share >= GPU_MILLI ? GPU_MILLI : share));
  }
  return { ...n, used, devices };
}

/** Whether every task on the node may move in a re-pack (the consolidation rules; no gang task, no fractional GPU). */
function movable(h: Host, jobOf: (jobId: string) => ConsolidationJob | undefined, now: number, o: RepackOptions): boolean {
  const after = o.consolidateAfterMs ?? DEFAULT_CONSOLIDATION.consolidateAfterMs;
  let newest = -Infinity;
  for (const t of h.tasks) newest = Math.max(newest, t.boundAt);
  if (now - newest < after) return false;
  return h.tasks.every((t) => taskMovable(t, jobOf, now, o));
}

/**
 * Whether one running task may move (re-pack's and defragmentation's rule, consolidation's per
 * task): not stopping, past the exempt time (`protectMs`), within the age bound, not at its repeat
 * limit, its job known, no gang (a gang is never split), no required topology, no `do-not-disrupt`,
 * no fractional GPU (it shares a device: the batch packing does not take it).
 */
export function taskMovable(t: RunningTask, jobOf: (jobId: string) => ConsolidationJob | undefined, now: number, o: ConsolidationOptions): boolean {
  const protectMs = o.protectMs ?? DEFAULT_CONSOLIDATION.protectMs;
  const maxAge = o.maxTaskAgeMs ?? Infinity;
  if (t.stopping || now - t.boundAt < protectMs || now - t.boundAt > maxAge || o.exemptJobs?.has(t.jobId)) return false;
  const job = jobOf(t.jobId);
  if (!job || job.gang || job.topology?.required || job.labels?.[DO_NOT_DISRUPT_LABEL] === 'true') return false;
  return (t.resources.gpu ?? 0) % GPU_MILLI === 0;
}

/** What makes nodes interchangeable to the fit and the filters: capacity, GPUs, labels, taints. */
export function poolKey(n: NodeSnapshot): string {
  const sorted = (r: Record<string, unknown>) =>
    Object.keys(r)
      .sort()
      .map((k) => [k, r[k]]);
  const taints = n.taints.map((t) => `${t.key}=${t.value ?? ''}:${t.effect}`).sort();
  return JSON.stringify([sorted(n.capacity), n.gpuCount, sorted(n.labels), taints]);
}

/** Free share of a node summed over its capacity's resources (a node half free in 3 resources: 1.5). */
export function freeShare(n: NodeSnapshot): number {
  let s = 0;
  for (const [k, cap] of Object.entries(n.capacity)) if (cap > 0) s += (cap - (n.used[k] ?? 0)) / cap;
  return s;
}

/**
 * Best-fit decreasing as a placer (the default without the live placement): work heaviest first
 * (the sum of its shares of the first node's capacity), each task to the node it fits (resources,
 * GPU devices, `filters`) that it leaves least free, ties by name.
 */
export function bestFitDecreasingPlacer(filters: readonly FilterPlugin[] = DEFAULT_FILTERS): ConsolidationPlacer {
  return (work, nodes) => {
    const rooms = nodes.map((n) => ({ node: n, free: freeOf(n), devices: { ...n.devices } }));
    const cap = nodes[0]?.capacity ?? {};
    const size = (r: ResourceVector) => Object.entries(r).reduce((s, [k, v]) => s + (cap[k] ? v / cap[k] : 0), 0);
    const ordered = [...work].sort((a, b) => size(b.resources) - size(a.resources) || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
    const out: Placement[] = [];
    for (const w of ordered) {
      const share = w.resources.gpu ?? 0;
      for (let k = 0; k < w.tasks; k++) {
        let best: (typeof rooms)[number] | undefined;
        let bestSlack = Infinity;
        for (const r of rooms) {
          if (!fitsOne(w.resources, r.free) || pickDevices(r.devices, r.node.gpuCount, share) === undefined) continue;
          if (filters.some((f) => f.filter(w, r.node))) continue;
          let slack = 0;
          for (const [key, c] of Object.entries(r.node.capacity)) if (c > 0) slack += ((r.free[key] ?? 0) - (w.resources[key] ?? 0)) / c;
          if (slack < bestSlack) {
            best = r;
            bestSlack = slack;
          }
        }
        if (!best) break;
        for (const [key, v] of Object.entries(w.resources)) best.free[key] = (best.free[key] ?? 0) - v;
        const devices = pickDevices(best.devices, best.node.gpuCount, share) ?? [];
        for (const d of devices) best.devices[d] = (best.devices[d] ?? 0) + (share >= GPU_MILLI ? GPU_MILLI : share);
        appendPlacement(out, w.jobId, best.node.name, devices);
      }
    }
    return out;
  };
}

function freeOf(n: NodeSnapshot): ResourceVector {
  const free: ResourceVector = {};
  for (const [k, cap] of Object.entries(n.capacity)) free[k] = cap - (n.used[k] ?? 0);
  return free;
}
