/**
 * The jobs page: the caller's jobs (every tenant's for operators) with the filters of
 * `GET /v1/jobs` (state, queue, labels, name prefix, submit- and end-time ranges), sorted by
 * submit or end time, a page of 50, 200 or 1,000 rows at a time by cursor (over 100, only the rows
 * in view are drawn); the counts per phase from `GET /v1/jobs/events`, whose events also reload the
 * page shown, at most once per 300 ms (new jobs and phase changes appear without polling); cancel
 * one or many after a confirmation; resubmit one or many.
 */
import type { JobCountsView, JobSort, JobView } from '@batchapi/api';
import { Component } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure, call, query, readEvents } from './api';
import { duration, html, TERMINAL, when } from './html';
import { useReloads } from './live';
import { rowWindow, type RowWindow } from './row-window';

const PHASES = ['Submitted', 'Queued', 'Running', 'Succeeded', 'Failed', 'Cancelled', 'Rejected'] as const;
/** Rows a page may show; the API's most is 1,000. */
const PAGE_SIZES = [50, 200, 1000] as const;
/** A page of more rows than this draws only those in view and 20 on each side (`rowWindow`). */
const WINDOW_ABOVE = 100;

/**
 * The rows of `count` to draw: all of them up to `WINDOW_ABOVE`, else those in view of the
 * window's scroll, read again as it scrolls or resizes; and the row height the spacers use (the
 * first drawn row's, measured with the window; 0 until then).
 */
function useRowWindow(count: number, body: { current: HTMLTableSectionElement | null }): RowWindow & { rowPx: number } {
  const [range, setRange] = useState<RowWindow & { rowPx: number }>({ first: 0, end: count, rowPx: 0 });
  useEffect(() => {
    if (count <= WINDOW_ABOVE) {
      setRange((r) => ({ first: 0, end: count, rowPx: r.rowPx }));
      return;
    }
    const update = () => {
      const el = body.current;
      const rowPx = (el?.querySelector('tr[data-job]') as HTMLElement | null)?.offsetHeight ?? 0;
      const next = rowWindow(count, el ? el.getBoundingClientRect().top : 0, innerHeight, rowPx);
      setRange((r) => (r.first === next.first && r.end === next.end && r.rowPx === rowPx ? r : { ...next, rowPx }));
    };
    update();
    // Once drawn, the first row's height is known: the window is worked out again with it.
    const again = requestAnimationFrame(update);
    addEventListener('scroll', update, { passive: true });
    addEventListener('resize', update);
    return () => {
      cancelAnimationFrame(again);
      removeEventListener('scroll', update);
      removeEventListener('resize', update);
    };
  }, [count]);
  return count <= WINDOW_ABOVE
    ? { first: 0, end: count, rowPx: range.rowPx }
    : { first: Math.min(range.first, count), end: Math.min(range.end, count), rowPx: range.rowPx };
}

/** A row standing for `rows` rows not drawn, `rowPx` each (its height set through the DOM, which the CSP allows). */
function Spacer({ rows, rowPx }: { rows: number; rowPx: number }) {
  if (rows <= 0) return null;
  return html`<tr class="spacer" aria-hidden="true">
    <td colspan="9" style=${{ height: `${rows * rowPx}px` }}></td>
  </tr>`;
}

interface Filters {
  state: string;
  queue: string;
  labelSelector: string;
  namePrefix: string;
  /** Submitted at or after, as a `datetime-local` input holds it (the browser's time zone, to the second); '' for no bound. */
  submittedSince: string;
  /** Submitted before, as `submittedSince`. */
  submittedBefore: string;
  /** Finished at or after, as `submittedSince` (only ended jobs match a finish-time bound). */
  finishedSince: string;
  /** Finished before, as `submittedSince`. */
  finishedBefore: string;
}
/** The time-range inputs: id, label, and the filter each sets (the browser's time zone, to the second). */
const TIME_FILTERS: ReadonlyArray<[string, string, 'submittedSince' | 'submittedBefore' | 'finishedSince' | 'finishedBefore']> = [
  ['f-since', 'Submitted from', 'submittedSince'],
  ['f-before', 'Submitted before', 'submittedBefore'],
  ['f-fsince', 'Finished from', 'finishedSince'],
  ['f-fbefore', 'Finished before', 'finishedBefore'],
];
const NO_FILTERS: Filters = {
  state: '',
  queue: '',
  labelSelector: '',
  namePrefix: '',
  submittedSince: '',
  submittedBefore: '',
  finishedSince: '',
  finishedBefore: '',
};

/** A `datetime-local` value (the browser's time zone) as the API's RFC 3339 time; undefined for '' or a value the browser cannot read. */
export function localToIso(local: string): string | undefined {
  if (!local) return undefined;
  const t = new Date(local).getTime();
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

/** Follows the counts stream; calls `onChange` after each event. Reopens a broken stream after 2 s, from its last event. */
function useCounts(onChange: () => void): { counts?: JobCountsView; live: boolean } {
  const [counts, setCounts] = useState<JobCountsView>();
  const [live, setLive] = useState(false);
  const changed = useRef(onChange);
  changed.current = onChange;
  useEffect(() => {
    const ctl = new AbortController();
    let last: string | undefined;
    const follow = async () => {
      while (!ctl.signal.aborted) {
        try {
          await readEvents(
            '/v1/jobs/events',
            (e) => {
              last = e.id;
              setLive(true);
              setCounts(JSON.parse(e.data) as JobCountsView);
              changed.current();
            },
            ctl.signal,
            last,
          );
        } catch {
          /* broken or refused: wait, then reopen */
        }
        setLive(false);
        if (!ctl.signal.aborted) await new Promise((r) => setTimeout(r, 2000));
      }
    };
    void follow();
    return () => ctl.abort();
  }, []);
  return { counts, live };
}

/** What a row shows of a job: a row whose text would not change is not drawn again. */
const rowText = (j: JobView) =>
  [j.id, j.name, j.phase, j.tenant, j.queue, j.taskCounts.succeeded + j.taskCounts.failed + j.taskCounts.cancelled, j.tasks, j.createdAt, j.finishedAt].join(
    '|',
  );

interface JobRowProps {
  job: JobView;
  checked: boolean;
  onToggle: (id: string) => void;
}

/**
 * One job's row. The list is read again at each change of the caller's jobs; with 1,000 rows
 * shown, drawing only the rows whose text changed keeps the page from dropping frames.
 */
class JobRow extends Component<JobRowProps> {
  override shouldComponentUpdate(next: JobRowProps): boolean {
    return next.checked !== this.props.checked || rowText(next.job) !== rowText(this.props.job);
  }

  render({ job: j, checked, onToggle }: JobRowProps) {
    return html`<tr data-job=${j.id}>
      <td>
        <input type="checkbox" aria-label=${`Select ${j.name}`} checked=${checked} onChange=${() => onToggle(j.id)} />
      </td>
      <td><a href=${`#/jobs/${encodeURIComponent(j.id)}`}>${j.name}</a><br /><small>${j.id}</small></td>
      <td class=${`phase phase-${j.phase}`}>${j.phase}</td>
      <td>${j.tenant}</td>
      <td>${j.queue}</td>
      <td>${j.taskCounts.succeeded + j.taskCounts.failed + j.taskCounts.cancelled} / ${j.tasks}</td>
      <td>${when(j.createdAt)}</td>
      <td>${when(j.finishedAt)}</td>
      <td>${duration(j.createdAt, j.finishedAt)}</td>
    </tr>`;
  }
}

export function JobsPage() {
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [sort, setSort] = useState<JobSort>('-submitted');
  /** Page tokens of the pages up to the one shown (the first page has none). */
  const [pages, setPages] = useState<Array<string | undefined>>([undefined]);
  const [page, setPage] = useState<{ jobs: JobView[]; next?: string }>({ jobs: [] });
  const [error, setError] = useState<string>();
  /** What the last bulk action made (the new jobs of a resubmit). */
  const [notice, setNotice] = useState<string>();
  /** The first page has been read (until then the table is busy, and "no jobs" is not said). */
  const [loaded, setLoaded] = useState(false);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [confirming, setConfirming] = useState(false);
  const dialog = useRef<HTMLDialogElement>(null);
  const pageToken = pages[pages.length - 1];
  const [pageSize, setPageSize] = useState<number>(50);
  const body = useRef<HTMLTableSectionElement>(null);
  // A burst of changes (an operator's stream can carry ten a second) reloads the page shown once per 300 ms.
  const [reloads, reload] = useReloads(300);
  /** Moved by the page's own actions (a cancel, a resubmit): the list is read again at once. */
  const [actions, setActions] = useState(0);
  const { counts, live } = useCounts(reload);

  useEffect(() => {
    const ctl = new AbortController();
    const q = query({
      ...filters,
      submittedSince: localToIso(filters.submittedSince),
      submittedBefore: localToIso(filters.submittedBefore),
      finishedSince: localToIso(filters.finishedSince),
      finishedBefore: localToIso(filters.finishedBefore),
      sort,
      limit: pageSize,
      pageToken,
    });
    call<{ jobs: JobView[]; nextPageToken?: string }>('GET', `/v1/jobs${q}`, undefined, ctl.signal)
      .then((p) => {
        setPage({ jobs: p.jobs, next: p.nextPageToken });
        setLoaded(true);
        setError(undefined);
      })
      .catch((e: unknown) => {
        if (!ctl.signal.aborted) setError(e instanceof ApiFailure ? `${e.code}: ${e.message}` : String(e));
      });
    return () => ctl.abort();
  }, [filters, sort, pageToken, pageSize, reloads, actions]);

  useEffect(() => {
    if (confirming) dialog.current?.showModal();
    else dialog.current?.close();
  }, [confirming]);

  const apply = (e: Event) => {
    e.preventDefault();
    setFilters(draft);
    setPages([undefined]);
  };
  const field = (name: keyof Filters) => (e: Event) => setDraft({ ...draft, [name]: (e.target as HTMLInputElement).value });
  const toggleSort = (by: 'submitted' | 'finished') => {
    setSort(sort === `-${by}` ? by : (`-${by}` as JobSort));
    setPages([undefined]);
  };
  const sortMark = (by: string) => (sort === by ? 'ascending' : sort === `-${by}` ? 'descending' : 'none');
  // From the state as it is when clicked: a row that was not drawn again holds an older closure.
  const toggle = (id: string) =>
    setSelected((prev) => {
      const next = new Set(prev);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  /** The selected jobs that have not ended (an ended job cannot be cancelled; it can be resubmitted). */
  const cancellable = page.jobs.filter((j) => selected.has(j.id) && !TERMINAL.has(j.phase)).map((j) => j.id);
  const cancelSelected = async () => {
    const failed: string[] = [];
    for (const id of cancellable) {
      try {
        await call('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
      } catch (e) {
        failed.push(`${id}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    setConfirming(false);
    setSelected(new Set());
    setError(failed.length ? `not cancelled: ${failed.join('; ')}` : undefined);
    setActions((n) => n + 1);
  };

  /** A new job with each selected job's spec (`POST /v1/jobs/{id}/resubmit`), one at a time; says which were made and which were refused. */
  const resubmitSelected = async () => {
    const made: string[] = [];
    const failed: string[] = [];
    for (const id of selected) {
      try {
        made.push((await call<{ id: string }>('POST', `/v1/jobs/${encodeURIComponent(id)}/resubmit`)).id);
      } catch (e) {
        failed.push(`${id}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    setSelected(new Set());
    setNotice(made.length ? `Resubmitted as ${made.join(', ')}` : undefined);
    setError(failed.length ? `not resubmitted: ${failed.join('; ')}` : undefined);
    setActions((n) => n + 1);
  };

  const shown = useRowWindow(page.jobs.length, body);

  return html`<main>
    <h1>Jobs</h1>
    <ul class="counts" aria-label="Jobs per state (live and recently finished)">
      ${PHASES.filter((p) => counts?.counts[p]).map((p) => html`<li><strong>${counts!.counts[p]}</strong><span class=${`phase phase-${p}`}>${p}</span></li>`)}
      <li><strong>${counts?.total ?? '…'}</strong>in etcd</li>
    </ul>
    <p class="live" aria-live="polite">${live ? 'Live: updates as jobs change.' : 'Connecting to live updates…'}</p>
    <form class="filters" onSubmit=${apply} aria-label="Filter jobs">
      <label for="f-state"
        >State
        <select id="f-state" value=${draft.state} onChange=${field('state')}>
          <option value="">any</option>
          ${PHASES.map((p) => html`<option value=${p}>${p}</option>`)}
        </select></label
      >
      <label for="f-queue">Queue <input id="f-queue" value=${draft.queue} onInput=${field('queue')} /></label>
      <label for="f-labels"
        >Label selector <input id="f-labels" placeholder="team=ml,env!=dev" value=${draft.labelSelector} onInput=${field('labelSelector')}
      /></label>
      <label for="f-name">Name prefix <input id="f-name" value=${draft.namePrefix} onInput=${field('namePrefix')} /></label>
      ${TIME_FILTERS.map(
        ([id, label, name]) =>
          html`<label for=${id}>${label} <input id=${id} type="datetime-local" step="1" value=${draft[name]} onInput=${field(name)} /></label>`,
      )}
      <button type="submit">Apply filters</button>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`} ${notice && html`<p class="notice" role="status">${notice}</p>`}
    <div class="toolbar">
      <button type="button" class="danger" disabled=${cancellable.length === 0} onClick=${() => setConfirming(true)}>
        Cancel selected (${cancellable.length})
      </button>
      <button type="button" title="A new job with each selected job's spec" disabled=${selected.size === 0} onClick=${() => void resubmitSelected()}>
        Resubmit selected (${selected.size})
      </button>
      <label for="f-rows"
        >Rows
        <select
          id="f-rows"
          value=${String(pageSize)}
          onChange=${(e: Event) => {
            setPageSize(Number((e.target as HTMLSelectElement).value));
            setPages([undefined]);
          }}
        >
          ${PAGE_SIZES.map((n) => html`<option value=${String(n)}>${n}</option>`)}
        </select></label
      >
      <button type="button" disabled=${pages.length < 2} onClick=${() => setPages(pages.slice(0, -1))}>Previous page</button>
      <button type="button" disabled=${!page.next} onClick=${() => setPages([...pages, page.next])}>Next page</button>
    </div>
    <table class="jobs" data-rows=${page.jobs.length} aria-busy=${loaded ? 'false' : 'true'}>
      <caption class="visually-hidden">
        Jobs, ${sort.endsWith('finished') ? 'by end time' : 'by submit time'}
      </caption>
      <thead>
        <tr>
          <th scope="col"><span class="visually-hidden">Select</span></th>
          <th scope="col">Job</th>
          <th scope="col">State</th>
          <th scope="col">Tenant</th>
          <th scope="col">Queue</th>
          <th scope="col">Tasks done</th>
          <th scope="col" aria-sort=${sortMark('submitted')}><button type="button" class="sort" onClick=${() => toggleSort('submitted')}>Submitted</button></th>
          <th scope="col" aria-sort=${sortMark('finished')}><button type="button" class="sort" onClick=${() => toggleSort('finished')}>Finished</button></th>
          <th scope="col">Duration</th>
        </tr>
      </thead>
      <tbody ref=${body}>
        <${Spacer} rows=${shown.first} rowPx=${shown.rowPx} />
        ${page.jobs.slice(shown.first, shown.end).map((j) => html`<${JobRow} key=${j.id} job=${j} checked=${selected.has(j.id)} onToggle=${toggle} />`)}
        <${Spacer} rows=${page.jobs.length - shown.end} rowPx=${shown.rowPx} />
      </tbody>
    </table>
    ${loaded && page.jobs.length === 0 && !error && html`<p>No jobs match.</p>`}
    <dialog ref=${dialog} aria-labelledby="confirm-title" onClose=${() => setConfirming(false)}>
      <h2 id="confirm-title">Cancel ${cancellable.length} job${cancellable.length === 1 ? '' : 's'}?</h2>
      <p>Pending tasks end at once; running tasks are stopped. This cannot be undone.</p>
      <div class="toolbar">
        <button type="button" class="danger" onClick=${() => void cancelSelected()}>Cancel the jobs</button>
        <button type="button" onClick=${() => setConfirming(false)}>Keep them</button>
      </div>
    </dialog>
  </main>`;
}
