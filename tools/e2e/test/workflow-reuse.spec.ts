/**
 * Reusing steps' results across runs, end to end on a real etcd and a real PostgreSQL history
 * with a real executor running real processes: a retry of a run already archived out of etcd
 * reuses its successful steps (read back from history, fan-out items included) and runs the rest.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowView } from '@batchapi/api';
import { api, until, useCluster } from './harness';

const c = useCluster({ withHistory: { afterMs: 300, intervalMs: 100 }, executor: { nodeName: 'reuse-node', killGraceMs: 300 } });

const small = { resources: { cpu: '100m', memory: '16Mi' } };
const sh = (script: string) => ({ ...small, command: ['sh', '-c', script] });
const phases = (w: WorkflowView) => Object.fromEntries(w.steps.map((s) => [s.name, s.phase]));

async function waitWorkflow(id: string, ms = 30_000): Promise<WorkflowView> {
  let last: WorkflowView | undefined;
  await until(async () => {
    last = (await api(c.base, 'GET', `/v1/workflows/${id}`)).body;
    return last !== undefined && last.phase !== 'Running';
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
