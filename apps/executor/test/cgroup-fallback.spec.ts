/**
 * Limits on a cgroup v2 tree (a directory of this test's standing in for /sys/fs/cgroup): an
 * attempt's group gets memory.max and, by `CpuLimit`, cpu.weight (`soft`, the default) or cpu.max
 * (`hard`) — on v1, cpu.shares or cpu.cfs_quota_us — and the executor's `batchapi` group is asked to
 * delegate the memory and cpu controllers to it; when the group cannot be made or limited, the
 * attempt is not run unlimited: it runs under address-space rlimits (prlimit) and the fallback is
 * logged.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Binding } from '@batchapi/api';
import pino from 'pino';
import { ProcessBackend } from '../src/attempt-backend';
import { AttemptLimits, cgroupOwner, cpuShares, cpuWeight, detectIsolation } from '../src/isolation';
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

/** A directory that looks like a cgroup v1 root to `detectIsolation` (memory and cpu hierarchies with their limit files). */
function fakeCgroup1Root(): string {
  const root = join(dir, 'cgroup1');
  mkdirSync(join(root, 'memory'), { recursive: true });
  mkdirSync(join(root, 'cpu'), { recursive: true });
  writeFileSync(join(root, 'memory', 'memory.limit_in_bytes'), '9223372036854771712');
  writeFileSync(join(root, 'cpu', 'cpu.cfs_quota_us'), '-1');
  return root;
}

it.each([
  // shares = max(2, ⌊m × 1024 / 1000⌋), at most 262,144; weight = 1 + ⌊(shares − 2) × 9,999 / 262,142⌋
  [1, 2, 1], //             1.024 → 2 (the least)
  [100, 102, 4], //         102.4 → 102; 100 × 9,999 / 262,142 = 3.8
  [1000, 1024, 39], //      a core: 1,022 × 9,999 / 262,142 = 38.98
  [1500, 1536, 59], //      1,534 × 9,999 / 262,142 = 58.5
  [256_000, 262_144, 10_000], // the most
  [1_000_000, 262_144, 10_000], // capped
])('a request of %i millicores weighs cpu.shares %i (cgroup v1), cpu.weight %i (v2)', (millicores, shares, weight) => {
  expect(cpuShares(millicores)).toBe(shares);
  expect(cpuWeight(millicores)).toBe(weight);
});

it('limits an attempt by its own group: memory.max, a cpu.weight of its request (soft, the default), and the controllers delegated by the parent', () => {
  const root = fakeCgroup2Root();
  expect(detectIsolation(root)).toBe('cgroup2');
  // 1.5 CPUs weigh 59 (see above); 256 MiB = 268,435,456 bytes
  const argv = new AttemptLimits('cgroup2', 'n-j-0-1', { cpu: 1500, memory: 268_435_456 }, root).wrap(['true']);
  const group = join(root, 'batchapi', 'n-j-0-1');
  expect(readFileSync(join(group, 'memory.max'), 'utf8')).toBe('268435456');
  expect(readFileSync(join(group, 'cpu.weight'), 'utf8')).toBe('59');
  // no quota: idle CPU is the attempt's to use
  expect(existsSync(join(group, 'cpu.max'))).toBe(false);
  expect(existsSync(join(root, 'batchapi', 'cgroup.subtree_control'))).toBe(true);
  expect(argv.slice(0, 2)).toEqual(['sh', '-c']);
  expect(argv[2]).toContain(`echo $$ > '${group}/cgroup.procs'`);
});

it('limits an attempt to exactly its request with a hard CPU limit: cpu.max', () => {
  const root = fakeCgroup2Root();
  // 1.5 CPUs = 150,000 µs of each 100,000 µs period
  new AttemptLimits('cgroup2', 'n-j-0-1', { cpu: 1500, memory: 268_435_456 }, root, 'hard').wrap(['true']);
  const group = join(root, 'batchapi', 'n-j-0-1');
  expect(readFileSync(join(group, 'cpu.max'), 'utf8')).toBe('150000 100000');
  expect(existsSync(join(group, 'cpu.weight'))).toBe(false);
});

it.each([
  ['soft', 'cpu.shares', '1536', 'cpu.cfs_quota_us'],
  ['hard', 'cpu.cfs_quota_us', '150000', 'cpu.shares'],
] as const)('on cgroup v1, a %s CPU limit writes %s = %s and no %s', (mode, file, value, absent) => {
  const root = fakeCgroup1Root();
  expect(detectIsolation(root)).toBe('cgroup1');
  new AttemptLimits('cgroup1', 'n-j-0-1', { cpu: 1500, memory: 268_435_456 }, root, mode).wrap(['true']);
  const group = join(root, 'cpu', 'batchapi', 'n-j-0-1');
  expect(readFileSync(join(group, file), 'utf8')).toBe(value);
  expect(existsSync(join(group, absent))).toBe(false);
  expect(readFileSync(join(root, 'memory', 'batchapi', 'n-j-0-1', 'memory.limit_in_bytes'), 'utf8')).toBe('268435456');
});

it.each([
  // [setting, file written, value, file not written]: 1 CPU is 100,000 µs a 100,000 µs period, or weighs 39
  ['hard', 'cpu.max', '100000 100000', 'cpu.weight'],
  ['soft', 'cpu.weight', '39', 'cpu.max'],
] as const)("the process backend's attempts follow BATCH_CPU_LIMIT=%s: %s = %s, no %s", async (cpuLimit, file, value, absent) => {
  const root = fakeCgroup2Root();
  const backend = new ProcessBackend({
    dataDir: join(dir, 'data'),
    nodeName: 'n',
    isolation: 'auto',
    cpuLimit,
    log: pino({ level: 'silent' }),
    cgroupRoot: root,
  });
  const binding = { jobId: 'j', node: 'n', start: 0, end: 1, attempt: 1, resources: { cpu: 1000, memory: 268_435_456 }, command: ['sh', '-c', 'echo ran'] };
  const paths = attemptPaths(join(dir, 'data'), 'j', 0, 1);
  const attempt = backend.start(binding as unknown as Binding, 0, { PATH: process.env.PATH ?? '/usr/bin:/bin' }, paths);
  expect(await attempt.exited).toMatchObject({ exitCode: 0 });
  const group = join(root, 'batchapi', `${cgroupOwner('n', join(dir, 'data'))}-j-0-1`);
  expect(readFileSync(join(group, file), 'utf8')).toBe(value);
  expect(existsSync(join(group, absent))).toBe(false);
  attempt.release();
});

it.each([
  // a task that asks for no CPU weighs the least (shares 2, weight 1), not the kernel's default (a core: 1,024 / 100)
  ['cgroup2', ['batchapi', 'n-j-0-1', 'cpu.weight'], '1'],
  ['cgroup1', ['cpu', 'batchapi', 'n-j-0-1', 'cpu.shares'], '2'],
] as const)('on %s, a soft CPU limit gives a task without a CPU request the least weight', (kind, path, value) => {
  const root = kind === 'cgroup2' ? fakeCgroup2Root() : fakeCgroup1Root();
  new AttemptLimits(kind, 'n-j-0-1', { memory: 268_435_456 }, root).wrap(['true']);
  expect(readFileSync(join(root, ...path), 'utf8')).toBe(value);
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

it("an executor's start sweeps only its own attempts' cgroups, not those of another executor of the same node name on the machine", async () => {
  // Every local cluster's first executor is node `local-0`, and the machine's cgroup tree is shared.
  // Executor A starts an attempt: its group is made, and is empty until the task joins it (the
  // files this test's tree keeps in it stand for a real group's control files, which rmdir ignores:
  // taken out, the group is as rmdir finds it in that moment).
  const root = fakeCgroup2Root();
  const log = pino({ level: 'silent' });
  const backend = (data: string) => new ProcessBackend({ dataDir: join(dir, data), nodeName: 'local-0', isolation: 'auto', log, cgroupRoot: root });
  const a = backend('a');
  const binding = { jobId: 'j', node: 'local-0', start: 0, end: 1, attempt: 1, resources: { cpu: 100, memory: 67_108_864 }, command: ['true'] };
  const attempt = a.start(binding as unknown as Binding, 0, { PATH: process.env.PATH ?? '/usr/bin:/bin' }, attemptPaths(join(dir, 'a'), 'j', 0, 1));
  await attempt.exited;
  const [group] = readdirSync(join(root, 'batchapi'), { withFileTypes: true }).filter((e) => e.isDirectory());
  const groupDir = join(root, 'batchapi', group.name);
  for (const f of readdirSync(groupDir)) rmSync(join(groupDir, f));
  // Another cluster's executor `local-0` (its own data dir) starts now: A's group stays, else A's
  // task could not join it and failed with exit code 2 before its command ran.
  await backend('b').reclaim();
  expect(existsSync(groupDir)).toBe(true);
  // A restarted (same node, same data dir) sweeps what it left.
  await backend('a').reclaim();
  expect(existsSync(groupDir)).toBe(false);
});
