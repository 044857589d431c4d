/**
 * A workflow's page and the workflows list. The page draws the DAG as an SVG graph (layout and
 * critical path from ./dag): steps coloured by state, the critical path — the chain of steps
 * whose durations sum highest — highlighted, a fan-out (map) step as one node with a progress
 * ring of its tasks done; a step with a job links to its job page. Live: the workflow follows
 * `GET /v1/workflows/{id}/events`; its step jobs (`GET /v1/jobs?workflow=`) are read again at each
 * of its events and each change of the caller's jobs (`GET /v1/jobs/events`), so a fan-out's
 * ring moves as its tasks end. Cancel cascades to the running steps, after a confirmation.
 */
import type { JobView, WorkflowView } from '@batchapi/api';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiFailure, call, query } from './api';
import { criticalPath, layoutDag } from './dag';
import { html, TERMINAL } from './html';
import { useEvents, useReloads } from './live';

type Step = WorkflowView['steps'][number];
const WF_TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled']);
const TAU = 2 * Math.PI;

/** Milliseconds a step's job has taken: submitted to ended, or to `now` while it runs; 0 without a job. */
function stepMs(job: JobView | undefined, now: number): number {
  if (!job) return 0;
  const end = job.finishedAt ? Date.parse(job.finishedAt) : TERMINAL.has(job.phase) ? Date.parse(job.createdAt) : now;
  return Math.max(0, end - Date.parse(job.createdAt));
}

const seconds = (ms: number) => (ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`);

/** Tasks of a job that ended, and all of them. */
const progress = (job: JobView | undefined, step: Step) => ({
  done: job ? job.taskCounts.succeeded + job.taskCounts.failed + job.taskCounts.cancelled : 0,
  total: job ? job.tasks : step.map && 'items' in step.map ? step.map.items : undefined,
});

function Graph({ steps, jobs, critical }: { steps: Step[]; jobs: Map<string, JobView>; critical: string[] }) {
  const layout = useMemo(() => layoutDag(steps), [steps]);
  const onPath = new Set(critical);
  const pathEdges = new Set(critical.slice(1).map((to, i) => `${critical[i]}→${to}`));
  const { nodeWidth: w, nodeHeight: h } = layout;
  return html`<svg
    class="dag"
    width=${layout.width}
    height=${layout.height}
    viewBox=${`0 0 ${layout.width} ${layout.height}`}
    role="group"
    aria-label="Workflow steps and their dependencies"
  >
    <defs>
      <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto">
        <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
      </marker>
    </defs>
    ${layout.edges.map((e) => {
      const mid = (e.x1 + e.x2) / 2;
      const hot = pathEdges.has(`${e.from}→${e.to}`);
      return html`<path
        class=${hot ? 'edge critical' : 'edge'}
        data-edge=${`${e.from}→${e.to}`}
        d=${`M ${e.x1} ${e.y1} C ${mid} ${e.y1}, ${mid} ${e.y2}, ${e.x2 - 2} ${e.y2}`}
        marker-end="url(#arrow)"
      />`;
    })}
    ${layout.steps.map((p, i) => {
      const s = steps[i];
      const job = s.jobId ? jobs.get(s.jobId) : undefined;
      const { done, total } = progress(job, s);
      const label = `Step ${s.name}: ${s.phase}${s.cached ? ' (cached)' : ''}${s.map ? `, ${done} of ${total ?? '?'} tasks done` : ''}${onPath.has(s.name) ? ', on the critical path' : ''}`;
      const r = 14;
      const frac = total ? done / total : 0;
      const body = html`<rect class="box" x=${p.x} y=${p.y} width=${w} height=${h} rx="8" />
        <text x=${p.x + 12} y=${p.y + 23} class="name">${s.name.length > 18 ? `${s.name.slice(0, 17)}…` : s.name}</text>
        <text x=${p.x + 12} y=${p.y + 42} class="state">${s.phase}${s.cached ? ' (cached)' : ''}${s.map ? ` · ${done}/${total ?? '?'}` : ''}</text>
        ${
          s.map &&
          html`<circle class="ring-track" cx=${p.x + w - 24} cy=${p.y + h / 2} r=${r} />
            <circle
              class="ring"
              cx=${p.x + w - 24}
              cy=${p.y + h / 2}
              r=${r}
              stroke-dasharray=${`${frac * TAU * r} ${TAU * r}`}
              transform=${`rotate(-90 ${p.x + w - 24} ${p.y + h / 2})`}
            />`
        }
        <title>${label}</title>`;
      const cls = `step step-${s.phase}${onPath.has(s.name) ? ' critical' : ''}${s.map ? ' fan-out' : ''}`;
      return s.jobId
        ? html`<a href=${`#/jobs/${encodeURIComponent(s.jobId)}`} class=${cls} data-step=${s.name} aria-label=${label}>${body}</a>`
        : html`<g class=${cls} data-step=${s.name} role="img" aria-label=${label}>${body}</g>`;
    })}
  </svg>`;
}

export function WorkflowPage({ id }: { id: string }) {
  const [wf, setWf] = useState<WorkflowView>();
  const [jobs, setJobs] = useState<Map<string, JobView>>(new Map());
  const [reloads, reload] = useReloads();
  const [cancelError, setCancelError] = useState<string>();
  const dialog = useRef<HTMLDialogElement>(null);
  const stream = useEvents<WorkflowView>(`/v1/workflows/${encodeURIComponent(id)}/events`, (view) => {
    setWf(view);
    reload();
  });
  const running = wf !== undefined && !WF_TERMINAL.has(wf.phase);
  // Step jobs change (tasks end) without the workflow changing: follow the caller's jobs while it runs.
  useEvents<unknown>(running ? '/v1/jobs/events' : undefined, reload);

  useEffect(() => {
    if (!wf) return;
    const ctl = new AbortController();
    call<{ jobs: JobView[] }>('GET', `/v1/jobs${query({ workflow: id, limit: 1000 })}`, undefined, ctl.signal)
      .then((p) => setJobs(new Map(p.jobs.map((j) => [j.id, j]))))
      .catch(() => undefined);
    return () => ctl.abort();
  }, [id, reloads, wf === undefined]);

  const now = Date.now();
  const critical = useMemo(
    () =>
      wf
        ? criticalPath(wf.steps.map((s) => ({ name: s.name, dependsOn: s.dependsOn, durationMs: stepMs(s.jobId ? jobs.get(s.jobId) : undefined, now) })))
        : undefined,
    [wf, jobs],
  );

  if (stream.refused?.status === 404)
    return html`<main>
      <h1>404: workflow not found</h1>
      <p>There is no workflow <code>${id}</code> that your token may see. A workflow of another tenant is not shown.</p>
      <p><a href="#/workflows">Back to the workflows</a></p>
    </main>`;
  if (!wf || !critical) return html`<main><p>Loading the workflow…</p></main>`;

  const cancel = async () => {
    dialog.current?.close();
    try {
      await call('DELETE', `/v1/workflows/${encodeURIComponent(id)}`);
      setCancelError(undefined);
    } catch (e) {
      setCancelError(e instanceof ApiFailure ? `${e.code}: ${e.message}` : String(e));
    }
  };
  return html`<main>
    <p><a href="#/workflows">← Workflows</a></p>
    <h1>${wf.name} <span class=${`phase phase-${wf.phase}`} data-testid="phase">${wf.phase}</span></h1>
    <dl class="facts">
      <dt>Id</dt>
      <dd><code>${wf.id}</code></dd>
      <dt>Tenant / queue</dt>
      <dd>${wf.tenant} / ${wf.queue}</dd>
      <dt>Submitted</dt>
      <dd>${new Date(wf.createdAt).toLocaleString()}</dd>
      <dt>Finished</dt>
      <dd>${wf.finishedAt ? new Date(wf.finishedAt).toLocaleString() : '—'}</dd>
      <dt>Critical path</dt>
      <dd data-testid="critical-path">${critical.steps.join(' → ')} (${seconds(critical.totalMs)})</dd>
    </dl>
    <p class="live" aria-live="polite">${running ? (stream.live ? 'Live: updates as steps change.' : 'Connecting to live updates…') : 'Ended.'}</p>
    ${running && html`<div class="toolbar"><button type="button" class="danger" onClick=${() => dialog.current?.showModal()}>Cancel workflow</button></div>`}
    ${cancelError && html`<p class="error" role="alert">${cancelError}</p>`}
    <dialog ref=${dialog} aria-labelledby="cancel-title">
      <h2 id="cancel-title">Cancel ${wf.name}?</h2>
      <p>Its running steps are cancelled and no further step starts.</p>
      <div class="toolbar">
        <button type="button" class="danger" onClick=${() => void cancel()}>Cancel the workflow</button>
        <button type="button" onClick=${() => dialog.current?.close()}>Keep it</button>
      </div>
    </dialog>
    <h2>Steps</h2>
    <div class="dag-legend" aria-hidden="true">
      ${['Pending', 'Running', 'Succeeded', 'Failed', 'Skipped', 'Cancelled'].map((p) => html`<span class=${`swatch step-${p}`}>${p}</span>`)}
      <span class="swatch critical">Critical path</span>
    </div>
    <div class="dag-frame"><${Graph} steps=${wf.steps} jobs=${jobs} critical=${critical.steps} /></div>
    <table>
      <caption class="visually-hidden">
        Steps
      </caption>
      <thead>
        <tr>
          <th scope="col">Step</th>
          <th scope="col">State</th>
          <th scope="col">After</th>
          <th scope="col">Tasks done</th>
          <th scope="col">Took</th>
          <th scope="col">Job</th>
        </tr>
      </thead>
      <tbody>
        ${wf.steps.map((s) => {
          const job = s.jobId ? jobs.get(s.jobId) : undefined;
          const { done, total } = progress(job, s);
          return html`<tr data-step-row=${s.name}>
            <td>
              ${s.name}${critical.steps.includes(s.name) ? html` <span class="badge">critical</span>` : ''}${s.map ? html` <span class="badge">fan-out</span>` : ''}
            </td>
            <td class=${`phase phase-${s.phase}`}>${s.phase}${s.cached ? ' (cached)' : ''}</td>
            <td>${s.dependsOn.join(', ') || '—'}${s.when !== 'success' ? ` (${s.when})` : ''}</td>
            <td>${total === undefined ? '—' : `${done} / ${total}`}</td>
            <td>${job ? seconds(stepMs(job, now)) : '—'}</td>
            <td>${s.jobId ? html`<a href=${`#/jobs/${encodeURIComponent(s.jobId)}`}>${s.jobId}</a>` : '—'}</td>
          </tr>`;
        })}
      </tbody>
    </table>
  </main>`;
}

/** The caller's workflows (every tenant's for operators), live ones first; read again at each change of the caller's jobs. */
export function WorkflowsPage() {
  const [list, setList] = useState<WorkflowView[]>();
  const [error, setError] = useState<string>();
  const [reloads, reload] = useReloads();
  const stream = useEvents<unknown>('/v1/jobs/events', reload);
  useEffect(() => {
    const ctl = new AbortController();
    call<{ workflows: WorkflowView[] }>('GET', '/v1/workflows?limit=100', undefined, ctl.signal)
      .then((r) => {
        setList(r.workflows);
        setError(undefined);
      })
      .catch((e: unknown) => {
        if (!ctl.signal.aborted) setError(e instanceof ApiFailure ? `${e.code}: ${e.message}` : String(e));
      });
    return () => ctl.abort();
  }, [reloads]);
  return html`<main>
    <h1>Workflows</h1>
    <p class="live" aria-live="polite">${stream.live ? 'Live: updates as steps change.' : 'Connecting to live updates…'}</p>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <table aria-busy=${list ? 'false' : 'true'}>
      <caption class="visually-hidden">
        Workflows
      </caption>
      <thead>
        <tr>
          <th scope="col">Workflow</th>
          <th scope="col">State</th>
          <th scope="col">Steps ended</th>
          <th scope="col">Tenant / queue</th>
          <th scope="col">Submitted</th>
        </tr>
      </thead>
      <tbody>
        ${(list ?? []).map(
          (w) =>
            html`<tr data-workflow=${w.id}>
              <td><a href=${`#/workflows/${encodeURIComponent(w.id)}`}>${w.name}</a><br /><small>${w.id}</small></td>
              <td class=${`phase phase-${w.phase}`}>${w.phase}</td>
              <td>${w.steps.filter((s) => s.phase !== 'Pending' && s.phase !== 'Running').length} / ${w.steps.length}</td>
              <td>${w.tenant} / ${w.queue}</td>
              <td>${new Date(w.createdAt).toLocaleString()}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${list && list.length === 0 && html`<p>No workflows.</p>`}
  </main>`;
}
