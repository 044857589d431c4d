/**
 * The Python SDK against the real local cluster (`LocalCluster`: etcd and the
 * four services as processes, one local executor running tasks as processes), as a user gets
 * it: the SDK built into a wheel and installed in a fresh virtual environment, then its pytest
 * suite (unit tests, `mypy --strict`, and the cluster tests) run with that environment's Python.
 * pytest, mypy and cloudpickle come from the machine's Python (`.ci/run` installs them, pinned).
 * The examples run in examples.spec.ts, on a cluster whose pip installs from a local wheel cache.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '@batchapi/cli';
import { hasPython, installSdk, run, SDK } from './python-sdk-wheel';

let dir: string;
let venvPython: string;
let cluster: LocalCluster;

const python = (args: string[], cwd: string) => run(venvPython, args, cwd, { BATCH_API: cluster.apiUrl, BATCH_TOKEN: cluster.tenantToken, PYTHONPATH: '' });

(hasPython ? describe : describe.skip)('Python SDK (python3 >= 3.10), installed from its wheel', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'py-sdk-'));
    venvPython = installSdk(dir);
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
    const r = python(['-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rfEs', join(SDK, 'tests')], dir);
    expect(r.stdout).toMatch(/\d+ passed/);
    // every test ran: none skipped for want of a cluster
    expect(r.stdout).not.toMatch(/skipped/);
  }, 600_000);
});
