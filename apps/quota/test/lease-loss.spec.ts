/**
 * Quota's elected roles outlive a lost process lease: the runtime takes a new lease and the
 * workflow controller and the retention loop campaign again on it (issue 13, defect 2). Before,
 * both held on to the dead lease and stopped for good while the replica still reported ready.
 */
import type { JobRecord, WorkflowRecord } from '@batchapi/api';
import { submitJob, submitWorkflow } from '@batchapi/store';
import { stepJobId } from '@batchapi/workflows';
import { startQuota } from '../src';
import { finishedJob, quotaSuite, runningWorkflow } from './harness';
import { waitFor } from '@batchapi/proc';

const suite = quotaSuite();

/** The lease a key is bound to ('0' for none), or undefined when the key is absent. */
async function leaseOf(key: string): Promise<string | undefined> {
  const res = await suite.store.client.get(key).exec();
  return res.kvs[0]?.lease;
}

const until = <T>(fn: () => Promise<T>, ok: (v: T) => boolean): Promise<T> => waitFor(fn, ok, { timeoutMs: 15_000, intervalMs: 100 });

const workflow = (id: string): WorkflowRecord =>
  runningWorkflow(id, [
    { name: 'only', dependsOn: [], when: 'success', job: { command: ['true'], resources: { cpu: '100m', memory: '16Mi' } }, criticalPath: 1, phase: 'Pending' },
  ]);

it('serves the workflow controller and the retention loop again on the new lease after its lease is revoked', async () => {
  suite.quota = await startQuota({
    config: { etcdEndpoints: suite.etcd.endpoints, leaseTtlSeconds: 2, logLevel: 'error', instanceId: 'quota-a' },
    retention: { jobRetentionMs: 10_000, idempotencyTtlMs: 10_000, intervalMs: 100 },
  });
  const member = suite.store.keys.member('quota', 'quota-a');
  const roles = [suite.store.keys.leader('workflows'), suite.store.keys.leader('retention')];
  const first = (await leaseOf(member))!;
  expect(
    await until(
      () => Promise.all(roles.map(leaseOf)),
      (ls) => ls.every((l) => l === first),
    ),
  ).toEqual([first, first]);

  await suite.store.client.leaseClient.leaseRevoke({ ID: first });

  // The runtime registers again on a new lease; both roles follow it.
  const second = await until(
    () => leaseOf(member),
    (l) => l !== undefined && l !== first,
  );
  expect(second).toBeDefined();
  expect(second).not.toBe(first);
  expect(
    await until(
      () => Promise.all(roles.map(leaseOf)),
      (ls) => ls.every((l) => l === second),
    ),
  ).toEqual([second, second]);

  // And they act: a workflow submitted now gets its step job; an expired job is collected.
  await submitWorkflow(suite.store, workflow('wf-after-loss'));
  await submitJob(suite.store, finishedJob('expired-after-loss', Date.now() - 60_000));
  const step = await until(
    () => suite.store.get<JobRecord>(suite.store.keys.job(stepJobId('wf-after-loss', 0))),
    (j) => j !== undefined,
  );
  expect(step?.value.spec.labels).toMatchObject({ 'batch.workflow': 'wf-after-loss', 'batch.step': 'only' });
  expect(
    await until(
      () => suite.store.get(suite.store.keys.job('expired-after-loss')),
      (j) => j === undefined,
    ),
  ).toBeUndefined();
  const metrics = await (await fetch(`${suite.quota!.url}/metrics`)).text();
  expect(metrics).toMatch(/batch_workflow_controller_is_leader\{service="quota"\} 1\n/);
}, 60_000);
