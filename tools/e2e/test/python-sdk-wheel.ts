/**
 * The Python SDK as a user gets it, for the suites that run Python against the local cluster
 * (python-sdk.spec.ts, examples.spec.ts): built into a wheel from a copy of sdk/python (so
 * setuptools leaves nothing in the checkout) and installed in a fresh virtual environment, which
 * sees the machine's pytest, mypy and cloudpickle (`--system-site-packages`; `.ci/run` installs
 * them, pinned).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(__dirname, '../../..');
export const SDK = join(ROOT, 'sdk/python');
/** Whether this machine's python3 can run the SDK (>= 3.10). */
export const hasPython = spawnSync('python3', ['-c', 'import sys; sys.exit(sys.version_info < (3, 10))']).status === 0;

/**
 * Runs a program, throwing with its output when it fails. pytest's one-line summaries of what
 * failed (`FAILED test - Error: message`, with `-rfE`) come first: a long output is often shown
 * cut in the middle, and the exception is what its end says.
 */
export const run = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 400_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...env } });
  if (r.status !== 0) {
    const failed = (r.stdout ?? '').split('\n').filter((l) => /^(FAILED|ERROR) \S+\.py/.test(l));
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})${failed.length ? `:\n${failed.join('\n')}` : ''}\n\n${r.stderr}\n${r.stdout}`);
  }
  return r;
};

/** Builds the SDK's wheel under `dir` and installs it into `dir/venv`; returns that venv's python. */
export function installSdk(dir: string): string {
  // .ci/run installs these; a machine without them fails here, saying so, instead of skipping
  run('python3', ['-c', 'import pytest, mypy, cloudpickle'], dir);
  cpSync(SDK, join(dir, 'src'), { recursive: true, filter: (p) => !p.includes('__pycache__') && !p.includes('.mypy_cache') });
  run('python3', ['-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation', '--wheel-dir', join(dir, 'dist'), join(dir, 'src')], dir);
  const wheel = readdirSync(join(dir, 'dist')).find((f) => /^batchapi-.*\.whl$/.test(f));
  if (!wheel) throw new Error(`no wheel in ${join(dir, 'dist')}`);
  // Without a pip of its own (ensurepip takes ~8 s here): the machine's pip, which built the wheel
  // above, installs into the venv when run by its python (the executor builds jobs' venvs so too).
  run('python3', ['-m', 'venv', '--system-site-packages', '--without-pip', join(dir, 'venv')], dir);
  const python = join(dir, 'venv/bin/python');
  run(python, ['-m', 'pip', 'install', '--quiet', '--no-deps', '--no-index', join(dir, 'dist', wheel)], dir);
  return python;
}
