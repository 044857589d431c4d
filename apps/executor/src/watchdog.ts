/**
 * The executor's watchdog: a separate, detached process that kills the executor's task
 * process groups when the executor has not renewed its lease for its TTL — also when the
 * executor itself is paused (SIGSTOP) or hung and cannot fence itself. With the
 * scheduler's TTL + grace wait before requeueing, no attempt runs in two places (invariant 4).
 *
 * Run as: node watchdog.js <heartbeat file> <process-groups file> <ttl ms> <executor pid> <node>
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monotonicMs } from '@batchapi/store';
import { ProcessGroupLedger } from './process-group-ledger';

/**
 * Where the watchdog notes when it last killed tasks (ms of CLOCK_MONOTONIC, `monotonicMs`). An executor that was only
 * stalled (its lease renewed again by the time it sees the exits) reads it and reports those
 * attempts `NodeLost` (run again), not `Error`: the node killed them, not their command.
 */
export function killedMarker(heartbeat: string): string {
  return `${heartbeat}.killed`;
}

/** The file in the executor's data directory that names its watchdog's pid. */
export const WATCHDOG_PID_FILE = 'watchdog.pid';

/**
 * Stops the watchdog a previous executor of this data directory left (it guards until no task
 * of the node lives, which with a new executor's tasks would be never): a new one takes over.
 * The pid is checked against the process's command line, so a reused pid is left alone.
 */
export function stopPreviousWatchdog(dataDir: string): boolean {
  try {
    const pid = Number(readFileSync(join(dataDir, WATCHDOG_PID_FILE), 'utf8'));
    if (!Number.isInteger(pid) || pid <= 1) return false;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!argv.some((a) => a.endsWith('watchdog.js')) || !argv.includes(join(dataDir, 'heartbeat'))) return false;
    process.kill(pid, 'SIGTERM');
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes the heartbeat as one rename: a reader sees the old time or the new one, never an
 * empty or half-written file (which would read as time 0, stale, and kill a healthy node's tasks).
 */
export function writeHeartbeat(heartbeat: string, sentAt: number): void {
  const tmp = `${heartbeat}.tmp`;
  writeFileSync(tmp, String(sentAt));
  renameSync(tmp, heartbeat);
}

/** The heartbeat's time, or undefined when it cannot be read as one. */
function readHeartbeat(heartbeat: string): number | undefined {
  try {
    const text = readFileSync(heartbeat, 'utf8').trim();
    const t = Number(text);
    return text !== '' && Number.isFinite(t) ? t : undefined;
  } catch {
    return undefined;
  }
}

/** What the watchdog remembers between checks. */
export interface WatchState {
  /** The last heartbeat time read (ms, CLOCK_MONOTONIC); a check that cannot read the file uses it. */
  lastBeat: number;
}

/**
 * One check. Returns false once the watchdog has nothing left to guard. The heartbeat and `now`
 * are on CLOCK_MONOTONIC (`monotonicMs`, one clock for every process of the machine): a step of
 * the wall clock neither kills tasks of a live executor nor spares those of a stalled one. A
 * heartbeat file that cannot be read counts as the last one read (`state.lastBeat`), not as 0.
 */
export function watchOnce(
  heartbeat: string,
  ledger: ProcessGroupLedger,
  ttlMs: number,
  executorPid: number,
  now = monotonicMs(),
  state: WatchState = { lastBeat: 0 },
): boolean {
  const last = readHeartbeat(heartbeat) ?? state.lastBeat;
  state.lastBeat = last;
  const stale = now - last > ttlMs;
  // The time is noted before the kill: an executor that sees a task's exit at once must find it.
  if (stale && ledger.liveCount() > 0) {
    writeFileSync(killedMarker(heartbeat), String(now));
    ledger.killAll();
  }
  const executorAlive = (() => {
    try {
      process.kill(executorPid, 0);
      return true;
    } catch {
      return false;
    }
  })();
  // Only once the executor is gone does the watchdog look for groups still to guard (a /proc scan).
  return executorAlive || ledger.liveCount() > 0;
}

function main(argv: string[]): void {
  const [heartbeat, groups, ttl, pid, node] = argv;
  const ledger = new ProcessGroupLedger(groups, node);
  // Until a heartbeat is read, the watchdog's own start counts as one (the executor wrote one just before).
  const state: WatchState = { lastBeat: monotonicMs() };
  const timer = setInterval(() => {
    if (!watchOnce(heartbeat, ledger, Number(ttl), Number(pid), monotonicMs(), state)) {
      clearInterval(timer);
      process.exit(0);
    }
  }, 200);
}

if (require.main === module) main(process.argv.slice(2));
