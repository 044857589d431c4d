/**
 * Batch fill: when many pieces of work arrive at the same instant with the same priority,
 * packing them one job at a time (decreasing best fit) leaves gaps that a person would not.
 * Instead, node by node (fullest first), search for the set of waiting tasks that fills the
 * node best — minimum bin slack — with a bounded search; before that, a bounded search for a
 * plan that fills every node exactly until the tasks run out (`exactPlan`), which node by node
 * misses when an early exact fill leaves pieces that fit no later node. Tasks of one shape (resources, node
 * selector, tolerations, image) are interchangeable; each node considers only the shapes its
 * filters let on it, so work tied to pools by selectors is packed within each pool. Whole
 * GPUs are one more dimension (counted over the node's wholly free devices, then devices
 * picked per task); CPU-only work is left off GPU nodes (the per-job pass weighs that). Pure.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';
import type { NodeSnapshot, PendingWork } from '../../snapshot';
import { pickDevices } from '../resource-fit';

/** A node's mutable state during a pass. */
export interface FillNode {
  node: NodeSnapshot;
  free: ResourceVector;
  /** Milli-GPU in use per device index; the fill marks the devices it gives whole-GPU tasks. @default none: no GPU work is filled on it */
  devices?: Record<string, number>;
}

/** Tasks the fill placed: `count` tasks of a job on a node, and each task's devices (empty lists without GPUs). */
export interface Filled {
  jobId: string;
  node: string;
  count: number;
  devices: number[][];
}

/** Search steps allowed per node. @default 20000 */
export const FILL_STEPS_PER_NODE = 20_000;

interface Shape {
  resources: ResourceVector;
  /** The first work of the shape: what the filters are asked about. */
  like: PendingWork;
  /** Jobs with tasks of this shape, in queue order, and how many tasks each still has. */
  jobs: Array<{ jobId: string; left: number }>;
  count: number;
}

function fits(need: ResourceVector, free: ResourceVector, times: number): boolean {
  for (const [k, v] of Object.entries(need)) if (v > 0 && v * times > (free[k] ?? 0)) return false;
  return true;
}

/** Share of the node's capacity a request takes, summed over its dimensions. */
function weight(need: ResourceVector, cap: ResourceVector): number {
  let w = 0;
  for (const [k, v] of Object.entries(need)) if (v > 0 && cap[k]) w += v / cap[k];
  return w;
}

/** Wholly free devices of a node (no task holds any of them). */
function wholeFreeDevices(n: FillNode): number {
  let free = 0;
  for (let d = 0; d < n.node.gpuCount; d++) if (!n.devices?.[d]) free++;
  return free;
}

/** What makes two pieces of work interchangeable to the fill: resources, selector, tolerations, image. */
function shapeKey(w: PendingWork): string {
  return JSON.stringify([
    Object.entries(w.resources)
      .filter(([, v]) => v > 0)
      .sort(),
    Object.entries(w.selector ?? {}).sort(),
    w.tolerations ?? [],
    w.image ?? '',
  ]);
}

/** A node as one fill sees it: its room (whole GPUs counted over wholly free devices) and the shapes its filters let on it that fit, heaviest first. */
interface NodeView {
  n: FillNode;
  free: ResourceVector;
  eligible: Shape[];
  /** Each shape's weight on the node (`weight` of its resources over the node's capacity). */
  weightOf: ReadonlyMap<Shape, number>;
  /** `weight(free)`: a fill of this weight leaves no slack. */
  target: number;
}

/** The shapes heaviest first on nodes of one capacity, with their weights there: computed once per capacity, not per node. */
type ByCapacity = Map<string, { sorted: Shape[]; weightOf: Map<Shape, number> }>;

function viewOf(n: FillNode, shapes: readonly Shape[], filters: readonly FilterPlugin[], byCapacity: ByCapacity): NodeView {
  const key = JSON.stringify(Object.entries(n.node.capacity).sort());
  let ranked = byCapacity.get(key);
  if (!ranked) {
    const weightOf = new Map(shapes.map((s) => [s, weight(s.resources, n.node.capacity)]));
    ranked = { sorted: [...shapes].sort((a, b) => weightOf.get(b)! - weightOf.get(a)!), weightOf };
    byCapacity.set(key, ranked);
  }
  const gpuNode = n.node.gpuCount > 0;
  // On a GPU node the fill counts whole GPUs over the wholly free devices (a device partly held by a fractional task takes no whole-GPU task).
  const free: ResourceVector = gpuNode ? { ...n.free, gpu: Math.min(n.free.gpu ?? 0, wholeFreeDevices(n) * GPU_MILLI) } : { ...n.free };
  const eligible = ranked.sorted.filter(
    (s) =>
      (s.resources.gpu ?? 0) > 0 === gpuNode &&
      (!gpuNode || n.devices !== undefined) &&
      fits(s.resources, free, 1) &&
      !filters.some((f) => f.filter({ ...s.like, tasks: 1 }, n.node)),
  );
  return { n, free, eligible, weightOf: ranked.weightOf, target: weight(free, n.node.capacity) };
}

/**
 * Minimum bin slack on one node: depth first over how many tasks of each of `cands` go on it,
 * most first, within `steps` (each fill looked at is one); the first fill without slack ends it.
 * Returns the best counts per candidate. The depth is the number of candidates, so the search
 * keeps its own stack (thousands of shapes would overflow the call stack).
 */
function leastSlack(v: NodeView, cands: readonly Shape[], steps: number): number[] {
  const w = cands.map((s) => v.weightOf.get(s)!);
  const need = cands.map((s) => Object.entries(s.resources));
  const free = { ...v.free };
  const best = new Array<number>(cands.length).fill(0);
  const cur = new Array<number>(cands.length).fill(0);
  let bestFill = -1;
  let budget = steps;
  // The best fill is the path's first `lazy` counts while that path stands (copied into `best`, whose
  // counts from `copied` on are 0, only before it changes): a deep search improves at every step.
  let lazy = -1;
  let copied = 0;
  const keep = () => {
    for (let k = 0; k < Math.max(lazy, copied); k++) best[k] = k < lazy ? cur[k] : 0;
    copied = lazy;
    lazy = -1;
  };
  /** Looks at the fill of `cur` (candidates before i set): false when the search ends here. */
  const visit = (i: number, fill: number): boolean => {
    if (fill > bestFill) {
      bestFill = fill;
      lazy = i;
    }
    return !(bestFill >= v.target - 1e-9 || --budget <= 0);
  };
  /** Tasks of candidate i that fit the room left. */
  const most = (i: number): number => {
    let m = cands[i].count;
    for (const [k, x] of need[i]) if (x > 0) m = Math.min(m, Math.floor((free[k] ?? 0) / x));
    return m;
  };
  // A frame per candidate being counted: the fill before it and the count it holds now (tried from `most` down to 0).
  const stack: Array<{ fill: number; c: number }> = [];
  if (visit(0, 0) && cands.length > 0) stack.push({ fill: 0, c: most(0) + 1 });
  while (stack.length > 0) {
    const i = stack.length - 1;
    const top = stack[i];
    if (lazy > i) keep();
    if (cur[i] > 0) for (const [k, x] of need[i]) free[k] += x * cur[i];
    cur[i] = 0;
    if (--top.c < 0) {
      stack.pop();
      continue;
    }
    cur[i] = top.c;
    for (const [k, x] of need[i]) free[k] = (free[k] ?? 0) - x * top.c;
    const fill = top.fill + w[i] * top.c;
    if (!visit(i + 1, fill)) break;
    if (i + 1 < cands.length) stack.push({ fill, c: most(i + 1) + 1 });
  }
  if (lazy >= 0) keep();
  return best;
}

/**
 * The fills of one node that the exact search takes — no slack, or every task of `cands` left —
 * heaviest tasks first, each as counts per candidate (a fresh array). Each task tried costs a
 * step of `budget` (none left ends it) and at most one pass over the candidates, none heavier than
 * the room (a binary search on weight starts past those). With `heaviestFirst` the fill holds a
 * task of `cands[0]`.
 */
function* exactFills(v: NodeView, cands: readonly Shape[], budget: { left: number }, heaviestFirst: boolean): Generator<number[]> {
  const w = cands.map((s) => v.weightOf.get(s)!);
  // Weight of all the tasks of cands[j..]: a bound on what the rest of a fill can add.
  const rest = new Array<number>(cands.length + 1).fill(0);
  for (let j = cands.length - 1; j >= 0; j--) rest[j] = rest[j + 1] + w[j] * cands[j].count;
  let total = 0;
  for (const s of cands) total += s.count;
  const lightest = w.reduce((a, b) => Math.min(a, b), Infinity);
  const cur = new Array<number>(cands.length).fill(0);
  const free = { ...v.free };
  let taken = 0;
  // Tasks in order of their candidates (a fill is found once), one frame per task taken (a fill of
  // thousands of tasks would overflow the call stack): `fill` before it, `j` the candidate tried,
  // `short` when a candidate before j keeps tasks out of the fill (so it cannot hold every task).
  const frames: Array<{ fill: number; j: number; end: number; short: boolean; took: boolean }> = [];
  /** Opens a frame trying candidates from `from` on (the heaviest only for the first task when `heaviestFirst`). */
  const open = (from: number, fill: number, short: boolean) => {
    const end = heaviestFirst && taken === 0 ? 1 : cands.length;
    // Candidates heavier than the room do not fit (weights are sorted, heaviest first): start past them.
    let lo = from;
    let hi = end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (w[mid] > v.target - fill + 1e-9) lo = mid + 1;
      else hi = mid;
    }
    for (let j = from; j < lo; j++) short ||= cur[j] < cands[j].count;
    frames.push({ fill, j: lo, end, short, took: false });
  };
  open(0, 0, false);
  while (frames.length > 0) {
    const f = frames[frames.length - 1];
    if (f.took) {
      // Back from the fills holding one more task of j: now those leaving it out.
      for (const [k, x] of Object.entries(cands[f.j].resources)) free[k] += x;
      taken--;
      cur[f.j]--;
      f.took = false;
      f.short = true;
      f.j++;
    }
    const j = f.j;
    // Past the candidates, or neither an exact fill nor every task left can come from j on: nothing more here.
    if (j >= f.end || (f.short && f.fill + rest[j] < v.target - 1e-9)) {
      frames.pop();
      continue;
    }
    const s = cands[j];
    if (cur[j] >= s.count || !fits(s.resources, free, 1)) {
      f.short ||= cur[j] < s.count;
      f.j++;
      continue;
    }
    // Room left that no task fits (a task that fits weighs at most the room), short of full and of every task: a dead end.
    const room = v.target - f.fill - w[j];
    if (room > 1e-9 && room < lightest - 1e-9 && taken + 1 < total) {
      f.short = true;
      f.j++;
      continue;
    }
    if (--budget.left < 0) return;
    cur[j]++;
    taken++;
    for (const [k, x] of Object.entries(s.resources)) free[k] = (free[k] ?? 0) - x;
    f.took = true;
    if (f.fill + w[j] >= v.target - 1e-9 || taken === total) yield [...cur];
    else open(j, f.fill + w[j], f.short);
  }
}

/**
 * Exact fills first: a bounded search for a plan that fills every node of `views`, in order,
 * without slack — or with every task left that it may take — until no task is left, going back
 * to an earlier node's next such fill when a later node has none. Minimum bin slack node by node
 * can take a set that fills one node exactly but leaves pieces that fill no later node exactly
 * (triplets: the last bins of a run); this finds a plan when one exists within `steps` (tasks
 * tried, over all the nodes: as many as one node's search by minimum bin slack). Returns the
 * counts per node (aligned with its candidates), or undefined (none found within the bound).
 */
function exactPlan(views: readonly NodeView[], shapes: readonly Shape[], steps: number): PlannedFill[] | undefined {
  const budget = { left: steps };
  let left = 0;
  for (const s of shapes) left += s.count;
  // Views from k to the end that are interchangeable (same room and capacity, same shapes let on): a plan that puts the
  // heaviest task left in a later full one has a twin with the two nodes' fills swapped, so the first takes it (nodes
  // that differ are tried either way; a plan with it only in the last node, not full, is left to the node-by-node pass).
  const index = new Map(shapes.map((s, i) => [s, i]));
  const keyOf = (v: NodeView) => JSON.stringify([Object.entries(v.free).sort(), Object.entries(v.n.node.capacity).sort(), v.eligible.map((s) => index.get(s))]);
  const alike = new Array<boolean>(views.length).fill(false);
  for (let k = views.length - 1; k >= 0; k--) alike[k] = k === views.length - 1 || (alike[k + 1] && keyOf(views[k]) === keyOf(views[k + 1]));
  const stack: Array<PlannedFill & { k: number; fills: Generator<number[]> }> = [];
  /** Opens the first node from `k` on that some task left may go on; false when none. */
  const open = (k: number): boolean => {
    for (; k < views.length; k++) {
      const v = views[k];
      const cands = v.eligible.filter((s) => s.count > 0);
      if (cands.length === 0) continue;
      stack.push({ v, k, cands, take: [], fills: exactFills(v, cands, budget, alike[k]) });
      return true;
    }
    return false;
  };
  /** Gives a node's fill back to the tasks left. */
  const untake = (p: PlannedFill) => {
    p.cands.forEach((s, j) => {
      s.count += p.take[j] ?? 0;
      left += p.take[j] ?? 0;
    });
    p.take = [];
  };
  let ok = open(0);
  while (ok && left > 0) {
    const top = stack[stack.length - 1];
    untake(top);
    const next = top.fills.next();
    if (next.done) {
      stack.pop();
      if (stack.length === 0 || budget.left < 0) ok = false;
      continue;
    }
    top.take = next.value;
    top.cands.forEach((s, j) => {
      s.count -= top.take[j];
      left -= top.take[j];
    });
    // No node after it for the tasks left: its next fill is tried.
    if (left > 0) open(top.k + 1);
  }
  const plan = ok ? stack.map(({ v, cands, take }) => ({ v, cands, take })) : undefined;
  // The counts go back as they were: the caller takes them again as it applies the plan.
  for (const p of stack) untake(p);
  return plan;
}

interface PlannedFill {
  v: NodeView;
  cands: Shape[];
  take: number[];
}

/** Groups of views that share no shape (so no task): each can be planned alone, in its own order. */
function independent(views: readonly NodeView[]): NodeView[][] {
  const parent = new Map<Shape, Shape>();
  const root = (s: Shape): Shape => {
    let r = s;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(s, r);
    return r;
  };
  for (const v of views)
    for (const s of v.eligible) {
      if (!parent.has(s)) parent.set(s, s);
      parent.set(root(s), root(v.eligible[0]));
    }
  const groups = new Map<Shape, NodeView[]>();
  for (const v of views) {
    const r = root(v.eligible[0]);
    const group = groups.get(r);
    if (group) group.push(v);
    else groups.set(r, [v]);
  }
  return [...groups.values()];
}

/**
 * Fills nodes with the tasks of `tier` (work of one priority submitted at one instant, without
 * fractional GPUs, gangs or spreading). Returns tasks placed per job per node with their
 * devices, and changes `nodes[].free` and `nodes[].devices`.
 */
export function fillTier(tier: readonly PendingWork[], nodes: FillNode[], filters: readonly FilterPlugin[], steps = FILL_STEPS_PER_NODE): Filled[] {
  const shapes = new Map<string, Shape>();
  for (const w of tier) {
    const key = shapeKey(w);
    const s = shapes.get(key) ?? { resources: w.resources, like: w, jobs: [], count: 0 };
    s.jobs.push({ jobId: w.jobId, left: w.tasks });
    s.count += w.tasks;
    shapes.set(key, s);
  }
  // Tasks of one shape gain nothing from a search over combinations: the per-job pass, whose scores see the whole cluster, places them.
  if (shapes.size < 2) return [];
  const out: Filled[] = [];
  const all = [...shapes.values()];
  const order = [...nodes].sort((a, b) => weight(used(b), b.node.capacity) - weight(used(a), a.node.capacity) || (a.node.name < b.node.name ? -1 : 1));
  const byCapacity: ByCapacity = new Map();
  const views = order.map((n) => viewOf(n, all, filters, byCapacity)).filter((v) => v.eligible.length > 0);
  for (const group of independent(views)) {
    const shapesOf = [...new Set(group.flatMap((v) => v.eligible))];
    const plan = exactPlan(group, shapesOf, steps);
    if (plan) for (const p of plan) apply(p.v.n, p.cands, p.take);
    else greedy(group);
  }
  return out;

  /** Minimum bin slack, node by node. */
  function greedy(group: readonly NodeView[]): void {
    for (const v of group) {
      const cands = v.eligible.filter((s) => s.count > 0);
      if (cands.length === 0) continue;
      apply(v.n, cands, leastSlack(v, cands, steps));
    }
  }

  /** Places `take[i]` tasks of `cands[i]` on `n`, jobs in queue order, devices picked per task. */
  function apply(n: FillNode, cands: readonly Shape[], takes: readonly number[]): void {
    cands.forEach((s, i) => {
      let take = takes[i];
      for (const [k, v] of Object.entries(s.resources)) n.free[k] = (n.free[k] ?? 0) - v * take;
      s.count -= take;
      const share = s.resources.gpu ?? 0;
      for (const j of s.jobs) {
        if (take === 0) break;
        const c = Math.min(take, j.left);
        if (c === 0) continue;
        j.left -= c;
        take -= c;
        const devices: number[][] = [];
        for (let t = 0; t < c; t++) {
          // counted over wholly free devices above, so each task finds its own
          const picked = share > 0 && n.devices ? pickDevices(n.devices, n.node.gpuCount, share)! : [];
          for (const d of picked) n.devices![d] = (n.devices![d] ?? 0) + GPU_MILLI;
          devices.push(picked);
        }
        out.push({ jobId: j.jobId, node: n.node.name, count: c, devices });
      }
    });
  }

  function used(n: FillNode): ResourceVector {
    const u: ResourceVector = {};
    for (const [k, v] of Object.entries(n.node.capacity)) u[k] = v - (n.free[k] ?? 0);
    return u;
  }
}
