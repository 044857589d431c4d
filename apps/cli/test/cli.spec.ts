/**
 * The built `batch` command as a real process: `batch dev` starts a working cluster and
 * stops everything on SIGINT; the job commands talk to it; `simulate` keeps its contract.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchClient } from '@batchapi/sdk';

const MAIN = join(__dirname, '../dist/main.js');
let dir: string;

beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'cli-test-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function batch(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), ...env }, timeout: 60_000 });
}

describe('batch dev', () => {
  let devProc: ChildProcess;
  let out = '';

  afterAll(() => { if (devProc.exitCode === null) devProc.kill('SIGKILL'); });

  it('starts the cluster, runs jobs from the CLI, and stops everything on SIGINT', async () => {
    devProc = spawn(process.execPath, [MAIN, 'dev', '--fresh', '--data-dir', join(dir, 'dev')], { env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'config') }, stdio: ['ignore', 'pipe', 'pipe'] });
    devProc.stdout!.on('data', (c) => (out += c));
    const deadline = Date.now() + 60_000;
    while (!/export BATCH_API=(\S+) BATCH_TOKEN=(\S+)/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const [, api, token] = /export BATCH_API=(\S+) BATCH_TOKEN=(\S+)/.exec(out)!;

    // The other commands find the cluster through the settings file batch dev wrote.
    const submitted = batch(['submit', '--tasks', '2', '--cpu', '100m', '--wait', '-o', 'json', '--', 'sh', '-c', 'echo out-$BATCH_TASK_INDEX']);
    expect(submitted.status).toBe(0);
    const job = JSON.parse(submitted.stdout);
    expect(job).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 2 } });
    expect(batch(['logs', job.id, '--task', '1']).stdout).toBe('out-1\n');
    expect(batch(['get', job.id]).stdout).toMatch(/Phase:\s+Succeeded/);
    expect(batch(['list', '-o', 'json']).stdout).toContain(job.id);
    const missing = batch(['get', 'no-such-job']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('error: not_found');
    expect(batch(['submit', '--tasks', 'x', '--', 'true']).status).toBe(2);

    const client = new BatchClient({ url: api, token });
    const exited = new Promise<number | null>((r) => devProc.once('exit', (code) => r(code)));
    devProc.kill('SIGINT');
    expect(await exited).toBe(0);
    // Nothing answers on the API any more.
    await expect(new BatchClient({ ...client.options, retries: 0, timeoutMs: 2000 }).listJobs()).rejects.toMatchObject({ code: 'unavailable' });
  }, 90_000);
});

describe('batch simulate', () => {
  it('prints the result as the last stdout line', () => {
    writeFileSync(join(dir, 'nodes.jsonl'), `${JSON.stringify({ name: 'n1', capacity: { cpu: '4', memory: '8Gi' } })}\n`);
    writeFileSync(join(dir, 'work.jsonl'), `${JSON.stringify({ name: 'a', tasks: 8, resources: { cpu: '1' }, duration: 10 })}\n`);
    const r = batch(['simulate', '--nodes', join(dir, 'nodes.jsonl'), '--workload', join(dir, 'work.jsonl')]);
    expect(r.status).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    // 8 one-core tasks on 4 cores, 10 s each → two waves → 20 s
    expect(last).toMatchObject({ placed: 8, pending: 0, completed: 8, rejected: 0, nodesUsed: 1, makespan: 20 });
    expect(r.stderr).toContain('simulate:');
  });

  it('stops on bad input with the file, line and field, exit 1', () => {
    writeFileSync(join(dir, 'bad.jsonl'), `${JSON.stringify({ name: 'n1', capacity: { cpu: '4' } })}\n${JSON.stringify({ name: 'n2', capacity: { cpu: 'four' } })}\n`);
    const r = batch(['simulate', '--nodes', join(dir, 'bad.jsonl'), '--workload', join(dir, 'work.jsonl')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${join(dir, 'bad.jsonl')}:2: capacity.cpu`);
  });
});
