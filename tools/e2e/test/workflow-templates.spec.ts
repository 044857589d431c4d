/**
 * Workflow templates end to end, in-process services on a real etcd with a real executor running
 * real processes: a template registered once runs twice with different parameters (each run's
 * tasks see their own values), its runs list by template, an update makes version 2 while version 1
 * stays runnable, and bad puts and runs get their codes naming the field.
 */
import type { WorkflowTemplateView, WorkflowView } from '@batchapi/api';
import { BatchClient } from '@batchapi/sdk';
import { api, until, useCluster } from './harness';

const c = useCluster({ executor: { cpu: '8', memory: '16Gi', killGraceMs: 300 } });

const small = { resources: { cpu: '100m', memory: '16Mi' } };
/** A step whose task's result is the JSON of what its shell prints. */
const report = (name: string, words: string, more: Record<string, unknown> = {}) => ({
  name,
  ...more,
  job: { ...small, command: ['sh', '-c', `printf '"%s"' "${words}" > "$BATCH_RESULT_PATH"`], env: { DAY: '{{params.date}}' } },
});

const v1 = {
  description: 'the nightly pipeline',
  parameters: { date: { pattern: '\\d{4}-\\d{2}-\\d{2}', description: 'the day' }, region: { default: 'eu' } },
  workflow: {
    name: 'nightly',
    steps: [report('extract', 'v1 $DAY {{params.region}}'), report('load', 'loaded {{params.date}}', { dependsOn: ['extract'] })],
  },
};

async function finished(id: string): Promise<WorkflowView> {
  let last: WorkflowView | undefined;
  await until(async () => {
    last = (await api(c.base, 'GET', `/v1/workflows/${id}`)).body;
    return last !== undefined && last.phase !== 'Running';
  }, 30000);
  return last!;
}
const resultOf = async (w: WorkflowView, step: string) =>
  (await api(c.base, 'GET', `/v1/jobs/${w.steps.find((s) => s.name === step)!.jobId}/results`)).body.results.map((r: { value: unknown }) => r.value);

test('a template runs twice with different parameters, lists its runs, and version 1 stays runnable after an update to version 2', async () => {
  const put = await api(c.base, 'PUT', '/v1/workflow-templates/nightly', v1);
  expect(put.status).toBe(201);
  expect(put.body).toMatchObject({ name: 'nightly', version: 1, versions: [1], description: 'the nightly pipeline' });
  // the same body again: unchanged, still version 1
  const again = await api(c.base, 'PUT', '/v1/workflow-templates/nightly', v1);
  expect(again.status).toBe(200);
  expect(again.body.version).toBe(1);

  const client = new BatchClient({ url: c.base, token: 'tenant-token' });
  const a = await client.workflowTemplates.run('nightly', { params: { date: '2026-12-01' } });
  const b = await client.workflowTemplates.run('nightly', { params: { date: '2026-12-02', region: 'us' } });
  expect(a.submitted.labels).toMatchObject({ 'batch.template': 'nightly', 'batch.template-version': '1' });
  expect(a.submitted.template).toEqual({ name: 'nightly', version: 1, params: { date: '2026-12-01', region: 'eu' } });
  const [wa, wb] = [await finished(a.id), await finished(b.id)];
  expect([wa.phase, wb.phase]).toEqual(['Succeeded', 'Succeeded']);
  // each run's tasks saw their own values: in their environment ($DAY) and in their command
  expect(await resultOf(wa, 'extract')).toEqual(['v1 2026-12-01 eu']);
  expect(await resultOf(wb, 'extract')).toEqual(['v1 2026-12-02 us']);
  expect(await resultOf(wb, 'load')).toEqual(['loaded 2026-12-02']);

  // another workflow, not a run of the template, is not listed with its runs
  await api(c.base, 'POST', '/v1/workflows', { steps: [{ name: 'x', job: { ...small, command: ['true'] } }] });
  const runs = await client.workflows.list(100, { template: 'nightly' });
  expect(runs.map((w) => w.id).sort()).toEqual([a.id, b.id].sort());
  expect((await api(c.base, 'GET', '/v1/workflows?template=other')).body.workflows).toEqual([]);

  // version 2: one more step; version 1 is still there to run
  const v2 = { ...v1, workflow: { ...v1.workflow, steps: [...v1.workflow.steps, report('check', 'v2 {{params.date}}', { dependsOn: ['load'] })] } };
  const put2 = (await api(c.base, 'PUT', '/v1/workflow-templates/nightly', v2)).body as WorkflowTemplateView;
  expect([put2.version, put2.versions]).toEqual([2, [1, 2]]);
  expect((await client.workflowTemplates.get('nightly', { version: 1 })).workflow).toEqual(v1.workflow);
  const old = await client.workflowTemplates.run('nightly', { params: { date: '2026-12-03' }, version: 1 });
  const cur = await client.workflowTemplates.run('nightly', { params: { date: '2026-12-03' } });
  expect(old.submitted.steps.map((s) => s.name)).toEqual(['extract', 'load']);
  expect(old.submitted.template?.version).toBe(1);
  expect(cur.submitted.steps.map((s) => s.name)).toEqual(['extract', 'load', 'check']);
  expect(cur.submitted.labels['batch.template-version']).toBe('2');
  expect(await resultOf(await finished(cur.id), 'check')).toEqual(['v2 2026-12-03']);
  expect((await finished(old.id)).phase).toBe('Succeeded');
  expect((await client.workflows.list(100, { template: 'nightly' })).length).toBe(4);

  expect((await client.workflowTemplates.list()).map((t) => [t.name, t.version])).toEqual([['nightly', 2]]);
}, 120000);

test('an Idempotency-Key makes a run safe to repeat', async () => {
  await api(c.base, 'PUT', '/v1/workflow-templates/once', { workflow: { steps: [{ name: 's', job: { ...small, command: ['true'] } }] } });
  const run = (body: unknown) =>
    fetch(`${c.base}/v1/workflow-templates/once/runs`, {
      method: 'POST',
      headers: { authorization: 'Bearer tenant-token', 'content-type': 'application/json', 'idempotency-key': 'k-1' },
      body: JSON.stringify(body),
    });
  const first = await run({});
  const second = await run({});
  expect([first.status, second.status]).toEqual([201, 200]);
  expect(((await second.json()) as WorkflowView).id).toBe(((await first.json()) as WorkflowView).id);
});

test.each([
  [
    'an undeclared placeholder',
    { workflow: { steps: [{ name: 's', job: { command: ['echo'], env: { DATE: '{{params.date}}' } } }] } },
    422,
    'unknown_parameter',
    'workflow.steps[0].job.env.DATE',
  ],
  [
    'a workflow invalid with the defaults',
    { parameters: { n: { default: 'lots' } }, workflow: { steps: [{ name: 's', job: { command: ['echo'], resources: { cpu: '{{params.n}}' } } }] } },
    400,
    'invalid_argument',
    'workflow.steps[0].job.resources.cpu',
  ],
  [
    'a tenant in the workflow',
    { workflow: { tenant: 'other', steps: [{ name: 's', job: { command: ['echo'] } }] } },
    400,
    'invalid_argument',
    'workflow.tenant',
  ],
  [
    'a bad parameter name',
    { parameters: { 'a b': {} }, workflow: { steps: [{ name: 's', job: { command: ['echo'] } }] } },
    400,
    'invalid_argument',
    'parameters.a b',
  ],
])('a put with %s is refused', async (_case, body, status, code, field) => {
  const res = await api(c.base, 'PUT', '/v1/workflow-templates/bad', body);
  expect([res.status, res.body.error.code, res.body.error.field]).toEqual([status, code, field]);
});

test.each([
  ['no value for a parameter without default', {}, 422, 'missing_parameter', 'params.date'],
  ['an undeclared parameter', { params: { date: '2026-12-01', zone: 'x' } }, 422, 'unknown_parameter', 'params.zone'],
  ['a value that does not match its pattern', { params: { date: 'yesterday' } }, 400, 'invalid_argument', 'params.date'],
  ['a version the template never had', { params: { date: '2026-12-01' }, version: 9 }, 404, 'not_found', 'version'],
])('a run with %s is refused', async (_case, body, status, code, field) => {
  await api(c.base, 'PUT', '/v1/workflow-templates/strict', v1);
  const res = await api(c.base, 'POST', '/v1/workflow-templates/strict/runs', body);
  expect([res.status, res.body.error.code, res.body.error.field]).toEqual([status, code, field]);
});

test("another tenant's template is not found; delete removes it and keeps its runs", async () => {
  await api(c.base, 'PUT', '/v1/workflow-templates/mine', v1);
  expect((await api(c.base, 'GET', '/v1/workflow-templates/mine', undefined, 'other-token')).status).toBe(404);
  expect((await api(c.base, 'POST', '/v1/workflow-templates/mine/runs', { params: { date: '2026-12-01' } }, 'other-token')).status).toBe(404);
  const run = await api(c.base, 'POST', '/v1/workflow-templates/mine/runs', { params: { date: '2026-12-01' } });
  expect(run.status).toBe(201);
  expect((await api(c.base, 'DELETE', '/v1/workflow-templates/mine')).status).toBe(200);
  expect((await api(c.base, 'GET', '/v1/workflow-templates/mine')).status).toBe(404);
  expect((await api(c.base, 'GET', `/v1/workflows/${run.body.id}`)).body.template.name).toBe('mine');
});

test("a schedule runs a template: {{schedule.date}} in its values becomes the tick's date in the schedule's zone", async () => {
  await api(c.base, 'PUT', '/v1/workflow-templates/nightly-etl', v1);
  const bad = await api(c.base, 'POST', '/v1/schedules', {
    name: 'etl-bad',
    schedule: '0 2 * * *',
    template: { name: 'nightly-etl', params: { date: 'today' } },
  });
  expect([bad.status, bad.body.error.code, bad.body.error.field]).toEqual([400, 'invalid_argument', 'template.params.date']);
  const missing = await api(c.base, 'POST', '/v1/schedules', { name: 'etl-bad', schedule: '0 2 * * *', template: { name: 'no-such' } });
  expect([missing.status, missing.body.error.field]).toEqual([404, 'template.name']);

  const created = await api(c.base, 'POST', '/v1/schedules', {
    name: 'etl',
    schedule: '0 2 * * *',
    timeZone: 'Pacific/Kiritimati',
    template: { name: 'nightly-etl', params: { date: '{{schedule.date}}', region: 'apac' } },
  });
  expect([created.status, created.body.kind]).toEqual([201, 'template']);
  const trigger = await api(c.base, 'POST', '/v1/schedules/etl/trigger', {});
  let id: string | undefined;
  await until(async () => {
    id = (await api(c.base, 'GET', '/v1/schedules/etl')).body.active[0]?.id ?? (await api(c.base, 'GET', '/v1/schedules/etl')).body.succeeded[0]?.id;
    return id !== undefined;
  });
  const w = await finished(id!);
  // the trigger's time, in UTC+14
  const day = new Date(trigger.body.triggerRequestedAt + 14 * 3600_000).toISOString().slice(0, 10);
  expect(w.template).toEqual({ name: 'nightly-etl', version: 1, params: { date: day, region: 'apac' } });
  expect(w.labels).toMatchObject({ 'batch.schedule': 'etl', 'batch.template': 'nightly-etl' });
  expect(await resultOf(w, 'extract')).toEqual([`v1 ${day} apac`]);

  // the template deleted: a tick cannot make its run, and is counted missed (nothing starts)
  await api(c.base, 'DELETE', '/v1/workflow-templates/nightly-etl');
  await api(c.base, 'POST', '/v1/schedules/etl/trigger', {});
  let s: { missedTicks: number; active: unknown[]; succeeded: unknown[]; triggerRequestedAt: number | null } | undefined;
  await until(async () => {
    s = (await api(c.base, 'GET', '/v1/schedules/etl')).body;
    return s!.missedTicks === 1;
  });
  expect([s!.triggerRequestedAt, s!.active.length + s!.succeeded.length]).toEqual([null, 1]);
}, 60000);
