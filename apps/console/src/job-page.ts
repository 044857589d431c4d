/**
 * A job's page: its state and timings as a timeline bar, task counts per state, the task table
 * (filter to failed), a chosen task's log (followed while it runs), results, its spec, and while
 * it is pending, why. The job comes from its event stream (`GET /v1/jobs/{id}/events`): each
 * event reloads the tasks and the explanation, so the page follows the job to its end. A job the
 * caller may not see is a 404, shown as such.
 */
import type { JobView, TaskView, WhyView } from '@batchapi/api';
import { dump } from 'js-yaml';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure, call, consoleConfig, query, readEvents, readText } from './api';
import { duration, html, TERMINAL, when } from './html';
import { ResubmitDialog } from './resubmit-dialog';
import { traceLink } from './trace-link';

const PENDING = new Set(['Submitted', 'Queued']);
/** Task states a task can be cancelled in (one by one). */
const LIVE_TASK = new Set(['Pending', 'Bound', 'Running']);

interface JobState {
  job?: JobView;
  /** The API answered 404: no such job, or another tenant's. */
  missing: boolean;
  error?: string;
  /** Counts the events received: what the page's other reads follow. */
  revision: number;
}

/** The job's view from its event stream. A broken stream is reopened after 2 s from its last event. */
function useJob(id: string): JobState {
  const [state, setState] = useState<JobState>({ missing: false, revision: 0 });
  useEffect(() => {
    const ctl = new AbortController();
    let last: string | undefined;
    const follow = async () => {
      for (;;) {
        try {
          await readEvents(
            `/v1/jobs/${encodeURIComponent(id)}/events`,
            (e) => {
              last = e.id;
              const job = JSON.parse(e.data) as JobView;
              setState((s) => ({ job, missing: false, revision: s.revision + 1 }));
            },
            ctl.signal,
            last,
          );
          return; // the stream ends after the job's terminal view
        } catch (e) {
          if (ctl.signal.aborted) return;
          if (e instanceof ApiFailure && e.status === 404) return setState((s) => ({ ...s, missing: true }));
          setState((s) => ({ ...s, error: e instanceof Error ? e.message : String(e) }));
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
    };
    void follow();
    return () => ctl.abort();
  }, [id]);
  return state;
}

/** The bar: submitted → queued → first bound → done, each segment as wide as its share of the time so far. */
function Timeline({ job }: { job: JobView }) {
  const t0 = Date.parse(job.createdAt);
  const end = job.finishedAt ? Date.parse(job.finishedAt) : Date.now();
  const at = (t?: string) => (t ? Date.parse(t) : undefined);
  const queued = at(job.queuedAt);
  const bound = at(job.startedAt);
  const total = Math.max(end - t0, 1);
  const segs = [
    { cls: 'queued', label: 'Submitted → queued', from: t0, to: queued ?? end },
    ...(queued !== undefined ? [{ cls: 'waiting', label: 'Queued → first bound', from: queued, to: bound ?? end }] : []),
    ...(bound !== undefined ? [{ cls: 'running', label: job.finishedAt ? 'First bound → done' : 'First bound → now', from: bound, to: end }] : []),
  ];
  return html`<div>
    <div class="timeline" role="img" aria-label=${segs.map((s) => `${s.label}: ${((s.to - s.from) / 1000).toFixed(1)} s`).join('; ')}>
      ${segs.map((s) => html`<div class=${`seg ${s.cls}`} style=${{ width: `${(100 * (s.to - s.from)) / total}%` }} title=${s.label}></div>`)}
    </div>
    <div class="timeline-legend">
      <span>Submitted ${when(job.createdAt)}</span>
      <span>Queued ${when(job.queuedAt)}</span>
      <span>First bound ${when(job.startedAt)}</span>
      <span>Done ${when(job.finishedAt)}</span>
      <span>Total ${duration(job.createdAt, job.finishedAt)}</span>
    </div>
  </div>`;
}

function Why({ why }: { why: WhyView }) {
  return html`<section class="why" aria-labelledby="why-title" data-testid="why">
    <h2 id="why-title">Why it is pending</h2>
    <ul>
      ${why.messages.map((m) => html`<li>${m}</li>`)}
    </ul>
    ${
      why.blockers.length > 0 &&
      html`<table>
        <caption>
          Blocking constraints
        </caption>
        <thead>
          <tr>
            <th scope="col">Reason</th>
            <th scope="col">Nodes</th>
          </tr>
        </thead>
        <tbody>
          ${why.blockers.map(
            (b) =>
              html`<tr>
                <td>${b.reason}</td>
                <td>${b.nodes}</td>
              </tr>`,
          )}
        </tbody>
      </table>`
    }
    ${
      why.counterfactuals.length > 0 &&
      html`<p><strong>Would run now with:</strong></p>
        <ul>
          ${why.counterfactuals.map((c) => html`<li>${c}</li>`)}
        </ul>`
    }
    <dl class="facts">
      <dt>Position in queue</dt>
      <dd>${why.position} (${why.tasksAhead} tasks ahead)</dd>
      <dt>Pending tasks</dt>
      <dd>${why.pendingTasks}, ${why.placeableNow} placeable now</dd>
      ${
        why.quota &&
        html`<dt>Quota</dt>
          <dd>${why.quota}</dd>`
      }
      <dt>Explained by</dt>
      <dd>${why.explainedBy}</dd>
    </dl>
  </section>`;
}

/** A task's log: stdout or stderr, followed while the attempt runs. */
function Log({ id, task }: { id: string; task: TaskView }) {
  const [stream, setStream] = useState<'stdout' | 'stderr'>('stdout');
  const [text, setText] = useState('');
  const [error, setError] = useState<string>();
  const running = task.state === 'Running' || task.state === 'Bound';
  useEffect(() => {
    const ctl = new AbortController();
    setText('');
    setError(undefined);
    const q = query({ stream, attempt: task.attempt, follow: running ? 'true' : undefined });
    readText(`/v1/jobs/${encodeURIComponent(id)}/tasks/${task.index}/logs${q}`, (chunk) => setText((t) => t + chunk), ctl.signal).catch((e: unknown) => {
      if (!ctl.signal.aborted) setError(e instanceof ApiFailure ? `${e.code}: ${e.message}` : String(e));
    });
    return () => ctl.abort();
  }, [id, task.index, task.attempt, stream, running]);
  return html`<section aria-labelledby="log-title">
    <h2 id="log-title">Log of task ${task.index}, attempt ${task.attempt}</h2>
    <fieldset class="toolbar">
      <legend class="visually-hidden">Stream</legend>
      <label
        ><span><input type="radio" name="stream" checked=${stream === 'stdout'} onChange=${() => setStream('stdout')} /> stdout</span></label
      >
      <label
        ><span><input type="radio" name="stream" checked=${stream === 'stderr'} onChange=${() => setStream('stderr')} /> stderr</span></label
      >
      ${running && html`<span class="live">Following while the task runs.</span>`}
    </fieldset>
    ${error ? html`<p class="error" role="alert">${error}</p>` : html`<pre data-testid="log" aria-live="polite">${text || '(empty)'}</pre>`}
  </section>`;
}

export function JobPage({ id }: { id: string }) {
  const { job, missing, error, revision } = useJob(id);
  const [failedOnly, setFailedOnly] = useState(false);
  /** The task rows shown, and the filter they answer (the table is busy until they answer the one chosen). */
  const [tasks, setTasks] = useState<{ rows: TaskView[]; failedOnly: boolean }>({ rows: [], failedOnly: false });
  const [why, setWhy] = useState<WhyView>();
  const [results, setResults] = useState<unknown>();
  const [chosen, setChosen] = useState<TaskView>();
  const [cancelError, setCancelError] = useState<string>();
  const dialog = useRef<HTMLDialogElement>(null);
  const phase = job?.phase;
  /** The trace UI's template, when the deployment names one. */
  const [traceUrl, setTraceUrl] = useState<string>();
  useEffect(() => {
    void consoleConfig().then((c) => setTraceUrl(c.traceUrl));
  }, []);
  const traceHref = traceUrl && job?.traceId ? traceLink(traceUrl, job.traceId) : undefined;

  // At each event of the job: its tasks; while pending, why; once ended, its results.
  useEffect(() => {
    if (!phase) return;
    const ctl = new AbortController();
    const path = `/v1/jobs/${encodeURIComponent(id)}`;
    call<{ tasks: TaskView[] }>('GET', `${path}/tasks${query({ state: failedOnly ? 'Failed' : undefined, limit: 1000 })}`, undefined, ctl.signal)
      .then((p) => setTasks({ rows: p.tasks, failedOnly }))
      .catch(() => undefined);
    if (PENDING.has(phase))
      call<WhyView>('GET', `${path}/why`, undefined, ctl.signal)
        .then(setWhy)
        .catch(() => undefined);
    else setWhy(undefined);
    if (TERMINAL.has(phase))
      call<{ results: unknown[] }>('GET', `${path}/results`, undefined, ctl.signal)
        .then((r) => setResults(r.results))
        .catch(() => undefined);
    return () => ctl.abort();
  }, [id, revision, phase, failedOnly]);

  if (missing)
    return html`<main>
      <h1>404: job not found</h1>
      <p>There is no job <code>${id}</code> that your token may see. A job of another tenant is not shown.</p>
      <p><a href="#/">Back to the jobs</a></p>
    </main>`;
  if (!job) return html`<main><p>${error ? html`<span class="error" role="alert">${error}</span>` : 'Loading the job…'}</p></main>`;

  const cancel = async () => {
    dialog.current?.close();
    try {
      await call('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
      setCancelError(undefined);
    } catch (e) {
      setCancelError(e instanceof Error ? e.message : String(e));
    }
  };
  // One task alone: it never runs again; the job's other tasks run on.
  const cancelTask = async (index: number) => {
    try {
      await call('DELETE', `/v1/jobs/${encodeURIComponent(id)}/tasks/${index}`);
      setCancelError(undefined);
    } catch (e) {
      setCancelError(e instanceof Error ? e.message : String(e));
    }
  };
  // A new job with this one's spec (the stored one: secrets as they are, not as shown); its page opens.
  const resubmit = async () => {
    try {
      const made = await call<{ id: string }>('POST', `/v1/jobs/${encodeURIComponent(id)}/resubmit`);
      setCancelError(undefined);
      location.hash = `#/jobs/${encodeURIComponent(made.id)}`;
    } catch (e) {
      setCancelError(e instanceof Error ? e.message : String(e));
    }
  };
  const spec = {
    name: job.name,
    queue: job.queue,
    tasks: job.tasks,
    priority: job.priority,
    command: job.command,
    resources: job.resources,
    ...(Object.keys(job.env).length ? { env: job.env } : {}),
    ...(Object.keys(job.labels).length ? { labels: job.labels } : {}),
    ...(job.maxRunning !== undefined ? { maxRunning: job.maxRunning } : {}),
    ...(job.locks ? { locks: job.locks } : {}),
    ...(job.limits ? { limits: job.limits } : {}),
    ...(job.workingDir ? { workingDir: job.workingDir } : {}),
    ...(job.python ? { python: { requirements: job.python.requirements } } : {}),
  };
  return html`<main>
    <p><a href="#/">← Jobs</a></p>
    <h1>${job.name} <span class=${`phase phase-${job.phase}`} data-testid="phase">${job.phase}</span></h1>
    <dl class="facts">
      <dt>Id</dt>
      <dd><code>${job.id}</code></dd>
      <dt>Tenant / queue</dt>
      <dd>${job.tenant} / ${job.queue}</dd>
      ${
        job.labels['batch.workflow'] &&
        html`<dt>Workflow</dt>
          <dd>
            step ${job.labels['batch.step']} of
            <a href=${`#/workflows/${encodeURIComponent(job.labels['batch.workflow'])}`}>${job.labels['batch.workflow']}</a>
          </dd>`
      }
      ${
        job.python &&
        html`<dt>Python environment</dt>
          <dd data-testid="python-env">
            <details>
              <summary>
                ${job.python.requirements.length} requirement${job.python.requirements.length === 1 ? '' : 's'}, built on each node once (digest
                <code title=${job.python.digest}>${job.python.digest.slice(0, 12)}</code>)
              </summary>
              <ul>
                ${job.python.requirements.map((r) => html`<li><code>${r}</code></li>`)}
              </ul>
            </details>
          </dd>`
      }
      ${
        job.workingDir &&
        html`<dt>Working dir</dt>
          <dd>package <code title=${job.workingDir.digest}>${job.workingDir.digest.slice(0, 12)}</code>, unpacked read-only as each task's directory</dd>`
      }
      ${
        job.reason &&
        html`<dt>Reason</dt>
          <dd>${job.reason.code}: ${job.reason.message}</dd>`
      }
      ${
        job.traceId &&
        html`<dt>Trace id</dt>
          <dd>
            ${
              traceHref
                ? html`<a href=${traceHref} target="_blank" rel="noreferrer noopener" title="Open the trace"><code>${job.traceId}</code></a>`
                : html`<code>${job.traceId}</code>`
            }
          </dd>`
      }
    </dl>
    <div class="toolbar">
      ${!TERMINAL.has(job.phase) && html`<button type="button" class="danger" onClick=${() => dialog.current?.showModal()}>Cancel job</button>`}
      <button type="button" title="A new job with this job's spec" onClick=${() => void resubmit()}>Resubmit</button>
      <${ResubmitDialog} job=${job} />
    </div>
    ${cancelError && html`<p class="error" role="alert">${cancelError}</p>`}
    <dialog ref=${dialog} aria-labelledby="cancel-title">
      <h2 id="cancel-title">Cancel ${job.name}?</h2>
      <p>Pending tasks end at once; running tasks are stopped.</p>
      <div class="toolbar">
        <button type="button" class="danger" onClick=${() => void cancel()}>Cancel the job</button>
        <button type="button" onClick=${() => dialog.current?.close()}>Keep it</button>
      </div>
    </dialog>
    <h2>Timeline</h2>
    <${Timeline} job=${job} />
    <h2>Tasks</h2>
    <ul class="counts" aria-label="Tasks per state">
      ${Object.entries(job.taskCounts).map(([k, n]) => html`<li><strong>${n}</strong>${k}</li>`)}
    </ul>
    ${why && PENDING.has(job.phase) && html`<${Why} why=${why} />`}
    <div class="toolbar">
      <label
        ><span
          ><input type="checkbox" checked=${failedOnly} onChange=${(e: Event) => setFailedOnly((e.target as HTMLInputElement).checked)} /> Failed tasks
          only</span
        ></label
      >
    </div>
    <table data-tasks=${tasks.failedOnly ? 'failed' : 'all'} aria-busy=${tasks.failedOnly === failedOnly ? 'false' : 'true'}>
      <caption class="visually-hidden">
        Task attempts
      </caption>
      <thead>
        <tr>
          <th scope="col">Index</th>
          <th scope="col">State</th>
          <th scope="col">Attempt</th>
          <th scope="col">Node</th>
          <th scope="col">Exit code</th>
          <th scope="col">Reason</th>
          <th scope="col">Duration</th>
          <th scope="col">Log</th>
        </tr>
      </thead>
      <tbody>
        ${tasks.rows.map(
          (t) =>
            html`<tr>
              <td>${t.index}</td>
              <td class=${`phase phase-${t.state}`}>${t.state}</td>
              <td>${t.attempt}</td>
              <td>${t.node ?? '—'}</td>
              <td>${t.exitCode ?? '—'}</td>
              <td>${t.reason ?? t.signal ?? '—'}</td>
              <td>${duration(t.startedAt, t.endedAt)}</td>
              <td>
                ${t.node && html`<button type="button" aria-label=${`Log of task ${t.index} attempt ${t.attempt}`} onClick=${() => setChosen(t)}>Log</button>`}
                ${
                  LIVE_TASK.has(t.state) &&
                  !TERMINAL.has(job.phase) &&
                  html`<button type="button" class="danger" aria-label=${`Cancel task ${t.index}`} onClick=${() => void cancelTask(t.index)}>Cancel</button>`
                }
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${tasks.rows.length === 0 && html`<p>No task attempts${tasks.failedOnly ? ' failed' : ' yet'}.</p>`}
    ${chosen && html`<${Log} id=${id} task=${chosen} key=${`${chosen.index}/${chosen.attempt}`} />`}
    ${
      results !== undefined &&
      html`<h2>Results</h2>
        <pre data-testid="results">${JSON.stringify(results, null, 2)}</pre>`
    }
    <h2>Spec</h2>
    <pre>${dump(spec)}</pre>
  </main>`;
}
