/**
 * Workflows end to end, in-process services on a real etcd with a real executor running
 * real processes: a fan-out over a step's result and a fan-in run to Succeeded; a failing
 * step runs the `when: failure` cleanup and skips its dependants; a cancel cascades to the
 * running step job; replacing the controller never submits a step twice; bad DAGs get 400; a
 * retry of a failed run re-runs only the failed step and those after it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import type { JobRecord, WorkflowView } from '@batchapi/api';
import { startExecutor } from '@batchapi/executor';
import { startQuota } from '@batchapi/quota';
import type { RunningService } from '@batchapi/runtime';
import { startScheduler } from '@batchapi/scheduler';
import { BatchClient, JobFailedError } from '@batchapi/sdk';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { initTracing } from '@batchapi/telemetry';
import { stepJobId } from '@batchapi/workflows';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { api, CLUSTER, crashedControllerStepJob, TOKENS, until } from './harness';

const exporter = new InMemorySpanExporter();

let etcd: LocalEtcd;
let store: EtcdStore;
let dir: string;
const services: RunningService[] = [];
let quota: RunningService;
let base: string;
const config = () => ({ etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' });
/** The workflow keys etcd holds: "nothing written" is no key that was not there before (a count could fall as runs leave). */
const workflowKeys = async () => (await store.listAll(store.keys.workflows())).items.map((kv) => kv.key);

beforeAll(async () => {
  initTracing('e2e-workflows', { exporter });
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  dir = mkdtempSync(join(tmpdir(), 'e2e-wf-'));
  quota = await startQuota({ cluster: CLUSTER, config: config() });
  services.push(await startScheduler({ config: config(), tuning: { idleMs: 50, busyMs: 5 } }));
  services.push(
    await startExecutor({
      config: config(),
      executor: {
        nodeName: 'wf-node',
        dataDir: join(dir, 'node'),
        cpu: '8',
        memory: '16Gi',
        killGraceMs: 300,
        reportIntervalMs: 50,
        nvidiaSmi: join(dir, 'absent'),
      },
    }),
  );
  const admission = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config: config() });
  services.push(admission);
  base = admission.url;
}, 60000);
afterAll(async () => {
  for (const s of [...services].reverse()) await s.close().catch(() => undefined);
  await quota?.close().catch(() => undefined);
  await store?.close();
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const small = { resources: { cpu: '100m', memory: '16Mi' } };
const sh = (script: string) => ({ ...small, command: ['sh', '-c', script] });

async function waitWorkflow(id: string, ms = 30000): Promise<WorkflowView> {
  let last: WorkflowView | undefined;
  await until(async () => {
    last = (await api(base, 'GET', `/v1/workflows/${id}`)).body;
    return last !== undefined && last.phase !== 'Running';
  }, ms);
  return last!;
}
const phases = (w: WorkflowView) => Object.fromEntries(w.steps.map((s) => [s.name, s.phase]));
const jobsOf = async (wfId: string) =>
  (await store.listAll<JobRecord>(store.keys.jobs())).items.map((j) => j.value).filter((j) => j.spec.labels['batch.workflow'] === wfId);

it("runs a DAG with a fan-out over a step's result and a fan-in to Succeeded", async () => {
  const res = await api(base, 'POST', '/v1/workflows', {
    name: 'squares',
    steps: [
      // prep returns [1, 2, 3]; square fans out over it (3 tasks), each returning item²; total waits for all three.
      { name: 'prep', job: sh('echo "[1,2,3]" > "$BATCH_RESULT_PATH"') },
      { name: 'square', dependsOn: ['prep'], map: { fromStep: 'prep' }, job: sh('echo $((BATCH_MAP_ITEM * BATCH_MAP_ITEM)) > "$BATCH_RESULT_PATH"') },
      { name: 'total', dependsOn: ['square'], job: sh('echo \'"done"\' > "$BATCH_RESULT_PATH"') },
    ],
  });
  expect(res.status).toBe(201);
  // prep → square → total: 3, 2, 1 steps to the end
  expect(res.body.steps.map((s: { criticalPath: number }) => s.criticalPath)).toEqual([3, 2, 1]);
  const done = await waitWorkflow(res.body.id);
  expect(done.phase).toBe('Succeeded');
  expect(phases(done)).toEqual({ prep: 'Succeeded', square: 'Succeeded', total: 'Succeeded' });
  const square = done.steps.find((s) => s.name === 'square')!;
  expect(square.jobId).toBe(stepJobId(done.id, 1));
  const results = await api(base, 'GET', `/v1/jobs/${square.jobId}/results`);
  expect(results.body).toEqual({
    results: [
      { index: 0, value: 1 },
      { index: 1, value: 4 },
      { index: 2, value: 9 },
    ],
  });
  expect((await api(base, 'GET', `/v1/jobs/${square.jobId}/results`, undefined, 'other-token')).status).toBe(404);
  // One trace: workflow.submit → a workflow.step span per step → that step job's bind → its task runs (1 + 3 + 1)
  const traceId = res.body.traceId as string;
  const inTrace = (name: string) => exporter.getFinishedSpans().filter((x) => x.spanContext().traceId === traceId && x.name === name);
  await until(() => inTrace('task.run').length === 5);
  const [submit] = inTrace('workflow.submit');
  const steps = inTrace('workflow.step');
  expect(steps.map((x) => x.attributes['batch.workflow.step']).sort()).toEqual(['prep', 'square', 'total']);
  for (const st of steps) expect(st.parentSpanContext?.spanId).toBe(submit.spanContext().spanId);
  const stepIds = new Set(steps.map((x) => x.spanContext().spanId));
  const binds = inTrace('schedule.bind');
  expect(binds.length).toBeGreaterThanOrEqual(3);
  for (const b of binds) expect(stepIds.has(b.parentSpanContext!.spanId)).toBe(true);
  expect(inTrace('task.run')).toHaveLength(5);
});

it('runs the failure cleanup when a step fails, skips its dependants, and fails the workflow', async () => {
  const res = await api(base, 'POST', '/v1/workflows', {
    steps: [
      { name: 'extract', job: sh('exit 3') },
      { name: 'load', dependsOn: ['extract'], job: sh('true') },
      { name: 'cleanup', dependsOn: ['extract'], when: 'failure', job: sh('true') },
      { name: 'notify', dependsOn: ['load'], when: 'always', job: sh('true') },
    ],
  });
  expect(res.status).toBe(201);
  const done = await waitWorkflow(res.body.id);
  expect(done.phase).toBe('Failed');
  expect(phases(done)).toEqual({ extract: 'Failed', load: 'Skipped', cleanup: 'Succeeded', notify: 'Succeeded' });
  expect(done.steps.find((s) => s.name === 'load')!.jobId).toBeNull();
});

it('cascades a cancel to the running step job and skips what was pending', async () => {
  const res = await api(base, 'POST', '/v1/workflows', {
    steps: [
      { name: 'long', job: sh('sleep 30') },
      { name: 'after', dependsOn: ['long'], job: sh('true') },
    ],
  });
  const id = res.body.id;
  await until(async () => (await api(base, 'GET', `/v1/workflows/${id}`)).body.steps[0].jobId !== null);
  const jobId = (await api(base, 'GET', `/v1/workflows/${id}`)).body.steps[0].jobId;
  await until(async () => (await api(base, 'GET', `/v1/jobs/${jobId}`)).body.taskCounts.running === 1);
  const cancel = await api(base, 'DELETE', `/v1/workflows/${id}`);
  expect(cancel.status).toBe(200);
  const done = await waitWorkflow(id);
  expect(done.phase).toBe('Cancelled');
  expect(phases(done)).toEqual({ long: 'Cancelled', after: 'Cancelled' });
  expect((await api(base, 'GET', `/v1/jobs/${jobId}`)).body.phase).toBe('Cancelled');
});

it('never submits a step twice when the controller dies mid-way or is replaced', async () => {
  // A second replica stands by; the first one leads.
  const standby = await startQuota({ config: config() });
  try {
    const res = await api(base, 'POST', '/v1/workflows', {
      steps: [
        { name: 'a', job: sh('sleep 0.5') },
        { name: 'b', dependsOn: ['a'], job: sh('sleep 0.5') },
        { name: 'c', dependsOn: ['b'], job: sh('true') },
      ],
    });
    const id = res.body.id;
    await until(async () => (await api(base, 'GET', `/v1/workflows/${id}`)).body.steps[0].phase === 'Running');
    // The leader goes away mid-workflow; the standby takes the seat.
    await quota.close();
    const done = await waitWorkflow(id);
    expect(done.phase).toBe('Succeeded');
    const jobs = await jobsOf(id);
    expect(jobs.map((j) => j.spec.labels['batch.step']).sort()).toEqual(['a', 'b', 'c']);
  } finally {
    quota = standby;
  }
});

it('adopts a step job that a crashed controller created before recording it', async () => {
  // Stop the controller, then play a controller that created step 0's job and died before writing the record.
  await quota.close();
  const res = await api(base, 'POST', '/v1/workflows', { steps: [{ name: 'only', job: sh('true') }] });
  const id = res.body.id;
  const job = await crashedControllerStepJob(store, id, 'true');
  quota = await startQuota({ config: config() });
  const done = await waitWorkflow(id);
  expect(done.phase).toBe('Succeeded');
  expect(done.steps[0].jobId).toBe(job.id);
  expect((await jobsOf(id)).length).toBe(1);
});

describe('concurrency limits (maxRunning)', () => {
  /** A step or task that returns [start, end] in epoch ms of a 300 ms run. */
  const timed = sh('s=$(date +%s%3N); sleep 0.3; e=$(date +%s%3N); echo "[$s,$e]" > "$BATCH_RESULT_PATH"');
  /** Most intervals overlapping at one instant. */
  const mostAtOnce = (spans: Array<[number, number]>) => Math.max(...spans.map(([t]) => spans.filter(([s, e]) => s <= t && t < e).length));

  it("runs at most maxRunning steps at once, the waiting ones in definition order, and a map step at most its job's maxRunning tasks", async () => {
    // Four independent steps a..d with the workflow's limit 2: a, b first; c, d only as slots free.
    // Then a map of 6 items whose job says maxRunning 2: at most 2 of its tasks run at once.
    const res = await api(base, 'POST', '/v1/workflows', {
      name: 'limited',
      maxRunning: 2,
      steps: [
        ...['a', 'b', 'c', 'd'].map((name) => ({ name, job: timed })),
        { name: 'fan', dependsOn: ['a', 'b', 'c', 'd'], map: { items: [1, 2, 3, 4, 5, 6] }, job: { ...timed, maxRunning: 2 } },
      ],
    });
    expect(res.status).toBe(201);
    expect(res.body.maxRunning).toBe(2);
    const done = await waitWorkflow(res.body.id, 60000);
    expect(done.phase).toBe('Succeeded');
    const spanOf = async (jobId: string) => (await api(base, 'GET', `/v1/jobs/${jobId}/results`)).body.results.map((r: { value: [number, number] }) => r.value);
    const steps = new Map(done.steps.map((s) => [s.name, s.jobId!]));
    const stepSpans: Array<[number, number]> = [];
    for (const n of ['a', 'b', 'c', 'd']) stepSpans.push(...(await spanOf(steps.get(n)!)));
    expect(mostAtOnce(stepSpans)).toBe(2);
    // c and d waited for a slot: each started after a or b ended.
    const end = Math.min(stepSpans[0][1], stepSpans[1][1]);
    expect(stepSpans[2][0]).toBeGreaterThanOrEqual(end);
    expect(stepSpans[3][0]).toBeGreaterThanOrEqual(end);
    const fan = (await store.get<JobRecord>(store.keys.job(steps.get('fan')!)))!.value;
    expect(fan.spec).toMatchObject({ tasks: 6, maxRunning: 2 });
    const taskSpans = await spanOf(steps.get('fan')!);
    expect(taskSpans).toHaveLength(6);
    expect(mostAtOnce(taskSpans)).toBeLessThanOrEqual(2);
  }, 90000);

  it('refuses a gang step or job whose maxRunning is below its tasks with 422 max_running_below_gang, and writes nothing', async () => {
    const workflows = (await store.listAll(store.keys.workflows())).items.length;
    const jobs = (await store.listAll(store.keys.jobs())).items.length;
    const wf = await api(base, 'POST', '/v1/workflows', { steps: [{ name: 'g', job: { ...sh('true'), tasks: 4, gang: true, maxRunning: 2 } }] });
    expect(wf.status).toBe(422);
    expect(wf.body.error).toMatchObject({ code: 'max_running_below_gang', field: 'steps[0].job.maxRunning' });
    const job = await api(base, 'POST', '/v1/jobs', { ...sh('true'), tasks: 4, gang: true, maxRunning: 2 });
    expect(job.status).toBe(422);
    expect(job.body.error).toMatchObject({ code: 'max_running_below_gang', field: 'maxRunning' });
    const bad = await api(base, 'POST', '/v1/jobs', { ...sh('true'), tasks: 4, maxRunning: 0 });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid_argument', field: 'maxRunning' });
    expect((await store.listAll(store.keys.workflows())).items.length).toBe(workflows);
    expect((await store.listAll(store.keys.jobs())).items.length).toBe(jobs);
  });
});

describe('re-run from failure (POST /v1/workflows/:id/retry)', () => {
  it("runs only the failed step and those after it, fanning out over the reused step's results, and refuses what cannot be retried", async () => {
    const marks = mkdtempSync(join(tmpdir(), 'e2e-wf-retry-'));
    try {
      // prep counts its runs and returns [1,2,3]; square fails until the "ok" file exists; total follows square.
      const res = await api(base, 'POST', '/v1/workflows', {
        name: 'retry-me',
        steps: [
          { name: 'prep', job: sh(`echo run >> ${marks}/prep && echo "[1,2,3]" > "$BATCH_RESULT_PATH"`) },
          {
            name: 'square',
            dependsOn: ['prep'],
            map: { fromStep: 'prep' },
            job: sh(`test -f ${marks}/ok && echo $((BATCH_MAP_ITEM * BATCH_MAP_ITEM)) > "$BATCH_RESULT_PATH"`),
          },
          { name: 'total', dependsOn: ['square'], job: sh('true') },
        ],
      });
      const first = await waitWorkflow(res.body.id);
      expect(phases(first)).toEqual({ prep: 'Succeeded', square: 'Failed', total: 'Skipped' });
      const prepJob = first.steps[0].jobId!;
      // A body with a field is refused naming it; another tenant's run is not found; nothing is written.
      const before = new Set(await workflowKeys());
      const bad = await api(base, 'POST', `/v1/workflows/${first.id}/retry`, { steps: [] });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatchObject({ code: 'invalid_argument' });
      expect((await api(base, 'POST', `/v1/workflows/${first.id}/retry`, {}, 'other-token')).status).toBe(404);
      expect((await workflowKeys()).filter((k) => !before.has(k))).toEqual([]);

      writeFileSync(join(marks, 'ok'), '');
      const client = new BatchClient({ url: base, token: 'tenant-token' });
      const again = await client.workflows.retry(first.id, { idempotencyKey: `retry-${first.id}` });
      expect(again.id).not.toBe(first.id);
      expect(again.submitted.retryOf).toBe(first.id);
      expect(again.submitted.steps[0]).toMatchObject({
        name: 'prep',
        phase: 'Succeeded',
        jobId: prepJob,
        cached: { reason: 'retry', workflowId: first.id, jobId: prepJob },
      });
      // The same Idempotency-Key answers the same new run (200), not a third one.
      const replay = await fetch(`${base}/v1/workflows/${first.id}/retry`, {
        method: 'POST',
        headers: { authorization: 'Bearer tenant-token', 'content-type': 'application/json', 'idempotency-key': `retry-${first.id}` },
        body: '{}',
      });
      expect(replay.status).toBe(200);
      expect(((await replay.json()) as WorkflowView).id).toBe(again.id);

      const done = await again.wait();
      expect(done.phase).toBe('Succeeded');
      expect(phases(done)).toEqual({ prep: 'Succeeded', square: 'Succeeded', total: 'Succeeded' });
      // prep ran once, in the first run; square got the same items from its results: 1, 4, 9.
      expect(readFileSync(join(marks, 'prep'), 'utf8')).toBe('run\n');
      const square = done.steps.find((s) => s.name === 'square')!;
      expect(square.jobId).toBe(stepJobId(done.id, 1));
      expect((await api(base, 'GET', `/v1/jobs/${square.jobId}/results`)).body.results.map((r: { value: number }) => r.value)).toEqual([1, 4, 9]);
      expect((await jobsOf(done.id)).map((j) => j.spec.labels['batch.step']).sort()).toEqual(['square', 'total']);

      // A run that succeeded, and one still running, cannot be retried: 409 workflow_not_retryable naming the run.
      const succeeded = await api(base, 'POST', `/v1/workflows/${done.id}/retry`, {});
      expect(succeeded.status).toBe(409);
      expect(succeeded.body.error).toMatchObject({ code: 'workflow_not_retryable', id: done.id });
      const running = await api(base, 'POST', '/v1/workflows', { steps: [{ name: 'long', job: sh('sleep 5') }] });
      const refused = await api(base, 'POST', `/v1/workflows/${running.body.id}/retry`);
      expect(refused.status).toBe(409);
      expect(refused.body.error).toMatchObject({ code: 'workflow_not_retryable', id: running.body.id, message: expect.stringMatching(/still running/) });
      await api(base, 'DELETE', `/v1/workflows/${running.body.id}`);
    } finally {
      rmSync(marks, { recursive: true, force: true });
    }
  });
});

describe('re-run from failure when a reused job is gone', () => {
  it('runs a succeeded step again when retention has deleted its job, with the steps after it', async () => {
    const res = await api(base, 'POST', '/v1/workflows', {
      steps: [
        { name: 'a', job: sh('echo 1 > "$BATCH_RESULT_PATH"') },
        { name: 'b', dependsOn: ['a'], job: sh('exit 2') },
      ],
    });
    const first = await waitWorkflow(res.body.id);
    expect(phases(first)).toEqual({ a: 'Succeeded', b: 'Failed' });
    // As retention does: a's job and its results leave etcd (no history store here).
    const aJob = first.steps[0].jobId!;
    await store.txn([], [{ delete: store.keys.job(aJob) }, ...(await store.listAll(store.keys.resultsOf(aJob))).items.map((r) => ({ delete: r.key }))]);
    const again = await api(base, 'POST', `/v1/workflows/${first.id}/retry`);
    expect(again.status).toBe(201);
    expect(again.body.steps.map((s: { phase: string; cached?: unknown }) => [s.phase, s.cached])).toEqual([
      ['Pending', undefined],
      ['Pending', undefined],
    ]);
    await api(base, 'DELETE', `/v1/workflows/${again.body.id}`);
  });
});

describe('validation', () => {
  it.each([
    [
      'a cycle',
      {
        steps: [
          { name: 'a', dependsOn: ['b'], job: sh('true') },
          { name: 'b', dependsOn: ['a'], job: sh('true') },
        ],
      },
      'workflow_cycle',
      'steps[0].dependsOn',
    ],
    [
      'a duplicate step name',
      {
        steps: [
          { name: 'a', job: sh('true') },
          { name: 'a', job: sh('true') },
        ],
      },
      'invalid_argument',
      'steps[1].name',
    ],
    ['an unknown dependency', { steps: [{ name: 'a', dependsOn: ['zz'], job: sh('true') }] }, 'invalid_argument', 'steps[0].dependsOn'],
    ['a bad step job', { steps: [{ name: 'a', job: { command: [] } }] }, 'invalid_argument', 'steps[0].job.command'],
    ['a step naming a tenant', { steps: [{ name: 'a', job: { ...sh('true'), tenant: 'other' } }] }, 'invalid_argument', 'steps[0].job.tenant'],
    ['a maxRunning of 0', { maxRunning: 0, steps: [{ name: 'a', job: sh('true') }] }, 'invalid_argument', 'maxRunning'],
    ['a maxRunning over 1000 steps', { maxRunning: 1001, steps: [{ name: 'a', job: sh('true') }] }, 'invalid_argument', 'maxRunning'],
    ["a step job's fractional maxRunning", { steps: [{ name: 'a', job: { ...sh('true'), maxRunning: 1.5 } }] }, 'invalid_argument', 'steps[0].job.maxRunning'],
  ])('refuses %s with 400 and writes nothing', async (_n, body, code, field) => {
    const before = new Set(await workflowKeys());
    const res = await api(base, 'POST', '/v1/workflows', body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code, field });
    expect((await workflowKeys()).filter((k) => !before.has(k))).toEqual([]);
  });

  it("lists only the tenant's workflows and hides others' (404)", async () => {
    const mine = await api(base, 'GET', '/v1/workflows');
    expect(mine.body.workflows.length).toBeGreaterThan(0);
    expect((await api(base, 'GET', '/v1/workflows', undefined, 'other-token')).body.workflows).toEqual([]);
    expect((await api(base, 'GET', `/v1/workflows/${mine.body.workflows[0].id}`, undefined, 'other-token')).status).toBe(404);
  });
});

/** Reads a whole event stream (it ends by itself after a terminal phase). */
async function readEvents(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; events: Array<{ id: string; event: string; data: any }> }> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: 'Bearer tenant-token', ...headers }, signal: AbortSignal.timeout(30000) });
  if (res.status !== 200) return { status: res.status, events: [] };
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const text = await res.text();
  const events = text
    .split('\n\n')
    .filter((b) => b.startsWith('id:'))
    .map((b) => {
      const f = Object.fromEntries(b.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
      return { id: f.id, event: f.event, data: JSON.parse(f.data) };
    });
  return { status: res.status, events };
}

describe('event streams', () => {
  it('streams a job from its current view to its end, and resumes after the last event id with nothing new', async () => {
    const job = (await api(base, 'POST', '/v1/jobs', sh('sleep 0.3'))).body;
    const { events } = await readEvents(`/v1/jobs/${job.id}/events`);
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events.every((e) => e.event === 'job' && e.data.id === job.id)).toBe(true);
    expect(events[events.length - 1].data.phase).toBe('Succeeded');
    const ids = events.map((e) => BigInt(e.id));
    expect(ids.every((id, k) => k === 0 || id > ids[k - 1])).toBe(true);
    const resumed = await readEvents(`/v1/jobs/${job.id}/events`, { 'last-event-id': events[events.length - 1].id });
    expect(resumed).toEqual({ status: 200, events: [] });
    expect((await readEvents(`/v1/jobs/${job.id}/events`, { authorization: 'Bearer other-token' })).status).toBe(404);
  });

  it('streams a workflow until it ends', async () => {
    const wf = (
      await api(base, 'POST', '/v1/workflows', {
        steps: [
          { name: 'a', job: sh('true') },
          { name: 'b', dependsOn: ['a'], job: sh('true') },
        ],
      })
    ).body;
    const { events } = await readEvents(`/v1/workflows/${wf.id}/events`);
    expect(events[0].event).toBe('workflow');
    expect(events[events.length - 1].data).toMatchObject({ id: wf.id, phase: 'Succeeded' });
  });
});

describe('POST /v1/jobs:batch', () => {
  it('answers each job on its own, in order, and replays idempotent ones', async () => {
    const body = { jobs: [{ ...sh('true'), idempotencyKey: 'bulk-1' }, { command: [] }, { ...sh('true'), idempotencyKey: 'bulk-3' }] };
    const first = await api(base, 'POST', '/v1/jobs:batch', body);
    expect(first.status).toBe(200);
    expect(first.body.results.map((r: { status: number }) => r.status)).toEqual([201, 400, 201]);
    expect(first.body.results[1].error).toMatchObject({ code: 'invalid_argument', field: 'jobs[1].command' });
    const again = await api(base, 'POST', '/v1/jobs:batch', body);
    expect(again.body.results.map((r: { status: number }) => r.status)).toEqual([200, 400, 200]);
    expect(again.body.results[0].job.id).toBe(first.body.results[0].job.id);
  });

  it('refuses more than 1000 jobs', async () => {
    const res = await api(base, 'POST', '/v1/jobs:batch', { jobs: Array.from({ length: 1001 }, () => ({ command: ['true'] })) });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('jobs');
  });
});

describe('the TypeScript SDK', () => {
  const client = () => new BatchClient({ url: base, token: 'tenant-token' });

  // BATCH_MAP_ITEM is the item's JSON ("a"); upper-cased it is still JSON ("A").
  it('maps over items and returns the results through handle.result(), waiting on the event stream', async () => {
    const handle = await client().jobs.submit({ ...sh('echo "$BATCH_MAP_ITEM" | tr a-z A-Z > "$BATCH_RESULT_PATH"'), items: ['a', 'b', 'c'] });
    const seen: string[] = [];
    expect(await handle.result({ onUpdate: (j) => seen.push(j.phase) })).toEqual(['A', 'B', 'C']);
    expect(seen[seen.length - 1]).toBe('Succeeded');
    await expect((await client().jobs.submit(sh('exit 1'))).result()).rejects.toBeInstanceOf(JobFailedError);
  });

  it('submits many jobs at once and runs a workflow to its end', async () => {
    const many = await client().jobs.submitMany([sh('true'), sh('true')]);
    expect(many.map((r) => r.status)).toEqual([201, 201]);
    const wf = await client().workflows.submit({
      name: 'sdk',
      steps: [
        { name: 'one', job: sh('true') },
        { name: 'two', dependsOn: ['one'], job: sh('true') },
      ],
    });
    expect((await wf.wait()).phase).toBe('Succeeded');
    expect((await client().workflows.list()).some((w) => w.id === wf.id)).toBe(true);
    await expect(client().workflows.submit({ steps: [{ name: 'a', dependsOn: ['a'], job: sh('true') }] })).rejects.toMatchObject({ code: 'workflow_cycle' });
  });
});
