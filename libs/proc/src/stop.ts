import type { ChildProcess } from 'node:child_process';

/** How to stop a child process. */
export interface StopOptions {
  /** The signal asking it to stop. @default 'SIGTERM' */
  signal?: NodeJS.Signals;
  /** How long it may take before it is killed with SIGKILL, in milliseconds. @default 3000 */
  graceMs?: number;
}

/**
 * Asks a child process to stop (`signal`) and kills it (SIGKILL) if it has not exited within
 * `graceMs`; resolves once it has exited. A process that has already exited resolves at once.
 */
export async function stopProcess(p: ChildProcess, opts: StopOptions = {}): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), opts.graceMs ?? 3000);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill(opts.signal ?? 'SIGTERM');
  });
}
