import type { UsageGroupView, UsageView } from '@batchapi/api';
import { formatHours, OTHER_SERIES, roundScale, stackUsage, tickLabel } from '../src/usage-chart';

describe('formatHours and tickLabel', () => {
  it.each([
    [0, '0'],
    [0.000556, '0.000556'], // 2 s of one core
    [0.0123456, '0.0123'], // three significant digits below 1
    [1.234, '1.23'], // two decimals from 1 on
    [12345.678, '12,345.68'],
  ])('formatHours(%p) is %p', (v, text) => expect(formatHours(v)).toBe(text));

  it.each([
    [0.75, 0.25, '0.75'],
    [0.0006, 0.0002, '0.0006'],
    [5, 2.5, '5.0'],
    [1500, 500, '1,500'],
    [0, 0.2, '0.0'],
  ])('tickLabel(%p, step %p) is %p', (v, step, text) => expect(tickLabel(v, step)).toBe(text));
});

describe('roundScale', () => {
  it.each([
    [0, 0.2, 1], // nothing: a scale of 1
    [0.42, 0.1, 0.5], // 0.42 / 5 = 0.084 → step 0.1; ⌈4.2⌉ × 0.1 = 0.5
    [1, 0.2, 1], // 0.2 → 0.2; 5 × 0.2
    [5, 1, 5], // 1 → 1; 5 × 1
    [7, 2, 8], // 1.4 → 2; ⌈3.5⌉ × 2 = 8
    [12, 2.5, 12.5], // 2.4 → 2.5; ⌈4.8⌉ × 2.5
    [15, 5, 15], // 3 → 5; 3 × 5
    [38, 10, 40], // 7.6 → 10; ⌈3.8⌉ × 10
    [2300, 500, 2500], // 460 → 500; ⌈4.6⌉ × 500
  ])('%p: step %p, top %p', (v, step, top) => expect(roundScale(v)).toEqual({ step, top }));
});

const H = 3_600_000;
const D = Date.UTC(2026, 11, 1);
const at = (h: number) => new Date(D + h * H).toISOString();
const point = (h: number, cpu: number, gpu = 0) => ({ start: at(h), cpuCoreHours: cpu, memoryGiBHours: 0, gpuHours: gpu, attempts: 1 });
const group = (key: string | null, series: UsageGroupView['series']): UsageGroupView => ({
  key,
  cpuCoreHours: series!.reduce((a, p) => a + p.cpuCoreHours, 0),
  memoryGiBHours: 0,
  gpuHours: series!.reduce((a, p) => a + p.gpuHours, 0),
  attempts: series!.length,
  succeeded: series!.length,
  failed: 0,
  preempted: 0,
  series,
});
const view = (hours: number, groups: UsageGroupView[]): UsageView => ({ from: at(0), to: at(hours), groupBy: 'queue', step: 'hour', groups, truncated: false });

describe('stackUsage', () => {
  it('fills every step of the window and stacks the groups, the largest first', () => {
    // 4 hourly steps. train: 3 core-h at h0, 5 at h2 (8 in all); etl: 2 at h0, 1 at h3 (3 in all).
    const chart = stackUsage(view(4, [group('etl', [point(0, 2), point(3, 1)]), group('train', [point(0, 3), point(2, 5)])]), 'cpuCoreHours');
    expect(chart.series).toEqual(['train', 'etl']);
    // Columns: h0 = 3 + 2 = 5, h1 = 0, h2 = 5, h3 = 1; roundScale(5): step 1, top 5; ticks 0, 1, … 5.
    expect([chart.top, chart.step]).toEqual([5, 1]);
    expect(chart.ticks).toEqual([0, 1, 2, 3, 4, 5]);
    expect(chart.columns.map((c) => [c.start, c.total])).toEqual([
      [at(0), 5],
      [at(1), 0],
      [at(2), 5],
      [at(3), 1],
    ]);
    // h0: train 0 → 3/5 = 0.6, then etl 0.6 → (3 + 2)/5 = 1
    expect(chart.columns[0].segments).toEqual([
      { series: 0, value: 3, y0: 0, y1: 0.6 },
      { series: 1, value: 2, y0: 0.6, y1: 1 },
    ]);
    expect(chart.columns[1].segments).toEqual([]);
    // h3: only etl, from the bottom: 1/5 = 0.2
    expect(chart.columns[3].segments).toEqual([{ series: 1, value: 1, y0: 0, y1: 0.2 }]);
  });

  it('charts the chosen measure, leaves out groups with none of it, and names the group without a key', () => {
    // By GPU-hours: the CPU-only group has none; the null-key group (no GPU model) is left out.
    const chart = stackUsage(view(2, [group('H100', [point(0, 8, 1), point(1, 8, 1)]), group(null, [point(0, 4)])]), 'gpuHours', 8, 'no GPU');
    expect(chart.series).toEqual(['H100']);
    expect(chart.columns.map((c) => c.total)).toEqual([1, 1]);
    // By core-hours: H100's 16 first, then the null group named as asked.
    expect(stackUsage(view(2, [group('H100', [point(0, 8, 1), point(1, 8, 1)]), group(null, [point(0, 4)])]), 'cpuCoreHours', 8, 'no GPU').series).toEqual([
      'H100',
      'no GPU',
    ]);
  });

  it('sums the groups past maxSeries − 1 as "other"', () => {
    // Five groups of 5, 4, 3, 2, 1 core-h at h0, at most 3 series: a, b, then other = 3 + 2 + 1 = 6.
    const groups = ['a', 'b', 'c', 'd', 'e'].map((k, i) => group(k, [point(0, 5 - i)]));
    const chart = stackUsage(view(1, groups), 'cpuCoreHours', 3);
    expect(chart.series).toEqual(['a', 'b', OTHER_SERIES]);
    expect(chart.columns[0].segments.map((s) => s.value)).toEqual([5, 4, 6]);
    // 15 in all: roundScale(15) = step 5, top 15; ticks 0, 5, 10, 15
    expect(chart.top).toBe(15);
    expect(chart.ticks).toEqual([0, 5, 10, 15]);
    // With exactly maxSeries groups there is no "other".
    expect(stackUsage(view(1, groups.slice(0, 3)), 'cpuCoreHours', 3).series).toEqual(['a', 'b', 'c']);
  });

  it('steps by the day, and places a point by its start', () => {
    const day = 24 * H;
    const v: UsageView = {
      from: at(0),
      to: new Date(D + 3 * day).toISOString(),
      groupBy: 'tenant',
      step: 'day',
      groups: [group('acme', [{ start: new Date(D + 2 * day).toISOString(), cpuCoreHours: 7, memoryGiBHours: 0, gpuHours: 0, attempts: 1 }])],
      truncated: false,
    };
    // Three days; acme's 7 core-h on the third: roundScale(7) = top 8, the segment 0 → 7/8 = 0.875
    const chart = stackUsage(v, 'cpuCoreHours');
    expect(chart.columns.map((c) => c.total)).toEqual([0, 0, 7]);
    expect(chart.columns[2].segments).toEqual([{ series: 0, value: 7, y0: 0, y1: 0.875 }]);
  });
});
