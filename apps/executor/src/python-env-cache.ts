/**
 * The node's Python environments (issue 15, a job's `python`): one virtual environment per
 * requirements digest and node interpreter, built once — attempts that want one being built
 * wait for that one build — with `python3 -m venv --system-site-packages` and `pip install -r`
 * into it from the index the operator configured (`BATCH_PIP_*`), under a deadline (see
 * `buildCommands`: the interpreter's own pip when it has one; a venv's own pip took 7.6 s a build
 * here, to install a pip that only the build uses).
 *
 * Layout, under `<dataDir>/python-envs/`: each build goes into `store/<key>-<nonce>/` and never
 * moves (a venv is not relocatable: pip writes its absolute path into the scripts it installs);
 * it is published by renaming a symlink `envs/<key>` onto it, atomically. What a build cut short
 * left (a store dir no link names) is removed at start. The cache holds at most `capBytes`; past
 * it the least recently used environments no attempt is running in are removed (`planEviction`,
 * the working dir cache's, pure).
 *
 * `--system-site-packages`: the task runner `python3 -m batchapi.run` must import `batchapi`,
 * which a node has installed for its own interpreter (or which the SDK puts on `PYTHONPATH`);
 * the venv's own packages come first on `sys.path`, so the job's pins win over the node's.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { lstat, readdir, rename, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type PythonEnv, requirementsHashed } from '@batchapi/api';
import { makeReadOnly, removeTree } from '@batchapi/blobs';
import type { Clock } from '@batchapi/runtime';
import { Metric } from '@batchapi/telemetry';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { killGroup } from './task-process';
import { type CachedPackage, planEviction } from './working-dir-cache';

/** Bytes of Python environments one node keeps by default (`BATCH_PYTHON_ENV_CACHE_BYTES`). @default 5368709120 (5 GiB) */
export const DEFAULT_PYTHON_ENV_CACHE_BYTES = 5 * 1024 * 1024 * 1024;
/** Longest build of one environment by default (`BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS`). @default 900 (15 minutes) */
export const DEFAULT_PYTHON_ENV_BUILD_TIMEOUT_SECONDS = 900;
/** Most bytes of pip's output a failed build hands the task's stderr (its end). */
export const PIP_OUTPUT_TAIL_BYTES = 16 * 1024;

/** Where `pip install` looks for packages: the node's, never the job's. */
export interface PipIndexOptions {
  /** `--index-url` (`BATCH_PIP_INDEX_URL`). @default none: pip's own (PyPI, or its config) */
  indexUrl?: string;
  /** `--find-links`: a directory of wheels or a page of links (`BATCH_PIP_FIND_LINKS`). @default none */
  findLinks?: string;
  /** `--no-index`: only `findLinks` (`BATCH_PIP_NO_INDEX`). @default false */
  noIndex?: boolean;
  /**
   * Whether pip may build a package from its source distribution (`BATCH_PIP_ALLOW_SOURCE_BUILDS`),
   * which runs the package's own build code as the executor's user, outside any task's limits.
   * @default false: wheels only (`--only-binary :all:`)
   */
  allowSourceBuilds?: boolean;
}

/** Settings of a `PythonEnvCache`. */
export interface PythonEnvCacheOptions {
  /** The executor's data directory: environments go under `<dataDir>/python-envs/`. */
  dataDir: string;
  /** Most bytes of environments kept (`BATCH_PYTHON_ENV_CACHE_BYTES`). @default DEFAULT_PYTHON_ENV_CACHE_BYTES (5 GiB) */
  capBytes: number;
  /** Deadline of one build, in ms (`BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS` × 1000). @default 900000 */
  buildTimeoutMs: number;
  /** The node's index settings. @default {} */
  pip: PipIndexOptions;
  /** The interpreter environments are made from. @default "python3" (on the executor's PATH) */
  python?: string;
  /** That interpreter as already known (its version, resolved executable and pip), instead of asking it. @default asked at the first build */
  interpreter?: Interpreter;
}

/** An environment an attempt runs in, until it calls `release` (then it may be evicted). */
export interface PythonEnvLease {
  /** The venv's directory (`VIRTUAL_ENV`). */
  dir: string;
  release(): void;
}

/** The node's interpreter, in the cache key: an environment is made for one interpreter. */
export interface Interpreter {
  /** `sys.version`'s number, e.g. `3.11.7`. */
  version: string;
  /** `sys.executable`, resolved. */
  executable: string;
  /**
   * Its pip runs without the user's site directory (as a venv of it with `--system-site-packages`
   * sees it): a build then runs that pip, not one installed into each venv. @default false
   */
  pip?: boolean;
}

/** A command a build runs: the program and its arguments. */
export interface BuildCommand {
  file: string;
  args: string[];
}

/**
 * The two commands that build venv `dir` for `requirementsFile`. Made with `--without-pip` when the
 * interpreter has pip: `<dir>/bin/python -m pip` then runs that pip, which installs into the venv
 * (it is `sys.prefix`) — `ensurepip` installing a pip into each venv took 7.6 s of a build here,
 * `--without-pip` 0.2 s; the venv is read-only once built, and its `pip` is a script that runs the
 * interpreter's (`pipScript`). Without one, `venv` installs pip into the venv (`ensurepip`) and the
 * same command runs it. Pure.
 */
export function buildCommands(
  interpreter: Interpreter,
  dir: string,
  pip: PipIndexOptions,
  requirementsFile: string,
  requireHashes: boolean,
): [BuildCommand, BuildCommand] {
  return [
    { file: interpreter.executable, args: ['-m', 'venv', '--system-site-packages', ...(interpreter.pip ? ['--without-pip'] : []), dir] },
    // -I: neither the executor's working directory nor the user's site directory on pip's path.
    { file: join(dir, 'bin', 'python'), args: ['-I', '-m', 'pip', ...pipInstallArgs(pip, requirementsFile, requireHashes)] },
  ];
}

/** The key of an environment on this node: hex SHA-256 of the requirements digest and the interpreter. Pure. */
export function envKey(digest: string, interpreter: Interpreter): string {
  return createHash('sha256').update(`${digest}\n${interpreter.version}\n${interpreter.executable}`).digest('hex');
}

/**
 * The `bin/pip` of a venv made without pip (see `buildCommands`): the venv's python running the
 * interpreter's pip, so `pip list` or `pip show` in a task describe the job's environment, not the
 * node's. Pure.
 */
export function pipScript(dir: string): string {
  return `#!/bin/sh\nexec '${join(dir, 'bin', 'python').replace(/'/g, "'\\''")}' -m pip "$@"\n`;
}

/**
 * The arguments of `pip` that install `requirementsFile` from the node's index;
 * `requireHashes` (the job's lines carry `--hash`) adds `--require-hashes`: pip then installs only
 * files whose hashes the lines list, every dependency included. Pure.
 */
export function pipInstallArgs(pip: PipIndexOptions, requirementsFile: string, requireHashes = false): string[] {
  return [
    'install',
    '--no-input',
    '--disable-pip-version-check',
    ...(requireHashes ? ['--require-hashes'] : []),
    ...(pip.allowSourceBuilds ? [] : ['--only-binary', ':all:']),
    ...(pip.noIndex ? ['--no-index'] : []),
    ...(pip.indexUrl && !pip.noIndex ? ['--index-url', pip.indexUrl] : []),
    ...(pip.findLinks ? ['--find-links', pip.findLinks] : []),
    '-r',
    requirementsFile,
  ];
}

/**
 * A task's environment in venv `dir`: its `bin` first on `PATH` (so `python3`, `python` and the
 * scripts it installed are the venv's) and `VIRTUAL_ENV`; `PYTHONHOME` dropped (it would point
 * the interpreter elsewhere). Pure.
 */
export function venvEnv(env: Record<string, string>, dir: string): Record<string, string> {
  const { PYTHONHOME: _home, ...rest } = env;
  const bin = join(dir, 'bin');
  return { ...rest, PATH: env.PATH ? `${bin}:${env.PATH}` : bin, VIRTUAL_ENV: dir };
}

/** The end of a build's output, at most `maxBytes` (cut at a line start), for the task's stderr. Pure. */
export function outputTail(output: string, maxBytes: number = PIP_OUTPUT_TAIL_BYTES): string {
  const buf = Buffer.from(output.trimEnd());
  if (buf.length <= maxBytes) return buf.toString();
  const cut = buf.subarray(buf.length - maxBytes).toString();
  const nl = cut.indexOf('\n');
  return `[…]\n${nl >= 0 ? cut.slice(nl + 1) : cut}`;
}

/** A build that failed: its message says which step and carries the end of its output. */
export class PythonEnvBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PythonEnvBuildError';
  }
}

/**
 * A build that failed because of what the job asked for: the node's index has no distribution of
 * a requirement (a misspelt name, a version that does not exist), or, in hash-checking mode, a
 * file does not match the job's hashes or a dependency has none (a stale or incomplete lock
 * file). The job's fault, not the node's — the attempt ends `Error` and never counts toward the
 * node's quarantine, so one user's typo cordons no node.
 */
export class PythonRequirementNotFoundError extends PythonEnvBuildError {
  constructor(message: string) {
    super(message);
    this.name = 'PythonRequirementNotFoundError';
  }
}

/**
 * pip's words for a requirement its index has no distribution of, and (hash-checking mode) for a
 * file that does not match the job's hashes or a dependency the lock file left out.
 */
const NOT_FOUND =
  /No matching distribution found for |Could not find a version that satisfies the requirement |DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE|Hashes are required in --require-hashes mode|In --require-hashes mode, all requirements must have their versions pinned/;
/** pip's words for an index it could not reach (then "not found" is the node's trouble, not the job's). */
const UNREACHABLE = /Retrying \(Retry\(|NewConnectionError|Max retries exceeded|ConnectionError|Read timed out|SSLError|ProxyError/;

/**
 * Whether a failed `pip install`'s output says a requirement does not exist on the index or does
 * not match the job's hashes (the job's fault), and not that the index could not be reached. Pure.
 */
export function requirementNotFound(output: string): boolean {
  return NOT_FOUND.test(output) && !UNREACHABLE.test(output);
}

/** What `PythonEnvCache.run` gives back: the exit and the output (stdout and stderr, interleaved, its end kept). */
interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  output: string;
}

export class PythonEnvCache {
  private readonly root: string;
  private readonly entries = new Map<string, CachedPackage & { dir: string }>();
  /** Builds under way, by key: a second attempt waits for the first's. */
  private readonly building = new Map<string, Promise<void>>();
  private interpreter?: Promise<Interpreter>;
  /** Process groups of the build steps running now, killed by `close`. */
  private readonly running = new Set<number>();
  private readonly builds: Counter;

  constructor(
    private readonly opts: PythonEnvCacheOptions,
    private readonly clock: Pick<Clock, 'now'>,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.root = join(opts.dataDir, 'python-envs');
    this.builds = new Counter({
      name: Metric.executorPythonEnvs,
      help: 'Python environments an attempt needed, by outcome (cached, built, failed)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.load();
  }

  /**
   * The environment of `env` on this node, built first unless cached; the caller runs in it and
   * then calls `release`. Throws `PythonEnvBuildError` with pip's output when the build fails.
   */
  async acquire(env: PythonEnv): Promise<PythonEnvLease> {
    const interpreter = await this.interpreterOf();
    const key = envKey(env.digest, interpreter);
    if (!this.entries.has(key)) {
      let pending = this.building.get(key);
      if (!pending) {
        pending = this.build(key, env, interpreter).finally(() => this.building.delete(key));
        this.building.set(key, pending);
      } else this.builds.inc({ outcome: 'cached' });
      await pending;
    } else this.builds.inc({ outcome: 'cached' });
    const entry = this.entries.get(key);
    if (!entry) throw new PythonEnvBuildError(`python environment ${env.digest} left the node's cache before the attempt started; the attempt runs again`);
    entry.inUse++;
    entry.lastUsed = this.clock.now();
    try {
      const now = new Date();
      utimesSync(join(entry.dir, 'batch-env.json'), now, now); // the last use, for a restarted executor's LRU
    } catch {
      /* only the order after a restart suffers */
    }
    let released = false;
    return {
      dir: entry.dir,
      release: () => {
        if (released) return;
        released = true;
        entry.inUse--;
        this.evict();
      },
    };
  }

  /** Kills the builds under way (the executor stops): each fails, and what it left is removed at the next start. */
  close(): void {
    for (const pgid of this.running) killGroup(pgid);
  }

  /** How many environments are ready on this node (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * `interpreter` with whether its pip runs as a venv of it would run it: `-I -m pip --version` with
   * the resolved executable, without the user's site directory (a venv leaves it out too) — run,
   * not only found, since a distribution's pip may not run on another Python of the machine.
   */
  private async withPip(interpreter: Interpreter): Promise<Interpreter> {
    const r = await this.run(interpreter.executable, ['-I', '-m', 'pip', '--version'], { timeoutMs: 30_000 });
    return { ...interpreter, pip: r.code === 0 };
  }

  private interpreterOf(): Promise<Interpreter> {
    if (this.opts.interpreter) return Promise.resolve(this.opts.interpreter);
    this.interpreter ??= this.run(
      this.opts.python ?? 'python3',
      ['-c', 'import os, sys; print(sys.version.split()[0]); print(os.path.realpath(sys.executable))'],
      {
        timeoutMs: 30_000,
      },
    ).then((r) => {
      const [version, executable] = r.output.trim().split('\n');
      if (r.code !== 0 || !version || !executable) {
        this.interpreter = undefined; // asked again by the next attempt
        throw new PythonEnvBuildError(
          `this node has no usable ${this.opts.python ?? 'python3'} to make python environments from: ${outputTail(r.output, 2048)}`,
        );
      }
      return this.withPip({ version, executable });
    });
    return this.interpreter;
  }

  private async build(key: string, env: PythonEnv, interpreter: Interpreter): Promise<void> {
    const dir = join(this.root, 'store', `${key}-${randomBytes(4).toString('hex')}`);
    const started = Date.now();
    try {
      mkdirSync(join(this.root, 'store'), { recursive: true });
      mkdirSync(join(this.root, 'envs'), { recursive: true });
      const deadline = started + this.opts.buildTimeoutMs;
      const file = join(dir, 'batch-requirements.txt');
      const [makeVenv, install] = buildCommands(interpreter, dir, this.opts.pip, file, requirementsHashed(env.requirements));
      const venv = await this.run(makeVenv.file, makeVenv.args, { timeoutMs: this.opts.buildTimeoutMs });
      if (venv.code !== 0) throw this.failed('python3 -m venv', venv, env.digest);
      await writeFile(file, `${env.requirements.join('\n')}\n`);
      const pip = await this.run(install.file, install.args, { timeoutMs: Math.max(1, deadline - Date.now()) });
      if (pip.code !== 0) throw this.failed('pip install', pip, env.digest);
      if (interpreter.pip) for (const name of ['pip', 'pip3']) await writeFile(join(dir, 'bin', name), pipScript(dir), { mode: 0o755 });
      const bytes = await treeBytes(dir);
      await writeFile(join(dir, 'batch-env.json'), JSON.stringify({ digest: env.digest, python: interpreter.version, bytes }));
      // Shared by every job (of any tenant) with these requirements: no task may change it for the next.
      await makeReadOnly(dir);
      const tmp = join(this.root, 'envs', `.${key}.${randomBytes(4).toString('hex')}`);
      await symlink(join('..', 'store', basename(dir)), tmp);
      await rename(tmp, join(this.root, 'envs', key));
      this.entries.set(key, { id: key, dir, bytes, lastUsed: this.clock.now(), inUse: 0 });
      this.builds.inc({ outcome: 'built' });
      this.log.info({ digest: env.digest, python: interpreter.version, bytes, ms: Date.now() - started }, 'built a python environment');
    } catch (err) {
      this.builds.inc({ outcome: 'failed' });
      await removeTree(dir);
      if (err instanceof PythonEnvBuildError) throw err;
      throw new PythonEnvBuildError(`could not build python environment ${env.digest}: ${(err as Error).message}`);
    }
    // No eviction here: the attempts waiting for this build take it first (one larger than the cap runs once, then goes at its release).
  }

  private failed(step: string, r: Ran, digest: string): PythonEnvBuildError {
    const how = r.timedOut
      ? `did not finish within ${Math.round(this.opts.buildTimeoutMs / 1000)} s (BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS)`
      : r.signal
        ? `was killed by ${r.signal}`
        : `exited ${r.code}`;
    // The first line says what failed and pip's last error (the node's reason, the quarantine's cause); the lines after, the end of its output.
    const lastError = r.output
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('ERROR: '));
    const summary = `could not build python environment ${digest}: ${step} ${how}${lastError ? ` (${lastError.trim()})` : ''}`;
    const message = `${summary}\nits output ends:\n${outputTail(r.output)}`;
    const notFound = step === 'pip install' && r.code !== null && !r.timedOut && requirementNotFound(r.output);
    return notFound ? new PythonRequirementNotFoundError(message) : new PythonEnvBuildError(message);
  }

  /** Runs a build step in a process group of its own (killed whole at the deadline), without the executor's Python settings. */
  private run(program: string, args: string[], o: { timeoutMs: number }): Promise<Ran> {
    const env: NodeJS.ProcessEnv = { ...process.env, PIP_NO_INPUT: '1' };
    // Nor settings that would send pip's install elsewhere than the venv.
    for (const k of ['PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV', 'PIP_REQUIRE_VIRTUALENV', 'PIP_USER', 'PIP_TARGET', 'PIP_PREFIX']) delete env[k];
    return new Promise((resolve) => {
      let output = '';
      const keep = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.length > 4 * PIP_OUTPUT_TAIL_BYTES) output = output.slice(-2 * PIP_OUTPUT_TAIL_BYTES);
      };
      let timedOut = false;
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(program, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        resolve({ code: 127, signal: null, timedOut, output: (err as Error).message });
        return;
      }
      const pgid = child.pid;
      if (pgid) this.running.add(pgid);
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      const timer = setTimeout(() => {
        timedOut = true;
        if (pgid) killGroup(pgid);
      }, o.timeoutMs);
      const done = (r: Ran) => {
        clearTimeout(timer);
        if (pgid) this.running.delete(pgid);
        resolve(r);
      };
      child.on('error', (err) => done({ code: 127, signal: null, timedOut, output: `${output}${err.message}` }));
      child.on('close', (code, signal) => done({ code, signal, timedOut, output }));
    });
  }

  /** Removes what `planEviction` chooses: the link first (no new attempt finds it), then the venv. */
  private evict(): void {
    for (const key of planEviction([...this.entries.values()], this.opts.capBytes)) {
      const entry = this.entries.get(key)!;
      this.entries.delete(key);
      try {
        rmSync(join(this.root, 'envs', key), { force: true });
      } catch (err) {
        this.log.warn({ err: (err as Error).message, key }, 'could not unlink an evicted python environment');
        continue;
      }
      this.discard(entry.dir);
    }
  }

  /** Moves a venv out of the way at once (a rename) and removes it in the background; a restart removes what is left of it. */
  private discard(dir: string): void {
    const gone = basename(dir).startsWith('.gone-') ? dir : join(this.root, 'store', `.gone-${basename(dir)}`);
    try {
      if (gone !== dir) renameSync(dir, gone);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, dir }, 'could not remove a python environment');
      return;
    }
    removeTree(gone).catch((err: Error) => this.log.warn({ err: err.message, dir }, 'could not remove a python environment'));
  }

  /** Environments a previous run of this executor published; the rest of `store/` (builds cut short) goes. */
  private load(): void {
    const envs = join(this.root, 'envs');
    const store = join(this.root, 'store');
    const kept = new Set<string>();
    let links: string[] = [];
    try {
      links = readdirSync(envs);
    } catch {
      /* none yet */
    }
    for (const name of links) {
      const link = join(envs, name);
      try {
        if (!/^[0-9a-f]{64}$/.test(name) || !lstatSync(link).isSymbolicLink()) throw new Error('not an environment');
        const dir = join(store, basename(readlinkSync(link)));
        const meta = JSON.parse(readFileSync(join(dir, 'batch-env.json'), 'utf8')) as { bytes: number };
        kept.add(basename(dir));
        this.entries.set(name, { id: name, dir, bytes: meta.bytes, lastUsed: statSync(join(dir, 'batch-env.json')).mtimeMs, inUse: 0 });
      } catch {
        rmSync(link, { recursive: true, force: true });
      }
    }
    let dirs: string[] = [];
    try {
      dirs = readdirSync(store);
    } catch {
      /* none yet */
    }
    for (const d of dirs) if (!kept.has(d)) this.discard(join(store, d));
    this.evict();
  }
}

/** Bytes of the files under `dir` (symlinks counted as links, not followed). */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await treeBytes(p);
    else total += (await lstat(p)).size;
  }
  return total;
}
