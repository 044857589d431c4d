/**
 * The Python SDK and the examples against the real local cluster (`LocalCluster`: etcd and the
 * four services as processes, one local executor running tasks as processes): the SDK's
 * unittest suite, then each example pipeline in `examples/`, each bounded in time.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '@batchapi/cli';

const ROOT = join(__dirname, '../../..');
const SDK = join(ROOT, 'sdk/python');
const hasPython = spawnSync('python3', ['-c', 'import sys; sys.exit(sys.version_info < (3, 9))']).status === 0;
let dir: string;
let cluster: LocalCluster;

const python = (args: string[], cwd: string) =>
  spawnSync('python3', args, {
    cwd,
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, BATCH_API: cluster.apiUrl, BATCH_TOKEN: cluster.tenantToken, PYTHONPATH: SDK, PYTHONDONTWRITEBYTECODE: '1' },
  });

(hasPython ? describe : describe.skip)('Python SDK (python3 >= 3.9)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'py-sdk-'));
    cluster = await LocalCluster.start({ dataDir: dir, executors: 1, killGraceMs: 500, history: false });
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes its unittest suite against the cluster', () => {
    const r = python(['-m', 'unittest', 'discover', '-s', 'tests', '-v'], SDK);
    if (r.status !== 0) throw new Error(`python -m unittest failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
    expect(r.stderr).toMatch(/\nOK\n?/);
    // every test ran: none skipped for want of a cluster
    expect(r.stderr).not.toMatch(/skipped/);
  }, 300_000);

  const examples = readdirSync(join(ROOT, 'examples'))
    .filter((f) => f.endsWith('.py'))
    .sort();
  it.each(examples)(
    'runs examples/%s to success',
    (file) => {
      const r = python([join(ROOT, 'examples', file)], join(ROOT, 'examples'));
      if (r.status !== 0) throw new Error(`${file} failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
      expect(r.stdout).toMatch(/^ok: /m);
    },
    300_000,
  );
});
