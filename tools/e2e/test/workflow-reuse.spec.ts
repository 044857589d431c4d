/**
 * Reusing steps' results across runs, end to end on a real etcd and a real PostgreSQL history
 * with a real executor running real processes: a retry of a run already archived out of etcd
 * reuses its successful steps (read back from history, fan-out items included) and runs the rest;
 * memoized steps (`cache: true`) of a later run with the same inputs are not run and reuse the
 * earlier jobs, a changed `cacheVersion` runs the step again, another tenant never hits, and the
 * hits and misses are counted; a memoized step whose job a crashed controller already created
 * adopts that job rather than a cache hit (nothing both runs and is reused); and both from the
 * Python SDK (`batchapi.retry`, `.options(cache=True)`).
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { WorkflowView } from '@batchapi/api';
import { startQuota } from '@batchapi/quota';
import { stepJobId } from '@batchapi/workflows';
import { api, crashedControllerStepJob, until, useCluster } from './harness';

const c = useCluster({
  // tenant "other" has a queue of its own, to run the same steps as another tenant
  cluster: {
    tenants: [{ name: 'default' }, { name: 'other' }],
    queues: [
      { name: 'default', tenant: 'default' },
      { name: 'other-q', tenant: 'other' },
    ],
  },
  withHistory: { afterMs: 300, intervalMs: 100 },
  executor: { nodeName: 'reuse-node', killGraceMs: 300 },
});

const small = { resources: { cpu: '100m', memory: '16Mi' } };
const sh = (script: string) => ({ ...small, command: ['sh', '-c', script] });
const phases = (w: WorkflowView) => Object.fromEntries(w.steps.map((s) => [s.name, s.phase]));

async function waitWorkflow(id: string, token = 'tenant-token', ms = 30_000): Promise<WorkflowView> {
  let last: WorkflowView | undefined;
  await until(async () => {
    last = (await api(c.base, 'GET', `/v1/workflows/${id}`, undefined, token)).body;
    return last?.phase !== undefined && last.phase !== 'Running';
  }, ms);
  return last!;
}

it('retries a run archived to history: the reused step is read back from history and its results feed the fan-out', async () => {
  const marks = join(c.dir, 'marks');
  writeFileSync(marks, '');
  const res = await api(c.base, 'POST', '/v1/workflows', {
    name: 'archived-retry',
    steps: [
      { name: 'prep', job: sh(`echo prep >> ${marks} && echo "[2,3]" > "$BATCH_RESULT_PATH"`) },
      {
        name: 'square',
        dependsOn: ['prep'],
        map: { fromStep: 'prep' },
        job: sh(`test -f ${marks}.ok && echo $((BATCH_MAP_ITEM * BATCH_MAP_ITEM)) > "$BATCH_RESULT_PATH"`),
      },
    ],
  });
  expect(res.status).toBe(201);
  const first = await waitWorkflow(res.body.id);
  expect(phases(first)).toEqual({ prep: 'Succeeded', square: 'Failed' });
  const prepJob = first.steps[0].jobId!;
  // The archiver moves the finished run and its step jobs (with prep's results) out of etcd.
  const gone = async () =>
    (await c.store.get(c.store.keys.workflow(first.id))) === undefined &&
    (await c.store.get(c.store.keys.job(prepJob))) === undefined &&
    (await c.store.listAll(c.store.keys.resultsOf(prepJob))).items.length === 0;
  expect(await until(gone, 30_000)).toBe(true);
  expect((await api(c.base, 'GET', `/v1/workflows/${first.id}`)).body.phase).toBe('Failed');

  writeFileSync(`${marks}.ok`, '');
  const retry = await api(c.base, 'POST', `/v1/workflows/${first.id}/retry`, {});
  expect(retry.status).toBe(201);
  expect(retry.body).toMatchObject({ retryOf: first.id, phase: 'Running' });
  expect(retry.body.steps[0]).toMatchObject({ phase: 'Succeeded', jobId: prepJob, cached: { reason: 'retry', workflowId: first.id, jobId: prepJob } });
  const done = await waitWorkflow(retry.body.id);
  expect(done.phase).toBe('Succeeded');
  // square fanned out over prep's archived results [2, 3]; prep ran once in all.
  const square = done.steps.find((s) => s.name === 'square')!;
  expect((await api(c.base, 'GET', `/v1/jobs/${square.jobId}/results`)).body.results.map((r: { value: number }) => r.value)).toEqual([4, 9]);
  expect(readFileSync(marks, 'utf8')).toBe('prep\n');
  // The retry, archived in turn, still names the run it retried and the job it reused.
  expect(await until(async () => (await c.store.get(c.store.keys.workflow(done.id))) === undefined, 30_000)).toBe(true);
  expect((await api(c.base, 'GET', `/v1/workflows/${done.id}`)).body).toMatchObject({
    retryOf: first.id,
    steps: [{ name: 'prep', jobId: prepJob }, { name: 'square' }],
  });
});

describe('memoized steps (cache: true)', () => {
  const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).length;
  /** prep (cached) returns [1,2] and counts its runs; train (cached) maps over it; report (not cached) follows. */
  const nightly = (marks: string, trainVersion?: string, queue?: string) => ({
    name: 'memo',
    ...(queue ? { queue } : {}),
    steps: [
      { name: 'prep', cache: true, job: sh(`echo prep >> ${marks}.prep && echo "[1,2]" > "$BATCH_RESULT_PATH"`) },
      {
        name: 'train',
        dependsOn: ['prep'],
        map: { fromStep: 'prep' },
        cache: true,
        ...(trainVersion ? { cacheVersion: trainVersion } : {}),
        job: sh(`echo train >> ${marks}.train && echo $((BATCH_MAP_ITEM * 10)) > "$BATCH_RESULT_PATH"`),
      },
      { name: 'report', dependsOn: ['train'], job: sh(`echo report >> ${marks}.report`) },
    ],
  });
  const counts = async () => {
    const text = await c.services[0].ctx.registry.getSingleMetricAsString('batch_workflow_step_cache_total');
    const of = (outcome: string) => Number(new RegExp(`outcome="${outcome}"[^}]*} (\\d+)`).exec(text)?.[1] ?? 0);
    return { hit: of('hit'), miss: of('miss') };
  };

  it('reuses the earlier jobs of steps with the same inputs, runs a step again for a new cacheVersion, and never across tenants', async () => {
    const marks = join(c.dir, 'memo');
    const before = await counts();
    const first = await waitWorkflow((await api(c.base, 'POST', '/v1/workflows', nightly(marks))).body.id);
    expect(first.phase).toBe('Succeeded');
    expect(first.steps.map((s) => s.cached)).toEqual([undefined, undefined, undefined]);
    expect(first.steps.map((s) => s.cache)).toEqual([true, true, undefined]);
    // prep ran once, train twice (two items), report once: two misses (prep, train), no hit.
    expect([lines(`${marks}.prep`), lines(`${marks}.train`), lines(`${marks}.report`)]).toEqual([1, 2, 1]);
    expect(await counts()).toEqual({ hit: before.hit, miss: before.miss + 2 });

    // The same run again: prep and train are not run and reuse the first run's jobs; report (not cached) runs.
    const second = await waitWorkflow((await api(c.base, 'POST', '/v1/workflows', nightly(marks))).body.id);
    expect(second.phase).toBe('Succeeded');
    expect(second.steps[0]).toMatchObject({
      phase: 'Succeeded',
      jobId: first.steps[0].jobId,
      cached: { reason: 'cache', workflowId: first.id, jobId: first.steps[0].jobId },
    });
    expect(second.steps[1]).toMatchObject({ phase: 'Succeeded', jobId: first.steps[1].jobId, cached: { reason: 'cache', workflowId: first.id } });
    expect(second.steps[2].cached).toBeUndefined();
    expect([lines(`${marks}.prep`), lines(`${marks}.train`), lines(`${marks}.report`)]).toEqual([1, 2, 2]);
    expect(await counts()).toEqual({ hit: before.hit + 2, miss: before.miss + 2 });
    // train's results, reused, are the first run's: 10, 20.
    expect((await api(c.base, 'GET', `/v1/jobs/${second.steps[1].jobId}/results`)).body.results.map((r: { value: number }) => r.value)).toEqual([10, 20]);

    // A new cacheVersion of train: prep still hits, train runs again (its two tasks).
    const third = await waitWorkflow((await api(c.base, 'POST', '/v1/workflows', nightly(marks, 'v2'))).body.id);
    expect(third.phase).toBe('Succeeded');
    expect(third.steps[0].cached).toMatchObject({ reason: 'cache', workflowId: first.id });
    expect(third.steps[1].cached).toBeUndefined();
    expect(lines(`${marks}.train`)).toBe(4);

    // Another tenant with the very same steps: every step runs.
    const theirs = await api(c.base, 'POST', '/v1/workflows', nightly(marks, undefined, 'other-q'), 'other-token');
    expect(theirs.status).toBe(201);
    const fourth = await waitWorkflow(theirs.body.id, 'other-token');
    expect(fourth.phase).toBe('Succeeded');
    expect(fourth.steps.map((s) => s.cached)).toEqual([undefined, undefined, undefined]);
    expect(lines(`${marks}.prep`)).toBe(2);
  });

  it.each([
    ['cacheVersion without cache: true', { name: 'a', cacheVersion: 'v1', job: sh('true') }, 'steps[0].cacheVersion'],
    // the schema's own checks name the field by its path (dotted)
    ['a cacheVersion over 64 characters', { name: 'a', cache: true, cacheVersion: 'v'.repeat(65), job: sh('true') }, 'steps.0.cacheVersion'],
    ['a cache that is not a boolean', { name: 'a', cache: 'yes', job: sh('true') }, 'steps.0.cache'],
  ])('refuses %s with 400 naming the field, and writes nothing', async (_n, step, field) => {
    const keys = async () => (await c.store.listAll(c.store.keys.workflows())).items.map((kv) => kv.key);
    const before = new Set(await keys());
    const res = await api(c.base, 'POST', '/v1/workflows', { steps: [step] });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_argument', field });
    // No workflow written: none that was not there before (the archiver may have moved earlier tests' runs out meanwhile:
    // a count fell from 2 to 1 in CI).
    expect((await keys()).filter((k) => !before.has(k))).toEqual([]);
  });
});

it('retries and memoizes from the Python SDK: batchapi.retry reuses the step whose results the failed step takes as input', async () => {
  const marks = join(c.dir, 'py');
  c.file('pipeline_tasks.py', [
    'import os',
    'import batchapi as batch',
    '',
    '@batch.task(cpus=0.1, memory="64Mi")',
    'def prep(marks: str) -> list:',
    '    with open(marks + ".prep", "a") as f:',
    '        f.write("x\\n")',
    '    return [1, 2]',
    '',
    '@batch.task(cpus=0.1, memory="64Mi")',
    'def total(marks: str, xs: list) -> int:',
    '    if not os.path.exists(marks + ".ok"):',
    '        raise RuntimeError("not yet")',
    '    return sum(xs)',
  ]);
  const driver = c.file('driver.py', [
    'import json, sys',
    'import batchapi as batch',
    'import pipeline_tasks as t',
    'marks = sys.argv[1]',
    'with batch.workflow("py-nightly") as wf:',
    '    p = wf.step(t.prep.options(name="prep", cache=True), marks)',
    '    s = wf.step(t.total.options(name="total", inputs=[p]), marks)',
    'first = wf.wait(timeout=60)',
    'open(marks + ".ok", "w").close()',
    'again = batch.retry(wf)',
    'done = again.wait(timeout=60)',
    'result = again.result(s)',
    'with batch.workflow("py-nightly-2") as wf2:',
    '    wf2.step(t.prep.options(name="prep", cache=True), marks)',
    'memo = wf2.wait(timeout=60)',
    'try:',
    '    batch.retry(again)',
    '    err = None',
    'except batch.WorkflowNotRetryable as e:',
    '    err = e.code',
    'print(json.dumps({"first": first, "done": done, "result": result, "memo": memo, "err": err}))',
  ]);
  // Not spawnSync: the services answering the driver run in this process.
  const { stdout } = await promisify(execFile)('python3', [driver, marks], {
    cwd: c.dir,
    timeout: 120_000,
    env: { ...process.env, BATCH_API: c.base, BATCH_TOKEN: 'tenant-token', PYTHONPATH: `${c.dir}:${join(__dirname, '../../../sdk/python')}` },
  });
  const out = JSON.parse(stdout) as { first: WorkflowView; done: WorkflowView; result: number; memo: WorkflowView; err: string | null };
  expect(phases(out.first)).toEqual({ prep: 'Succeeded', total: 'Failed' });
  const prepJob = out.first.steps[0].jobId;
  expect(out.done).toMatchObject({
    phase: 'Succeeded',
    retryOf: out.first.id,
    steps: [
      { name: 'prep', jobId: prepJob, cached: { reason: 'retry' } },
      { name: 'total', phase: 'Succeeded' },
    ],
  });
  // total got prep's reused result [1, 2] as its input
  expect(out.result).toBe(3);
  expect(out.memo.steps[0]).toMatchObject({ phase: 'Succeeded', jobId: prepJob, cached: { reason: 'cache', workflowId: out.first.id } });
  expect(out.err).toBe('workflow_not_retryable');
  expect(readFileSync(`${marks}.prep`, 'utf8')).toBe('x\n');
});

it('adopts the job a crashed controller created for a memoized step instead of reusing a cache hit', async () => {
  const body = { steps: [{ name: 'only', cache: true, job: sh('echo 5 > "$BATCH_RESULT_PATH"') }] };
  const first = await waitWorkflow((await api(c.base, 'POST', '/v1/workflows', body)).body.id);
  expect(first.steps[0]).toMatchObject({ phase: 'Succeeded', jobId: stepJobId(first.id, 0) });
  // The controller stops; a run of the same step comes; a controller creates its job and dies before recording it.
  await c.services[0].close();
  const id = (await api(c.base, 'POST', '/v1/workflows', body)).body.id as string;
  // Its job returns 6, not 5: the value tells which job the step ended with.
  const job = await crashedControllerStepJob(c.store, id, 'echo 6 > "$BATCH_RESULT_PATH"');
  const config = { etcdEndpoints: c.etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' };
  c.services[0] = await startQuota({ config, historyUrl: c.historyUrl, archive: { afterMs: 300, intervalMs: 100 } });
  const done = await waitWorkflow(id);
  expect(done.steps[0]).toMatchObject({ phase: 'Succeeded', jobId: job.id });
  expect(done.steps[0].cached).toBeUndefined();
  expect((await api(c.base, 'GET', `/v1/jobs/${job.id}/results`)).body.results).toEqual([{ index: 0, value: 6 }]);
  expect(await c.services[0].ctx.registry.getSingleMetricAsString('batch_workflow_step_cache_total')).not.toMatch(/outcome="hit"/);
});
