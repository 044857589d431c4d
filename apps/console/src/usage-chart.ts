/**
 * The usage page's stacked column chart, pure: `GET /v1/usage?step=…` answers, per group, only
 * the steps in which its attempts ended; this fills the window's every step, keeps the groups
 * with the most of the chosen measure (the rest summed as one "other" series), stacks them per
 * step, and picks a round scale. The page draws it as SVG; no chart library (see docs/console.md).
 */
import type { UsageView } from '@batchapi/api';

/** What the chart sums: core-hours, GPU-hours or GiB-hours. */
export type UsageMeasure = 'cpuCoreHours' | 'gpuHours' | 'memoryGiBHours';

/** One series' part of a column: its value and where it sits, as fractions of the scale's top (0 at the bottom). */
export interface Segment {
  /** The series (index into `StackedChart.series`). */
  series: number;
  value: number;
  y0: number;
  y1: number;
}

/** One step of the window. */
export interface Column {
  /** ISO 8601 start of the step. */
  start: string;
  total: number;
  /** Bottom to top, in series order; series with nothing in the step are left out. */
  segments: Segment[];
}

/** The chart: its series (legend order, largest first), one column per step, and its scale. */
export interface StackedChart {
  /** Series names: group keys, `nullName` for the group without a key, and `other` last when groups were summed into it. */
  series: string[];
  columns: Column[];
  /** The scale's top: a round number at or above the largest column (`roundScale`; 1 when every column is empty). */
  top: number;
  /** Gridlines from 0 to `top` by the scale's step (3 to 6 of them). */
  ticks: number[];
  /** The scale's step (`roundScale`), for the gridlines' labels. */
  step: number;
}

/** The name of the series that sums the groups past `maxSeries − 1`. */
export const OTHER_SERIES = 'other';

/** Step lengths of the API's `step`, in milliseconds (the console imports only types from the API, so not its `USAGE_STEP_MS`). */
export const STEP_MS = { hour: 3_600_000, day: 86_400_000 } as const;

/**
 * A round scale for values up to `v`: a gridline step of 1, 2, 2.5 or 5 × 10^k, the smallest at or
 * above `v / 5`, and the top the first multiple of it at or above `v` (so 3 to 6 gridlines with 0):
 * e.g. 7 → step 2, top 8; 15 → step 5, top 15; 2,300 → step 500, top 2,500. 0 → step 0.2, top 1.
 */
export function roundScale(v: number): { top: number; step: number } {
  if (!(v > 0)) return { top: 1, step: 0.2 };
  const raw = v / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = round12([1, 2, 2.5, 5, 10].find((m) => m * pow >= raw * (1 - 1e-9))! * pow);
  return { top: round12(Math.ceil(v / step - 1e-9) * step), step };
}

const round12 = (v: number) => Math.round(v * 1e12) / 1e12;

/** Hours as the page prints them: two decimals from 1 on, three significant digits below (a short task's 0.000556). */
export function formatHours(v: number): string {
  if (v === 0) return '0';
  return v >= 1 ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : v.toLocaleString('en-US', { maximumSignificantDigits: 3 });
}

/** A gridline's label: as many decimals as the scale's step has (step 0.25 → "0.75", 0.0002 → "0.0006"). */
export function tickLabel(v: number, step: number): string {
  const decimals = String(step).split('.')[1]?.length ?? 0;
  return v.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/**
 * The stacked chart of `view` (which must have a `step`) by `measure`: the `maxSeries − 1`
 * groups with the most of it by name, and the rest summed as `other` (all of them when there
 * are at most `maxSeries`); groups with none of it are left out.
 * @param maxSeries series drawn at most, `other` included. @default 8
 * @param nullName the name of the group without a key (attempts without a GPU, jobs without the label). @default "(none)"
 */
export function stackUsage(view: UsageView, measure: UsageMeasure, maxSeries = 8, nullName = '(none)'): StackedChart {
  const stepMs = STEP_MS[view.step ?? 'day'];
  const from = Date.parse(view.from);
  const steps = Math.max(1, Math.ceil((Date.parse(view.to) - from) / stepMs));
  const groups = view.groups.filter((g) => g[measure] > 0).sort((a, b) => b[measure] - a[measure]);
  const kept = groups.length > maxSeries ? groups.slice(0, maxSeries - 1) : groups;
  const series = kept.map((g) => g.key ?? nullName);
  if (groups.length > kept.length) series.push(OTHER_SERIES);
  // values[step][series]
  const values = Array.from({ length: steps }, () => new Array<number>(series.length).fill(0));
  groups.forEach((g, i) => {
    const s = Math.min(i, series.length - 1);
    for (const point of g.series ?? []) {
      const index = Math.round((Date.parse(point.start) - from) / stepMs);
      if (index >= 0 && index < steps) values[index][s] += point[measure];
    }
  });
  const totals = values.map((v) => round12(v.reduce((a, b) => a + b, 0)));
  const { top, step } = roundScale(Math.max(0, ...totals));
  const columns = values.map((v, index): Column => {
    let y = 0;
    const segments: Segment[] = [];
    v.forEach((value, s) => {
      if (value <= 0) return;
      segments.push({ series: s, value: round12(value), y0: round12(y / top), y1: round12((y + value) / top) });
      y += value;
    });
    return { start: new Date(from + index * stepMs).toISOString(), total: totals[index], segments };
  });
  const ticks = Array.from({ length: Math.round(top / step) + 1 }, (_, i) => round12(i * step));
  return { series, columns, top, ticks, step };
}
