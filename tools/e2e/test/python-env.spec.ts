/**
 * `python` environments end to end (issue 15), on a cluster of real services and a real
 * executor running real processes, whose pip installs only from a local wheel directory
 * (`BATCH_PIP_NO_INDEX`, `BATCH_PIP_FIND_LINKS`; no network): `batch submit
 * --python-requirements` (the built CLI, as a user runs it) makes a job whose task's `python3`
 * imports the requirement; the same requirements in another order, with comments, are the same
 * digest and the node builds their environment once; the Python SDK's `requirements=` runs a
 * task in it; a requirement that is not a specifier is refused 400 naming its line, in a workflow
 * step too; one the index does not have fails the job Error 126 (its fault, no node blamed) with
 * pip's message in the task's stderr. A `pip-compile --generate-hashes` lock file (continuations,
 * hashes, "# via" comments) runs with `--require-hashes`, its hashes part of the digest.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pythonEnvDigest } from '@batchapi/api';
import { writeWheel } from '../../../apps/executor/test/wheels';
import { api, useCluster, waitForJob } from './harness';

const ROOT = join(__dirname, '../../..');
const hasPython = spawnSync('python3', ['-c', 'import sys; sys.exit(sys.version_info < (3, 10))']).status === 0;
const wheels = mkdtempSync(join(tmpdir(), 'e2e-wheels-'));
const c = useCluster({ executor: { pip: { noIndex: true, findLinks: wheels } } });

beforeAll(() => writeWheel(wheels, 'tinypkg', '1.0', 'from the local wheel'));
afterAll(() => rmSync(wheels, { recursive: true, force: true }));

/** `batch <args>` (the built CLI) against the cluster; not execFileSync: the services run in this process. */
const batch = (args: string[]) =>
  promisify(execFile)(process.execPath, [join(ROOT, 'apps/cli/dist/main.js'), ...args], {
    env: { ...process.env, BATCH_API: c.base, BATCH_TOKEN: 'tenant-token' },
    encoding: 'utf8',
  });
const logOf = async (id: string, stream = 'stdout', attempt = 1) =>
  (await api(c.base, 'GET', `/v1/jobs/${id}/tasks/0/logs?stream=${stream}&attempt=${attempt}`)).body as string;
const envBuilds = async () => {
  const text = await (await fetch(`${c.services.find((s) => s.ctx.name === 'executor')!.url}/metrics`)).text();
  const count = (outcome: string) =>
    Number(new RegExp(`^batch_executor_python_envs_total\\{[^}]*outcome="${outcome}"[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { built: count('built'), cached: count('cached'), failed: count('failed') };
};
const importIt = ['python3', '-c', 'import os, tinypkg; print(tinypkg.VALUE, "VIRTUAL_ENV" in os.environ)'];

describe('batch submit --python-requirements', () => {
  it('runs the task with a python3 that imports the requirement; the same requirements again reuse the environment', async () => {
    const first = c.file('requirements.txt', ['tinypkg==1.0']);
    const { stdout } = await batch(['submit', '--python-requirements', first, '--cpu', '100m', '--memory', '64Mi', '--', ...importIt]);
    const job = await waitForJob(c.base, stdout.trim(), 60_000);
    expect([job.phase, await logOf(job.id)]).toEqual(['Succeeded', 'from the local wheel True\n']);
    expect(job.python).toEqual({ requirements: ['tinypkg==1.0'], digest: pythonEnvDigest(['tinypkg==1.0']) });

    // a lock file's layout: comments and blank lines; the same one requirement, the same digest
    const lock = c.file('requirements.lock', ['# generated', '', 'tinypkg==1.0', '    # via the test']);
    const again = await batch(['submit', '--python-requirements', lock, '--cpu', '100m', '--memory', '64Mi', '--', ...importIt]);
    const second = await waitForJob(c.base, again.stdout.trim(), 60_000);
    expect([second.phase, await logOf(second.id)]).toEqual(['Succeeded', 'from the local wheel True\n']);
    expect(second.python?.digest).toBe(job.python?.digest);
    expect(await envBuilds()).toEqual({ built: 1, cached: 1, failed: 0 });
  }, 90_000);

  it('refuses a pip option, a URL or a path 400 naming the line, in a workflow step too', async () => {
    const refused = await api(c.base, 'POST', '/v1/jobs', {
      command: ['true'],
      python: { requirements: ['tinypkg==1.0', '--index-url=https://evil.example/simple'] },
    });
    expect([refused.status, refused.body.error.code, refused.body.error.field]).toEqual([400, 'invalid_argument', 'python.requirements.1']);
    expect(refused.body.error.message).toMatch(/no other pip options \(-e, -r, --index-url\)/);
    const step = await api(c.base, 'POST', '/v1/workflows', {
      steps: [{ name: 'a', job: { command: ['true'], python: { requirements: ['https://x/y.whl'] } } }],
    });
    expect([step.status, step.body.error.code, step.body.error.field]).toEqual([400, 'invalid_argument', 'steps[0].job.python.requirements.0']);
    const cli = await batch(['submit', '--python-requirements', c.file('bad.txt', ['tinypkg==1.0', '-e .']), '--', 'true']).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(cli?.code).toBe(2);
    expect(cli?.stderr).toMatch(/bad\.txt:2: pip options \(-e\) are not taken/);
  });

  (hasPython ? it : it.skip)(
    "runs a Python SDK task with requirements= in the node's environment",
    async () => {
      const driver = [
        'import batchapi as batch',
        'from batchapi_e2e_tasks import tiny_value',
        'print(batch.get(tiny_value.options(requirements=["tinypkg==1.0"]).submit(), timeout=60))',
      ].join('\n');
      const mod = mkdtempSync(join(tmpdir(), 'e2e-pymod-'));
      writeFileSync(
        join(mod, 'batchapi_e2e_tasks.py'),
        [
          'import batchapi as batch',
          '@batch.task(cpus=0.1, memory="64Mi")',
          'def tiny_value() -> str:',
          '    import tinypkg',
          '    return str(tinypkg.VALUE)',
        ].join('\n') + '\n',
      );
      try {
        const { stdout } = await promisify(execFile)('python3', ['-c', driver], {
          cwd: mod,
          env: { ...process.env, BATCH_API: c.base, BATCH_TOKEN: 'tenant-token', PYTHONPATH: join(ROOT, 'sdk/python') },
          encoding: 'utf8',
        });
        expect(stdout).toBe('from the local wheel\n');
        // the environment of the CLI's jobs: the same digest on the same node
        expect((await envBuilds()).built).toBe(1);
      } finally {
        rmSync(mod, { recursive: true, force: true });
      }
    },
    90_000,
  );

  it("fails a job whose requirement the index lacks Error 126 with pip's message in stderr; no node is blamed or quarantined", async () => {
    const submitted = await api(c.base, 'POST', '/v1/jobs', {
      command: importIt,
      python: { requirements: ['nosuchpkg==9.9'] },
      resources: { cpu: '100m', memory: '64Mi' },
    });
    expect(submitted.status).toBe(201);
    const id = submitted.body.id as string;
    const job = await waitForJob(c.base, id, 60_000);
    const tasks = (await api(c.base, 'GET', `/v1/jobs/${id}/tasks`)).body.tasks as Array<{
      attempt: number;
      state: string;
      reason?: string;
      exitCode?: number;
    }>;
    // A misspelt or missing package is the job's fault (as a working dir its tenant does not have): a user's typo cordons no node.
    expect([job.phase, tasks.map((t) => [t.attempt, t.state, t.reason, t.exitCode])]).toEqual(['Failed', [[1, 'Failed', 'Error', 126]]]);
    const stderr = await logOf(id, 'stderr', 1);
    expect(stderr).toMatch(
      /^batch: could not build python environment sha256:[0-9a-f]{64}: pip install exited 1 \(ERROR: No matching distribution found for nosuchpkg==9\.9\)\nits output ends:\n/,
    );
    expect(stderr).toMatch(/No matching distribution found for nosuchpkg==9\.9/);
    expect((await envBuilds()).failed).toBe(1);
    type Listed = { name: string; cordon?: unknown };
    const node = ((await api(c.base, 'GET', '/v1/nodes', undefined, 'operator-token')).body.nodes as Listed[]).find((n) => n.name === 'local-0');
    expect(node?.cordon).toBeUndefined();
  }, 90_000);

  it("runs a job from a pip-compile --generate-hashes lock file with the wheel's hash; its hashes make it another environment", async () => {
    const hash = createHash('sha256')
      .update(readFileSync(join(wheels, 'tinypkg-1.0-py3-none-any.whl')))
      .digest('hex');
    const zero = '0'.repeat(64);
    // pip-compile's layout: the pin, its hashes on continuation lines (one per file of the release), then "# via"
    const lock = c.file('hashed.lock', [
      '# pip-compile --generate-hashes',
      'tinypkg==1.0 \\',
      `    --hash=sha256:${zero} \\`,
      `    --hash=sha256:${hash}`,
      '    # via -r requirements.in',
    ]);
    const { stdout } = await batch(['submit', '--python-requirements', lock, '--cpu', '100m', '--memory', '64Mi', '--', ...importIt]);
    const job = await waitForJob(c.base, stdout.trim(), 60_000);
    expect([job.phase, await logOf(job.id)]).toEqual(['Succeeded', 'from the local wheel True\n']);
    // stored with its hashes sorted; not the digest of the same pin without them
    expect(job.python?.requirements).toEqual([`tinypkg==1.0 --hash=sha256:${zero} --hash=sha256:${hash}`]);
    expect(job.python?.digest).not.toBe(pythonEnvDigest(['tinypkg==1.0']));
  }, 90_000);
});
