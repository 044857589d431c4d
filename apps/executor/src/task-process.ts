/**
 * One task attempt as a child process: its own process group (so a stop reaches every
 * process it started), its own work dir, stdout/stderr to per-attempt files.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, statSync, truncateSync } from 'node:fs';
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
  /** Set when the node, not the command, kept the attempt from starting (what went wrong). */
  nodeError?: string;
}

/** Spawn errors that are the command's fault (it does not exist or cannot be run); any other is the node's. */
const COMMAND_ERRORS = new Set(['ENOENT', 'EACCES', 'ENOTDIR', 'EISDIR', 'ENOEXEC', 'EPERM']);
const spawnFailure = (err: unknown): ProcessExit => {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code && !COMMAND_ERRORS.has(code) ? { exitCode: 127, nodeError: `could not start the process: ${(err as Error).message}` } : { exitCode: 127 };
};

/** Paths of one attempt's files. */
export function attemptPaths(dataDir: string, jobId: string, index: number, attempt: number) {
  const logDir = join(dataDir, 'logs', jobId, String(index));
  return {
    logDir,
    stdout: join(logDir, `${attempt}.stdout`),
    stderr: join(logDir, `${attempt}.stderr`),
    /** Where the task may write its JSON result (`BATCH_RESULT_PATH`). */
    result: join(logDir, `${attempt}.result.json`),
    workDir: join(dataDir, 'work', jobId, String(index), String(attempt)),
  };
}

/**
 * Keeps a log file under `maxBytes`: copies it to `<file>.1` and truncates it in place
 * ("copytruncate": the task keeps writing through its O_APPEND descriptor, now from the
 * start). Each stream keeps at most twice the cap on disk.
 */
export function rotateIfOver(file: string, maxBytes: number): boolean {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return false;
  }
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

  /**
   * Starts the attempt. A command that cannot be started (ENOENT, not executable) ends with
   * exit code 127; a work dir or log file that cannot be made, with 126.
   */
  constructor(command: string[], env: Record<string, string>, paths: ReturnType<typeof attemptPaths>) {
    let out: number;
    let err: number;
    try {
      mkdirSync(paths.logDir, { recursive: true });
      mkdirSync(paths.workDir, { recursive: true });
      out = openSync(paths.stdout, 'a');
      err = openSync(paths.stderr, 'a');
    } catch (e) {
      this.exited = Promise.resolve({ exitCode: 126, nodeError: `could not make the attempt's files: ${(e as Error).message}` });
      return;
    }
    this.exited = new Promise<ProcessExit>((resolve) => {
      try {
        const argv = canUsePdeathsig() ? ['setpriv', '--pdeathsig', 'KILL', '--', ...command] : command;
        this.child = spawn(argv[0], argv.slice(1), { cwd: paths.workDir, env, detached: true, stdio: ['ignore', out, err] });
      } catch (e) {
        resolve(spawnFailure(e));
        return;
      } finally {
        closeSync(out);
        closeSync(err);
      }
      this.child.once('error', (e) => resolve(spawnFailure(e)));
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
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  }
}

/** SIGKILL to process group `pgid` whole (a build step's or nvidia-smi's children too); a group already gone is no error. */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
