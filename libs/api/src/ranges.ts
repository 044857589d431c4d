/** Arithmetic on task ranges `[start, end)`, the way array jobs are stored instead of a key per task. */
import type { TaskRange } from './model';

/** Number of tasks in a list of ranges. */
export function countTasks(ranges: readonly TaskRange[]): number {
  let n = 0;
  for (const r of ranges) n += r.end - r.start;
  return n;
}

/** The ranges placeable at `now` (a retry's backoff over). */
export function eligibleRanges(ranges: readonly TaskRange[], now: number): TaskRange[] {
  return ranges.filter((r) => r.notBefore === undefined || r.notBefore <= now);
}

/**
 * Takes up to `n` tasks from the front of `ranges`. Returns the taken ranges and what is left;
 * the input is not changed.
 */
export function takeTasks(ranges: readonly TaskRange[], n: number): { taken: TaskRange[]; rest: TaskRange[] } {
  const taken: TaskRange[] = [];
  const rest: TaskRange[] = [];
  let want = n;
  for (const r of ranges) {
    if (want <= 0) {
      rest.push(r);
      continue;
    }
    const k = Math.min(want, r.end - r.start);
    taken.push({ ...r, end: r.start + k });
    if (r.start + k < r.end) rest.push({ ...r, start: r.start + k });
    want -= k;
  }
  return { taken, rest };
}

/** Adds ranges back (e.g. requeued tasks), sorted by start and merged where they touch at the same attempt and time. */
export function mergeRanges(a: readonly TaskRange[], b: readonly TaskRange[]): TaskRange[] {
  const all = [...a, ...b].sort((x, y) => x.start - y.start);
  const out: TaskRange[] = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && last.end === r.start && last.attempt === r.attempt && last.notBefore === r.notBefore) last.end = r.end;
    else out.push({ ...r });
  }
  return out;
}

/** Removes the given ranges (e.g. just bound) from `ranges`; attempts of what is left are kept. */
export function subtractRanges(ranges: readonly TaskRange[], remove: ReadonlyArray<{ start: number; end: number }>): TaskRange[] {
  let out: TaskRange[] = ranges.map((r) => ({ ...r }));
  for (const cut of remove) {
    const next: TaskRange[] = [];
    for (const r of out) {
      if (cut.end <= r.start || cut.start >= r.end) {
        next.push(r);
        continue;
      }
      if (r.start < cut.start) next.push({ ...r, end: cut.start });
      if (cut.end < r.end) next.push({ ...r, start: cut.end });
    }
    out = next;
  }
  return out;
}
