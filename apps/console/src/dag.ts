/**
 * The workflow page's graph arithmetic, pure (no DOM, no clock): where each step of a DAG is
 * drawn (a layered layout, left to right) and which chain of steps took longest (the critical
 * path). No layout library: a DAG of workflow steps needs layers and an ordering within them,
 * which fits in a page of code.
 */

/** A step as the graph sees it: its name and the steps it runs after. */
export interface DagStep {
  name: string;
  dependsOn: readonly string[];
}

/** Sizes of the drawing, in CSS pixels. */
export interface LayoutOptions {
  /** Width of a step's box. @default 168 */
  nodeWidth?: number;
  /** Height of a step's box. @default 56 */
  nodeHeight?: number;
  /** Space between two layers (columns). @default 64 */
  columnGap?: number;
  /** Space between two steps of a layer. @default 24 */
  rowGap?: number;
  /** Space around the drawing. @default 16 */
  margin?: number;
}

/** A step placed: its layer (column) and row in it, and its box's top-left corner. */
export interface PlacedStep {
  name: string;
  layer: number;
  row: number;
  x: number;
  y: number;
}

/** An edge from the right middle of `from`'s box to the left middle of `to`'s. */
export interface PlacedEdge {
  from: string;
  to: string;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface DagLayout {
  /** In the order of the steps given. */
  steps: PlacedStep[];
  edges: PlacedEdge[];
  width: number;
  height: number;
  nodeWidth: number;
  nodeHeight: number;
}

/** Each step's position in `steps`, by name; throws on a dependency that names no step, or a cycle (the API refuses both). */
function ordered(steps: readonly DagStep[]): Map<string, number> {
  const index = new Map(steps.map((s, i) => [s.name, i]));
  for (const s of steps) for (const d of s.dependsOn) if (!index.has(d)) throw new Error(`step ${s.name} depends on ${d}, which is not a step`);
  return index;
}

/** For each step, the longest chain of dependencies above it (0 for a step with none). */
function layers(steps: readonly DagStep[], index: Map<string, number>): number[] {
  const layer: number[] = new Array<number>(steps.length).fill(-1);
  const visiting = new Set<number>();
  const of = (i: number): number => {
    if (layer[i] >= 0) return layer[i];
    if (visiting.has(i)) throw new Error(`the steps form a cycle through ${steps[i].name}`);
    visiting.add(i);
    let l = 0;
    for (const d of steps[i].dependsOn) l = Math.max(l, of(index.get(d)!) + 1);
    visiting.delete(i);
    return (layer[i] = l);
  };
  steps.forEach((_, i) => of(i));
  return layer;
}

/**
 * Lays a DAG out in layers, left to right: a step's layer is the longest chain of dependencies
 * above it; the first layer keeps the steps' order; each later layer is sorted by the mean
 * height of its steps' dependencies (ties: the steps' order), which keeps edges short and
 * mostly uncrossed. Each layer is centred on the tallest.
 */
export function layoutDag(steps: readonly DagStep[], options: LayoutOptions = {}): DagLayout {
  const w = options.nodeWidth ?? 168;
  const h = options.nodeHeight ?? 56;
  const colGap = options.columnGap ?? 64;
  const rowGap = options.rowGap ?? 24;
  const margin = options.margin ?? 16;
  const index = ordered(steps);
  const layer = layers(steps, index);
  const depth = steps.length ? Math.max(...layer) + 1 : 0;
  const byLayer: number[][] = Array.from({ length: depth }, () => []);
  layer.forEach((l, i) => byLayer[l].push(i));
  const tallest = Math.max(0, ...byLayer.map((l) => l.length));
  const row: number[] = new Array<number>(steps.length).fill(0);
  const y: number[] = new Array<number>(steps.length).fill(0);
  byLayer.forEach((members, l) => {
    if (l > 0) {
      const centre = (i: number) => {
        const deps = steps[i].dependsOn.map((d) => y[index.get(d)!]);
        return deps.reduce((a, b) => a + b, 0) / deps.length;
      };
      const key = new Map(members.map((i) => [i, centre(i)]));
      members.sort((a, b) => key.get(a)! - key.get(b)! || a - b);
    }
    const top = margin + ((tallest - members.length) * (h + rowGap)) / 2;
    members.forEach((i, r) => {
      row[i] = r;
      y[i] = top + r * (h + rowGap);
    });
  });
  const placed = steps.map((s, i) => ({ name: s.name, layer: layer[i], row: row[i], x: margin + layer[i] * (w + colGap), y: y[i] }));
  const edges = steps.flatMap((s, i) =>
    s.dependsOn.map((d) => {
      const from = placed[index.get(d)!];
      return { from: d, to: s.name, x1: from.x + w, y1: from.y + h / 2, x2: placed[i].x, y2: placed[i].y + h / 2 };
    }),
  );
  return {
    steps: placed,
    edges,
    width: depth ? 2 * margin + depth * w + (depth - 1) * colGap : 2 * margin,
    height: tallest ? 2 * margin + tallest * h + (tallest - 1) * rowGap : 2 * margin,
    nodeWidth: w,
    nodeHeight: h,
  };
}

/** A step with how long it took (or has taken so far), in milliseconds; 0 for one that has not run. */
export interface TimedStep extends DagStep {
  durationMs: number;
}

/** The chain of steps that took longest: its steps from first to last, and their summed duration. */
export interface CriticalPath {
  steps: string[];
  totalMs: number;
}

/**
 * The critical path: the chain of dependent steps whose durations sum highest — the steps that
 * set the workflow's run time. Ties go to the chain of more steps (so before anything has run it
 * is the longest chain by count), then to the steps given first.
 */
export function criticalPath(steps: readonly TimedStep[]): CriticalPath {
  if (steps.length === 0) return { steps: [], totalMs: 0 };
  const index = ordered(steps);
  layers(steps, index); // throws on a cycle
  /** The longest chain ending at each step: its total, its length, and the dependency it comes through. */
  const best: Array<{ total: number; count: number; via: number } | undefined> = new Array(steps.length);
  const better = (a: { total: number; count: number }, ai: number, b: { total: number; count: number } | undefined, bi: number) =>
    !b || a.total > b.total || (a.total === b.total && (a.count > b.count || (a.count === b.count && ai < bi)));
  const chain = (i: number): { total: number; count: number; via: number } => {
    const known = best[i];
    if (known) return known;
    let via = -1;
    for (const d of steps[i].dependsOn) {
      const j = index.get(d)!;
      if (better(chain(j), j, via < 0 ? undefined : chain(via), via)) via = j;
    }
    const before = via < 0 ? { total: 0, count: 0 } : chain(via);
    return (best[i] = { total: before.total + Math.max(0, steps[i].durationMs), count: before.count + 1, via });
  };
  let end = 0;
  for (let i = 1; i < steps.length; i++) if (better(chain(i), i, chain(end), end)) end = i;
  const path: string[] = [];
  for (let i = end; i >= 0; i = chain(i).via) path.unshift(steps[i].name);
  return { steps: path, totalMs: chain(end).total };
}
