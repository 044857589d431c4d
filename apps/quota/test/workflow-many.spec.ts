/**
 * The workflow controller reconciles many workflows at once (`RECONCILE_CONCURRENCY` workers),
 * each at most once at a time: the workers must lose no step and submit none twice, and every idle
 * worker wakes at a change (`ElectedLoop.pause` / `wakeUp`; one worker per changed workflow, `wakeOne`).
 */
import { type JobRecord, submitSchemaDigest, type WorkflowRecord } from '@batchapi/api';
import { submitWorkflow } from '@batchapi/store';
import { stepJobId } from '@batchapi/workflows';
import { DEFAULT_CLUSTER, startQuota } from '../src';
import type { ServiceContext } from '@batchapi/runtime';
import type { Gauge } from 'prom-client';
import { ElectedLoop } from '../src/elected-loop';
import { quotaSuite, runningWorkflow } from './harness';
import { waitFor } from '@batchapi/proc';

describe('ElectedLoop.pause', () => {
  it("ends every pause under way at one wakeUp (each of the controller's idle workers)", async () => {
    const loop = new ElectedLoop({} as ServiceContext, { role: 'test', title: 'test', isLeader: {} as Gauge });
    const ended: number[] = [];
    // an hour each: only the wakeUp can end them before the test's timeout
    const pauses = [0, 1, 2].map((i) => loop.pause(3_600_000).then(() => ended.push(i)));
    await new Promise((r) => setImmediate(r));
    loop.wakeUp();
    await Promise.all(pauses);
    expect(ended.sort()).toEqual([0, 1, 2]);
  });

  it('ends one pause per wakeOne, a different one each time, and none when none is under way', async () => {
    const loop = new ElectedLoop({} as ServiceContext, { role: 'test', title: 'test', isLeader: {} as Gauge });
    loop.wakeOne(); // nothing paused: a no-op
    const ended: number[] = [];
    const pauses = [0, 1, 2].map((i) => loop.pause(3_600_000).then(() => ended.push(i)));
    await new Promise((r) => setImmediate(r));
    // two in a row before either woken pause runs: two pauses end, not the same one twice
    loop.wakeOne();
    loop.wakeOne();
    await new Promise((r) => setImmediate(r));
    expect(ended.length).toBe(2);
    loop.wakeUp();
    await Promise.all(pauses);
    expect(ended.sort()).toEqual([0, 1, 2]);
  });
});

const suite = quotaSuite();

const until = <T>(fn: () => Promise<T>, ok: (v: T) => boolean): Promise<T> => waitFor(fn, ok, { timeoutMs: 30_000, intervalMs: 100 });

/** a → b, both one-task jobs. */
const twoSteps = (id: string): WorkflowRecord => {
  const job = { command: ['true'], resources: { cpu: '100m', memory: '16Mi' } };
  return runningWorkflow(id, [
    { name: 'a', dependsOn: [], when: 'success', job, criticalPath: 2, phase: 'Pending' },
    { name: 'b', dependsOn: ['a'], when: 'success', job, criticalPath: 1, phase: 'Pending' },
  ]);
};

/** Every job of `ids` is admitted (`Queued`); then each is marked Succeeded (what an executor's report does to the record). */
async function succeedAll(ids: string[]): Promise<void> {
  const jobs = await until(
    () => Promise.all(ids.map((id) => suite.store.get<JobRecord>(suite.store.keys.job(id)))),
    (js) => js.every((j) => j?.value.phase === 'Queued'),
  );
  expect(ids.filter((_, i) => jobs[i]?.value.phase !== 'Queued')).toEqual([]);
  for (const j of jobs) {
    const done: JobRecord = { ...j!.value, phase: 'Succeeded', pending: [], counts: { succeeded: 1, failed: 0, cancelled: 0 }, finishedAt: Date.now() };
    const res = await suite.store.txn([{ key: j!.key, modRevision: j!.modRevision }], [{ put: j!.key, value: done }]);
    expect(res.succeeded).toBe(true);
  }
}

it('takes 100 workflows whose steps end together through to Succeeded, each step job submitted once', async () => {
  suite.quota = await startQuota({ config: { etcdEndpoints: suite.etcd.endpoints, logLevel: 'error', instanceId: 'quota-many' }, cluster: DEFAULT_CLUSTER });
  const ids = Array.from({ length: 100 }, (_, i) => `wf-many-${String(i).padStart(3, '0')}`);
  await Promise.all(ids.map((id) => submitWorkflow(suite.store, twoSteps(id))));
  await succeedAll(ids.map((id) => stepJobId(id, 0)));
  await succeedAll(ids.map((id) => stepJobId(id, 1)));
  const phases = await until(
    () => Promise.all(ids.map(async (id) => (await suite.store.get<WorkflowRecord>(suite.store.keys.workflow(id)))?.value.phase)),
    (ps) => ps.every((p) => p === 'Succeeded'),
  );
  expect(new Set(phases)).toEqual(new Set(['Succeeded']));
  // 100 workflows × 2 steps, each created once (a step created twice would count twice: a job is counted only when the write that created it succeeded)
  const metrics = await (await fetch(`${suite.quota.url}/metrics`)).text();
  expect(metrics).toMatch(/batch_workflow_steps_submitted_total\{service="quota"\} 200\n/);
}, 120_000);

it('ends a workflow at its deadline with no change to wake it: the tick re-plans it, and a workflow without one is left alone', async () => {
  await suite.quota?.close(); // the test before's (it resigns: this one leads at once)
  suite.quota = await startQuota({
    config: { etcdEndpoints: suite.etcd.endpoints, logLevel: 'error', instanceId: 'quota-deadline' },
    cluster: DEFAULT_CLUSTER,
    // no full sweep within the test (only the term's first, before the deadline): the 1 s tick alone must end it
    workflowFullSweepMs: 3_600_000,
  });
  // 3 s from now: submitted, its first step running; then nothing changes but the time
  const late: WorkflowRecord = { ...twoSteps('wf-deadline-late'), deadlineAt: Date.now() + 3000 };
  await submitWorkflow(suite.store, late);
  await submitWorkflow(suite.store, twoSteps('wf-deadline-none'));
  const ended = await until(
    () => suite.store.get<WorkflowRecord>(suite.store.keys.workflow(late.id)),
    (kv) => kv?.value.phase === 'Failed',
  );
  expect(ended!.value.steps.map((s) => s.phase)).toEqual(['Cancelled', 'Cancelled']);
  expect(ended!.value.finishedAt).toBeGreaterThanOrEqual(late.deadlineAt!);
  // its running step's job was cancelled by the same re-plan
  const job = await until(
    () => suite.store.get<JobRecord>(suite.store.keys.job(stepJobId(late.id, 0))),
    (kv) => kv?.value.cancelRequestedAt !== undefined,
  );
  expect(job!.value.cancelRequestedAt).toBeGreaterThanOrEqual(late.deadlineAt!);
  const other = await suite.store.get<WorkflowRecord>(suite.store.keys.workflow('wf-deadline-none'));
  expect(other!.value.phase).toBe('Running');
  expect(other!.value.steps.map((s) => s.phase)).toEqual(['Running', 'Pending']);
}, 60_000);

it("reads a step's job against the whole schema unless this code's schema validated the run (a retry's or a schedule's copy, an older schema)", async () => {
  await suite.quota?.close();
  suite.quota = await startQuota({
    config: { etcdEndpoints: suite.etcd.endpoints, logLevel: 'error', instanceId: 'quota-schema' },
    cluster: DEFAULT_CLUSTER,
  });
  // a field the job schema refuses (it is strict): what a looser, older schema could have let into a saved schedule
  const loose = { command: ['true'], resources: { cpu: '100m', memory: '16Mi' }, notAField: 1 };
  const oneStep = (id: string, stepsValidatedBy?: string): WorkflowRecord => ({
    ...runningWorkflow(id, [{ name: 'a', dependsOn: [], when: 'success', job: loose, criticalPath: 1, phase: 'Pending' }]),
    ...(stepsValidatedBy ? { stepsValidatedBy } : {}),
  });
  await submitWorkflow(suite.store, oneStep('wf-schema-unmarked'));
  await submitWorkflow(suite.store, oneStep('wf-schema-older', 'sha256:an-older-schema'));
  for (const id of ['wf-schema-unmarked', 'wf-schema-older']) {
    const wf = await until(
      () => suite.store.get<WorkflowRecord>(suite.store.keys.workflow(id)),
      (kv) => kv?.value.phase === 'Failed',
    );
    expect(wf!.value.steps.map((s) => s.phase)).toEqual(['Failed']);
    expect(await suite.store.get<JobRecord>(suite.store.keys.job(stepJobId(id, 0)))).toBeUndefined();
  }
  // the gate's other side: marked by this code's schema (as a submit marks it), the step's job is not read against the schema
  // again — this body would not pass it, and its job is created
  await submitWorkflow(suite.store, oneStep('wf-schema-current', submitSchemaDigest()));
  const job = await until(
    () => suite.store.get<JobRecord>(suite.store.keys.job(stepJobId('wf-schema-current', 0))),
    (kv) => kv !== undefined,
  );
  expect(job!.value.spec.command).toEqual(['true']);
}, 60_000);
