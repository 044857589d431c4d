/**
 * Defragmentation for waiting work (opt-in): when a job waits because no node has the room for one
 * of its tasks, though the free room of the cluster would hold it (a 4-GPU task while four 8-GPU
 * nodes each have 1–3 GPUs free), move a few running tasks so that one node has the room, and
 * nominate that node for the job — what KAI scheduler's `consolidate` action and Volcano's
 * defragmentation do. Consolidation and re-pack move tasks to free nodes for scale-down; this moves
 * them to serve work that waits.
 *
 * A pass, for waiting jobs in its own order (priority, then submit time, then id; not the cycle's
 * fair-share order) while the budget of moves lasts: a job is served when one task of it fits on no
 * node taking work now (a gang: the room there is does not hold all its members), it asks no
 * fractional GPU and carries no nomination yet, no node holds it once its tasks already stopping
 * end (their room is counted free, as preemption counts it), and the free room of all nodes
 * together holds it (a gang: all its members). The tasks that may move are re-pack's rule per task
 * (`taskMovable`: the exempt time, the age bound, the repeat limit, `do-not-disrupt`, no gang task,
 * no fractional GPU) with a priority at most the job's base priority, as preemption's; on a node,
 * the fewest of them whose leaving makes the room (`roomMaker`: largest first, then the ones not
 * needed given back, smallest first).
 *
 * A job of one task: each node of the pools that could hold it is a candidate, tried fewest moves
 * first, then the least work lost (run time of the moved tasks), then name. The moved tasks go to the
 * other nodes by the placement (best fit without the live one); only when that finds room for no
 * candidate, ejection chains (`ejectionChain`, re-pack's), candidates in the same order, over the
 * other nodes of the pool whose every task may move and has a priority at most the job's.
 *
 * A job of several tasks, or with a required topology level (`serveAll`): room for all of them in
 * one pass — a gang's all or none, other work's as many as the budget allows — laid out greedily
 * within each domain of the level (or all nodes): a gang's members take the room there is first,
 * then one task at a time the node whose room takes the fewest moves as the earlier choices leave
 * it; the domain serving most tasks with the fewest moves is taken. The job is nominated one node
 * per task.
 *
 * The check: the moved tasks, nominated to their destinations, and the job's tasks, nominated to
 * their nodes, placed by the placement on every node taking work with the moved tasks gone; the
 * plan stands only when every moved task is placed off the freed nodes and the job's tasks on
 * theirs. Bounded by `maxMoves` (the tasks one pass stops) and `maxSteps` (fit checks). Pure:
 * snapshot, waiting work, options and `now` in.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import { DEFAULT_FILTERS } from '../../framework/profile';
import type { NodeSnapshot, PendingWork } from '../../snapshot';
import type { RunningTask } from '../preemption';
import { fitsOne, pickDevices } from '../resource-fit';
import { DEFAULT_TOPOLOGY_LEVELS, domainOf, tasksOnNode, type TopologyLevel } from '../topology';
import { type ConsolidationJob, type ConsolidationOptions, DEFAULT_CONSOLIDATION } from './index';
import { assign, bestFitDecreasingPlacer, ejectionChain, type Host, poolKey, type RepackMove, taskMovable, without, workOf } from './repack';

/** Settings of a defragmentation pass: consolidation's eligibility rules and a budget of moves. */
export interface DefragmentOptions extends Omit<ConsolidationOptions, 'maxNodesPerPass' | 'maxNodeFraction' | 'consolidateAfterMs'> {
  /** Most tasks one pass stops (over all the jobs it serves); 0 = off. @default 8 */
  maxMoves?: number;
  /** Most waiting jobs one pass serves. @default 1 */
  maxJobs?: number;
  /** The topology levels, top first, that a job's `topology.required` names (the snapshot's). @default DEFAULT_TOPOLOGY_LEVELS */
  topology?: readonly TopologyLevel[];
}

/** Most tasks a defragmentation pass stops unless told (`DefragmentOptions.maxMoves`). */
export const DEFAULT_DEFRAGMENT_MAX_MOVES = 8;

/** A waiting job served: the nodes nominated for its tasks and the tasks moved to make the room. */
export interface DefragmentTarget {
  jobId: string;
  /** The nodes nominated for the job's tasks, one entry per task (a node twice: two of its tasks there); those freed by moves first. */
  nodes: string[];
  /** The nodes moves freed room on (a subset of `nodes`; a gang's other members go where room already is). */
  freed: string[];
  /** The tasks to stop, each with the node the check placed it on and the node nominated for it. */
  moves: RepackMove[];
}

/** Why a waiting job was not served. */
export type DefragmentSkip =
  'fits-now' | 'freeing' | 'fractional-gpu' | 'topology' | 'nominated' | 'no-node' | 'no-room' | 'no-movable-room' | 'no-destination' | 'budget' | 'steps';

/** What a defragmentation pass decided. */
export interface DefragmentPlan {
  targets: DefragmentTarget[];
  /** Every task to stop, over all targets. */
  moves: RepackMove[];
  /** Waiting jobs considered and not served, and why. */
  skipped: Array<{ jobId: string; reason: DefragmentSkip }>;
  /** Fit checks spent: a placement counted as each of its tasks against each node it is offered. */
  steps: number;
}

interface Option {
  host: Host;
  leaving: RunningTask[];
  lostMs: number;
}

/**
 * The defragmentation at `now`. `nodes`: the nodes taking work; `running`: every live task;
 * `pending`: the waiting work (its `tasks` those placeable now); `jobOf`: a running job's traits
 * (undefined: never moved). `o.placer` is the live placement; without one, best-fit decreasing.
 */
export function planDefragment(
  nodes: readonly NodeSnapshot[],
  running: readonly RunningTask[],
  pending: readonly PendingWork[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  now: number,
  o: DefragmentOptions = {},
): DefragmentPlan {
  const maxSteps = o.maxSteps ?? DEFAULT_CONSOLIDATION.maxSteps;
  const maxJobs = o.maxJobs ?? 1;
  let budget = o.maxMoves ?? DEFAULT_DEFRAGMENT_MAX_MOVES;
  const filters = o.filters ?? DEFAULT_FILTERS;
  const placer = o.placer ?? bestFitDecreasingPlacer(filters);
  const levels = o.topology ?? DEFAULT_TOPOLOGY_LEVELS;
  // The cluster as the plan leaves it: accepted targets take their room, their moves leave theirs.
  let view = nodes.map((n) => ({ ...n }));
  // Tasks already asked to stop (a preemption in its grace period, an earlier pass) free their room:
  // counted as gone, as preemption counts them, so no job gets more tasks stopped for room on its way.
  const stoppingOn = new Map<string, RunningTask[]>();
  for (const t of running) if (t.stopping) stoppingOn.set(t.node, [...(stoppingOn.get(t.node) ?? []), t]);
  // A gang an earlier pass laid out holds its members' room on its nominated nodes (`placeGang`):
  // taken here as if bound, so no job is served with it and no moved task sent into it (which would
  // leave the gang short there, holding its other nodes' room for nothing).
  for (const w of pending) {
    const held = w.gang && w.tasks > 0 && (w.nominated?.length ?? 0) >= w.tasks ? w.nominated!.slice(0, w.tasks) : [];
    if (held.length === 0 || !held.every((name) => view.some((n) => n.name === name))) continue;
    view = view.map((n) =>
      held.includes(n.name)
        ? withTasks(
            n,
            held.filter((x) => x === n.name).map(() => jobTask(w, n.name, now)),
          )
        : n,
    );
  }
  const released = (n: NodeSnapshot) => without(n, stoppingOn.get(n.name) ?? []);
  const fitsOn = (need: ResourceVector, n: NodeSnapshot) => fitsOne(need, freeOf(n)) && pickDevices(n.devices, n.gpuCount, need.gpu ?? 0) !== undefined;
  let tasks = running.filter((t) => !t.stopping);
  const plan: DefragmentPlan = { targets: [], moves: [], skipped: [], steps: 0 };
  const touched = new Set<string>();
  let total: ResourceVector | undefined;
  const ordered = [...pending]
    .filter((w) => w.tasks > 0)
    .sort((a, b) => b.priority - a.priority || a.createdAt - b.createdAt || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
  for (const w of ordered) {
    if (plan.targets.length >= maxJobs) break;
    const skip = (reason: DefragmentSkip) => plan.skipped.push({ jobId: w.jobId, reason });
    if (budget <= 0) {
      skip('budget');
      continue;
    }
    // Each job looked at costs a step per node at least: a long backlog is cut short by the bound.
    if (plan.steps + view.length > maxSteps) {
      skip('steps');
      break;
    }
    const share = w.resources.gpu ?? 0;
    if (share % GPU_MILLI !== 0) {
      skip('fractional-gpu');
      continue;
    }
    if (w.nominated?.length) {
      skip('nominated');
      continue;
    }
    const able = view.filter((n) => fitsOne(w.resources, n.capacity) && n.gpuCount * GPU_MILLI >= share && !filters.some((f) => f.filter(w, n)));
    plan.steps += view.length;
    if (able.length === 0) {
      skip('no-node');
      continue;
    }
    // Each node with its stopping tasks gone and only the tasks that stay.
    const hosts = new Map<string, Host>(view.map((n) => [n.name, { node: released(n), tasks: [] }]));
    for (const t of tasks) hosts.get(t.node)?.tasks.push(t);
    // The job's base priority, as preemption's: aging lets a job be placed sooner, not move more.
    const level = w.basePriority ?? w.priority;
    const may = (t: RunningTask) => t.jobId !== w.jobId && t.priority <= level && taskMovable(t, jobOf, now, o);
    let served: DefragmentTarget | undefined;
    if (w.tasks > 1 || w.topology?.required) {
      // Several tasks (a gang's all at once), or one domain: room for all of them in one pass.
      const r = serveAll(
        w,
        able,
        hosts,
        view,
        may,
        budget,
        touched,
        maxSteps - plan.steps,
        (total ??= totalFree(view.map(released))),
        jobOf,
        placer,
        levels,
        now,
      );
      plan.steps += r.steps;
      if (!r.target) {
        skip(r.reason!);
        if (r.reason === 'steps') break;
        continue;
      }
      served = r.target;
    } else {
      if (able.some((n) => fitsOn(w.resources, n))) {
        skip('fits-now');
        continue;
      }
      // A node that holds the task once its stopping tasks end: its room is on its way, none is made.
      if (able.some((n) => fitsOn(w.resources, released(n)))) {
        skip('freeing');
        continue;
      }
      // Moves only shift room between nodes: the free room of all of them (what stops frees counted) must hold the task.
      if (!fitsOne(w.resources, (total ??= totalFree(view.map(released))))) {
        skip('no-room');
        continue;
      }
      const candidates = able.filter((n) => !touched.has(n.name));
      // The candidate search, counted before it runs: a step per task of each candidate.
      const search = candidates.reduce((s, n) => s + hosts.get(n.name)!.tasks.length, 0);
      if (plan.steps + search > maxSteps) {
        skip('steps');
        break;
      }
      plan.steps += search;
      // Each able node not touched by this pass: the fewest movable tasks whose leaving makes the room.
      const options: Option[] = [];
      for (const n of candidates) {
        const host = hosts.get(n.name)!;
        const leaving = roomMaker(host, w.resources, may);
        if (leaving && leaving.length <= budget) options.push({ host, leaving, lostMs: leaving.reduce((s, t) => s + (now - t.boundAt), 0) });
      }
      options.sort((a, b) => a.leaving.length - b.leaving.length || a.lostMs - b.lostMs || (a.host.node.name < b.host.node.name ? -1 : 1));
      if (options.length === 0) {
        skip('no-movable-room');
        continue;
      }
      let stopped = false;
      // Every option with its tasks placed on the room as it is first; then with ejection chains.
      for (const [option, chain] of [...options.map((x) => [x, false] as const), ...options.map((x) => [x, true] as const)]) {
        if (served) break;
        let opt = option;
        const others = view.filter((n) => n.name !== opt.host.node.name);
        // The destinations and the check, each counted before it runs: the bound holds however large.
        const cost = (chain ? 0 : 2) * (opt.leaving.length + 1) * view.length;
        if (plan.steps + cost > maxSteps) {
          stopped = true;
          break;
        }
        plan.steps += cost;
        let targets = chain ? undefined : destinations(opt.leaving, others, jobOf, placer);
        if (chain) {
          // The ejection chain: over the pool's other nodes whose every task may move for this job.
          const key = poolKey(opt.host.node);
          const pool = [...hosts.values()].filter(
            (h) => h === opt.host || (poolKey(h.node) === key && !touched.has(h.node.name) && !stoppingOn.has(h.node.name) && h.tasks.every(may)),
          );
          const found = ejectionChain(opt.host, pool, budget, maxSteps - plan.steps, opt.leaving);
          plan.steps += found.steps;
          targets = found.candidate?.targets;
          if (found.candidate) opt = { ...opt, leaving: found.candidate.moving };
        }
        if (!targets || opt.leaving.length > budget) continue;
        if (chain) {
          // The check after a chain, counted with the chain's own (larger) list of moved tasks.
          const checkCost = (opt.leaving.length + 1) * view.length;
          if (plan.steps + checkCost > maxSteps) {
            stopped = true;
            break;
          }
          plan.steps += checkCost;
        }
        const moves = check(opt, targets, w, view, jobOf, placer);
        if (moves) served = { jobId: w.jobId, nodes: [opt.host.node.name], freed: [opt.host.node.name], moves };
      }
      if (!served) {
        skip(stopped ? 'steps' : 'no-destination');
        if (stopped) break;
        continue;
      }
    }
    plan.targets.push(served);
    plan.moves.push(...served.moves);
    budget -= served.moves.length;
    // The plan's cluster: the moved tasks on their destinations, the job's tasks on their nodes.
    const gone = new Set(served.moves.map((m) => m.task));
    const landed = served.moves.map((m) => ({ ...m.task, node: m.to, boundAt: now, devices: [] }));
    tasks = [...tasks.filter((t) => !gone.has(t)), ...landed];
    const bound = served.nodes.map((node) => jobTask(w, node, now));
    view = view.map((n) =>
      withTasks(
        without(
          n,
          [...gone].filter((t) => t.node === n.name),
        ),
        [...landed, ...bound].filter((t) => t.node === n.name),
      ),
    );
    for (const m of served.moves) touched.add(m.to).add(m.task.node);
    for (const node of served.nodes) touched.add(node);
    total = undefined;
  }
  return plan;
}

/** A job's tasks laid out in one group of nodes (a topology domain, or all): each task's node and the moves that make the room. */
interface Spread {
  /** The group: the domain's key, or '' for all nodes. */
  key: string;
  /** One entry per task; a node freed by moves once per task it takes. */
  nodes: string[];
  freed: string[];
  leaving: RunningTask[];
  lostMs: number;
}

/** What `serveAll` found: a target, or why none, and the fit checks it spent. */
interface ServeAll {
  target?: DefragmentTarget;
  reason?: DefragmentSkip;
  steps: number;
}

/**
 * Room for all of `w`'s tasks at once (a gang: all or none; other work: as many as the budget
 * makes room for, at least one), within one domain of its required topology level if it names one.
 * Per group of able nodes (the domains, or all), greedily: the tasks first take the room there is
 * (counting what stopping tasks free; a gang only, as other work is placed there by the cycle),
 * then one task at a time the untouched node whose room takes the fewest moves (`roomMaker`; then
 * the least work lost, then name), on the node as the earlier choices leave it. Groups are tried
 * most tasks served first, then fewest moves, least work lost, key; the first whose moved tasks find
 * destinations off the chosen nodes and whose check (`checkAll`) holds is the target.
 */
function serveAll(
  w: PendingWork,
  able: readonly NodeSnapshot[],
  hosts: ReadonlyMap<string, Host>,
  view: readonly NodeSnapshot[],
  may: (t: RunningTask) => boolean,
  budget: number,
  touched: ReadonlySet<string>,
  stepsLeft: number,
  total: ResourceVector,
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  placer: NonNullable<ConsolidationOptions['placer']>,
  levels: readonly TopologyLevel[],
  now: number,
): ServeAll {
  const gang = !!w.gang;
  const slots = (n: NodeSnapshot) => tasksOnNode(w.resources, freeOf(n), n.devices, n.gpuCount);
  const sum = (ns: readonly NodeSnapshot[]) => ns.reduce((s, n) => s + slots(n), 0);
  // A gang starts when the room for all its tasks is there; other work as soon as one task's is (the cycle places it).
  const enough = (k: number) => (gang ? k >= w.tasks : k > 0);
  // The two slot counts over the able nodes, counted before they run.
  if (able.length * 2 > stepsLeft) return { reason: 'steps', steps: 0 };
  let steps = able.length * 2;
  if (enough(sum(able))) return { reason: 'fits-now', steps };
  if (enough(sum(able.map((n) => hosts.get(n.name)!.node)))) return { reason: 'freeing', steps };
  // Moves only shift room between nodes: the free room of all of them must hold all a gang's tasks (another job's: one).
  const want = gang ? w.tasks : 1;
  const wanted: ResourceVector = Object.fromEntries(Object.entries(w.resources).map(([k, v]) => [k, v * want]));
  if (!fitsOne(wanted, total)) return { reason: 'no-room', steps };
  let groups: Array<[string, NodeSnapshot[]]> = [['', [...able]]];
  const required = w.topology?.required;
  if (required) {
    const i = levels.findIndex((l) => l.name === required);
    if (i < 0) return { reason: 'topology', steps };
    const byDomain = new Map<string, NodeSnapshot[]>();
    for (const n of able) {
      const key = domainOf(levels, n, i);
      if (key !== undefined) byDomain.set(key, [...(byDomain.get(key) ?? []), n]);
    }
    groups = [...byDomain].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }
  const spreads: Spread[] = [];
  let overBudget = false;
  for (const [key, group] of groups) {
    const found = spreadIn(key, group, w, hosts, may, budget, touched, stepsLeft - steps, now);
    steps += found.steps;
    if (found.stopped) return { reason: 'steps', steps };
    overBudget ||= found.overBudget;
    if (found.spread) spreads.push(found.spread);
  }
  spreads.sort(
    (a, b) => b.nodes.length - a.nodes.length || a.leaving.length - b.leaving.length || a.lostMs - b.lostMs || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  );
  if (spreads.length === 0) return { reason: overBudget ? 'budget' : 'no-movable-room', steps };
  for (const sp of spreads) {
    // The destinations and the check, each counted before it runs: the bound holds however large.
    const cost = 2 * (sp.leaving.length + sp.nodes.length) * view.length;
    if (steps + cost > stepsLeft) return { reason: 'steps', steps };
    steps += cost;
    const freed = new Set(sp.freed);
    // The moved tasks go off the freed nodes, and not into the room the job's other tasks take.
    const taking = new Map<string, RunningTask[]>();
    for (const node of sp.nodes) if (!freed.has(node)) taking.set(node, [...(taking.get(node) ?? []), jobTask(w, node, now)]);
    const others = view.filter((n) => !freed.has(n.name)).map((n) => withTasks(n, taking.get(n.name) ?? []));
    const targets = destinations(sp.leaving, others, jobOf, placer);
    if (!targets) continue;
    const moves = checkAll(sp, targets, w, view, hosts, jobOf, placer);
    if (moves) return { target: { jobId: w.jobId, nodes: sp.nodes, freed: sp.freed, moves }, steps };
  }
  return { reason: 'no-destination', steps };
}

/**
 * The greedy layout of `w`'s tasks in one group (see `serveAll`); `stopped` when the step bound cut
 * it short, `overBudget` when a node's room would have taken more moves than the budget has left.
 */
function spreadIn(
  key: string,
  group: readonly NodeSnapshot[],
  w: PendingWork,
  hosts: ReadonlyMap<string, Host>,
  may: (t: RunningTask) => boolean,
  budget: number,
  touched: ReadonlySet<string>,
  stepsLeft: number,
  now: number,
): { spread?: Spread; stopped: boolean; overBudget: boolean; steps: number } {
  const local = new Map<string, Host>(group.map((n) => [n.name, { node: hosts.get(n.name)!.node, tasks: [...hosts.get(n.name)!.tasks] }]));
  const sorted = [...group].sort((a, b) => (a.name < b.name ? -1 : 1));
  const nodes: string[] = [];
  const freed: string[] = [];
  const leaving: RunningTask[] = [];
  let need = w.tasks;
  // The group's slot counts (a gang's), counted before they run.
  if (group.length > stepsLeft) return { stopped: true, overBudget: false, steps: 0 };
  let steps = group.length;
  let overBudget = false;
  // A gang's members first take the room there is (with what stopping tasks free): no move needed for them.
  if (w.gang)
    for (const n of sorted) {
      const h = local.get(n.name)!;
      const k = Math.min(need, tasksOnNode(w.resources, freeOf(h.node), h.node.devices, h.node.gpuCount));
      for (let i = 0; i < k; i++) {
        h.node = withTasks(h.node, [jobTask(w, n.name, now)]);
        nodes.push(n.name);
      }
      need -= k;
    }
  while (need > 0) {
    const candidates = sorted.filter((n) => !touched.has(n.name));
    // The search, counted before it runs: a step per task of each candidate.
    const search = candidates.reduce((s, n) => s + local.get(n.name)!.tasks.length, 0);
    if (steps + search > stepsLeft) return { stopped: true, overBudget, steps };
    steps += search;
    let best: { host: Host; leaving: RunningTask[]; lostMs: number } | undefined;
    for (const n of candidates) {
      const host = local.get(n.name)!;
      const l = roomMaker(host, w.resources, may);
      if (!l) continue;
      if (leaving.length + l.length > budget) {
        overBudget = true;
        continue;
      }
      const lostMs = l.reduce((s, t) => s + (now - t.boundAt), 0);
      // Fewest moves, then least work lost; the candidates come in name order, so the first of a tie stays.
      if (!best || l.length < best.leaving.length || (l.length === best.leaving.length && lostMs < best.lostMs)) best = { host, leaving: l, lostMs };
    }
    if (!best) break;
    const name = best.host.node.name;
    const gone = new Set(best.leaving);
    best.host.tasks = best.host.tasks.filter((t) => !gone.has(t));
    best.host.node = withTasks(without(best.host.node, best.leaving), [jobTask(w, name, now)]);
    leaving.push(...best.leaving);
    if (best.leaving.length > 0 && !freed.includes(name)) freed.push(name);
    nodes.push(name);
    need--;
  }
  // A gang needs every member's room; other work is served when moves made room for at least one task.
  if ((w.gang && need > 0) || freed.length === 0) return { stopped: false, overBudget, steps };
  // The nodes freed by moves first: those are the room the nominations hold.
  const order = [...nodes].sort((a, b) => Number(freed.includes(b)) - Number(freed.includes(a)));
  return { spread: { key, nodes: order, freed, leaving, lostMs: leaving.reduce((s, t) => s + (now - t.boundAt), 0) }, stopped: false, overBudget, steps };
}

/**
 * The check of a layout: the moved tasks (nominated to their destinations) and the job's tasks
 * (nominated to their nodes) placed by the placement on every node, those of the layout with their
 * stopping tasks gone, with the moved tasks gone. The moves, unless a moved task is unplaced or
 * placed on a freed node, or fewer of the job's tasks are placed than laid out, or a freed node gets
 * fewer of them than laid out there.
 */
function checkAll(
  sp: Spread,
  targets: ReadonlyMap<RunningTask, string>,
  w: PendingWork,
  view: readonly NodeSnapshot[],
  hosts: ReadonlyMap<string, Host>,
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  placer: NonNullable<ConsolidationOptions['placer']>,
): RepackMove[] | undefined {
  const chosen = new Set(sp.nodes);
  const gone = new Map<string, RunningTask[]>();
  for (const t of sp.leaving) gone.set(t.node, [...(gone.get(t.node) ?? []), t]);
  const open = view.map((n) => without(chosen.has(n.name) ? hosts.get(n.name)!.node : n, gone.get(n.name) ?? []));
  const job: PendingWork = { ...w, tasks: sp.nodes.length, nominated: sp.nodes };
  const placements = placer([job, ...workOf(sp.leaving, jobOf, targets)], open);
  const placedOn = new Map<string, number>();
  for (const p of placements) if (p.jobId === w.jobId) placedOn.set(p.node, (placedOn.get(p.node) ?? 0) + p.count);
  if ([...placedOn.values()].reduce((a, b) => a + b, 0) < sp.nodes.length) return undefined;
  for (const f of sp.freed) if ((placedOn.get(f) ?? 0) < sp.nodes.filter((n) => n === f).length) return undefined;
  const freed = new Set(sp.freed);
  const moves = assign(
    sp.leaving,
    placements.filter((p) => p.jobId !== w.jobId),
    targets,
  );
  if (!moves || moves.some((m) => freed.has(m.to))) return undefined;
  return moves;
}

/** One of `w`'s tasks as the plan binds it on `node` (its devices picked by `withTasks`). */
function jobTask(w: PendingWork, node: string, now: number): RunningTask {
  return {
    jobId: w.jobId,
    queue: w.queue,
    node,
    groupStart: 0,
    attempt: 0,
    index: 0,
    priority: w.priority,
    resources: w.resources,
    devices: [],
    boundAt: now,
    stopping: false,
  };
}

/**
 * The fewest of the host's movable tasks whose leaving lets `need` fit (resources and whole GPU
 * devices): largest first (the sum of their shares of the node's capacity) until it fits, then those
 * not needed given back, smallest first. Undefined when all the movable tasks leaving is not enough.
 */
function roomMaker(host: Host, need: ResourceVector, may: (t: RunningTask) => boolean): RunningTask[] | undefined {
  const cap = host.node.capacity;
  const size = (r: ResourceVector) => Object.entries(r).reduce((s, [k, v]) => s + (cap[k] ? v / cap[k] : 0), 0);
  const movable = host.tasks
    .filter(may)
    .sort((a, b) => size(b.resources) - size(a.resources) || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : a.index - b.index));
  const fitsWithout = (gone: readonly RunningTask[]) => {
    const n = without(host.node, gone);
    return fitsOne(need, freeOf(n)) && pickDevices(n.devices, n.gpuCount, need.gpu ?? 0) !== undefined;
  };
  const leaving: RunningTask[] = [];
  for (const t of movable) {
    if (fitsWithout(leaving)) break;
    leaving.push(t);
  }
  if (!fitsWithout(leaving)) return undefined;
  for (const t of [...leaving].reverse()) {
    const rest = leaving.filter((x) => x !== t);
    if (fitsWithout(rest)) leaving.splice(leaving.indexOf(t), 1);
  }
  return leaving;
}

/** Where the placement puts the leaving tasks on the other nodes as they are (undefined unless all of them). */
function destinations(
  leaving: readonly RunningTask[],
  others: readonly NodeSnapshot[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  placer: NonNullable<ConsolidationOptions['placer']>,
): Map<RunningTask, string> | undefined {
  const moves = assign(leaving, placer(workOf(leaving, jobOf), [...others]));
  return moves ? new Map(moves.map((m) => [m.task, m.to])) : undefined;
}

/**
 * The check: the moved tasks (nominated to their destinations) and one task of `w` (nominated to the
 * freed node) placed by the placement on every node with the moved tasks gone. The moves, unless a
 * moved task is unplaced or placed back on the freed node, or the job's task is not placed there.
 */
function check(
  opt: Option,
  targets: ReadonlyMap<RunningTask, string>,
  w: PendingWork,
  view: readonly NodeSnapshot[],
  jobOf: (jobId: string) => ConsolidationJob | undefined,
  placer: NonNullable<ConsolidationOptions['placer']>,
): RepackMove[] | undefined {
  const freed = opt.host.node.name;
  const gone = new Map<string, RunningTask[]>();
  for (const t of opt.leaving) gone.set(t.node, [...(gone.get(t.node) ?? []), t]);
  // The freed node as the option sees it (its stopping tasks gone), every other node as it is.
  const open = view.map((n) => without(n.name === freed ? opt.host.node : n, gone.get(n.name) ?? []));
  const job: PendingWork = { ...w, tasks: 1, nominated: [freed] };
  const placements = placer([job, ...workOf(opt.leaving, jobOf, targets)], open);
  if (!placements.some((p) => p.jobId === w.jobId && p.node === freed)) return undefined;
  const moves = assign(
    opt.leaving,
    placements.filter((p) => p.jobId !== w.jobId),
    targets,
  );
  if (!moves || moves.some((m) => m.to === freed)) return undefined;
  return moves;
}

/** The node with `added` holding their resources (their devices picked as the placement would). */
function withTasks(n: NodeSnapshot, added: readonly RunningTask[]): NodeSnapshot {
  if (added.length === 0) return n;
  const used = { ...n.used };
  const devices = { ...n.devices };
  for (const t of added) {
    for (const [k, v] of Object.entries(t.resources)) used[k] = (used[k] ?? 0) + v;
    for (const d of pickDevices(devices, n.gpuCount, t.resources.gpu ?? 0) ?? []) devices[d] = (devices[d] ?? 0) + GPU_MILLI;
  }
  return { ...n, used, devices };
}

/** The free room of all the nodes, summed per resource. */
function totalFree(nodes: readonly NodeSnapshot[]): ResourceVector {
  const total: ResourceVector = {};
  for (const n of nodes) for (const [k, v] of Object.entries(freeOf(n))) total[k] = (total[k] ?? 0) + v;
  return total;
}

function freeOf(n: NodeSnapshot): ResourceVector {
  const free: ResourceVector = {};
  for (const [k, cap] of Object.entries(n.capacity)) free[k] = cap - (n.used[k] ?? 0);
  return free;
}
