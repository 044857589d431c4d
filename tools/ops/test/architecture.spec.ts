/**
 * docs/architecture.md's project and tag tables against every package.json (what `nx graph`
 * draws): every project is listed with its path, tagged as the tag table says, and depends only
 * on what its tag may import.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '../../..');
const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8').split('\n');

interface Pkg {
  name: string;
  nx?: { tags?: string[] };
  dependencies?: Record<string, string>;
}
const projects = new Map<string, { path: string; pkg: Pkg }>();
for (const dir of ['libs', 'apps', 'tools'])
  for (const name of readdirSync(join(ROOT, dir))) {
    const file = join(ROOT, dir, name, 'package.json');
    if (existsSync(file)) projects.set(name, { path: `${dir}/${name}`, pkg: JSON.parse(readFileSync(file, 'utf8')) as Pkg });
  }
const backticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
const ours = (deps: Record<string, string> | undefined) =>
  Object.keys(deps ?? {})
    .filter((d) => d.startsWith('@batchapi/'))
    .map((d) => d.slice('@batchapi/'.length));

const listed = doc.flatMap((l) => /^\| `((?:libs|apps)\/[\w-]+)` \| (?:lib|service|app) \|/.exec(l)?.[1] ?? []);
const tagRows = doc.flatMap((l) => {
  const m = /^\| `(type:[\w]+)` \| (.*?) \| (.*) \|$/.exec(l);
  return m ? [{ tag: m[1], projects: backticked(m[2]), may: m[3] }] : [];
});

describe('docs/architecture.md matches the projects', () => {
  it('lists every library and app with its path, once', () => {
    const actual = [...projects.values()].map((p) => p.path).filter((p) => !p.startsWith('tools/'));
    expect([...listed].sort()).toEqual(actual.sort());
  });

  it('names every project under the tag its package.json carries', () => {
    const byDoc = new Map(tagRows.flatMap((r) => r.projects.filter((p) => projects.has(p)).map((p) => [p, r.tag] as const)));
    const byPkg = new Map([...projects].map(([name, p]) => [name, (p.pkg.nx?.tags ?? []).join(',')]));
    expect(Object.fromEntries(byDoc)).toEqual(Object.fromEntries(byPkg));
  });

  it('has every project depend only on what its tag may import', () => {
    const libs = [...projects.values()].filter((p) => p.path.startsWith('libs/')).map((p) => p.pkg.name.slice('@batchapi/'.length));
    const services = ['admission', 'quota', 'scheduler', 'executor'];
    const allowed = (tag: string): string[] => {
      const row = tagRows.find((r) => r.tag === tag)!;
      if (row.may.startsWith('anything')) return [...projects.keys()];
      if (row.may.startsWith('nothing')) return [];
      if (row.may.startsWith('every library')) return libs;
      const named = backticked(row.may).filter((n) => projects.has(n));
      if (row.may.includes('the pure libraries')) named.push(...tagRows.find((r) => r.tag === 'type:pure')!.projects);
      return named;
    };
    const violations: string[] = [];
    for (const [name, { pkg }] of projects) {
      const may = new Set(allowed(pkg.nx?.tags?.[0] ?? ''));
      // The CLI starts the services' dist/main.js as child processes (documented in the tag table).
      if (name === 'cli') for (const s of services) may.add(s);
      for (const dep of ours(pkg.dependencies)) if (!may.has(dep)) violations.push(`${name} → ${dep}`);
    }
    expect(violations).toEqual([]);
  });
});
