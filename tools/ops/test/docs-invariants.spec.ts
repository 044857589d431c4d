/**
 * What the docs claim about the code, checked so that they cannot drift:
 * - docs/invariants.md has the invariants of DESIGN.md (../shared/DESIGN.md, when present), numbered
 *   1..N under their titles, and each cites tests that exist: the spec file, and the name as it is
 *   written in its `it(...)` / `test(...)` — or a name a table or template test gives (`%s`, `$name`,
 *   `${…}`), whose filled-in parts occur in the spec or in the test helpers it imports;
 * - every repository file the page names exists;
 * - the error table of docs/architecture.md lists every `ErrorCode`, once, with its status from `statusOf`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ErrorCode, statusOf } from '@batchapi/api';

const ROOT = join(__dirname, '../../..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const INVARIANTS = 'docs/invariants.md';
const ARCHITECTURE = 'docs/architecture.md';
/** The design doc lives beside the repository, not in it; the title check is skipped without it. */
const DESIGN = join(ROOT, '../shared/DESIGN.md');

/** The lines under a `## ` heading that starts with `heading`, up to the next `## ` heading. */
function section(md: string, heading: string): string[] {
  const lines = md.split('\n');
  const start = lines.findIndex((l) => l.startsWith(heading));
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

interface Citation {
  invariant: number;
  file: string;
  name: string;
}

/** The numbered invariants of the page (`## N. Title`) and the tests each cites (`` - `file` — "name" ``). */
function parseInvariants(md: string): { headings: Array<{ n: number; title: string }>; citations: Citation[]; malformed: string[] } {
  const headings: Array<{ n: number; title: string }> = [];
  const citations: Citation[] = [];
  const malformed: string[] = [];
  for (const line of md.split('\n')) {
    const h = /^## (\d+)\. (.+)$/.exec(line);
    if (h) {
      headings.push({ n: Number(h[1]), title: h[2] });
      continue;
    }
    if (headings.length === 0 || !line.startsWith('- `')) continue;
    const c = /^- `([^`]+\.spec\.ts)` — "(.+)"$/.exec(line);
    if (c) citations.push({ invariant: headings[headings.length - 1].n, file: c[1], name: c[2] });
    else malformed.push(line);
  }
  return { headings, citations, malformed };
}

/** The invariants of DESIGN.md, in order: the bold title of each numbered item, without its final period. */
function designInvariants(md: string): string[] {
  return section(md, '## Invariants').flatMap((l) => {
    const m = /^\d+\. \*\*(.+?)\.?\*\*/.exec(l);
    return m ? [m[1]] : [];
  });
}

/** The string literal that starts at `src[start]` (a quote), unescaped; undefined if it does not end on its line. */
function literalAt(src: string, start: number): string | undefined {
  const quote = src[start];
  let out = '';
  for (let i = start + 1; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') {
      out += src[++i]; // test names escape only quotes and backslashes
      continue;
    }
    if (c === quote) return out;
    if (c === '\n' && quote !== '`') return undefined;
    out += c;
  }
  return undefined;
}

/**
 * Names given to tests in a source text: the string literal right after `it(`, `test(`, `it.skip(`…,
 * or after `)(` — `it.each(table)('…')` and `(cond ? it : it.skip)('…')`.
 */
function testNames(src: string): string[] {
  const names: string[] = [];
  for (const m of src.matchAll(/(?:\b(?:it|test)(?:\.(?:skip|only|concurrent|failing))?|\))\s*\(\s*(?=['"`])/g)) {
    const name = literalAt(src, m.index! + m[0].length);
    if (name !== undefined) names.push(name);
  }
  return names;
}

/**
 * A spec's text and that of the test helpers it imports by relative path (transitively), leaving
 * out product code under `src/`: the fault suite's tests are declared in `run-scenarios.ts` and
 * named after the scenarios of `scenarios.ts`.
 */
function specSources(file: string, seen = new Set<string>()): string[] {
  if (seen.has(file)) return [];
  seen.add(file);
  const src = readFileSync(file, 'utf8');
  const out = [src];
  for (const m of src.matchAll(/from '(\.\.?\/[^']+)'/g)) {
    const base = resolve(dirname(file), m[1]);
    const helper = [`${base}.ts`, join(base, 'index.ts')].find((p) => existsSync(p));
    if (helper && !helper.split('/').includes('src')) out.push(...specSources(helper, seen));
  }
  return out;
}

/** Jest's placeholders in test names: printf-style (`it.each` with arrays), `$key` (with objects), and template literals' `${…}`. */
const PLACEHOLDER = /%[sdifjop#]|\$\{[^}]*\}|\$[A-Za-z_][\w.]*/g;
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Whether `name` is what the template `template` gives when each placeholder is filled with text that occurs in `texts`. */
function fillsTemplate(template: string, name: string, texts: string): boolean {
  const parts = template.split(PLACEHOLDER);
  if (parts.length === 1) return false;
  const m = new RegExp(`^${parts.map(escapeRegExp).join('(.+?)')}$`, 's').exec(name);
  return !!m && m.slice(1).every((filled) => texts.includes(filled));
}

/** Why a cited test is not found, or undefined when it is. */
function missing(c: Citation): string | undefined {
  const path = join(ROOT, c.file);
  if (!existsSync(path)) return `${c.file}: no such file`;
  const texts = specSources(path);
  const names = texts.flatMap(testNames);
  if (names.includes(c.name)) return undefined;
  const all = texts.join('\n');
  if (names.some((t) => fillsTemplate(t, c.name, all))) return undefined;
  return `${c.file}: no test named "${c.name}"`;
}

describe('docs/invariants.md', () => {
  const { headings, citations, malformed } = parseInvariants(read(INVARIANTS));

  it('numbers its invariants 1..N, each citing at least three tests in the form - `file.spec.ts` — "name"', () => {
    expect(headings.length).toBeGreaterThan(0);
    expect(headings.map((h) => h.n)).toEqual(headings.map((_, i) => i + 1));
    expect(malformed).toEqual([]);
    for (const h of headings)
      expect({ invariant: h.n, tests: citations.filter((c) => c.invariant === h.n).length >= 3 }).toEqual({ invariant: h.n, tests: true });
  });

  (existsSync(DESIGN) ? it : it.skip)('has exactly the invariants of DESIGN.md, in its order, under their titles', () => {
    const design = designInvariants(readFileSync(DESIGN, 'utf8'));
    expect(design.length).toBeGreaterThan(0);
    expect(headings.length).toBe(design.length);
    for (const [i, title] of design.entries()) expect(headings[i]?.title.startsWith(title) ? title : headings[i]?.title).toBe(title);
  });

  it('cites only tests that exist: the spec file, and a test of that name in it', () => {
    expect(citations.length).toBeGreaterThan(0);
    expect(citations.map(missing).filter(Boolean)).toEqual([]);
  });

  it('names only repository files that exist', () => {
    const named = [...read(INVARIANTS).matchAll(/`((?:apps|libs|tools|docs|deploy|sdk)\/[^`\s]+\.(?:ts|js|md))`/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
  });

  it('recognises test names as jest gives them (a check of the checker)', () => {
    const src = [
      "it('plain', () => {});",
      "it('a tenant\\'s job', () => {});",
      "it.each([['x', 1]])('%s: its own status', () => {});",
      '(ok ? it : it.skip)(`seed ${seed}: fine`, () => {});',
      "describe('group', () => { test(\"quoted 'inner'\", () => {}); });",
    ].join('\n');
    expect(testNames(src)).toEqual(['plain', "a tenant's job", '%s: its own status', 'seed ${seed}: fine', "quoted 'inner'"]);
    expect(fillsTemplate('%s: its own status', 'x: its own status', src)).toBe(true);
    expect(fillsTemplate('%s: its own status', 'nope: its own status', src)).toBe(false); // "nope" is in no row
    expect(fillsTemplate('%s: its own status', 'x: another status', src)).toBe(false);
  });
});

describe('docs/architecture.md error table', () => {
  const lines = section(read(ARCHITECTURE), '## Errors').filter((l) => l.startsWith('|'));
  // The header and the separator, then one row per code.
  const body = lines.slice(2);
  const rows = body.map((l) => /^\| (\d{3}) \| `([a-z_]+)` \| .+ \|$/.exec(l));

  it('has one row per code: | status | `code` | when |', () => {
    expect(lines[0]).toMatch(/^\| status \| code \|/);
    expect(body.filter((_, i) => !rows[i])).toEqual([]);
  });

  it('lists every ErrorCode once, with its status from statusOf, and no other code', () => {
    const listed = rows.flatMap((r) => (r ? [{ code: r[2], status: Number(r[1]) }] : []));
    expect(listed.map((r) => r.code).sort()).toEqual([...Object.values(ErrorCode)].sort());
    for (const r of listed) expect(r).toEqual({ code: r.code, status: statusOf[r.code as ErrorCode] });
  });
});
