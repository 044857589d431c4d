/**
 * Resource isolation of task attempts: a cgroup per attempt with its CPU quota and memory
 * limit (cgroup v2, or v1 as on these machines), else address-space rlimits through
 * util-linux `prlimit`. The attempt joins its cgroup before its command runs (a tiny shell
 * prelude writes its own pid, then execs), and an OOM kill is read back from the cgroup.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { NodeIsolation, ResourceVector } from '@batchapi/api';

/** How attempts are limited on this machine. */
export type IsolationKind = 'cgroup2' | 'cgroup1' | 'rlimit' | 'none';

/**
 * How an attempt's CPU request limits it in its cgroup:
 * - `soft` — a weight (cgroup v2 `cpu.weight`, v1 `cpu.shares`) in proportion to the request: on a
 *   busy node attempts share the CPU their group gets in proportion to their requests (a task that
 *   asks for none weighs the least), and an attempt may use idle CPU beyond its request, as a
 *   Kubernetes container with a CPU request and no limit, a Nomad task by default, or an ECS task
 *   on EC2. A task of 0.1 CPU starts its interpreter at full speed on an idle node, not at a tenth
 *   of it (a Python task's start took 2.4 s instead of 0.3 s under a 100m quota);
 * - `hard` — a CFS quota equal to the request (v2 `cpu.max`, v1 `cpu.cfs_quota_us`): never more,
 *   even when the node is idle (Kubernetes' requests = limits).
 * Memory is always a hard limit.
 */
export type CpuLimit = 'soft' | 'hard';

/**
 * The cgroup v1 `cpu.shares` of a CPU request (the kubelet's `MilliCPUToShares`): 1,024 a core.
 *   shares = min(262,144, max(2, ⌊millicores × 1024 / 1000⌋))
 */
export function cpuShares(millicores: number): number {
  return Math.max(2, Math.min(262_144, Math.floor((millicores * 1024) / 1000)));
}

/**
 * The cgroup v2 `cpu.weight` of a CPU request: its `cpuShares` mapped linearly onto 1–10,000, as
 * runc did before 1.3.2 (2 → 1, 1,024 → 39, 262,144 → 10,000; later runc maps log-quadratically,
 * 1,024 → 100). Only the ratios between the attempts under one parent matter, and a linear map
 * keeps them.
 *   weight = 1 + ⌊(shares − 2) × 9,999 / 262,142⌋
 */
export function cpuWeight(millicores: number): number {
  return 1 + Math.floor(((cpuShares(millicores) - 2) * 9999) / 262_142);
}

const ROOT = '/sys/fs/cgroup';
/** CFS period, microseconds. */
const PERIOD_US = 100_000;

/** Finds what this machine allows, trying to create (and remove) a probe group. */
export function detectIsolation(root = ROOT): IsolationKind {
  const probe = (dir: string) => {
    try {
      const p = join(dir, `batchapi-probe-${process.pid}`);
      mkdirSync(p);
      rmdirSync(p);
      return true;
    } catch {
      return false;
    }
  };
  if (existsSync(join(root, 'cgroup.controllers')) && probe(root)) return 'cgroup2';
  if (
    existsSync(join(root, 'memory', 'memory.limit_in_bytes')) &&
    existsSync(join(root, 'cpu', 'cpu.cfs_quota_us')) &&
    probe(join(root, 'memory')) &&
    probe(join(root, 'cpu'))
  )
    return 'cgroup1';
  if (spawnSync('prlimit', ['--version']).status === 0) return 'rlimit';
  return 'none';
}

/**
 * The isolation level a node reports in its record: the kind and, for cgroup v2, the controllers
 * delegated to the executor (`cgroup.controllers` of its cgroup root; without `memory` or `cpu`
 * there, that limit is not applied). An unreadable list reports none.
 */
export function isolationReport(kind: IsolationKind, root = ROOT): NodeIsolation {
  if (kind !== 'cgroup2') return { kind };
  try {
    const controllers = readFileSync(join(root, 'cgroup.controllers'), 'utf8').split(/\s+/).filter(Boolean).sort();
    return { kind, controllers };
  } catch {
    return { kind, controllers: [] };
  }
}

/** The limits of one attempt, applied around its command. */
export class AttemptLimits {
  private readonly dirs: string[] = [];

  constructor(
    readonly kind: IsolationKind,
    readonly name: string,
    readonly resources: ResourceVector,
    private readonly root = ROOT,
    /** @default "soft" */
    readonly cpuLimit: CpuLimit = 'soft',
  ) {}

  /** Creates the cgroup(s) and returns the argv that runs `command` inside the limits. */
  wrap(command: string[]): string[] {
    const memory = this.resources.memory;
    const cpu = this.resources.cpu && this.resources.cpu > 0 ? this.resources.cpu : 0;
    const hard = this.cpuLimit === 'hard';
    // Hard: a quota of the request (none when it asks for no CPU). Soft: always a weight — a task
    // that asks for no CPU weighs the least (`cpuShares(0)`), not the kernel's default of a core.
    const cpuQuota = cpu && hard ? Math.max(1000, Math.round((cpu / 1000) * PERIOD_US)) : undefined;
    if (this.kind === 'cgroup2') {
      const parent = join(this.root, 'batchapi');
      const dir = join(parent, this.name);
      mkdirSync(dir, { recursive: true });
      // a child group has memory.max and cpu.max / cpu.weight only when its parent delegates those controllers
      const cpuFile = cpuQuota ? 'cpu.max' : hard ? undefined : 'cpu.weight';
      if ((memory && !existsSync(join(dir, 'memory.max'))) || (cpuFile && !existsSync(join(dir, cpuFile)))) enableControllers(parent);
      if (memory) writeFileSync(join(dir, 'memory.max'), String(memory));
      if (cpuQuota) writeFileSync(join(dir, 'cpu.max'), `${cpuQuota} ${PERIOD_US}`);
      else if (!hard) writeFileSync(join(dir, 'cpu.weight'), String(cpuWeight(cpu)));
      this.dirs.push(dir);
    } else if (this.kind === 'cgroup1') {
      const mem = join(this.root, 'memory', 'batchapi', this.name);
      const cpuDir = join(this.root, 'cpu', 'batchapi', this.name);
      mkdirSync(mem, { recursive: true });
      mkdirSync(cpuDir, { recursive: true });
      if (memory) {
        writeFileSync(join(mem, 'memory.limit_in_bytes'), String(memory));
        try {
          writeFileSync(join(mem, 'memory.memsw.limit_in_bytes'), String(memory));
        } catch {
          /* no swap accounting */
        }
      }
      if (cpuQuota) {
        writeFileSync(join(cpuDir, 'cpu.cfs_period_us'), String(PERIOD_US));
        writeFileSync(join(cpuDir, 'cpu.cfs_quota_us'), String(cpuQuota));
      } else if (!hard) writeFileSync(join(cpuDir, 'cpu.shares'), String(cpuShares(cpu)));
      this.dirs.push(mem, cpuDir);
    } else if (this.kind === 'rlimit' && memory) {
      return ['prlimit', `--as=${memory}`, '--', ...command];
    } else {
      return command;
    }
    // Join the cgroup(s) first, then become the task's command (same pid).
    const join_ = this.dirs.map((d) => `echo $$ > '${d}/cgroup.procs'`).join(' && ');
    return ['sh', '-c', `${join_} && exec "$@"`, 'batch-task', ...command];
  }

  /** True when the kernel's OOM killer killed something in this attempt's cgroup. */
  oomKilled(): boolean {
    try {
      if (this.kind === 'cgroup2') {
        const kills = /oom_kill (\d+)/.exec(readFileSync(join(this.dirs[0], 'memory.events'), 'utf8'));
        return !!kills && Number(kills[1]) > 0;
      }
      if (this.kind === 'cgroup1') {
        // `oom_kill` in memory.oom_control exists since Linux 4.13; older kernels cannot tell.
        const kills = /oom_kill (\d+)/.exec(readFileSync(join(this.dirs[0], 'memory.oom_control'), 'utf8'));
        return !!kills && Number(kills[1]) > 0;
      }
    } catch {
      /* gone */
    }
    return false;
  }

  /** Removes the cgroup(s) once the attempt's processes are gone (retried while its last processes die). */
  remove(tries = 10): void {
    const busy = this.dirs.filter((d) => {
      try {
        rmdirSync(d);
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'EBUSY';
      }
    });
    this.dirs.splice(0, this.dirs.length, ...busy);
    if (busy.length && tries > 0) setTimeout(() => this.remove(tries - 1), 500).unref();
  }
}

/**
 * Best effort: delegates the memory and cpu controllers to the children of `dir` (cgroup v2's
 * `cgroup.subtree_control`). A controller the parent does not have is refused; the attempt's
 * limit write then fails and the backend falls back to rlimits.
 */
function enableControllers(dir: string): void {
  for (const c of ['+memory', '+cpu']) {
    try {
      writeFileSync(join(dir, 'cgroup.subtree_control'), c);
    } catch {
      /* not delegated to us */
    }
  }
}

/**
 * The prefix of the cgroups of one executor's attempts (`<owner>-<job>-<index>-<attempt>`): its
 * node name and a digest of its data directory. The cgroup tree is the machine's, shared by every
 * executor on it, and node names are not unique on a machine (every local cluster's first node is
 * `local-0`): an attempt's group is empty from its creation until its task joins it, and another
 * executor's `sweepCgroups` by node name alone removed it in that moment — the task then failed
 * before its command ran (exit code 2, no traceback). A restart of the same executor (same node,
 * same data directory) has the same owner, and sweeps what its predecessor left.
 */
export function cgroupOwner(node: string, dataDir: string): string {
  return `${node}-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 8)}`;
}

/** Removes empty cgroups a previous executor of the same `owner` (`cgroupOwner`) left behind; never another executor's. */
export function sweepCgroups(kind: IsolationKind, owner: string, root = ROOT): void {
  const parents = kind === 'cgroup2' ? [join(root, 'batchapi')] : kind === 'cgroup1' ? [join(root, 'memory', 'batchapi'), join(root, 'cpu', 'batchapi')] : [];
  for (const parent of parents) {
    let names: string[];
    try {
      names = readdirSync(parent, { withFileTypes: true })
        .filter((e) => e.isDirectory() && e.name.startsWith(`${owner}-`))
        .map((e) => e.name);
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        rmdirSync(join(parent, n));
      } catch {
        /* still in use */
      }
    }
  }
}
