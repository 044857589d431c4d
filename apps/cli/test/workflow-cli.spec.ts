/**
 * `batch run`, `batch workflow …`, `-o yaml|wide` and `batch completion` as real processes
 * against in-process services on a real etcd with a real executor.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import { startExecutor } from '@batchapi/executor';
import { DEFAULT_CLUSTER, startQuota } from '@batchapi/quota';
import type { RunningService } from '@batchapi/runtime';
import { startScheduler } from '@batchapi/scheduler';
import { type LocalEtcd, startEtcd } from '@batchapi/store';
import { load } from 'js-yaml';
import { MAIN } from './dev-process';

let etcd: LocalEtcd;
let dir: string;
const services: RunningService[] = [];
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  etcd = await startEtcd();
  dir = mkdtempSync(join(tmpdir(), 'cli-wf-'));
  const config = { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' };
  services.push(await startQuota({ config, cluster: DEFAULT_CLUSTER }));
  services.push(await startScheduler({ config, tuning: { idleMs: 50, busyMs: 5 } }));
  services.push(
    await startExecutor({
      config,
      executor: {
        nodeName: 'cli-node',
        dataDir: join(dir, 'node'),
        cpu: '4',
        memory: '8Gi',
        killGraceMs: 300,
        reportIntervalMs: 50,
        nvidiaSmi: join(dir, 'absent'),
      },
    }),
  );
  const tokens = { tokens: [{ sha256: createHash('sha256').update('cli-token').digest('hex'), tenant: 'default', role: 'tenant' as const }] };
  const admission = await startAdmission({ tokens: new TokenAuthenticator(tokens), config });
  services.push(admission);
  env = { BATCH_API: admission.url, BATCH_TOKEN: 'cli-token', XDG_CONFIG_HOME: join(dir, 'config'), XDG_CACHE_HOME: join(dir, 'cache') };
}, 60_000);
afterAll(async () => {
  for (const s of [...services].reverse()) await s.close().catch(() => undefined);
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** `batch <args>` as a child process, without blocking this process (the services live here). */
function batch(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}

it('batch run follows a job to its end and exits with its outcome', async () => {
  const ok = await batch(['run', '--tasks', '3', '--cpu', '100m', '--memory', '16Mi', '-o', 'json', '--', 'true']);
  expect(ok.status).toBe(0);
  expect(JSON.parse(ok.stdout)).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 3 } });
  // Not a terminal: one progress line per change on stderr, the last one with all three tasks done.
  expect(ok.stderr).toMatch(/3\/3 tasks \| 3 succeeded/);
  const failed = await batch(['run', '--cpu', '100m', '--memory', '16Mi', '--', 'sh', '-c', 'exit 3']);
  expect(failed.status).toBe(1);
  expect(failed.stdout).toMatch(/Phase:\s+Failed/);
});

it('batch workflow submit -f a YAML file --wait, then get, list (yaml, wide) and cancel', async () => {
  const file = join(dir, 'wf.yaml');
  writeFileSync(
    file,
    [
      'name: cli-flow',
      'steps:',
      '  - name: make',
      '    job: { command: [sh, -c, "echo [10,20] > $BATCH_RESULT_PATH"], resources: { cpu: 100m, memory: 16Mi } }',
      '  - name: each',
      '    dependsOn: [make]',
      '    map: { fromStep: make }',
      '    job: { command: [sh, -c, "test $BATCH_MAP_ITEM -gt 5"], resources: { cpu: 100m, memory: 16Mi } }',
      '',
    ].join('\n'),
  );
  const sub = await batch(['workflow', 'submit', '-f', file, '--wait', '-o', 'json']);
  expect(sub.status).toBe(0);
  const wf = JSON.parse(sub.stdout);
  expect(wf).toMatchObject({ name: 'cli-flow', phase: 'Succeeded' });
  const get = await batch(['workflow', 'get', wf.id]);
  expect(get.stdout).toMatch(/each\s+Succeeded\s+success\s+make\s+1/);
  const list = await batch(['workflow', 'list', '-o', 'yaml']);
  expect((load(list.stdout) as { workflows: Array<{ id: string }> }).workflows.map((w) => w.id)).toContain(wf.id);
  expect((await batch(['workflow', 'list', '-o', 'wide'])).stdout).toMatch(/^ID\s+NAME\s+PHASE\s+STEPS\s+CREATED\s+TENANT\s+QUEUE/);
  const cancel = await batch(['workflow', 'cancel', wf.id]);
  expect(cancel).toMatchObject({ status: 0, stdout: `${wf.id} Succeeded\n` });
  const bad = join(dir, 'cycle.json');
  writeFileSync(bad, JSON.stringify({ steps: [{ name: 'a', dependsOn: ['a'], job: { command: ['true'] } }] }));
  const refused = await batch(['workflow', 'submit', '-f', bad]);
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/^error: workflow_cycle: .*a → a/);
});

it('batch completion bash prints a script that completes commands', async () => {
  const r = await batch(['completion', 'bash']);
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('complete -F _batch_complete batch');
  expect(r.stdout).toContain('"workflow") words="submit get list cancel --help"');
  expect((await batch(['completion', 'fish'])).status).toBe(2);
});

it('batch list filters by label selector, name prefix and submit time, in either order; batch usage says it needs a history store', async () => {
  const run = `cli${Date.now().toString(36)}`;
  const submit = async (name: string, label: string) => {
    const r = await batch(['submit', '--name', `${run}-${name}`, '--label', label, '--cpu', '100m', '--memory', '16Mi', '-o', 'json', '--', 'true']);
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout) as { id: string };
  };
  const a = await submit('a', 'team=ml');
  const b = await submit('b', 'team=web');
  const list = async (...args: string[]) => {
    const r = await batch(['list', '--name', `${run}-`, '-o', 'json', ...args]);
    expect(r.stderr).toBe('');
    return (JSON.parse(r.stdout) as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id);
  };
  expect(await list()).toEqual([a.id, b.id]);
  expect(await list('-l', 'team=ml')).toEqual([a.id]);
  expect(await list('-l', 'team notin (ml)')).toEqual([b.id]);
  expect(await list('--sort', '-submitted')).toEqual([b.id, a.id]);
  expect(await list('--since', '1h')).toEqual([a.id, b.id]);
  expect(await list('--before', '1h')).toEqual([]);
  const usage = await batch(['usage', '--by', 'queue']);
  expect(usage.status).toBe(1);
  expect(usage.stderr).toMatch(/unavailable: .*BATCH_HISTORY_URL/);
});
