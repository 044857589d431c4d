/**
 * The queues page: the caller's queues (every tenant's for operators) from `GET /v1/queues`,
 * grouped by cohort: per resource a bar of what the queue uses within its nominal quota and
 * beyond it (borrowed from its cohort), GPUs by model when nodes name theirs; its fair share,
 * pending and running tasks, and (opened) the caller's waiting jobs with their places in the queue. Live: read again at each change of the caller's jobs
 * (`GET /v1/jobs/events`) — a job bound, started or ended is what moves a queue's use.
 */
import type { QueueView } from '@batchapi/api';
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, call } from './api';
import { quotaBars } from './bars';
import { html } from './html';
import { MeterBar } from './meter-bar';
import { useEvents, useReloads } from './live';

const RESOURCE_NAMES: Record<string, string> = { cpu: 'CPU', memory: 'Memory', gpu: 'GPU' };
const resourceName = (r: string) => RESOURCE_NAMES[r] ?? (r.startsWith('gpu:') ? `GPU ${r.slice(4)}` : r);

type Positions = NonNullable<QueueView['positions']>;

/**
 * The caller's waiting jobs in queue `name` with their places in its order (1 = next), from
 * `GET /v1/queues/{name}`: read when opened, and again at each change while open (`reloads`).
 */
function Waiting({ name, pendingJobs, reloads }: { name: string; pendingJobs: number; reloads: number }) {
  const [open, setOpen] = useState(false);
  const [positions, setPositions] = useState<Positions>();
  useEffect(() => {
    if (!open) return;
    const ctl = new AbortController();
    call<QueueView>('GET', `/v1/queues/${encodeURIComponent(name)}`, undefined, ctl.signal)
      .then((q) => setPositions(q.positions ?? []))
      .catch(() => undefined);
    return () => ctl.abort();
  }, [open, name, reloads]);
  return html`<details onToggle=${(e: Event) => setOpen((e.target as HTMLDetailsElement).open)}>
    <summary>Your waiting jobs (${pendingJobs} waiting in all)</summary>
    ${open && !positions && html`<p class="muted">Reading…</p>`} ${positions && positions.length === 0 && html`<p class="muted">None of yours is waiting.</p>`}
    ${
      positions &&
      positions.length > 0 &&
      html`<table class="positions">
        <caption class="visually-hidden">
          Your waiting jobs in ${name}, by place in the queue
        </caption>
        <thead>
          <tr>
            <th scope="col">Place</th>
            <th scope="col">Job</th>
            <th scope="col">Pending tasks</th>
          </tr>
        </thead>
        <tbody>
          ${positions.map(
            (p) =>
              html`<tr data-position-job=${p.jobId}>
                <td>${p.position}</td>
                <td><a href=${`#/jobs/${encodeURIComponent(p.jobId)}`}>${p.jobId}</a></td>
                <td>${p.pendingTasks}</td>
              </tr>`,
          )}
        </tbody>
      </table>`
    }
  </details>`;
}

function Queue({ q, reloads }: { q: QueueView; reloads: number }) {
  const bars = quotaBars(q.nominal, q.used, q.borrowed);
  return html`<section class="queue" data-queue=${q.name} aria-labelledby=${`q-${q.name}`}>
    <h3 id=${`q-${q.name}`}>${q.name} <small>${q.tenant}</small></h3>
    <dl class="facts">
      <dt>Fair share</dt>
      <dd data-testid="fair-share">${(q.fairShare * 100).toFixed(1)} % (weight ${q.weight})</dd>
      <dt>Tasks</dt>
      <dd>
        <span data-testid="pending">${q.pendingTasks}</span> pending in ${q.pendingJobs} jobs, <span data-testid="running">${q.runningTasks}</span> running
      </dd>
    </dl>
    ${bars.length === 0 && html`<p class="muted">No quota and nothing in use.</p>`}
    ${bars.map((b) => {
      const label = `${resourceName(b.resource)}: ${b.used} used of ${b.nominal ?? 'no quota (unlimited)'}${b.borrowed !== undefined ? `, ${b.borrowed} borrowed` : ''}`;
      return html`<${MeterBar}
        resource=${b.resource}
        name=${resourceName(b.resource)}
        label=${label}
        within=${b.within}
        beyond=${b.beyond}
        limitAt=${b.quotaAt}
        used=${String(b.used)}
        text=${html`${b.used} / ${b.nominal ?? '∞'}${b.borrowed !== undefined ? html` <span class="borrowed-text">(${b.borrowed} borrowed)</span>` : ''}`}
      />`;
    })}
    ${q.pendingJobs > 0 && html`<${Waiting} name=${q.name} pendingJobs=${q.pendingJobs} reloads=${reloads} />`}
  </section>`;
}

export function QueuesPage() {
  const [queues, setQueues] = useState<QueueView[]>();
  const [error, setError] = useState<string>();
  const [reloads, reload] = useReloads();
  const stream = useEvents<unknown>('/v1/jobs/events', reload);
  useEffect(() => {
    const ctl = new AbortController();
    call<{ queues: QueueView[] }>('GET', '/v1/queues', undefined, ctl.signal)
      .then((r) => {
        setQueues(r.queues);
        setError(undefined);
      })
      .catch((e: unknown) => {
        if (!ctl.signal.aborted) setError(e instanceof ApiFailure ? `${e.code}: ${e.message}` : String(e));
      });
    return () => ctl.abort();
  }, [reloads]);
  const cohorts = new Map<string, QueueView[]>();
  for (const q of queues ?? []) {
    const key = q.cohort ?? '';
    cohorts.set(key, [...(cohorts.get(key) ?? []), q]);
  }
  const order = [...cohorts.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a < b ? -1 : 1));
  return html`<main aria-busy=${queues ? 'false' : 'true'}>
    <h1>Queues</h1>
    <p class="live" aria-live="polite">${stream.live ? 'Live: updates as jobs start and end.' : 'Connecting to live updates…'}</p>
    <p class="legend">
      <span class="swatch used">used within quota</span> <span class="swatch borrowed">borrowed from the cohort</span>
      <span class="swatch mark">nominal quota</span>
    </p>
    ${error && html`<p class="error" role="alert">${error}</p>`} ${queues && queues.length === 0 && html`<p>No queues.</p>`}
    ${order.map(
      (cohort) =>
        html`<section class="cohort" aria-labelledby=${`cohort-${cohort || 'none'}`}>
          <h2 id=${`cohort-${cohort || 'none'}`}>${cohort ? `Cohort ${cohort}` : 'Not in a cohort'}</h2>
          <div class="queues">${cohorts.get(cohort)!.map((q) => html`<${Queue} q=${q} reloads=${reloads} key=${q.name} />`)}</div>
        </section>`,
    )}
  </main>`;
}
