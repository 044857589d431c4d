/**
 * The workflow controller reconciles many workflows at once (`RECONCILE_CONCURRENCY`), each at
 * most once at a time: the passes it runs in parallel must lose no step and submit none twice.
 * `forEachAtMost` is the bound it uses.
 */
import type { JobRecord, WorkflowRecord } from '@batchapi/api';
import { submitWorkflow } from '@batchapi/store';
import { stepJobId } from '@batchapi/workflows';
import { DEFAULT_CLUSTER, startQuota } from '../src';
import { forEachAtMost } from '../src/elected-loop';
import { quotaSuite } from './harness';

describe('forEachAtMost', () => {
  it.each([
    // [items, limit, most in flight, why]
    [10, 3, 3, 'never more than the limit'],
    [2, 32, 2, 'never more than there are items'],
    [0, 4, 0, 'nothing to do'],
    [5, 1, 1, 'one at a time'],
  ])('%d items at most %d at once: %d in flight (%s)', async (n, limit, most) => {
    const items = Array.from({ length: n }, (_, i) => i);
    const done: number[] = [];
    let inFlight = 0;
    let peak = 0;
    // each call waits on a promise the test settles: the calls overlap as much as the bound lets them
    const waiting: Array<() => void> = [];
    const run = forEachAtMost(items, limit, async (i) => {
      peak = Math.max(peak, ++inFlight);
      await new Promise<void>((r) => waiting.push(r));
      inFlight--;
      done.push(i);
    });
    while (done.length < n) {
      await new Promise((r) => setImmediate(r));
      waiting.splice(0).forEach((r) => r());
    }
    await run;
    expect(peak).toBe(most);
    expect([...done].sort((a, b) => a - b)).toEqual(items);
  });

  it('starts no more once told to stop, and waits for those started', async () => {
    const started: number[] = [];
    await forEachAtMost(
      [0, 1, 2, 3, 4, 5],
      2,
      async (i) => {
        started.push(i);
        await new Promise((r) => setImmediate(r));
      },
      () => started.length < 3,
    );
    // two workers start 0 and 1; after 0 ends, one more (2) starts, then go() is false: 3 in all
    expect(started).toEqual([0, 1, 2]);
  });

  it('rejects with the error of a call that throws, after the others end', async () => {
    const ended: number[] = [];
    await expect(
      forEachAtMost([0, 1, 2], 3, async (i) => {
        await new Promise((r) => setImmediate(r));
        if (i === 1) throw new Error('boom');
        ended.push(i);
      }),
    ).rejects.toThrow('boom');
    expect(ended.sort()).toEqual([0, 2]);
  });
});

const suite = quotaSuite();

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await fn();
  while (!ok(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    v = await fn();
  }
  return v;
}

/** a → b, both one-task jobs. */
const twoSteps = (id: string): WorkflowRecord => {
  const job = { command: ['true'], resources: { cpu: '100m', memory: '16Mi' } };
  return {
    id,
    name: id,
    tenant: 'default',
    queue: 'default',
    labels: {},
    phase: 'Running',
    createdAt: Date.now(),
    steps: [
      { name: 'a', dependsOn: [], when: 'success', job, criticalPath: 2, phase: 'Pending' },
      { name: 'b', dependsOn: ['a'], when: 'success', job, criticalPath: 1, phase: 'Pending' },
    ],
  };
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
  // 100 workflows × 2 steps, each created once (a step created twice would count twice: createStepJob says "created" once)
  const metrics = await (await fetch(`${suite.quota.url}/metrics`)).text();
  expect(metrics).toMatch(/batch_workflow_steps_submitted_total\{service="quota"\} 200\n/);
}, 120_000);
