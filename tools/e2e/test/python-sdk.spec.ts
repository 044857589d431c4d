/**
 * The Python SDK and the examples against the real local cluster (`LocalCluster`: etcd and the
 * four services as processes, one local executor running tasks as processes), as a user gets
 * it: the SDK built into a wheel and installed in a fresh virtual environment, then its pytest
 * suite (unit tests, `mypy --strict`, and the cluster tests) and each example pipeline in
 * `examples/` run with that environment's Python, each bounded in time. pytest, mypy and
 * cloudpickle come from the machine's Python (`.ci/run` installs them, pinned).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '@batchapi/cli';

const ROOT = join(__dirname, '../../..');
const SDK = join(ROOT, 'sdk/python');
const hasPython = spawnSync('python3', ['-c', 'import sys; sys.exit(sys.version_info < (3, 10))']).status === 0;
let dir: string;
let venvPython: string;
let cluster: LocalCluster;

const run = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 400_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}\n${r.stdout}`);
  return r;
};
const python = (args: string[], cwd: string) => run(venvPython, args, cwd, { BATCH_API: cluster.apiUrl, BATCH_TOKEN: cluster.tenantToken, PYTHONPATH: '' });

(hasPython ? describe : describe.skip)('Python SDK (python3 >= 3.10), installed from its wheel', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'py-sdk-'));
    // .ci/run installs these; a machine without them fails here, saying so, instead of skipping
    run('python3', ['-c', 'import pytest, mypy, cloudpickle'], dir);
    // build from a copy, so setuptools leaves nothing in the checkout
    cpSync(SDK, join(dir, 'src'), { recursive: true, filter: (p) => !p.includes('__pycache__') && !p.includes('.mypy_cache') });
    run('python3', ['-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation', '--wheel-dir', join(dir, 'dist'), join(dir, 'src')], dir);
    const wheel = readdirSync(join(dir, 'dist')).find((f) => /^batchapi-.*\.whl$/.test(f));
    if (!wheel) throw new Error(`no wheel in ${join(dir, 'dist')}`);
    run('python3', ['-m', 'venv', '--system-site-packages', join(dir, 'venv')], dir);
    venvPython = join(dir, 'venv/bin/python');
    run(venvPython, ['-m', 'pip', 'install', '--quiet', '--no-deps', '--no-index', join(dir, 'dist', wheel)], dir);
    cluster = await LocalCluster.start({ dataDir: join(dir, 'cluster'), executors: 1, killGraceMs: 500, history: false });
  }, 240_000);
  afterAll(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports the SDK from the installed wheel, with its py.typed', () => {
    const r = python(['-c', 'import batchapi, os; d = os.path.dirname(batchapi.__file__); print(d); print(os.path.exists(os.path.join(d, "py.typed")))'], dir);
    const [where, typed] = r.stdout.trim().split('\n');
    expect(where.startsWith(join(dir, 'venv'))).toBe(true);
    expect(typed).toBe('True');
  });

  it('passes its pytest suite (unit, mypy --strict, and against the cluster) with nothing skipped', () => {
    const r = python(['-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rs', join(SDK, 'tests')], dir);
    expect(r.stdout).toMatch(/\d+ passed/);
    // every test ran: none skipped for want of a cluster
    expect(r.stdout).not.toMatch(/skipped/);
  }, 600_000);

  const examples = readdirSync(join(ROOT, 'examples'))
    .filter((f) => f.endsWith('.py'))
    .sort();
  it.each(examples)(
    'runs examples/%s to success',
    (file) => {
      const r = python([join(ROOT, 'examples', file)], join(ROOT, 'examples'));
      expect(r.stdout).toMatch(/^ok: /m);
    },
    300_000,
  );
});
