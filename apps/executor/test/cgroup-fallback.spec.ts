/**
 * Limits on a cgroup v2 tree (a directory of this test's standing in for /sys/fs/cgroup): an
 * attempt's group gets memory.max and cpu.max, and the executor's `batchapi` group is asked to
 * delegate the memory and cpu controllers to it; when the group cannot be made or limited, the
 * attempt is not run unlimited: it runs under address-space rlimits (prlimit) and the fallback is
 * logged.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Binding } from '@batchapi/api';
import pino from 'pino';
import { ProcessBackend } from '../src/attempt-backend';
import { AttemptLimits, detectIsolation } from '../src/isolation';
import { attemptPaths } from '../src/task-process';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'batch-cgroup-fallback-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A directory that looks like a cgroup v2 root to `detectIsolation` (it has `cgroup.controllers`, and groups can be made in it). */
function fakeCgroup2Root(): string {
  const root = join(dir, 'cgroup');
  mkdirSync(root);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  return root;
}

it('limits an attempt by its own group: memory.max, cpu.max, and the controllers delegated by the parent', () => {
  const root = fakeCgroup2Root();
  expect(detectIsolation(root)).toBe('cgroup2');
  // 1.5 CPUs = 150,000 µs of each 100,000 µs period; 256 MiB = 268,435,456 bytes
  const argv = new AttemptLimits('cgroup2', 'n-j-0-1', { cpu: 1500, memory: 268_435_456 }, root).wrap(['true']);
  const group = join(root, 'batchapi', 'n-j-0-1');
  expect(readFileSync(join(group, 'memory.max'), 'utf8')).toBe('268435456');
  expect(readFileSync(join(group, 'cpu.max'), 'utf8')).toBe('150000 100000');
  expect(existsSync(join(root, 'batchapi', 'cgroup.subtree_control'))).toBe(true);
  expect(argv.slice(0, 2)).toEqual(['sh', '-c']);
  expect(argv[2]).toContain(`echo $$ > '${group}/cgroup.procs'`);
});

it('runs an attempt under rlimits, not unlimited, when its cgroup cannot be made', async () => {
  const root = fakeCgroup2Root();
  // the executor's group is a file: every attempt's group under it fails to be made
  writeFileSync(join(root, 'batchapi'), '');
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => lines.push(l) });
  const backend = new ProcessBackend({ dataDir: join(dir, 'data'), nodeName: 'n', isolation: 'auto', log, cgroupRoot: root });
  expect(backend.isolation).toBe('cgroup2');
  const binding = { jobId: 'j', node: 'n', start: 0, end: 1, attempt: 1, resources: { cpu: 1000, memory: 268_435_456 }, command: ['sh', '-c', 'echo ran'] };
  const paths = attemptPaths(join(dir, 'data'), 'j', 0, 1);
  const attempt = backend.start(binding as unknown as Binding, 0, { PATH: process.env.PATH ?? '/usr/bin:/bin' }, paths);
  expect(await attempt.exited).toMatchObject({ exitCode: 0 });
  expect(readFileSync(paths.stdout, 'utf8')).toBe('ran\n');
  const warning = JSON.parse(lines.find((l) => l.includes("could not set up the attempt's cgroup"))!) as { fallback: string; msg: string };
  expect(warning).toMatchObject({ fallback: 'rlimit', msg: "could not set up the attempt's cgroup; limited by rlimit instead" });
  attempt.release();
});
