/**
 * The three pipelines of `examples/` as a new user runs them: copied to a directory of their own
 * outside the checkout, run with the Python SDK installed from its wheel (python-sdk-wheel.ts)
 * against the real local cluster, each bounded in time, their printed outcomes checked:
 * - shard_reduce.py: CSV shards written by its first step, summarised by a map, reduced into one
 *   report whose totals the example checks against the files themselves;
 * - param_sweep.py: an ODE-integrating parameter sweep where unstable points fail and the reduce
 *   keeps the others;
 * - train_pipeline.py: scikit-learn installed through `requirements=` (examples/requirements.txt)
 *   into the job's python environment, its model code shipped in the tasks' `working_dir`, trained
 *   and evaluated on the digits data set, the model passed between steps as an artifact in a result
 *   (no shared disk); its test accuracy must beat the majority class (a sanity bound, not an
 *   expected number). `working_dir` needs a blob store: this cluster runs its history database.
 * The cluster's pip installs only from a local wheel cache (`BATCH_PIP_FIND_LINKS`,
 * `BATCH_PIP_NO_INDEX=true`): `.ci/run` downloads the pinned wheels into it once
 * (BATCH_EXAMPLE_WHEELS), so the suite itself needs no network.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '@batchapi/cli';
import { hasPython, installSdk, ROOT, run } from './python-sdk-wheel';

/** Where `.ci/run` downloads the examples' wheels (`pip download --only-binary :all: -r examples/requirements.txt`). */
const WHEELS = process.env.BATCH_EXAMPLE_WHEELS || join(homedir(), '.cache', 'batchapi', 'example-wheels');
let dir: string;
let project: string;
let venvPython: string;
let cluster: LocalCluster;

const example = (file: string) =>
  run(venvPython, [file], project, {
    BATCH_API: cluster.apiUrl,
    BATCH_TOKEN: cluster.tenantToken,
    PYTHONPATH: '',
    // the examples' shared files (a shared mount on a real cluster), removed with the rest
    DATA_DIR: join(dir, 'data'),
  }).stdout;

(hasPython ? describe : describe.skip)('examples/ from a directory of their own, with the SDK installed from its wheel', () => {
  beforeAll(async () => {
    // every pinned requirement must have its wheel in the cache: the cluster's pip has no index
    const pins = readFileSync(join(ROOT, 'examples/requirements.txt'), 'utf8')
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter(Boolean);
    const have = existsSync(WHEELS) ? readdirSync(WHEELS).map((f) => f.toLowerCase().replace(/_/g, '-')) : [];
    const missing = pins.filter((p) => !have.some((f) => f.startsWith(`${p.replace('==', '-').toLowerCase()}-`)));
    if (missing.length)
      throw new Error(
        `no wheel of ${missing.join(', ')} in ${WHEELS}: run .ci/run's step (python3 -m pip download --only-binary :all: -d ${WHEELS} -r examples/requirements.txt) or set BATCH_EXAMPLE_WHEELS`,
      );
    dir = mkdtempSync(join(tmpdir(), 'examples-'));
    venvPython = installSdk(dir);
    project = join(dir, 'my-project');
    cpSync(join(ROOT, 'examples'), project, { recursive: true, filter: (p) => !p.includes('__pycache__') });
    cluster = await LocalCluster.start({
      dataDir: join(dir, 'cluster'),
      executors: 1,
      killGraceMs: 500,
      executorEnv: { BATCH_PIP_FIND_LINKS: WHEELS, BATCH_PIP_NO_INDEX: 'true' },
    });
  }, 240_000);
  afterAll(async () => {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shard_reduce.py: summarises CSV shards written by its first step into one report that matches the files', () => {
    const out = example('shard_reduce.py');
    const m = /^ok: (\d+) shards, (\d+) rows, (\d+) regions/m.exec(out);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(1);
    expect(Number(m![2])).toBeGreaterThan(Number(m![1]));
  }, 300_000);

  it('param_sweep.py: integrates every point, keeps the stable ones and reports the diverged ones', () => {
    const out = example('param_sweep.py');
    const m = /^ok: (\d+) of (\d+) points simulated, (\d+) diverged/m.exec(out);
    expect(m).not.toBeNull();
    const [ok, all, diverged] = m!.slice(1).map(Number);
    expect(ok + diverged).toBe(all);
    expect(ok).toBeGreaterThan(0);
    expect(diverged).toBeGreaterThan(0);
  }, 300_000);

  it("train_pipeline.py: trains with scikit-learn from the job's python environment and beats the majority class", () => {
    const out = example('train_pipeline.py');
    expect(out).toMatch(/^scikit-learn 1\.6\.1 from the job's python environment/m);
    const m = /^ok: best C=\S+, test accuracy ([0-9.]+) vs majority class ([0-9.]+); model sha256:[0-9a-f]{12} \(\d+ bytes\) passed as an artifact/m.exec(out);
    expect(m).not.toBeNull();
    const [accuracy, majority] = m!.slice(1).map(Number);
    // a sanity bound, not an expected number: ten classes, so the majority class is right about a tenth of the time
    expect(accuracy).toBeGreaterThan(Math.max(0.5, 2 * majority));
  }, 600_000);
});
