/**
 * The process groups of this node's tasks, found so that a restarted executor — and the
 * watchdog, when the executor is paused, hung or dead — can kill what is left of them: a
 * task's main process dies with its executor (parent-death signal), but the processes it
 * started live on in its group until someone kills the group.
 *
 * A task is recognised by its environment, not only by the file of recorded groups: an
 * executor killed between starting a task (fork, exec) and recording it — or before the
 * parent-death signal was armed — leaves a task that no record names (a clean-clone
 * nemesis run saw one run on beside its own rerun). Every live process whose environment
 * carries `BATCH_NODE=<this node>` and a `BATCH_RESULT_PATH` under this executor's data
 * directory is this node's task; its whole process group is killed.
 */
import { appendFileSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '@batchapi/runtime';
import { monotonicMs } from '@batchapi/store';

/**
 * The machine's CLOCK_MONOTONIC. Not `systemClock`: the watchdog process loads this module and
 * must stay small, so it does not load the service runtime (the `Clock` import is a type only).
 */
const machineMonotonic: Pick<Clock, 'monotonic'> = { monotonic: monotonicMs };

export class ProcessGroupLedger {
  private readonly resultPrefix: string;

  /**
   * @param file where started groups are recorded (one leader pid a line)
   * @param node this executor's node name
   * @param dataDir this executor's data directory, where its tasks' result paths are. @default the directory of `file`
   * @param clock what the wait for killed groups to be gone is measured on. @default the machine's CLOCK_MONOTONIC
   */
  constructor(
    private readonly file: string,
    private readonly node: string,
    dataDir = dirname(file),
    private readonly clock: Pick<Clock, 'monotonic'> = machineMonotonic,
  ) {
    this.resultPrefix = `BATCH_RESULT_PATH=${dataDir.endsWith(sep) ? dataDir : dataDir + sep}`;
  }

  /** Records a started group (its leader's pid); false when the file cannot be written. */
  record(pgid: number): boolean {
    try {
      appendFileSync(this.file, `${pgid}\n`);
      return true;
    } catch {
      return false;
    }
  }

  /** True when a previous executor recorded groups here (it ran tasks, whatever became of them). */
  hasRecords(): boolean {
    return this.recorded().length > 0;
  }

  /**
   * Kills every live process group of this node's tasks, waits until none is left (SIGKILL
   * is delivered asynchronously; a process in uninterruptible sleep dies late) and forgets
   * the records. Resolves to how many groups were killed; rejects when some still live after
   * `timeoutMs` — their attempts must not be run again while they do.
   *
   * @param timeoutMs how long to wait for the killed groups to be gone, on the monotonic clock (a
   *   step of the wall clock neither cuts the wait short nor stretches it). @default 10,000 ms
   */
  async reapLeftovers(timeoutMs = 10_000): Promise<number> {
    const killed = this.killAll();
    const deadline = this.clock.monotonic() + timeoutMs;
    for (let live = this.liveCount(); live > 0; live = this.liveCount()) {
      if (this.clock.monotonic() > deadline) throw new Error(`${live} task process group(s) of a previous executor still live after SIGKILL`);
      await sleep(50);
      this.killAll();
    }
    if (existsSync(this.file)) writeFileSync(this.file, '');
    return killed;
  }

  /** SIGKILLs every live process group of this node's tasks; returns how many. */
  killAll(): number {
    let killed = 0;
    for (const pgid of this.liveGroups()) {
      try {
        process.kill(-pgid, 'SIGKILL');
        killed++;
      } catch {
        /* gone */
      }
    }
    return killed;
  }

  /** Live process groups of this node's tasks. */
  liveCount(): number {
    return this.liveGroups().length;
  }

  /** Rewrites the file with only the groups that still run (it would otherwise grow by one line per attempt). */
  compact(): void {
    const live = new Set(this.liveGroups());
    const tmp = `${this.file}.tmp`;
    writeFileSync(
      tmp,
      this.recorded()
        .filter((g) => live.has(g))
        .map((g) => `${g}\n`)
        .join(''),
    );
    renameSync(tmp, this.file);
  }

  /**
   * Process groups with a live member that carries this node's task environment. Members
   * are found by their own environment, so a group is found whether or not it was recorded
   * and whether or not its leader still lives; a reused pid carries another environment.
   */
  private liveGroups(): number[] {
    const groups = new Set<number>();
    for (const { pid, pgrp } of liveProcesses()) {
      if (pid !== process.pid && pgrp > 1 && this.runsOurTask(pid)) groups.add(pgrp);
    }
    return [...groups];
  }

  private recorded(): number[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 1);
  }

  private runsOurTask(pid: number): boolean {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      return env.includes(`BATCH_NODE=${this.node}`) && env.some((e) => e.startsWith(this.resultPrefix));
    } catch {
      return false;
    }
  }
}

/** Every live (non-zombie) process with its process group, from `/proc`. */
function liveProcesses(): Array<{ pid: number; pgrp: number }> {
  const out: Array<{ pid: number; pgrp: number }> = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // after "(comm) ": state ppid pgrp ... (comm may itself contain ") ")
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      if (state !== 'Z' && state !== 'X') out.push({ pid: Number(entry), pgrp: Number(pgrp) });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}
