/**
 * The workflow controller creates a step job already admitted (`Queued`) when the admitter's
 * caches admit it (`Admitter.admitAtCreate`), so the step does not wait for a pass of the admitter;
 * a step job the caches cannot admit (its queue unknown) is created `Submitted`, and the admitter's
 * pass refuses it with the reason, as before. Real etcd, the quota service as it runs.
 */
import type { JobRecord, WorkflowRecord } from '@batchapi/api';
import { waitFor } from '@batchapi/proc';
import { submitWorkflow } from '@batchapi/store';
import { stepJobId } from '@batchapi/workflows';
import { DEFAULT_CLUSTER, seedCluster, startQuota } from '../src';
import { quotaSuite, runningWorkflow } from './harness';

const suite = quotaSuite();

/** One step, one task, in `queue` (the workflow's is `default`). */
const oneStep = (id: string, queue?: string): WorkflowRecord =>
  runningWorkflow(id, [
    {
      name: 'a',
      dependsOn: [],
      when: 'success',
      job: { command: ['true'], resources: { cpu: '100m', memory: '16Mi' }, ...(queue ? { queue } : {}) },
      criticalPath: 1,
      phase: 'Pending',
    },
  ]);

beforeAll(async () => {
  // The tenant and queue exist before quota starts, so its caches hold them once it is ready (seeded
  // by `startQuota` instead, they reach the caches through the informers a moment after it returns,
  // and a step job made in that moment is rightly created Submitted).
  await seedCluster(suite.store, DEFAULT_CLUSTER);
  suite.quota = await startQuota({ config: { etcdEndpoints: suite.etcd.endpoints, logLevel: 'error', instanceId: 'quota-step-admit' } });
});

const stored = (id: string) => suite.store.get<JobRecord>(suite.store.keys.job(id));

it('creates a step job the caches admit as Queued in its one write', async () => {
  await submitWorkflow(suite.store, oneStep('wf-admit-ok'));
  const job = await waitFor(
    () => stored(stepJobId('wf-admit-ok', 0)),
    (j) => j !== undefined,
    { timeoutMs: 30_000 },
  );
  // written once (created at the revision it was last changed at), and that write admitted it
  expect(job!.modRevision).toBe(job!.createRevision);
  expect(job!.value.phase).toBe('Queued');
  expect(job!.value.queuedAt).toBe(job!.value.createdAt);
});

it('creates a step job naming an unknown queue as Submitted, which the admitter then refuses', async () => {
  await submitWorkflow(suite.store, oneStep('wf-admit-unknown', 'no-such-queue'));
  const id = stepJobId('wf-admit-unknown', 0);
  const job = await waitFor(
    () => stored(id),
    (j) => j?.value.phase === 'Rejected',
    { timeoutMs: 30_000 },
  );
  expect(job!.value.reason?.code).toBe('unknown_queue');
  // its create was not the decision: the admitter's compare-and-swap came after
  expect(BigInt(job!.modRevision)).toBeGreaterThan(BigInt(job!.createRevision));
  const wf = await waitFor(
    () => suite.store.get<WorkflowRecord>(suite.store.keys.workflow('wf-admit-unknown')),
    (w) => w?.value.phase === 'Failed',
    { timeoutMs: 30_000 },
  );
  expect(wf!.value.steps[0].phase).toBe('Failed');
});
