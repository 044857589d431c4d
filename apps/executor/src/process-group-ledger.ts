/**
 * Process groups this executor started, kept in a file so that a restarted executor — and
 * the watchdog, when the executor is paused or hung — can kill what is left of them: a
 * task's main process dies with its executor (parent-death signal), but the processes it
 * started live on in its group until someone kills the group.
 */
import { appendFileSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export class ProcessGroupLedger {
  constructor(private readonly file: string, private readonly node: string) {}

  /** Records a started group (its leader's pid); false when the file cannot be written (the watchdog then cannot reach it). */
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

  /** Kills every recorded group that still runs one of this node's tasks and forgets them all; returns how many. */
  reapLeftovers(): number {
    const killed = this.killAll();
    if (existsSync(this.file)) writeFileSync(this.file, '');
    return killed;
  }

  /** SIGKILLs every recorded group still running one of this node's tasks; returns how many. */
  killAll(): number {
    let killed = 0;
    for (const pgid of this.liveGroups()) {
      try { process.kill(-pgid, 'SIGKILL'); killed++; } catch { /* gone */ }
    }
    return killed;
  }

  /** Recorded groups that still run one of this node's tasks. */
  liveCount(): number {
    return this.liveGroups().length;
  }

  /** Rewrites the file with only the groups that still run (it would otherwise grow by one line per attempt). */
  compact(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, this.liveGroups().map((g) => `${g}\n`).join(''));
    renameSync(tmp, this.file);
  }

  /**
   * Recorded groups with a member that carries this node's task environment. Members are
   * looked up by group id, not by the leader's pid: the leader may be dead while its
   * children run on. The environment check guards against a reused pid.
   */
  private liveGroups(): number[] {
    const recorded = new Set(this.recorded());
    if (recorded.size === 0) return [];
    const members = processGroups(recorded);
    return [...recorded].filter((pgid) => (members.get(pgid) ?? []).some((pid) => this.runsOurTask(pid)));
  }

  private recorded(): number[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, 'utf8').split('\n').filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 1);
  }

  private runsOurTask(pid: number): boolean {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      return env.includes(`BATCH_NODE=${this.node}`) && env.some((e) => e.startsWith('BATCH_JOB_ID='));
    } catch {
      return false;
    }
  }
}

/** Live (non-zombie) processes of the given process groups, by group id, from `/proc`. */
function processGroups(wanted: Set<number>): Map<number, number[]> {
  const out = new Map<number, number[]>();
  let entries: string[] = [];
  try { entries = readdirSync('/proc'); } catch { return out; }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // after "(comm) ": state ppid pgrp ... (comm may itself contain ") ")
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      const pgid = Number(pgrp);
      if (state === 'Z' || !wanted.has(pgid)) continue;
      out.set(pgid, [...(out.get(pgid) ?? []), Number(entry)]);
    } catch { /* exited meanwhile */ }
  }
  return out;
}
