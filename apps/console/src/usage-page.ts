/**
 * The usage page: CPU core-hours, GPU-hours and memory GiB-hours per tenant, queue or GPU model
 * over the last day (by the hour) or the last 7, 30 or 90 days (by the day), as a stacked column
 * chart, with a table of every group's totals, attempt outcomes and queue-wait p50/p99 — all from
 * `GET /v1/usage?step=…`, which reads the history store (only archived jobs count). Live: read
 * again when the caller's jobs change (`GET /v1/jobs/events`), at most every 2 s.
 */
import type { UsageGroupView, UsageView } from '@batchapi/api';
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, call, query } from './api';
import { html } from './html';
import { useEvents, useReloads } from './live';
import { formatHours as hours, STEP_MS, stackUsage, tickLabel, type UsageMeasure } from './usage-chart';

/** The periods the page offers: how long, and the step its chart is split by. */
const PERIODS = {
  '24h': { label: 'Last 24 hours', steps: 24, step: 'hour' },
  '7d': { label: 'Last 7 days', steps: 7, step: 'day' },
  '30d': { label: 'Last 30 days', steps: 30, step: 'day' },
  '90d': { label: 'Last 90 days', steps: 90, step: 'day' },
} as const;
type Period = keyof typeof PERIODS;

const GROUP_BYS = { tenant: 'Tenant', queue: 'Queue', gpuModel: 'GPU model' } as const;
type GroupBy = keyof typeof GROUP_BYS;

const MEASURES: Record<UsageMeasure, { label: string; unit: string }> = {
  gpuHours: { label: 'GPU-hours', unit: 'GPU-h' },
  cpuCoreHours: { label: 'CPU core-hours', unit: 'core-h' },
  memoryGiBHours: { label: 'Memory GiB-hours', unit: 'GiB-h' },
};

/**
 * The window of a period ending with the step that holds `now` (UTC hours or days): its steps are
 * whole hours or days, so a chart read again later keeps its columns where they were.
 */
export function usageWindow(period: Period, now: number): { from: string; to: string; step: 'hour' | 'day' } {
  const p = PERIODS[period];
  const ms = STEP_MS[p.step];
  const end = (Math.floor(now / ms) + 1) * ms;
  return { from: new Date(end - p.steps * ms).toISOString(), to: new Date(end).toISOString(), step: p.step };
}

const seconds = (v: number | undefined) =>
  v === undefined ? '—' : v < 60 ? `${v.toFixed(1)} s` : v < 3600 ? `${(v / 60).toFixed(1)} min` : `${(v / 3600).toFixed(1)} h`;

const W = 760;
const H = 260;
const PAD = { left: 56, right: 8, top: 10, bottom: 28 };

/** The chart as SVG: a column per step, a coloured part per series, gridlines, and a legend; each part's `<title>` names it. */
function Chart({ view, measure, nullName }: { view: UsageView; measure: UsageMeasure; nullName: string }) {
  const chart = stackUsage(view, measure, 8, nullName);
  const { unit } = MEASURES[measure];
  if (chart.series.length === 0) return html`<p class="muted" data-testid="usage-empty">No ${MEASURES[measure].label} in this period.</p>`;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const colW = plotW / chart.columns.length;
  const y = (f: number) => PAD.top + (1 - f) * plotH;
  const label = (iso: string) => {
    const d = new Date(iso);
    return view.step === 'hour'
      ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  };
  // At most about 12 labels along the bottom.
  const every = Math.ceil(chart.columns.length / 12);
  const total = chart.columns.reduce((a, c) => a + c.total, 0);
  return html`<figure class="usage-chart">
    <svg
      viewBox=${`0 0 ${W} ${H}`}
      role="img"
      aria-label=${`${MEASURES[measure].label} by ${view.step}, stacked by ${chart.series.join(', ')}: ${hours(total)} ${unit} in all (the table below has every figure)`}
    >
      ${chart.ticks.map(
        (t) =>
          html`<g class="tick">
            <line x1=${PAD.left} x2=${W - PAD.right} y1=${y(t / chart.top)} y2=${y(t / chart.top)} />
            <text x=${PAD.left - 6} y=${y(t / chart.top) + 4} text-anchor="end">${tickLabel(t, chart.step)}</text>
          </g>`,
      )}
      ${chart.columns.map(
        (c, i) =>
          html`<g data-step=${c.start} data-total=${c.total}>
            ${c.segments.map(
              (s) =>
                html`<rect
                  class=${`series series-${s.series}`}
                  data-series=${chart.series[s.series]}
                  x=${PAD.left + i * colW + colW * 0.1}
                  width=${Math.max(1, colW * 0.8)}
                  y=${y(s.y1)}
                  height=${Math.max(0.5, (s.y1 - s.y0) * plotH)}
                  ><title>${chart.series[s.series]}, ${label(c.start)}: ${hours(s.value)} ${unit}</title></rect
                >`,
            )}
            ${i % every === 0 && html`<text class="step-label" x=${PAD.left + (i + 0.5) * colW} y=${H - 8} text-anchor="middle">${label(c.start)}</text>`}
          </g>`,
      )}
    </svg>
    <figcaption class="legend">
      ${chart.series.map((name, i) => html`<span class=${`swatch series-${i}`} data-legend=${name}>${name}</span>`)}
      <span>${unit} per ${view.step}</span>
    </figcaption>
  </figure>`;
}

function Table({ groups, groupBy, nullName }: { groups: UsageGroupView[]; groupBy: GroupBy; nullName: string }) {
  return html`<table class="usage-table">
    <caption class="visually-hidden">
      Usage by ${GROUP_BYS[groupBy]}, the most GPU-hours then core-hours first
    </caption>
    <thead>
      <tr>
        <th scope="col">${GROUP_BYS[groupBy]}</th>
        <th scope="col">GPU-hours</th>
        <th scope="col">CPU core-hours</th>
        <th scope="col">Memory GiB-hours</th>
        <th scope="col">Attempts</th>
        <th scope="col">Succeeded</th>
        <th scope="col">Failed</th>
        <th scope="col">Preempted</th>
        <th scope="col">Queue wait p50</th>
        <th scope="col">Queue wait p99</th>
      </tr>
    </thead>
    <tbody>
      ${groups.map(
        (g) =>
          html`<tr data-usage-group=${g.key ?? nullName}>
            <th scope="row">${g.key ?? nullName}</th>
            <td data-testid="gpu-hours">${hours(g.gpuHours)}</td>
            <td data-testid="core-hours">${hours(g.cpuCoreHours)}</td>
            <td>${hours(g.memoryGiBHours)}</td>
            <td data-testid="attempts">${g.attempts}</td>
            <td>${g.succeeded}</td>
            <td>${g.failed}</td>
            <td>${g.preempted}</td>
            <td>${seconds(g.queueWaitP50Seconds)}</td>
            <td>${seconds(g.queueWaitP99Seconds)}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export function UsagePage() {
  const [period, setPeriod] = useState<Period>('7d');
  const [groupBy, setGroupBy] = useState<GroupBy>('queue');
  const [measure, setMeasure] = useState<UsageMeasure>('cpuCoreHours');
  const [view, setView] = useState<UsageView>();
  const [error, setError] = useState<string>();
  const [reloads, reload] = useReloads(2000);
  const stream = useEvents<unknown>('/v1/jobs/events', reload);
  useEffect(() => {
    const ctl = new AbortController();
    call<UsageView>('GET', `/v1/usage${query({ ...usageWindow(period, Date.now()), groupBy })}`, undefined, ctl.signal)
      .then((v) => {
        setView(v);
        setError(undefined);
      })
      .catch((e: unknown) => {
        if (!ctl.signal.aborted) setError(e instanceof ApiFailure ? `${e.code}: ${e.message}` : String(e));
      });
    return () => ctl.abort();
  }, [period, groupBy, reloads]);
  const nullName = groupBy === 'gpuModel' ? 'no GPU' : '(none)';
  const choose =
    <T>(set: (v: T) => void) =>
    (e: Event) =>
      set((e.target as HTMLSelectElement).value as T);
  return html`<main aria-busy=${view || error ? 'false' : 'true'}>
    <h1>Usage</h1>
    <p class="live" aria-live="polite">
      ${stream.live ? 'Live: read again as jobs end. Jobs count once archived to the history store.' : 'Connecting to live updates…'}
    </p>
    <form class="filters" aria-label="Usage period and grouping" onSubmit=${(e: Event) => e.preventDefault()}>
      <label for="u-period"
        >Period
        <select id="u-period" value=${period} onChange=${choose(setPeriod)}>
          ${Object.entries(PERIODS).map(([k, p]) => html`<option value=${k}>${p.label}</option>`)}
        </select></label
      >
      <label for="u-group"
        >Group by
        <select id="u-group" value=${groupBy} onChange=${choose(setGroupBy)}>
          ${Object.entries(GROUP_BYS).map(([k, l]) => html`<option value=${k}>${l}</option>`)}
        </select></label
      >
      <label for="u-measure"
        >Chart
        <select id="u-measure" value=${measure} onChange=${choose(setMeasure)}>
          ${Object.entries(MEASURES).map(([k, m]) => html`<option value=${k}>${m.label}</option>`)}
        </select></label
      >
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${view && view.groups.length > 0 && html`<${Chart} view=${view} measure=${measure} nullName=${nullName} />`}
    ${view && view.groups.length === 0 && html`<p>No task attempts ended in this period.</p>`}
    ${view && view.groups.length > 0 && html`<${Table} groups=${view.groups} groupBy=${groupBy} nullName=${nullName} />`}
    ${view?.truncated && html`<p class="muted">Over 1,000 groups had usage: the busiest are shown.</p>`}
  </main>`;
}
