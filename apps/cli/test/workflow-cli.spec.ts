/**
 * `batch run`, `batch workflow …`, `-o yaml|wide` and `batch completion` as real processes
 * against in-process services on a real etcd with a real executor.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CLUSTER } from '@batchapi/quota';
import { load } from 'js-yaml';
import { useCluster } from '../../../tools/e2e/test/harness';
import { batchAsync } from './dev-process';

const c = useCluster({ cluster: DEFAULT_CLUSTER, scheduler: { idleMs: 50 }, executor: { nodeName: 'cli-node', killGraceMs: 300 } });

/** `batch <args>` with the tenant token against the cluster, as a child process (the services live in this one). */
const batch = (args: string[]) =>
  batchAsync(args, { BATCH_API: c.base, BATCH_TOKEN: 'tenant-token', XDG_CONFIG_HOME: join(c.dir, 'config'), XDG_CACHE_HOME: join(c.dir, 'cache') });

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
  const file = c.file('wf.yaml', [
    'name: cli-flow',
    'steps:',
    '  - name: make',
    '    job: { command: [sh, -c, "echo [10,20] > $BATCH_RESULT_PATH"], resources: { cpu: 100m, memory: 16Mi } }',
    '  - name: each',
    '    dependsOn: [make]',
    '    map: { fromStep: make }',
    '    job: { command: [sh, -c, "test $BATCH_MAP_ITEM -gt 5"], resources: { cpu: 100m, memory: 16Mi } }',
  ]);
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
  const bad = join(c.dir, 'cycle.json');
  writeFileSync(bad, JSON.stringify({ steps: [{ name: 'a', dependsOn: ['a'], job: { command: ['true'] } }] }));
  const refused = await batch(['workflow', 'submit', '-f', bad]);
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/^error: workflow_cycle: .*a → a/);
});

it('batch workflow retry re-runs a failed run from its failure and refuses a run that succeeded', async () => {
  const ok = join(c.dir, 'retry-ok');
  const file = c.file('retry.yaml', [
    'name: cli-retry',
    'steps:',
    '  - name: first',
    '    job: { command: [sh, -c, "echo 7 > $BATCH_RESULT_PATH"], resources: { cpu: 100m, memory: 16Mi } }',
    '  - name: second',
    '    dependsOn: [first]',
    `    job: { command: [sh, -c, "test -f ${ok}"], resources: { cpu: 100m, memory: 16Mi } }`,
  ]);
  const failed = await batch(['workflow', 'submit', '-f', file, '--wait', '-o', 'json']);
  expect(failed.status).toBe(1);
  const run = JSON.parse(failed.stdout);
  writeFileSync(ok, '');
  const retried = await batch(['workflow', 'retry', run.id, '--wait', '-o', 'json']);
  expect(retried.status).toBe(0);
  const again = JSON.parse(retried.stdout);
  expect(again).toMatchObject({
    retryOf: run.id,
    phase: 'Succeeded',
    steps: [{ name: 'first', jobId: run.steps[0].jobId, cached: { reason: 'retry' } }, { phase: 'Succeeded' }],
  });
  expect((await batch(['workflow', 'get', again.id])).stdout).toMatch(new RegExp(`Retry of:\\s+${run.id}[\\s\\S]*first\\s+Succeeded \\(cached\\)`));
  const refused = await batch(['workflow', 'retry', again.id]);
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/^error: workflow_not_retryable: .*succeeded/);
});

it('batch workflow register, run --param --follow, templates, template get|delete and list --template', async () => {
  const file = c.file('tpl.yaml', [
    'name: cli-nightly',
    'description: one day',
    'parameters:',
    "  date: { pattern: '\\d{4}-\\d{2}-\\d{2}' }",
    '  region: { default: eu }',
    'workflow:',
    '  steps:',
    '    - name: day',
    '      job: { command: [sh, -c, \'printf "\\"%s\\"" "$D" > $BATCH_RESULT_PATH\'], env: { D: "{{params.date}}/{{params.region}}" }, resources: { cpu: 100m, memory: 16Mi } }',
  ]);
  const reg = await batch(['workflow', 'register', '-f', file]);
  expect(reg).toMatchObject({ status: 0, stdout: 'cli-nightly version 1\n' });
  const run = await batch(['workflow', 'run', 'cli-nightly', '--param', 'date=2026-12-01', '--param', 'region=us', '--follow', '-o', 'json']);
  expect(run.status).toBe(0);
  const wf = JSON.parse(run.stdout);
  expect(wf).toMatchObject({ phase: 'Succeeded', template: { name: 'cli-nightly', version: 1, params: { date: '2026-12-01', region: 'us' } } });
  const results = await fetch(`${c.base}/v1/jobs/${wf.steps[0].jobId}/results`, { headers: { authorization: 'Bearer tenant-token' } });
  expect(((await results.json()) as { results: Array<{ value: unknown }> }).results[0].value).toBe('2026-12-01/us');
  const id = await batch(['workflow', 'run', 'cli-nightly', '--param', 'date=2026-12-02']);
  expect(id.stdout).toMatch(/^wf-\S+\n$/);
  const missing = await batch(['workflow', 'run', 'cli-nightly']);
  expect(missing.status).toBe(1);
  expect(missing.stderr).toMatch(/^error: missing_parameter: params\.date/);
  expect((await batch(['workflow', 'templates'])).stdout).toMatch(/^NAME\s+VERSION\s+PARAMETERS.*\ncli-nightly\s+1\s+date\*, region=eu\s/);
  expect((await batch(['workflow', 'template', 'get', 'cli-nightly', '--template-version', '1'])).stdout).toMatch(/version:\s+1 of 1[\s\S]*date \(required\)/);
  const v1 = await batch(['workflow', 'run', 'cli-nightly', '--template-version', '1', '--param', 'date=2026-12-03', '-o', 'json']);
  expect(JSON.parse(v1.stdout).template.version).toBe(1);
  const listed = await batch(['workflow', 'list', '--template', 'cli-nightly', '-o', 'json']);
  expect((JSON.parse(listed.stdout) as { workflows: Array<{ id: string }> }).workflows.map((w) => w.id).sort()).toEqual(
    [wf.id, id.stdout.trim(), JSON.parse(v1.stdout).id].sort(),
  );
  expect(await batch(['workflow', 'template', 'delete', 'cli-nightly'])).toMatchObject({ status: 0, stdout: 'cli-nightly deleted\n' });
});

it('batch completion bash prints a script that completes commands', async () => {
  const r = await batch(['completion', 'bash']);
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('complete -F _batch_complete batch');
  expect(r.stdout).toContain('"workflow") words="submit get list retry cancel register run templates template --help"');
  expect(r.stdout).toContain('"workflow template") words="get delete --help"');
  expect(r.stdout).toContain('"workflow run") words="--param --template-version --idempotency-key --follow --output -o --help"');
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
