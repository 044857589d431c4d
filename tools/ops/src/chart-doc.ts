/**
 * Generates what the Helm chart (deploy/helm/batchapi) carries but does not own: its README.md (the
 * table of values, read from the `# --` comment above each key of values.yaml) and its copies of the
 * alert rules and the Grafana dashboard (Helm reads only files inside the chart). `npm run -s docs:chart`
 * rewrites them; tools/ops/test/helm.spec.ts fails when one differs from what this makes, or when a value
 * has no comment.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';

/** The chart, relative to the repository root. */
export const CHART_DIR = 'deploy/helm/batchapi';
/** The command that rewrites the generated files. */
export const CHART_REGENERATE_COMMAND = 'npm run -s docs:chart';
/** Generated file of the chart → its source in the repository (copied as is). */
export const CHART_COPIES: Record<string, string> = {
  [`${CHART_DIR}/files/alerts.yaml`]: 'deploy/prometheus/alerts.yaml',
  [`${CHART_DIR}/files/batchapi.json`]: 'deploy/grafana/batchapi.json',
};

/** One documented key of values.yaml. */
export interface ValueDoc {
  /** Dotted path, e.g. `etcd.tls.enabled`. */
  key: string;
  type: string;
  /** The default as YAML flow text. */
  default: string;
  description: string;
}

type Yaml = Record<string, unknown>;
const isMap = (v: unknown): v is Yaml => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeOf = (v: unknown) =>
  Array.isArray(v)
    ? 'list'
    : isMap(v)
      ? 'object'
      : typeof v === 'number'
        ? Number.isInteger(v)
          ? 'int'
          : 'float'
        : typeof v === 'boolean'
          ? 'bool'
          : 'string';
const at = (root: Yaml, path: string[]): unknown => path.reduce<unknown>((v, k) => (isMap(v) ? v[k] : undefined), root);

/**
 * The documented keys of a values.yaml, in file order, and the keys that need a comment and lack one.
 * A key is documented by the `# -- ` comment line(s) right above it. A leaf (a scalar, a list or an empty
 * map) needs one unless an ancestor map is documented as a whole (it has a comment and none of its
 * descendants has one); keys inside lists are part of their list's default.
 */
export function valuesDoc(text: string): { rows: ValueDoc[]; undocumented: string[] } {
  const root = (load(text) ?? {}) as Yaml;
  const entries: Array<{ path: string[]; comment?: string }> = [];
  const stack: Array<{ indent: number; key: string }> = [];
  let comment: string[] = [];
  for (const line of text.split('\n')) {
    const c = /^\s*# -- (.*)$/.exec(line);
    if (c) {
      comment.push(c[1].trim());
      continue;
    }
    const k = /^(\s*)([A-Za-z0-9_./-]+|"[^"]+"):(\s|$)/.exec(line);
    if (!k) {
      if (!/^\s*#/.test(line)) comment = [];
      continue;
    }
    const indent = k[1].length;
    while (stack.length && stack[stack.length - 1].indent >= indent) stack.pop();
    const parent = stack.map((s) => s.key);
    const key = k[2].replace(/^"|"$/g, '');
    // a key of a list item (its parent path holds a list) is part of that list's default
    if (parent.length && !isMap(at(root, parent))) {
      comment = [];
      continue;
    }
    stack.push({ indent, key });
    entries.push({ path: [...parent, key], comment: comment.length ? comment.join(' ') : undefined });
    comment = [];
  }
  const name = (p: string[]) => p.join('.');
  const commented = new Set(entries.filter((e) => e.comment).map((e) => name(e.path)));
  const hasCommentedDescendant = (p: string[]) => [...commented].some((c) => c.startsWith(`${name(p)}.`));
  const wholeDocumented = (p: string[]) => commented.has(name(p)) && !hasCommentedDescendant(p);
  const undocumented: string[] = [];
  const rows: ValueDoc[] = [];
  for (const e of entries) {
    const v = at(root, e.path);
    const insideWhole = e.path.slice(0, -1).some((_, i) => wholeDocumented(e.path.slice(0, i + 1)));
    if (insideWhole) continue;
    const leaf = !isMap(v) || Object.keys(v).length === 0;
    if (!e.comment) {
      if (leaf) undocumented.push(name(e.path));
      continue;
    }
    const whole = leaf || !hasCommentedDescendant(e.path);
    rows.push({ key: name(e.path), type: typeOf(v), default: whole ? JSON.stringify(v ?? null) : '', description: e.comment });
  }
  return { rows, undocumented };
}

const cell = (s: string) => s.replace(/\|/g, '\\|');

/** The chart's README.md for a values.yaml text. */
export function chartReadme(valuesYaml: string): string {
  const { rows } = valuesDoc(valuesYaml);
  return [
    '# BatchAPI Helm chart',
    '',
    `<!-- Generated from values.yaml by tools/ops/src/chart-doc.ts: do not edit; run \`${CHART_REGENERATE_COMMAND}\`. -->`,
    '',
    'Installs BatchAPI: admission, quota, the scheduler, the executors (process or Kubernetes backend, GPU nodes),',
    'a TLS etcd (or an external one) with scheduled snapshots, PodDisruptionBudgets, NetworkPolicies, the',
    'PrometheusRule, PodMonitors and the Grafana dashboard. The install guide, production checklist and upgrade',
    'order are in [docs/install.md](../../../docs/install.md).',
    '',
    '```bash',
    'helm install batchapi deploy/helm/batchapi --namespace batchapi --create-namespace -f my-values.yaml',
    '```',
    '',
    '## Values',
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.key}\` | ${r.type} | ${r.default ? `\`${cell(r.default)}\`` : '—'} | ${cell(r.description)} |`),
    '',
  ].join('\n');
}

/** Every file this generates (path relative to the repository root → content), read from `root`. */
export function chartGenerated(root: string): Record<string, string> {
  const read = (p: string) => readFileSync(join(root, p), 'utf8');
  const out: Record<string, string> = { [`${CHART_DIR}/README.md`]: chartReadme(read(`${CHART_DIR}/values.yaml`)) };
  for (const [copy, source] of Object.entries(CHART_COPIES)) out[copy] = read(source);
  return out;
}

if (require.main === module) {
  const root = join(__dirname, '../../..');
  const files = chartGenerated(root);
  if (process.argv.includes('--write')) for (const [p, text] of Object.entries(files)) writeFileSync(join(root, p), text);
  else process.stdout.write(files[`${CHART_DIR}/README.md`]);
}
