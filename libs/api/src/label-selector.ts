/**
 * Label selectors in Kubernetes' syntax (`GET /v1/jobs?labelSelector=…`, `batch list -l …`):
 * comma-separated requirements, all of which must hold.
 *
 * | requirement        | holds when the job's labels…                 |
 * |--------------------|----------------------------------------------|
 * | `k=v`, `k==v`      | have k with value v                          |
 * | `k!=v`             | do not have k with value v (k may be absent) |
 * | `k in (a,b)`       | have k with value a or b                     |
 * | `k notin (a,b)`    | do not have k with value a or b (or lack k)  |
 * | `k`                | have k, whatever its value                   |
 * | `!k`               | do not have k                                |
 */

/** One requirement of a selector. `in` and `notin` have 1 to `MAX_SELECTOR_VALUES` values. */
export type LabelRequirement = { key: string; op: 'in' | 'notin'; values: string[] } | { key: string; op: 'exists' } | { key: string; op: 'absent' };

/** Longest selector text, in characters. */
export const MAX_LABEL_SELECTOR_CHARS = 1024;
/** Most requirements in one selector. */
export const MAX_SELECTOR_REQUIREMENTS = 20;
/** Most values in one `in (…)` / `notin (…)` set. */
export const MAX_SELECTOR_VALUES = 50;

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** A selector that could not be read: `message` says which part and why. */
export class LabelSelectorError extends Error {}

/**
 * Reads a selector into its requirements (an empty text selects everything).
 * @throws LabelSelectorError naming the requirement that is malformed or over a limit
 */
export function parseLabelSelector(text: string): LabelRequirement[] {
  if (text.length > MAX_LABEL_SELECTOR_CHARS) throw new LabelSelectorError(`is over ${MAX_LABEL_SELECTOR_CHARS} characters`);
  const parts = splitTopLevel(text);
  if (parts.length > MAX_SELECTOR_REQUIREMENTS) throw new LabelSelectorError(`has ${parts.length} requirements; at most ${MAX_SELECTOR_REQUIREMENTS}`);
  return parts.map(parseRequirement);
}

/** Whether `labels` meet every requirement. */
export function matchesLabels(labels: Readonly<Record<string, string>> | undefined, requirements: readonly LabelRequirement[]): boolean {
  return requirements.every((r) => {
    const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'absent':
        return !has;
      case 'in':
        return has && r.values.includes(labels[r.key]);
      case 'notin':
        return !has || !r.values.includes(labels[r.key]);
    }
  });
}

/** The selector's text again, in its canonical form (`k in (a)` for `k=a`). */
export function formatLabelSelector(requirements: readonly LabelRequirement[]): string {
  const one = (r: LabelRequirement) => {
    if (r.op === 'exists') return r.key;
    if (r.op === 'absent') return `!${r.key}`;
    return `${r.key} ${r.op} (${r.values.join(',')})`;
  };
  return requirements.map(one).join(',');
}

/** Splits at commas outside parentheses; blank text gives no parts. */
function splitTopLevel(text: string): string[] {
  if (text.trim() === '') return [];
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    if (depth < 0 || depth > 1) throw new LabelSelectorError(`has unbalanced parentheses near "${text.slice(Math.max(0, i - 10), i + 1)}"`);
    if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw new LabelSelectorError('has an unclosed "("');
  parts.push(text.slice(start));
  return parts;
}

function parseRequirement(raw: string): LabelRequirement {
  const part = raw.trim();
  if (part === '') throw new LabelSelectorError('has an empty requirement (two commas in a row, or one at an end)');
  const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
  if (set) {
    const values = set[3].split(',').map((v) => v.trim());
    if (values.length > MAX_SELECTOR_VALUES) throw new LabelSelectorError(`"${part}": at most ${MAX_SELECTOR_VALUES} values in a set`);
    if (values.some((v) => v === '')) throw new LabelSelectorError(`"${part}": a set needs values, with no empty one`);
    return { key: key(set[1], part), op: set[2] as 'in' | 'notin', values: values.map((v) => value(v, part)) };
  }
  const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
  if (eq) return { key: key(eq[1], part), op: eq[2] === '!=' ? 'notin' : 'in', values: [value(eq[3].trim(), part)] };
  if (part.startsWith('!')) return { key: key(part.slice(1).trim(), part), op: 'absent' };
  return { key: key(part, part), op: 'exists' };
}

function key(k: string, part: string): string {
  if (k.length > 253 || !KEY.test(k)) throw new LabelSelectorError(`"${part}": "${k}" is not a label key (letters, digits, "-", "_", ".", "/"; at most 253)`);
  return k;
}

function value(v: string, part: string): string {
  if (v.length > 63 || !VALUE.test(v)) throw new LabelSelectorError(`"${part}": "${v}" is not a label value (letters, digits, "-", "_", "."; at most 63)`);
  return v;
}
