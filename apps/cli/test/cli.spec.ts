/**
 * The built `batch` command as a real process, without a cluster: exit codes of bad usage,
 * what it says when etcd is missing, the `tools/batch.js` wrapper, and `simulate`'s contract.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@batchapi/proc';
import { batch, ROOT } from './dev-process';

let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cli-test-'));
  env = { XDG_CONFIG_HOME: join(dir, 'config'), XDG_CACHE_HOME: join(dir, 'cache'), BATCH_API: '', BATCH_TOKEN: '' };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('exit codes', () => {
  it.each([
    // args → exit code, a piece of stderr
    [['submit', '--tasks', 'x', '--', 'true'], 2, 'error: --tasks takes a whole number, got "x"'],
    [['submit', '--nope', '--', 'true'], 2, "error: unknown option '--nope'"],
    [['frobnicate'], 2, "error: unknown command 'frobnicate'"],
    [['get'], 2, "error: missing required argument 'id'"],
    [['list', '--limit', '0'], 2, "option '--limit <n>' argument '0' is invalid"],
    [['list', '--state', 'Done'], 2, 'Allowed choices are Submitted, Queued, Running, Succeeded, Failed, Cancelled, Rejected'],
    [['logs', 'j1', '--task', '-1'], 2, "option '--task <n>' argument '-1' is invalid"],
    [['list', '--since', 'yesterday'], 2, "option '--since <when>' argument 'yesterday' is invalid. must be a time ago (30m, 12h, 7d)"],
    [['list', '--sort', 'name'], 2, 'Allowed choices are submitted, -submitted, finished, -finished'],
    [['usage', '--until', 'soon'], 2, "option '--until <when>' argument 'soon' is invalid"],
    [['get', 'j1'], 2, 'error: no API configured: start one with "batch dev"'],
    [['--help'], 0, ''],
  ])('batch %j exits %i', (args, code, stderr) => {
    const r = batch(args as string[], env);
    expect(r.stderr).toContain(stderr);
    expect(r.status).toBe(code);
  });

  it('an API that does not answer is unavailable, exit 1, naming the URL', async () => {
    const port = await freePort(); // nothing listens there
    const r = batch(['get', 'j1', '--api', `http://127.0.0.1:${port}`, '--token', 't'], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`error: unavailable: GET http://127.0.0.1:${port}/v1/jobs/j1: ECONNREFUSED; is the API running? (tried 4 times)\n`);
  }, 20_000);
});

it('batch dev without etcd says how to install it and exits 1', () => {
  const r = batch(['dev', '--data-dir', join(dir, 'no-etcd')], { ...env, PATH: join(dir, 'empty-path') });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('error: the local cluster did not start: etcd was not found (etcd). Install it: sudo apt-get install -y etcd-server');
});

describe('tools/batch.js', () => {
  const wrapper = (args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'tools/batch.js'), ...args], { encoding: 'utf8', env: { ...process.env, ...env, BATCH_SKIP_BUILD: '1' } });

  it('runs the CLI with the arguments and passes its output and exit code through', () => {
    expect(wrapper(['--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('Usage: batch') });
    expect(wrapper(['submit', '--tasks', 'x', '--', 'true'])).toMatchObject({ status: 2, stderr: 'error: --tasks takes a whole number, got "x"\n' });
  });

  it('builds first: a no-op when the tree is built', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'tools/batch.js'), '--help'], { encoding: 'utf8', env: { ...process.env, ...env } });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  }, 60_000);
});

describe('batch simulate', () => {
  it('prints the result as the last stdout line', () => {
    writeFileSync(join(dir, 'nodes.jsonl'), `${JSON.stringify({ name: 'n1', capacity: { cpu: '4', memory: '8Gi' } })}\n`);
    writeFileSync(join(dir, 'work.jsonl'), `${JSON.stringify({ name: 'a', tasks: 8, resources: { cpu: '1' }, duration: 10 })}\n`);
    const r = batch(['simulate', '--nodes', join(dir, 'nodes.jsonl'), '--workload', join(dir, 'work.jsonl')], env);
    expect(r.status).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    // 8 one-core tasks on 4 cores, 10 s each → two waves → 20 s
    expect(last).toMatchObject({ placed: 8, pending: 0, completed: 8, rejected: 0, nodesUsed: 1, makespan: 20 });
    expect(r.stderr).toContain('simulate:');
  });

  it('stops on bad input with the file, line and field, exit 1', () => {
    writeFileSync(
      join(dir, 'bad.jsonl'),
      `${JSON.stringify({ name: 'n1', capacity: { cpu: '4' } })}\n${JSON.stringify({ name: 'n2', capacity: { cpu: 'four' } })}\n`,
    );
    const r = batch(['simulate', '--nodes', join(dir, 'bad.jsonl'), '--workload', join(dir, 'work.jsonl')], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${join(dir, 'bad.jsonl')}:2: capacity.cpu`);
  });
});
