/**
 * Passing data between steps over HTTP, end to end (in-process services on a real etcd, a real
 * executor running shell steps): a step naming `inputs` gets `BATCH_INPUTS` (the jobs holding
 * them) and a read-only `BATCH_INPUTS_TOKEN`, reads its inputs' results with curl — a fan-out's
 * in item order — and a retry's step reads a reused step's job of the earlier run. The token reads
 * its own workflow's jobs and nothing else: it cannot submit, cancel, list, or read another
 * workflow; a forged one is refused; no user token is in the step's job. A step whose env names
 * no `BATCH_API` is given an admission replica's address.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobRecord, WorkflowView } from '@batchapi/api';
import { api, until, useCluster } from './harness';

const c = useCluster({ executor: { cpu: '8', memory: '16Gi', killGraceMs: 300 } });

const small = { resources: { cpu: '100m', memory: '16Mi' } };
const sh = (script: string, env: Record<string, string> = {}) => ({ ...small, command: ['sh', '-c', script], env });
/** A step reading each of its inputs' results with its inputs token: their bodies, as a JSON list in `inputs` order. */
const READ_INPUTS =
  'set -e; out="["; sep=""; for id in $(echo "$BATCH_INPUTS" | jq -r ".[].jobId"); do ' +
  'body=$(curl -sf -H "Authorization: Bearer $BATCH_INPUTS_TOKEN" "$BATCH_API/v1/jobs/$id/results" | jq -c "[.results[].value]"); ' +
  'out="$out$sep$body"; sep=","; done; echo "$out]" > "$BATCH_RESULT_PATH"';

async function waitWorkflow(id: string, ms = 30000): Promise<WorkflowView> {
  let last: WorkflowView | undefined;
  await until(async () => {
    last = (await api(c.base, 'GET', `/v1/workflows/${id}`)).body;
    return last !== undefined && last.phase !== 'Running';
  }, ms);
  return last!;
}
const stepOf = (w: WorkflowView, name: string) => w.steps.find((s) => s.name === name)!;
/** Each step's phase, and for a failed one its job's reason and its first task's stderr: what a failed run is read from. */
async function outcome(w: WorkflowView): Promise<Record<string, unknown>> {
  const steps: Record<string, unknown> = {};
  for (const s of w.steps) {
    if (s.phase !== 'Failed' || !s.jobId) steps[s.name] = s.phase;
    else {
      const job = (await api(c.base, 'GET', `/v1/jobs/${s.jobId}`)).body;
      const stderr = await fetch(`${c.base}/v1/jobs/${s.jobId}/tasks/0/logs?stream=stderr`, { headers: { authorization: 'Bearer tenant-token' } }).then((r) =>
        r.text(),
      );
      steps[s.name] = { phase: s.phase, reason: job?.reason, env: job?.spec?.env && Object.keys(job.spec.env), stderr };
    }
  }
  return { phase: w.phase, steps };
}
const resultsOf = async (jobId: string, token?: string) => (await api(c.base, 'GET', `/v1/jobs/${jobId}/results`, undefined, token)).body;

it('a shell step reads its inputs with its own read-only token: a fan-out in item order, a one-task step', async () => {
  const res = await api(c.base, 'POST', '/v1/workflows', {
    name: 'inputs',
    steps: [
      { name: 'prep', job: sh('echo "[3,1,2]" > "$BATCH_RESULT_PATH"') },
      // square's tasks finish in any order; its results are read by index: 9, 1, 4
      { name: 'square', dependsOn: ['prep'], map: { fromStep: 'prep' }, job: sh('echo $((BATCH_MAP_ITEM * BATCH_MAP_ITEM)) > "$BATCH_RESULT_PATH"') },
      // inputs imply the dependencies: report waits for square and prep without naming them in dependsOn;
      // its env names no BATCH_API: the controller gives it the address of an admission replica
      { name: 'report', inputs: ['square', 'prep'], job: sh(READ_INPUTS) },
    ],
  });
  expect(res.status).toBe(201);
  expect(stepOf(res.body, 'report')).toMatchObject({ dependsOn: ['square', 'prep'], inputs: ['square', 'prep'] });
  const done = await waitWorkflow(res.body.id);
  if (done.phase !== 'Succeeded') expect(await outcome(done)).toEqual({ phase: 'Succeeded' });
  const report = stepOf(done, 'report');
  expect(await resultsOf(report.jobId!)).toEqual({ results: [{ index: 0, value: [[9, 1, 4], [[3, 1, 2]]] }] });

  // The step's job: its inputs by job, an inputs token, and no user token anywhere.
  const job = (await c.store.get<JobRecord>(c.store.keys.job(report.jobId!)))!.value;
  expect(JSON.parse(job.spec.env.BATCH_INPUTS)).toEqual([
    { step: 'square', jobId: stepOf(done, 'square').jobId, map: true, phase: 'Succeeded' },
    { step: 'prep', jobId: stepOf(done, 'prep').jobId, map: false, phase: 'Succeeded' },
  ]);
  const token = job.spec.env.BATCH_INPUTS_TOKEN;
  expect(token).toMatch(/^bsi1\./);
  expect((await fetch(`${job.spec.env.BATCH_API}/readyz`)).status).toBe(200);
  expect(job.spec.env.BATCH_TOKEN).toBeUndefined();
  for (const userToken of ['tenant-token', 'operator-token']) expect(JSON.stringify(job)).not.toContain(userToken);

  // What the token reads: its workflow, its steps' jobs and their results.
  expect((await api(c.base, 'GET', `/v1/workflows/${done.id}`, undefined, token)).status).toBe(200);
  expect((await api(c.base, 'GET', `/v1/jobs/${report.jobId}`, undefined, token)).status).toBe(200);
  expect(await resultsOf(stepOf(done, 'prep').jobId!, token)).toEqual({ results: [{ index: 0, value: [3, 1, 2] }] });
  expect((await api(c.base, 'GET', `/v1/jobs/${stepOf(done, 'square').jobId}/results/0`, undefined, token)).body).toBe(9);

  // What it cannot do: submit, cancel, list, read logs, or anything of another workflow.
  const other = await api(c.base, 'POST', '/v1/workflows', { name: 'other', steps: [{ name: 'secret', job: sh('echo 42 > "$BATCH_RESULT_PATH"') }] });
  const otherDone = await waitWorkflow(other.body.id);
  const otherJob = stepOf(otherDone, 'secret').jobId!;
  const refused: Array<[string, string, unknown, number]> = [
    ['POST', '/v1/jobs', { ...sh('true') }, 403],
    ['POST', '/v1/workflows', { steps: [{ name: 'x', job: sh('true') }] }, 403],
    ['DELETE', `/v1/workflows/${done.id}`, undefined, 403],
    ['DELETE', `/v1/jobs/${report.jobId}`, undefined, 403],
    ['GET', '/v1/jobs', undefined, 403],
    ['GET', `/v1/jobs/${report.jobId}/tasks`, undefined, 403],
    ['GET', `/v1/jobs/${otherJob}/results`, undefined, 404],
    ['GET', `/v1/jobs/${otherJob}`, undefined, 404],
    ['GET', `/v1/workflows/${otherDone.id}`, undefined, 404],
  ];
  for (const [method, path, body, status] of refused) {
    const r = await api(c.base, method, path, body, token);
    expect([method, path, r.status]).toEqual([method, path, status]);
  }
  // a forged token (the claims of another workflow under the old signature) is no token at all
  const [, , mac] = token.split('.');
  const forged = `bsi1.${Buffer.from(JSON.stringify({ t: 'default', w: otherDone.id, x: Date.now() + 3_600_000 })).toString('base64url')}.${mac}`;
  expect((await api(c.base, 'GET', `/v1/jobs/${otherJob}/results`, undefined, forged)).status).toBe(401);
  // the user still reads the other workflow; another tenant reads neither
  expect(await resultsOf(otherJob)).toEqual({ results: [{ index: 0, value: 42 }] });
  expect((await api(c.base, 'GET', `/v1/jobs/${report.jobId}/results`, undefined, 'other-token')).status).toBe(404);
}, 60000);

it('refuses inputs naming no step or the step itself, with 422 unknown_input_step naming steps[i].inputs[j]', async () => {
  const cases: Array<[unknown[], number, string, string]> = [
    [
      [
        { name: 'a', job: sh('true') },
        { name: 'b', inputs: ['a', 'nope'], job: sh('true') },
      ],
      422,
      'unknown_input_step',
      'steps[1].inputs[1]',
    ],
    [[{ name: 'a', inputs: ['a'], job: sh('true') }], 422, 'unknown_input_step', 'steps[0].inputs[0]'],
    [
      [
        { name: 'a', job: sh('true') },
        { name: 'b', inputs: ['a', 'a'], job: sh('true') },
      ],
      400,
      'invalid_argument',
      'steps[1].inputs[1]',
    ],
  ];
  for (const [steps, status, code, field] of cases) {
    const r = await api(c.base, 'POST', '/v1/workflows', { steps });
    expect([r.status, r.body.error.code, r.body.error.field]).toEqual([status, code, field]);
  }
});

it("a retry's step reads the earlier run's job of a reused input with the new run's token", async () => {
  const marks = mkdtempSync(join(tmpdir(), 'e2e-wf-inputs-retry-'));
  try {
    const first = await api(c.base, 'POST', '/v1/workflows', {
      name: 'reuse',
      steps: [
        { name: 'prep', job: sh('echo \'{"rows": 7}\' > "$BATCH_RESULT_PATH"') },
        // fails the first time (no mark yet), succeeds on the retry
        { name: 'use', inputs: ['prep'], job: sh(`if [ ! -e ${marks}/ok ]; then touch ${marks}/ok; exit 1; fi; ${READ_INPUTS}`, { BATCH_API: c.base }) },
      ],
    });
    const failed = await waitWorkflow(first.body.id);
    expect(failed.phase).toBe('Failed');
    const again = await api(c.base, 'POST', `/v1/workflows/${failed.id}/retry`, {});
    expect(again.status).toBe(201);
    const done = await waitWorkflow(again.body.id);
    expect(done.phase).toBe('Succeeded');
    const prepJob = stepOf(failed, 'prep').jobId!;
    expect(stepOf(done, 'prep')).toMatchObject({ jobId: prepJob, cached: { reason: 'retry', workflowId: failed.id, jobId: prepJob } });
    const use = (await c.store.get<JobRecord>(c.store.keys.job(stepOf(done, 'use').jobId!)))!.value;
    expect(JSON.parse(use.spec.env.BATCH_INPUTS)).toEqual([{ step: 'prep', jobId: prepJob, map: false, phase: 'Succeeded' }]);
    expect(await resultsOf(stepOf(done, 'use').jobId!)).toEqual({ results: [{ index: 0, value: [[{ rows: 7 }]] }] });
  } finally {
    rmSync(marks, { recursive: true, force: true });
  }
}, 60000);
