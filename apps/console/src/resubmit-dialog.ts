/**
 * The job page's "Resubmit with changes…" dialog: the job's queue, priority and CPU, memory and
 * GPU filled in, and variables and labels to set, one `KEY=value` a line. Sends only what was
 * changed (`readResubmitForm`); the new job's page opens, or the API's refusal is shown with the
 * field it names.
 */
import type { JobView } from '@batchapi/api';
import { useRef, useState } from 'preact/hooks';
import { ApiFailure, call } from './api';
import { html } from './html';
import { initialForm, readResubmitForm, type ResubmitForm } from './resubmit-form';

const FIELDS: Array<{ name: keyof ResubmitForm; label: string; area?: boolean; hint?: string }> = [
  { name: 'queue', label: 'Queue' },
  { name: 'priority', label: 'Priority' },
  { name: 'cpu', label: 'CPU per task', hint: 'e.g. 2 or 500m' },
  { name: 'memory', label: 'Memory per task', hint: 'e.g. 4Gi' },
  { name: 'gpu', label: 'GPUs per task', hint: 'e.g. 1 or 0.5' },
  { name: 'env', label: 'Set variables', area: true, hint: 'NAME=value, one a line; the others stay as they are' },
  { name: 'labels', label: 'Set labels', area: true, hint: 'key=value, one a line' },
];

export function ResubmitDialog({ job }: { job: JobView }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [form, setForm] = useState<ResubmitForm>(() => initialForm(job));
  const [problem, setProblem] = useState<string>();
  const open = () => {
    setForm(initialForm(job));
    setProblem(undefined);
    dialog.current?.showModal();
  };
  const send = async (e: Event) => {
    e.preventDefault();
    const read = readResubmitForm(job, form);
    if (!('body' in read)) return setProblem(`${read.field}: ${read.message}`);
    try {
      const made = await call<{ id: string }>('POST', `/v1/jobs/${encodeURIComponent(job.id)}/resubmit`, read.body);
      dialog.current?.close();
      location.hash = `#/jobs/${encodeURIComponent(made.id)}`;
    } catch (err) {
      setProblem(err instanceof ApiFailure ? `${err.code}: ${err.message}` : String(err));
    }
  };
  return html`<button type="button" title="A new job with this job's spec and the changes you make" onClick=${open}>Resubmit with changes…</button>
    <dialog ref=${dialog} aria-labelledby="resubmit-title">
      <form onSubmit=${send}>
        <h2 id="resubmit-title">Resubmit ${job.name} with changes</h2>
        ${FIELDS.map(
          (f) =>
            html`<label for=${`r-${f.name}`}
              >${f.label}
              ${
                f.area
                  ? html`<textarea
                      id=${`r-${f.name}`}
                      rows="3"
                      placeholder=${f.hint}
                      value=${form[f.name]}
                      onInput=${(ev: Event) => setForm({ ...form, [f.name]: (ev.target as HTMLTextAreaElement).value })}
                    ></textarea>`
                  : html`<input
                      id=${`r-${f.name}`}
                      placeholder=${f.hint ?? ''}
                      value=${form[f.name]}
                      onInput=${(ev: Event) => setForm({ ...form, [f.name]: (ev.target as HTMLInputElement).value })}
                    />`
              }</label
            >`,
        )}
        ${problem && html`<p class="error" role="alert">${problem}</p>`}
        <div class="toolbar">
          <button type="submit">Resubmit</button>
          <button type="button" onClick=${() => dialog.current?.close()}>Close</button>
        </div>
      </form>
    </dialog>`;
}
