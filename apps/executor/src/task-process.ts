/**
 * One task attempt as a child process: its own process group (so a stop reaches every
 * process it started), its own work dir, stdout/stderr to per-attempt files.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';

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
        this.child = spawn(command[0], command.slice(1), { cwd: paths.workDir, env, detached: true, stdio: ['ignore', out, err] });
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
