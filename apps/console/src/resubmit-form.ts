/**
 * The job page's "Resubmit with changes" form, pure: what the person typed, read into the body
 * of `POST /v1/jobs/{id}/resubmit` — only what differs from the job (the API keeps the rest of
 * its stored spec), `KEY=value` lines as maps. The API checks every value again.
 */

/** What the form holds: text as typed. */
export interface ResubmitForm {
  queue: string;
  priority: string;
  cpu: string;
  memory: string;
  gpu: string;
  /** `KEY=value`, one a line: variables set or changed. */
  env: string;
  /** `key=value`, one a line: labels added or changed. */
  labels: string;
}

/** What the form starts from: the job as its view shows it. */
export interface ResubmitFrom {
  queue: string;
  priority: number;
  resources: Record<string, string | number>;
}

/** The form filled in with the job's own values (nothing to change yet). */
export function initialForm(job: ResubmitFrom): ResubmitForm {
  const r = (name: string) => (job.resources[name] === undefined ? '' : String(job.resources[name]));
  return { queue: job.queue, priority: String(job.priority), cpu: r('cpu'), memory: r('memory'), gpu: r('gpu'), env: '', labels: '' };
}

/** The resubmit's body, or the first field that cannot be read (the form says which). */
export type ResubmitRead = { body: Record<string, unknown> } | { field: keyof ResubmitForm; message: string };

/** `KEY=value` lines as a map; blank lines are skipped; undefined for a line without `=` or a key. */
function pairs(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const at = line.indexOf('=');
    const key = at > 0 ? line.slice(0, at).trim() : '';
    if (!key) return undefined;
    out[key] = line.slice(at + 1);
  }
  return out;
}

/** Reads the form against the job it resubmits: the changes only; `{}` when nothing changed. */
export function readResubmitForm(job: ResubmitFrom, form: ResubmitForm): ResubmitRead {
  const body: Record<string, unknown> = {};
  if (form.queue.trim() && form.queue.trim() !== job.queue) body.queue = form.queue.trim();
  if (form.priority.trim() !== String(job.priority)) {
    const p = Number(form.priority);
    if (!form.priority.trim() || !Number.isInteger(p)) return { field: 'priority', message: 'a whole number, from -1000 to 1000' };
    body.priority = p;
  }
  const resources: Record<string, string> = {};
  for (const name of ['cpu', 'memory', 'gpu'] as const) {
    const typed = form[name].trim();
    if (typed && typed !== String(job.resources[name] ?? '')) resources[name] = typed;
  }
  if (Object.keys(resources).length) body.resources = resources;
  const env = pairs(form.env);
  if (!env) return { field: 'env', message: 'one NAME=value a line' };
  if (Object.keys(env).length) body.env = env;
  const labels = pairs(form.labels);
  if (!labels) return { field: 'labels', message: 'one key=value a line' };
  if (Object.keys(labels).length) body.labels = labels;
  return { body };
}
