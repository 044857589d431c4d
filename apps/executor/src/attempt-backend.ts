/**
 * What runs this node's attempts: child processes (limited by cgroups or rlimits, their process
 * groups recorded for the watchdog) or Kubernetes pods; simulated attempts (`SimulatedBackend`,
 * timers for simulated fleets) implement the same interface. The agent picks one at registration
 * and its `GroupRunner`s speak only to this interface. Owns the backend-neutral
 * `RunningAttempt`/`AttemptExit`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Binding, GpuDevice, ResourceVector } from '@batchapi/api';
import type { Clock } from '@batchapi/runtime';
import type { Logger } from 'pino';
import { AttemptLimits, cgroupOwner, type CpuLimit, detectIsolation, type IsolationKind, sweepCgroups } from './isolation';
import type { KubernetesBackend } from './kubernetes';
import { ProcessGroupLedger } from './process-group-ledger';
import { type attemptPaths, type ProcessExit, TaskProcess } from './task-process';

/** How an attempt on any backend ended, beyond a process's exit. */
export interface AttemptExit extends ProcessExit {
  /** The container was killed at its memory limit. */
  oomKilled?: boolean;
  /** The backend stopped it at its deadline. */
  deadlineExceeded?: boolean;
  /**
   * With `nodeError`: the node refused it for lack of room (the kubelet's `OutOfcpu`, pods that
   * are not BatchAPI's took it). Requeued like any node error; the node's capacity is read
   * again, and only a refusal the new capacity does not explain counts toward quarantine.
   */
  nodeFull?: boolean;
}

/** A running attempt, whatever runs it. */
export interface RunningAttempt {
  readonly exited: Promise<AttemptExit>;
  readonly pid?: number;
  /** SIGTERM (or a graceful delete), then SIGKILL after `graceMs`. */
  stop(graceMs: number): void;
  /** At once. */
  kill(): void;
}

/** An attempt as its backend started it: what the agent asks of it once it ended. */
export interface StartedAttempt extends RunningAttempt {
  /** Once ended: the backend's own sign that it was killed at its memory limit (its cgroup's OOM kills). */
  oomKilled(): boolean;
  /** Once ended and classified: frees what the backend set up for it (its cgroups). */
  release(): void;
}

/** A node's resources as its backend sees them, when they are not the executor's configuration. */
export interface NodeInventory {
  capacity: ResourceVector;
  gpus: GpuDevice[];
  labels: Record<string, string>;
}

/** What a previous executor on this machine left, found (and killed) at start. */
export interface Reclaimed {
  /** A previous incarnation ran tasks here: its bindings of the first listing may be left over. */
  previousRan: boolean;
  /** Task process groups it left running, now killed. */
  leftovers: number;
}

/** Runs attempts for the agent. */
export interface AttemptBackend {
  /** How attempts are limited on this machine (cgroup v2/v1, rlimits, none). */
  readonly isolation: IsolationKind;
  /** Whether it runs a job's `workingDir` (unpacked into the attempt's work dir by the group runner); false: such attempts fail with a message saying so. */
  readonly workingDirs: boolean;
  /** Whether it runs a job's `python` environment (a venv built on this machine, first on the attempt's PATH); false: such attempts fail with a message saying so. */
  readonly pythonEnvs: boolean;
  /** The process-group ledger file the watchdog kills every task from when the lease is lost; none when no process runs (simulated). */
  readonly ledgerFile?: string;
  /** Kills what a previous executor of this node left on this machine and tells whether it ran tasks. Once, before anything starts. */
  reclaim(): Promise<Reclaimed>;
  /** The node's resources, read from the backend (and again after it refused an attempt for room); `undefined`: the configuration's. */
  inventory(): Promise<NodeInventory | undefined>;
  /** Starts one attempt; a start that fails shows as its exit (`nodeError` when it is the node's fault). */
  start(b: Binding, index: number, env: Record<string, string>, paths: ReturnType<typeof attemptPaths>): StartedAttempt;
  /** Stops watching; running attempts are left to the fence and their deadlines. */
  close(): void;
}

/** Where the process backend keeps its state. */
export interface ProcessBackendOptions {
  /** The executor's data directory: the ledger is `<dataDir>/process-groups`. */
  dataDir: string;
  nodeName: string;
  /** `none` turns resource limits off; `auto` uses the best this machine offers. */
  isolation: 'auto' | 'none';
  /** How an attempt's CPU request limits it (see `CpuLimit`). @default "soft" */
  cpuLimit?: CpuLimit;
  log: Logger;
  /** What the wait for a previous executor's leftover processes is measured on. @default the machine's CLOCK_MONOTONIC */
  clock?: Pick<Clock, 'monotonic'>;
  /** The cgroup filesystem's root (tests give a directory of their own). @default "/sys/fs/cgroup" */
  cgroupRoot?: string;
}

/** Ended attempts between two compactions of the process-group ledger. */
const COMPACT_EVERY = 256;

/**
 * Attempts as child processes: each in its own process group, recorded in the ledger the
 * watchdog kills from, limited by a cgroup (or rlimits) of its resources.
 */
export class ProcessBackend implements AttemptBackend {
  readonly isolation: IsolationKind;
  readonly workingDirs = true;
  readonly pythonEnvs = true;
  /** Whether a task can be given a read-only bind mount of its work dir in a mount namespace of its own (asked once, at the first working dir). */
  private readOnlyMounts?: boolean;
  readonly ledgerFile: string;
  private readonly ledger: ProcessGroupLedger;
  private endedSinceCompaction = 0;
  /** Whether util-linux `prlimit` runs here (asked once, when a cgroup first fails). */
  private prlimit?: boolean;
  /** The prefix of its attempts' cgroups (`cgroupOwner`): its sweep removes those, never another executor's of the same node name. */
  private readonly cgroupPrefix: string;

  constructor(private readonly o: ProcessBackendOptions) {
    this.ledgerFile = join(o.dataDir, 'process-groups');
    this.ledger = new ProcessGroupLedger(this.ledgerFile, o.nodeName, undefined, o.clock);
    this.isolation = o.isolation === 'none' ? 'none' : detectIsolation(o.cgroupRoot);
    this.cgroupPrefix = cgroupOwner(o.nodeName, o.dataDir);
  }

  /**
   * Its tasks are found by their environment as well as by the ledger: one started just as it
   * died may not be recorded. Empty cgroups it left are removed.
   */
  async reclaim(): Promise<Reclaimed> {
    const recorded = this.ledger.hasRecords();
    const leftovers = await this.ledger.reapLeftovers();
    sweepCgroups(this.isolation, this.cgroupPrefix, this.o.cgroupRoot);
    return { previousRan: recorded || leftovers > 0, leftovers };
  }

  /** The node is what the executor's configuration says. */
  async inventory(): Promise<undefined> {
    return undefined;
  }

  start(b: Binding, index: number, env: Record<string, string>, paths: ReturnType<typeof attemptPaths>): StartedAttempt {
    const limits = new AttemptLimits(this.isolation, `${this.cgroupPrefix}-${b.jobId}-${index}-${b.attempt}`, b.resources, this.o.cgroupRoot, this.o.cpuLimit);
    let argv: string[];
    // Permission bits do not stop a task that runs as root: its working dir is then also mounted read-only for it alone.
    const command = b.workingDir && this.canMountReadOnly() ? readOnlyWorkDir(paths.workDir, b.command) : b.command;
    try {
      argv = limits.wrap(command);
    } catch (err) {
      // the cgroup could not be made or limited (a controller not delegated): address-space rlimits instead, never no limit when prlimit exists
      limits.remove();
      const fallback: IsolationKind = this.rlimitAvailable() ? 'rlimit' : 'none';
      argv = new AttemptLimits(fallback, limits.name, b.resources, this.o.cgroupRoot, this.o.cpuLimit).wrap(command);
      this.o.log.warn({ err: (err as Error).message, job: b.jobId, index, fallback }, `could not set up the attempt's cgroup; limited by ${fallback} instead`);
    }
    const proc = new TaskProcess(argv, env, paths);
    if (proc.pid && !this.ledger.record(proc.pid))
      this.o.log.warn({ pid: proc.pid, job: b.jobId, index }, 'could not record a task process group; the watchdog cannot kill it');
    return {
      exited: proc.exited,
      get pid() {
        return proc.pid;
      },
      stop: (graceMs) => proc.stop(graceMs),
      kill: () => proc.kill(),
      oomKilled: () => limits.oomKilled(),
      release: () => {
        limits.remove();
        this.attemptEnded();
      },
    };
  }

  close(): void {
    /* nothing watched */
  }

  private canMountReadOnly(): boolean {
    if (this.readOnlyMounts === undefined) {
      const probe = mkdtempSync(join(tmpdir(), 'batch-ro-probe-'));
      try {
        const [program, ...args] = readOnlyWorkDir(probe, ['sh', '-c', '! touch x 2>/dev/null']);
        this.readOnlyMounts = spawnSync(program, args).status === 0;
      } finally {
        rmSync(probe, { recursive: true, force: true });
      }
      if (!this.readOnlyMounts)
        this.o.log.warn('no mount namespaces here (unshare --mount): working dirs are read-only by permissions only, which a task running as root ignores');
    }
    return this.readOnlyMounts;
  }

  private rlimitAvailable(): boolean {
    this.prlimit ??= spawnSync('prlimit', ['--version']).status === 0;
    return this.prlimit;
  }

  /** Keeps the process-group ledger to the groups that still run: rewritten once every `COMPACT_EVERY` ended attempts. */
  attemptEnded(): void {
    if (++this.endedSinceCompaction < COMPACT_EVERY) return;
    this.endedSinceCompaction = 0;
    try {
      this.ledger.compact();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'could not compact the process-group ledger');
    }
  }
}

/**
 * `command` in a mount namespace of its own (util-linux `unshare`) where `dir` is bind-mounted
 * over itself read-only, started from inside that mount (a cwd entered before the mount would
 * still be the writable directory beneath). The mount vanishes with the task's processes.
 */
export function readOnlyWorkDir(dir: string, command: string[]): string[] {
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && cd "$0" && exec "$@"',
    dir,
    ...command,
  ];
}

/**
 * Attempts as Kubernetes pods, which get their limits from Kubernetes; their left-overs are
 * deleted by `KubernetesBackend` as its watch sees them. This machine's process groups and
 * cgroups (a process executor may have used this data directory; the watchdog reads its ledger)
 * are still reclaimed through `machine`. The client is made at the first inventory.
 */
export class KubernetesAttemptBackend implements AttemptBackend {
  /** A pod runs on another machine than the executor's files: no working dirs yet (docs/executor.md). */
  readonly workingDirs = false;
  /** Nor Python environments: a venv built here is not in the pod's image. */
  readonly pythonEnvs = false;
  private pods?: KubernetesBackend;

  constructor(
    private readonly machine: ProcessBackend,
    private readonly connect: () => KubernetesBackend,
  ) {}

  get isolation(): IsolationKind {
    return this.machine.isolation;
  }

  get ledgerFile(): string {
    return this.machine.ledgerFile;
  }

  reclaim(): Promise<Reclaimed> {
    return this.machine.reclaim();
  }

  /** The Kubernetes cluster is this node: its capacity is what the cluster's nodes can allocate. */
  inventory(): Promise<NodeInventory> {
    this.pods ??= this.connect();
    return this.pods.inventory();
  }

  start(b: Binding, index: number, env: Record<string, string>, paths: ReturnType<typeof attemptPaths>): StartedAttempt {
    this.pods ??= this.connect();
    const pod = this.pods.start(b, index, env, paths);
    return { ...pod, oomKilled: () => false, release: () => this.machine.attemptEnded() };
  }

  close(): void {
    this.pods?.close();
  }
}
