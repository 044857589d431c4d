/** Runs the built `batch` command as a real process for the suites of this folder. */
import { type ChildProcess, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(__dirname, '../../..');
export const MAIN = join(ROOT, 'apps/cli/dist/main.js');

/** `batch <args>` to the end, with `env` over this process's environment. */
export function batch(args: string[], env: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
}

/**
 * `batch <args>` to the end, with `env` over this process's environment, without blocking this
 * process (for suites whose services run in it); killed after 30 s.
 */
export function batchAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}

/** A `batch dev` in its own process group, as a terminal would run it (so a group signal is a Ctrl-C). */
export class DevProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  /** The exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Resolves once the process exited and every writer of its stdout and stderr (children included) closed them. */
  readonly closed: Promise<void>;

  /** `launcher`: what runs `batch` (default: node on the built CLI), e.g. `['npm', 'run', '-s', 'batch', '--']`; `cwd`: where. */
  constructor(args: string[], env: NodeJS.ProcessEnv, launcher: string[] = [process.execPath, MAIN], cwd = ROOT) {
    // No PostgreSQL unless a test asks for history (--history): it is started, and removed, by the suites that test it.
    const history = args.includes('--history') ? [] : ['--no-history'];
    this.child = spawn(launcher[0], [...launcher.slice(1), 'dev', ...history, ...args.filter((a) => a !== '--history')], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child.stdout!.on('data', (c) => (this.stdout += c));
    this.child.stderr!.on('data', (c) => (this.stderr += c));
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
    this.closed = new Promise((r) => this.child.once('close', () => r()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the match once `re` appears in stdout; fails with both outputs after `timeoutMs`. */
  async waitFor(re: RegExp, timeoutMs = 45_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.stdout);
      if (m) return m;
      if (Date.now() > deadline || this.child.exitCode !== null)
        throw new Error(`no ${re} in the output of batch dev (exit ${this.child.exitCode}):\n${this.stdout}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The API URL and tenant token, once the cluster says it is up. */
  async up(): Promise<{ api: string; token: string }> {
    const [, api, token] = await this.waitFor(/ API: +(\S+)\n[\s\S]* tenant token: +(\S+)/);
    return { api, token };
  }

  /** Pids of the cluster's processes: its process group and whatever names `dataDir` on its command line. */
  clusterPids(dataDir: string): number[] {
    const group = livePids().filter((p) => processGroupOf(p) === this.pid);
    return [...new Set([...group, ...pidsMentioning(dataDir)])].filter((p) => p !== this.pid);
  }

  /** Last resort for a failed test: no process of it may outlive the suite. */
  killAll(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/** Pids of the live processes of this machine, this one excepted (Linux /proc). */
function livePids(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => p !== process.pid && alive(p));
}

/** `/proc/<pid>/stat` fields after the command name: state, ppid, pgrp, … */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // exited meanwhile
  }
}

function processGroupOf(pid: number): number | undefined {
  const f = statFields(pid);
  return f && Number(f[2]);
}

/** Pids of live processes whose command line contains `text`. */
export function pidsMentioning(text: string): number[] {
  return livePids().filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text);
    } catch {
      return false;
    }
  });
}

/** Whether `pid` runs (a zombie — exited, not yet reaped by its parent — does not). */
export function alive(pid: number): boolean {
  const f = statFields(pid);
  return !!f && f[0] !== 'Z';
}

/** Waits until none of `pids` lives; returns those still alive after `timeoutMs`. */
export async function waitGone(pids: number[], timeoutMs = 5000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(alive);
}
