/**
 * One task attempt as a child process: its own process group (so a stop reaches every
 * process it started), its own work dir, stdout/stderr to per-attempt files.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

let pdeathsig: boolean | undefined;
/**
 * True when util-linux `setpriv --pdeathsig` is available: the task's main process then gets
 * SIGKILL from the kernel the moment the executor dies, even by `kill -9`.
 */
function canUsePdeathsig(): boolean {
  pdeathsig ??= spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true']).status === 0;
  return pdeathsig;
}

/** How an attempt ended. */
export interface ProcessExit {
  exitCode?: number;
  signal?: string;
}

/** Paths of one attempt's files. */
export function attemptPaths(dataDir: string, jobId: string, index: number, attempt: number) {
  const logDir = join(dataDir, 'logs', jobId, String(index));
  return {
    logDir,
    stdout: join(logDir, `${attempt}.stdout`),
    stderr: join(logDir, `${attempt}.stderr`),
    workDir: join(dataDir, 'work', jobId, String(index), String(attempt)),
  };
}

/**
 * Keeps a log file under `maxBytes`: copies it to `<file>.1` and truncates it in place
 * ("copytruncate": the task keeps writing through its O_APPEND descriptor, now from the
 * start). Each stream keeps at most twice the cap on disk.
 */
export function rotateIfOver(file: string, maxBytes: number): boolean {
  let size = 0;
  try { size = statSync(file).size; } catch { return false; }
  if (size <= maxBytes) return false;
  copyFileSync(file, `${file}.1`);
  truncateSync(file, 0);
  return true;
}

/** A running attempt. */
export class TaskProcess {
  readonly exited: Promise<ProcessExit>;
  private child?: ChildProcess;
  private killTimer?: NodeJS.Timeout;

  constructor(command: string[], env: Record<string, string>, paths: ReturnType<typeof attemptPaths>) {
    mkdirSync(paths.logDir, { recursive: true });
    mkdirSync(paths.workDir, { recursive: true });
    const out = openSync(paths.stdout, 'a');
    const err = openSync(paths.stderr, 'a');
    this.exited = new Promise<ProcessExit>((resolve) => {
      try {
        const argv = canUsePdeathsig() ? ['setpriv', '--pdeathsig', 'KILL', '--', ...command] : command;
        this.child = spawn(argv[0], argv.slice(1), { cwd: paths.workDir, env, detached: true, stdio: ['ignore', out, err] });
      } catch {
        resolve({ exitCode: 127 });
        return;
      } finally {
        closeSync(out);
        closeSync(err);
      }
      this.child.once('error', () => resolve({ exitCode: 127 }));
      this.child.once('exit', (code, signal) => {
        clearTimeout(this.killTimer);
        resolve(signal ? { signal } : { exitCode: code ?? 0 });
      });
    });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** SIGTERM to the whole process group, then SIGKILL after `graceMs`. */
  stop(graceMs: number): void {
    this.signal('SIGTERM');
    this.killTimer ??= setTimeout(() => this.signal('SIGKILL'), graceMs);
  }

  /** SIGKILL to the whole process group at once (self-fencing). */
  kill(): void {
    this.signal('SIGKILL');
  }

  private signal(sig: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (!pid || this.child?.exitCode !== null || this.child?.signalCode !== null) return;
    try {
      process.kill(-pid, sig);
    } catch {
      try { process.kill(pid, sig); } catch { /* already gone */ }
    }
  }
}

/**
 * Process groups this executor started, kept in a file so that a restarted executor kills
 * what a killed one left behind (grandchildren that outlived their parent).
 */
export class ProcessGroupLedger {
  constructor(private readonly file: string, private readonly node: string) {}

  record(pid: number): void {
    appendFileSync(this.file, `${pid}\n`);
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
    for (const pid of this.pids()) {
      if (!this.isOurs(pid)) continue;
      try { process.kill(-pid, 'SIGKILL'); killed++; } catch { /* gone */ }
    }
    return killed;
  }

  /** Recorded groups that still run one of this node's tasks. */
  liveCount(): number {
    return this.pids().filter((pid) => this.isOurs(pid)).length;
  }

  private pids(): number[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, 'utf8').split('\n').filter(Boolean).map(Number);
  }

  /** Guards against pid reuse: the process must carry this node's task environment. */
  private isOurs(pid: number): boolean {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      return env.includes(`BATCH_NODE=${this.node}`) && env.some((e) => e.startsWith('BATCH_JOB_ID='));
    } catch {
      return false;
    }
  }
}
