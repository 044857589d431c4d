/**
 * The node's Python environments. The pure parts as tables: the cache key, pip's arguments from
 * the node's settings, a task's environment in a venv, the end of pip's output. Then
 * `PythonEnvCache` with the real `python3 -m venv` and pip over a local wheel directory (no
 * index, no network): attempts wanting one environment share one build; a task in it imports
 * the package; the interpreter's pip builds it (and an interpreter without pip gets a venv's own); a missing requirement fails with pip's own message; past the cap the least
 * recently used environment not in use leaves the disk; a restarted cache finds what was built
 * and removes what a build cut short left. Eviction order itself is `planEviction`'s table
 * (working-dir-cache.spec.ts): one policy for both caches.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type PythonEnv, pythonEnvOf } from '@batchapi/api';
import pino from 'pino';
import { Registry } from 'prom-client';
import {
  buildCommands,
  envKey,
  outputTail,
  pipInstallArgs,
  pipScript,
  PythonEnvBuildError,
  PythonEnvCache,
  type PythonEnvCacheOptions,
  requirementNotFound,
  venvEnv,
} from '../src/python-env-cache';
import { hangingIndex, writeWheel } from './wheels';

describe('envKey', () => {
  const py = { version: '3.11.7', executable: '/usr/bin/python3.11' };
  it.each([
    ['the same digest and interpreter: the same key', 'sha256:aa', py, 'sha256:aa', py, true],
    ['another digest', 'sha256:aa', py, 'sha256:bb', py, false],
    ['another patch release of the interpreter', 'sha256:aa', py, 'sha256:aa', { ...py, version: '3.11.8' }, false],
    ['another interpreter of the same version', 'sha256:aa', py, 'sha256:aa', { ...py, executable: '/opt/py/bin/python3.11' }, false],
  ])('%s', (_name, d1, p1, d2, p2, same) => {
    expect(envKey(d1, p1) === envKey(d2, p2)).toBe(same);
    expect(envKey(d1, p1)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('pipInstallArgs', () => {
  // wheels only unless the node allows source builds (a source distribution runs its own build code)
  const base = ['install', '--no-input', '--disable-pip-version-check', '--only-binary', ':all:'];
  it.each([
    ["pip's own index", {}, [...base, '-r', 'r.txt']],
    ['an index', { indexUrl: 'https://pypi.internal/simple' }, [...base, '--index-url', 'https://pypi.internal/simple', '-r', 'r.txt']],
    ['a wheel directory beside the index', { findLinks: '/srv/wheels' }, [...base, '--find-links', '/srv/wheels', '-r', 'r.txt']],
    // no index wins over an index URL: the node said it has none to reach
    [
      'only the wheel directory',
      { noIndex: true, findLinks: '/srv/wheels', indexUrl: 'https://x' },
      [...base, '--no-index', '--find-links', '/srv/wheels', '-r', 'r.txt'],
    ],
    ['source builds allowed', { allowSourceBuilds: true }, ['install', '--no-input', '--disable-pip-version-check', '-r', 'r.txt']],
  ])('%s', (_name, pip, args) => {
    expect(pipInstallArgs(pip, 'r.txt')).toEqual(args);
  });

  it('adds --require-hashes when the requirements carry hashes (every dependency must then have one)', () => {
    expect(pipInstallArgs({ noIndex: true, findLinks: '/w' }, 'r.txt', true)).toEqual([
      'install',
      '--no-input',
      '--disable-pip-version-check',
      '--require-hashes',
      '--only-binary',
      ':all:',
      '--no-index',
      '--find-links',
      '/w',
      '-r',
      'r.txt',
    ]);
  });
});

describe('buildCommands', () => {
  // pip's own arguments are pipInstallArgs' (its table above), after the venv's python's -I -m pip
  const install = ['-I', '-m', 'pip', ...pipInstallArgs({ noIndex: true, findLinks: '/w' }, '/e/r.txt')];
  it.each([
    // the interpreter's pip installs into the venv: no pip of its own (ensurepip) for a venv that is read-only once built
    ['an interpreter with pip: the venv without one, built by that pip', true, ['-m', 'venv', '--system-site-packages', '--without-pip', '/e']],
    ['an interpreter without pip: venv installs one into the venv, which builds it', false, ['-m', 'venv', '--system-site-packages', '/e']],
  ])('%s', (_name, pip, venvArgs) => {
    const [venv, installer] = buildCommands(
      { version: '3.11.7', executable: '/usr/bin/python3.11', pip },
      '/e',
      { noIndex: true, findLinks: '/w' },
      '/e/r.txt',
      false,
    );
    expect(venv).toEqual({ file: '/usr/bin/python3.11', args: venvArgs });
    // the venv's python either way: sys.prefix is the venv, so pip installs there
    expect(installer).toEqual({ file: '/e/bin/python', args: install });
  });
});

describe('pipScript', () => {
  it.each([
    ['a plain directory', '/d/store/k-1', '#!/bin/sh\nexec \'/d/store/k-1/bin/python\' -m pip "$@"\n'],
    // single quotes in the path closed, escaped and reopened: the shell reads the path as it is
    ['a directory with a quote and a dollar', "/d/it's $HOME", "#!/bin/sh\nexec '/d/it'\\''s $HOME/bin/python' -m pip \"$@\"\n"],
  ])('%s', (_name, dir, script) => {
    expect(pipScript(dir)).toBe(script);
  });
});

describe('venvEnv', () => {
  it.each([
    ['bin first on PATH, VIRTUAL_ENV set', { PATH: '/usr/bin:/bin', A: '1' }, { PATH: '/v/bin:/usr/bin:/bin', A: '1', VIRTUAL_ENV: '/v' }],
    ['no PATH: bin alone', {}, { PATH: '/v/bin', VIRTUAL_ENV: '/v' }],
    [
      'PYTHONHOME dropped (it would point python elsewhere), PYTHONPATH kept',
      { PATH: '/bin', PYTHONHOME: '/x', PYTHONPATH: '/sdk' },
      { PATH: '/v/bin:/bin', PYTHONPATH: '/sdk', VIRTUAL_ENV: '/v' },
    ],
  ])('%s', (_name, env, out) => {
    expect(venvEnv(env, '/v')).toEqual(out);
  });
});

describe('outputTail', () => {
  it.each([
    ['short output whole, trailing blanks dropped', 'a\nb\n\n', 10, 'a\nb'],
    // 12 bytes, keep 7: "d\ne\nfgh" minus the partial first line "d" → "e\nfgh"
    ['long output: its end, from a line start', 'abc\nd\ne\nfgh', 7, '[…]\ne\nfgh'],
  ])('%s', (_name, text, max, out) => {
    expect(outputTail(text, max)).toBe(out);
  });
});

describe('requirementNotFound', () => {
  it.each([
    // [pip's output, the job's fault?]: "not found" is the job's unless pip could not reach its index
    [
      'ERROR: Could not find a version that satisfies the requirement nosuchpkg==9.9 (from versions: none)\nERROR: No matching distribution found for nosuchpkg==9.9',
      true,
    ],
    ['ERROR: No matching distribution found for numpy==99', true],
    // hash-checking mode: a file that does not match the lock file, a dependency it left out or did not pin
    [
      'ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated the package versions, please update the hashes.\n    tinypkg==1.0 from file:///w/tinypkg-1.0-py3-none-any.whl:\n        Expected sha256 aaaa\n             Got        bbbb',
      true,
    ],
    ['ERROR: Hashes are required in --require-hashes mode, but they are missing from some requirements.', true],
    ['ERROR: In --require-hashes mode, all requirements must have their versions pinned with ==. These do not:\n    cloudpickle>=3.0', true],
    [
      "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError(...)'\nERROR: No matching distribution found for numpy==1.26.4",
      false,
    ],
    ['ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device', false],
    ['ERROR: Exception: Traceback (most recent call last): ... ReadTimeoutError: Read timed out.', false],
    ['', false],
  ])('%j: %s', (output, want) => {
    expect(requirementNotFound(output)).toBe(want);
  });
});

describe('PythonEnvCache with real venvs and pip', () => {
  let scratch: string;
  let wheels: string;
  const log = pino({ level: 'silent' });
  const options = (dataDir: string, o: Partial<PythonEnvCacheOptions> = {}): PythonEnvCacheOptions => ({
    dataDir,
    capBytes: 1024 * 1024 * 1024,
    buildTimeoutMs: 120_000,
    pip: { noIndex: true, findLinks: wheels },
    ...o,
  });
  const counts = async (registry: Registry) =>
    Object.fromEntries(((await registry.getSingleMetric('batch_executor_python_envs_total')?.get())?.values ?? []).map((v) => [v.labels.outcome, v.value]));
  /** What the venv's own site-packages hold. */
  const sitePackages = (dir: string) => readdirSync(join(dir, 'lib')).flatMap((py) => readdirSync(join(dir, 'lib', py, 'site-packages')));
  /** Runs python3 from the venv the way a task does: by PATH. */
  const runIn = (dir: string, code: string) =>
    spawnSync('python3', ['-c', code], { env: venvEnv({ PATH: process.env.PATH ?? '/usr/bin:/bin' }, dir), encoding: 'utf8' });

  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'pyenv-cache-'));
    wheels = join(scratch, 'wheels');
    writeWheel(wheels, 'tinypkg', '1.0', 'one');
    writeWheel(wheels, 'tinypkg', '2.0', 'two');
    writeWheel(wheels, 'otherpkg', '1.0', 'other');
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('builds one environment for attempts that want it together, and a task in it imports the package', async () => {
    const registry = new Registry();
    const cache = new PythonEnvCache(options(join(scratch, 'n1')), { now: () => 1 }, log, registry);
    const env = pythonEnvOf({ requirements: ['tinypkg==2.0'] });
    const [a, b, c] = await Promise.all([cache.acquire(env), cache.acquire(env), cache.acquire(env)]);
    expect(new Set([a.dir, b.dir, c.dir]).size).toBe(1);
    expect(await counts(registry)).toEqual({ built: 1, cached: 2 });
    const r = runIn(a.dir, 'import sys, tinypkg; print(tinypkg.VALUE, sys.prefix)');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`two ${a.dir}`);
    // the SDK's runner imports batchapi from the node's interpreter (system site packages) or PYTHONPATH
    expect(runIn(a.dir, 'import json, os; print(os.environ["VIRTUAL_ENV"])').stdout.trim()).toBe(a.dir);
    // shared by every job with these requirements: read-only, so no task changes it for the next (root aside)
    const tinypkg = runIn(a.dir, 'import tinypkg; print(tinypkg.__file__)').stdout.trim();
    for (const p of [a.dir, join(a.dir, 'bin'), dirname(tinypkg), tinypkg]) expect(statSync(p).mode & 0o222).toBe(0);
    for (const l of [a, b, c]) l.release();
    // a later attempt takes it from the cache
    const d = await cache.acquire(env);
    expect(d.dir).toBe(a.dir);
    expect(await counts(registry)).toEqual({ built: 1, cached: 3 });
    d.release();
    // This machine's python3 has pip: the venv has no pip of its own, that pip installed into it,
    // and the venv's `pip` (a script running the venv's python) describes the venv's packages.
    expect(sitePackages(a.dir)).not.toContain('pip');
    const listed = spawnSync('pip', ['list', '--format=freeze', '--disable-pip-version-check'], {
      env: venvEnv({ PATH: process.env.PATH ?? '/usr/bin:/bin' }, a.dir),
      encoding: 'utf8',
    });
    expect(listed.stdout.split('\n')).toContain('tinypkg==2.0');
  });

  it('an interpreter without pip gets venvs with their own pip (ensurepip), which build them', async () => {
    const probe = 'import os, sys; print(sys.version.split()[0]); print(os.path.realpath(sys.executable))';
    const [version, executable] = spawnSync('python3', ['-c', probe], { encoding: 'utf8' }).stdout.split('\n');
    const cache = new PythonEnvCache(options(join(scratch, 'n5'), { interpreter: { version, executable, pip: false } }), { now: () => 1 }, log, new Registry());
    const lease = await cache.acquire(pythonEnvOf({ requirements: ['otherpkg==1.0'] }));
    expect(runIn(lease.dir, 'import otherpkg; print(otherpkg.VALUE)').stdout.trim()).toBe('other');
    // pip's own package in the venv, and its own bin/pip (not the script pipScript writes)
    expect(sitePackages(lease.dir)).toContain('pip');
    expect(readFileSync(join(lease.dir, 'bin', 'pip'), 'utf8')).not.toContain(' -m pip "$@"');
    lease.release();
  });

  it("fails a missing requirement with pip's message, builds nothing, and leaves no files", async () => {
    const dataDir = join(scratch, 'n2');
    const cache = new PythonEnvCache(options(dataDir), { now: () => 1 }, log, new Registry());
    const missing: PythonEnv = pythonEnvOf({ requirements: ['tinypkg==2.0', 'nosuchpkg==9.9'] });
    const err = await cache.acquire(missing).then(
      () => undefined,
      (e: Error) => e,
    );
    // the index has no such distribution: the job's fault (PythonRequirementNotFoundError, a PythonEnvBuildError)
    expect(err?.name).toBe('PythonRequirementNotFoundError');
    expect(err).toBeInstanceOf(PythonEnvBuildError);
    expect(err?.message).toMatch(
      /^could not build python environment sha256:[0-9a-f]{64}: pip install exited 1 \(ERROR: No matching distribution found for nosuchpkg==9\.9\)\nits output ends:\n/,
    );
    expect(err?.message).toMatch(/No matching distribution found for nosuchpkg==9.9/);
    expect(cache.size).toBe(0);
    expect(readdirSync(join(dataDir, 'python-envs', 'store'))).toEqual([]);
  });

  it('evicts the least recently used environment not in use past the cap, and a restart keeps what was built', async () => {
    const dataDir = join(scratch, 'n3');
    let now = 0;
    const clock = { now: () => ++now };
    // a venv is tens of MB: a cap of 1 byte keeps only what attempts run in
    const cache = new PythonEnvCache(options(dataDir, { capBytes: 1 }), clock, log, new Registry());
    const one = await cache.acquire(pythonEnvOf({ requirements: ['tinypkg==1.0'] }));
    const other = await cache.acquire(pythonEnvOf({ requirements: ['otherpkg==1.0'] }));
    // both in use: over the cap, neither removed
    expect(existsSync(one.dir) && existsSync(other.dir)).toBe(true);
    one.release();
    expect(existsSync(one.dir)).toBe(false);
    expect(existsSync(other.dir)).toBe(true);
    expect(runIn(other.dir, 'import otherpkg; print(otherpkg.VALUE)').stdout.trim()).toBe('other');

    // a new cache on the same directory (an executor restart) with room: finds `other`, removes a build cut short
    const cutShort = join(dataDir, 'python-envs', 'store', `${'0'.repeat(64)}-dead`);
    mkdirSync(join(cutShort, 'bin'), { recursive: true });
    const registry = new Registry();
    const again = new PythonEnvCache(options(dataDir), clock, log, registry);
    expect(again.size).toBe(1);
    expect(existsSync(cutShort)).toBe(false);
    const same = await again.acquire(pythonEnvOf({ requirements: ['otherpkg==1.0'] }));
    expect(same.dir).toBe(other.dir);
    expect(await counts(registry)).toEqual({ cached: 1 });
    same.release();
    other.release();
  });

  it('kills a build past its deadline and says so, leaving nothing built', async () => {
    const index = await hangingIndex();
    try {
      const dataDir = join(scratch, 'n4');
      const cache = new PythonEnvCache(
        options(dataDir, { buildTimeoutMs: 2000, pip: { noIndex: true, findLinks: index.url } }),
        { now: () => 1 },
        log,
        new Registry(),
      );
      const err = await cache.acquire(pythonEnvOf({ requirements: ['tinypkg==1.0'] })).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(
        /^could not build python environment sha256:[0-9a-f]{64}: (python3 -m venv|pip install) did not finish within 2 s \(BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS\)/,
      );
      expect(cache.size).toBe(0);
      expect(readdirSync(join(dataDir, 'python-envs', 'store'))).toEqual([]);
    } finally {
      await index.close();
    }
  });
});
