/**
 * `batch dev` as a real process (real etcd, the four built services, real HTTP): it starts a
 * working cluster, the other commands find it, and a Ctrl-C stops every process of it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchClient } from '@batchapi/sdk';
import { batch, DevProcess, ROOT, waitGone } from './dev-process';

let dir: string;
let env: NodeJS.ProcessEnv;
/** Last resort after a failed test: no process of it may outlive the suite. */
const cleanups: Array<() => void> = [];

// Each test has its own config and cache homes, so settings and data of one never meet the other's.
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cli-dev-'));
  env = { XDG_CONFIG_HOME: join(dir, 'config'), XDG_CACHE_HOME: join(dir, 'cache'), BATCH_API: '', BATCH_TOKEN: '' };
});
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  rmSync(dir, { recursive: true, force: true });
});

it('starts a cluster that runs jobs from the SDK and the CLI, refuses a second one on its data, and stops every process on Ctrl-C', async () => {
  const dataDir = join(dir, 'data');
  const dev = new DevProcess(['--fresh', '--data-dir', dataDir], env);
  cleanups.push(() => dev.killAll());
  const { api, token } = await dev.up();
  expect(api).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(dev.stdout).toMatch(/operator token: bt_\S+/);
  // The console's address, served by the admission process from the console's build.
  expect(dev.stdout).toContain(`console:        ${api}/console/`);
  const page = await fetch(`${api}/console/`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
  expect(await page.text()).toContain('<script type="module" src="app.js"></script>');
  // each start step is named on stderr
  for (const step of ['starting etcd', 'starting quota', 'starting scheduler', 'starting executor-0', 'starting admission', 'all services ready'])
    expect(dev.stderr).toContain(`• ${step}`);

  // The SDK: submit, wait for Succeeded.
  const client = new BatchClient({ url: api, token });
  const job = await client.submitJob({
    name: 'sdk-job',
    tasks: 3,
    resources: { cpu: '100m', memory: '32Mi' },
    command: ['sh', '-c', 'echo "out-$BATCH_TASK_INDEX"'],
  });
  const done = await client.waitForJob(job.id, { intervalMs: 100, timeoutMs: 30_000 });
  expect(done).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 3, failed: 0 } });

  // batch dev wrote and selected the dev context, with both tokens: operator commands need no flag.
  expect(dev.stdout).toContain(`context:        dev, selected for the other batch commands (${join(dir, 'config', 'batchapi', 'config.json')})`);
  expect(dev.stdout).not.toContain('export BATCH_API');
  expect(batch(['config', 'get-contexts'], env).stdout).toMatch(new RegExp(`^CURRENT\\s+NAME\\s+API\\s+OPERATOR\n\\*\\s+dev\\s+${api}\\s+yes\n$`));
  expect(batch(['nodes'], env)).toMatchObject({ status: 0, stdout: expect.stringMatching(/\nlocal-0\s/) });

  // The CLI finds the cluster through the context batch dev wrote (BATCH_API/BATCH_TOKEN are empty).
  const submitted = batch(
    ['submit', '--tasks', '2', '--cpu', '100m', '--wait', '-o', 'json', '--', 'sh', '-c', 'echo out-$BATCH_TASK_INDEX; echo err >&2'],
    env,
  );
  expect(submitted.stderr).toBe('');
  expect(submitted.status).toBe(0);
  const cliJob = JSON.parse(submitted.stdout);
  expect(cliJob).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 2 } });
  expect(batch(['logs', cliJob.id, '--task', '1'], env).stdout).toBe('out-1\n');
  expect(batch(['logs', cliJob.id, '--task', '1', '--stderr', '--attempt', '1'], env).stdout).toBe('err\n');
  expect(batch(['get', cliJob.id], env).stdout).toMatch(/Phase:\s+Succeeded/);
  const listed = JSON.parse(batch(['list', '-o', 'json', '--state', 'Succeeded'], env).stdout);
  expect(listed.jobs.map((j: { id: string }) => j.id)).toEqual(expect.arrayContaining([job.id, cliJob.id]));
  // queues and top: the default queue, one screen
  expect(batch(['queues'], env).stdout).toMatch(/^QUEUE\s+TENANT\s+COHORT[\s\S]*\ndefault\s+default\s+-\s+1\s/);
  expect(batch(['top', '--once'], env)).toMatchObject({ status: 0, stdout: expect.stringMatching(/every 2 s[\s\S]*\ndefault\s+default/) });
  expect(batch(['top', '--interval', '0'], env).status).toBe(2);

  // resubmit: a new job of the same spec, which runs to the same end and names the first
  const again = batch(['resubmit', cliJob.id], env);
  expect(again).toMatchObject({ status: 0, stdout: expect.stringMatching(/^\S+\n$/) });
  const redone = await client.waitForJob(again.stdout.trim(), { intervalMs: 100, timeoutMs: 20_000 });
  expect(redone).toMatchObject({ phase: 'Succeeded', command: cliJob.command, labels: { 'batch.resubmitted-from': cliJob.id } });
  // with changes: a new priority and a variable set, the rest as stored
  const changed = batch(['resubmit', cliJob.id, '--priority', '5', '--env', 'EXTRA=1', '-o', 'json'], env);
  expect(changed.status).toBe(0);
  expect(JSON.parse(changed.stdout)).toMatchObject({ priority: 5, env: { ...cliJob.env, EXTRA: '1' }, command: cliJob.command, tasks: cliJob.tasks });
  expect(batch(['resubmit', cliJob.id, '--env', 'NOEQUALS'], env)).toMatchObject({ status: 2, stderr: expect.stringContaining('--env takes KEY=VALUE') });

  // cancel: a long job ends Cancelled
  const long = batch(['submit', '--', 'sleep', '60'], env).stdout.trim();
  expect(batch(['cancel', long], env)).toMatchObject({ status: 0, stdout: expect.stringMatching(new RegExp(`^${long} (Cancelled|\\S+ \\(cancelling\\))\n$`)) });
  expect((await client.waitForJob(long, { intervalMs: 100, timeoutMs: 20_000 })).phase).toBe('Cancelled');

  // errors: the API's code and message, exit 1; bad usage, exit 2
  const missing = batch(['get', 'no-such-job'], env);
  expect(missing.status).toBe(1);
  expect(missing.stderr).toMatch(/^error: not_found: .+\n$/);
  const invalid = batch(['submit', '--cpu', 'lots', '--', 'true'], env);
  expect(invalid.status).toBe(1);
  expect(invalid.stderr).toMatch(/^error: invalid_argument: .*\(field resources\.cpu\)\n$/);
  expect(batch(['submit', '--tasks', 'x', '--', 'true'], env).status).toBe(2);

  // A second cluster on the same data is refused, and changes nothing.
  const second = new DevProcess(['--fresh', '--data-dir', dataDir], env);
  cleanups.push(() => second.killAll());
  expect(await second.exited).toBe(1);
  expect(second.stderr).toBe(
    `error: the local cluster did not start: another local cluster (pid ${dev.pid}) is using ${dataDir}: stop it first (Ctrl-C in its terminal, or kill -INT ${dev.pid}), or use another --data-dir\n`,
  );
  expect((await client.getJob(job.id)).phase).toBe('Succeeded');

  // Ctrl-C in a terminal: SIGINT to the whole process group.
  const pids = dev.clusterPids(dataDir);
  expect(pids.length).toBeGreaterThanOrEqual(5); // etcd and the four services
  process.kill(-dev.pid, 'SIGINT');
  expect(await dev.exited).toBe(0);
  expect(await waitGone(pids)).toEqual([]);
  expect(dev.stderr).toContain('• stopped');
  // The context it wrote is gone with it, so the other commands say how to get a cluster.
  expect(existsSync(join(dir, 'config', 'batchapi', 'config.json'))).toBe(false);
  const orphan = batch(['list'], env);
  expect(orphan.status).toBe(2);
  expect(orphan.stderr).toContain('no API configured: start one with "batch dev"');
  await expect(new BatchClient({ url: api, token, retries: 0, timeoutMs: 2000 }).listJobs()).rejects.toMatchObject({ code: 'unavailable' });
}, 90_000);

it('npm run -s batch -- dev --demo: runs the sample workflow to Succeeded (a step retried once, a map, a reduce), prints its console link and summary, stops, exits 0', async () => {
  // tools/batch.js without the build (the suite runs on a built tree) and without a TTY: a progress line a change.
  const demo = spawn(process.execPath, [join(ROOT, 'tools/batch.js'), 'dev', '--demo'], {
    env: { ...process.env, ...env, BATCH_SKIP_BUILD: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  demo.stdout.on('data', (c) => (stdout += c));
  demo.stderr.on('data', (c) => (stderr += c));
  cleanups.push(() => demo.kill('SIGINT'));
  const code = await new Promise((r) => demo.once('exit', r));
  expect({ code, stderr }).toMatchObject({ code: 0 });
  const [, id] = /Demo workflow (\S+): Succeeded in [\d.]+ s/.exec(stdout) ?? [];
  expect(id).toBeDefined();
  // the console link signs in and opens the workflow's page
  expect(stdout).toMatch(new RegExp(`console: {2}http://127\\.0\\.0\\.1:\\d+/console/#token=\\S+&to=/workflows/${id}`));
  expect(stdout).toContain('steps:    prepare Succeeded, count Succeeded, reduce Succeeded');
  // prepare's first attempt failed on purpose (exit 3), its second succeeded
  expect(stdout).toMatch(/prepare: {2}2 attempts \(1: Failed exit 3, 2: Succeeded\)/);
  // shard i holds 1 … 250(i + 1): sums 31,375 + 125,250 + 281,625 + 500,500 = 938,750
  expect(stdout).toContain('{"shard":0,"lines":250,"sum":31375}');
  expect(stdout).toContain('reduce:   total 938750 (right)');
  expect(stdout).toMatch(/trace id: /);
  // the DAG's progress, a line a change, ending with every step done
  expect(stderr).toContain('✓ prepare → ✓ count [4/4] → ✓ reduce   (Succeeded)');
  expect(stderr).toContain('• stopped');
  // the demo kept nothing: no settings for the other commands, no data left behind
  expect(existsSync(join(dir, 'config', 'batchapi', 'config.json'))).toBe(false);
  expect(readdirSync(join(dir, 'cache', 'batchapi', 'dev')).filter((d) => d.startsWith('demo-'))).toEqual([]);
}, 90_000);

it('npm run -s batch -- dev: one Ctrl-C (that the terminal, npm and tools/batch.js each pass on) stops it cleanly', async () => {
  const dataDir = join(dir, 'data');
  const dev = new DevProcess(['--data-dir', dataDir], { ...env, BATCH_SKIP_BUILD: '1' }, ['npm', 'run', '-s', 'batch', '--']);
  cleanups.push(() => dev.killAll());
  await dev.up();
  const pids = dev.clusterPids(dataDir);
  expect(pids.length).toBeGreaterThanOrEqual(7); // tools/batch.js, the CLI, etcd, four services (and npm's shell)
  const cli = pids.find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('apps/cli/dist/main.js'));
  expect(cli).toBeDefined();
  process.kill(-dev.pid, 'SIGINT');
  // npm itself ends as a Ctrl-C ends it (by the signal); what matters is what the CLI did.
  await dev.closed;
  expect(await waitGone(pids)).toEqual([]);
  expect(dev.stderr).toContain('• SIGINT: stopping the cluster');
  expect(dev.stderr).toContain('• stopped');
  expect(dev.stderr).not.toContain('killing the cluster');
}, 60_000);

it('tools/batch.js passes a SIGTERM sent to it alone on to batch dev, which stops cleanly', async () => {
  const dataDir = join(dir, 'data');
  const dev = new DevProcess(['--data-dir', dataDir], { ...env, BATCH_SKIP_BUILD: '1' }, [process.execPath, join(ROOT, 'tools/batch.js')]);
  cleanups.push(() => dev.killAll());
  await dev.up();
  const pids = dev.clusterPids(dataDir);
  process.kill(dev.pid, 'SIGTERM'); // the wrapper only
  expect(await dev.exited).toBe(0);
  expect(await waitGone(pids)).toEqual([]);
  expect(dev.stderr).toContain('• SIGTERM: stopping the cluster');
}, 60_000);
