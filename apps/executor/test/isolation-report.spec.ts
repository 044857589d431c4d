/**
 * The isolation level a node reports in its record: the kind, and for cgroup v2 the controllers
 * delegated to the executor, read from `cgroup.controllers` of its cgroup root (a temp dir here).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isolationReport } from '../src/isolation';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'cgroup-root-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

it.each([
  // cgroup v2 with cpu, memory and pids delegated: listed sorted, so the record does not change with the kernel's order
  ['cgroup2, delegated', 'cgroup2', 'memory pids cpu\n', { kind: 'cgroup2', controllers: ['cpu', 'memory', 'pids'] }],
  // cgroup v2 with nothing delegated (an unprivileged container): no limit can be applied
  ['cgroup2, nothing delegated', 'cgroup2', '\n', { kind: 'cgroup2', controllers: [] }],
  // unreadable list: reported as none delegated
  ['cgroup2, no list', 'cgroup2', undefined, { kind: 'cgroup2', controllers: [] }],
  // the other kinds carry no controller list
  ['cgroup1', 'cgroup1', 'cpu memory\n', { kind: 'cgroup1' }],
  ['rlimit fallback', 'rlimit', undefined, { kind: 'rlimit' }],
  ['none', 'none', undefined, { kind: 'none' }],
] as const)('%s', (_name, kind, controllers, expected) => {
  const dir = mkdtempSync(join(root, 'case-'));
  if (controllers !== undefined) writeFileSync(join(dir, 'cgroup.controllers'), controllers);
  expect(isolationReport(kind, dir)).toEqual(expected);
});
