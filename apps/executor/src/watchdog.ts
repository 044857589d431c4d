/**
 * The executor's watchdog: a separate, detached process that kills the executor's task
 * process groups when the executor has not renewed its lease for its TTL — also when the
 * executor itself is paused (SIGSTOP) or hung and cannot fence itself. With the
 * scheduler's TTL + grace wait before requeueing, no attempt runs in two places (invariant 4).
 *
 * Run as: node watchdog.js <heartbeat file> <process-groups file> <ttl ms> <executor pid> <node>
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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

/**
 * One check. Returns false once the watchdog has nothing left to guard. The heartbeat and `now`
 * are on CLOCK_MONOTONIC (`monotonicMs`, one clock for every process of the machine): a step of
 * the wall clock neither kills tasks of a live executor nor spares those of a stalled one.
 */
export function watchOnce(heartbeat: string, ledger: ProcessGroupLedger, ttlMs: number, executorPid: number, now = monotonicMs()): boolean {
  const last = existsSync(heartbeat) ? Number(readFileSync(heartbeat, 'utf8')) || 0 : 0;
  const stale = now - last > ttlMs;
  // The time is noted before the kill: an executor that sees a task's exit at once must find it.
  if (stale && ledger.liveCount() > 0) {
    writeFileSync(killedMarker(heartbeat), String(now));
    ledger.killAll();
  }
  const executorAlive = (() => {
    try { process.kill(executorPid, 0); return true; } catch { return false; }
  })();
  // Only once the executor is gone does the watchdog look for groups still to guard (a /proc scan).
  return executorAlive || ledger.liveCount() > 0;
}

function main(argv: string[]): void {
  const [heartbeat, groups, ttl, pid, node] = argv;
  const ledger = new ProcessGroupLedger(groups, node);
  const timer = setInterval(() => {
    if (!watchOnce(heartbeat, ledger, Number(ttl), Number(pid))) { clearInterval(timer); process.exit(0); }
  }, 200);
}

if (require.main === module) main(process.argv.slice(2));
