/**
 * The API address a step that reads its inputs is given (`BATCH_API`), against a real etcd: with no
 * `BATCH_STEP_API_URL` and no admission replica registered, the controller does not make the step
 * (it would have no address to read its inputs from) and makes it once a replica registers, with
 * that replica's URL.
 */
import type { JobRecord, WorkflowRecord } from '@batchapi/api';
import { waitFor } from '@batchapi/proc';
import { submitWorkflow } from '@batchapi/store';
import { stepJobId } from '@batchapi/workflows';
import { startQuota } from '../src';
import { quotaSuite, runningWorkflow } from './harness';

const suite = quotaSuite();

it('makes a step that reads inputs only once it knows an admission address, and gives it that address', async () => {
  suite.quota = await startQuota({ config: { etcdEndpoints: suite.etcd.endpoints, logLevel: 'fatal', instanceId: 'quota-api-url' } });
  const job = { command: ['true'], resources: { cpu: '100m', memory: '16Mi' } };
  // 'read' names an input: 'prep', whose job already succeeded
  const wf: WorkflowRecord = runningWorkflow('wf-api-url', [
    { name: 'prep', dependsOn: [], when: 'success', job, criticalPath: 2, phase: 'Succeeded', jobId: 'earlier-job' },
    { name: 'read', dependsOn: ['prep'], inputs: ['prep'], when: 'success', job, criticalPath: 1, phase: 'Pending' },
  ]);
  await submitWorkflow(suite.store, wf);
  const key = suite.store.keys.job(stepJobId(wf.id, 1));
  // No admission replica: once this replica leads the workflow controller, and for several reconciles
  // after (a retry a second), still no step job.
  const leader = await waitFor(
    () => suite.store.get(suite.store.keys.leader('workflows')),
    (l) => l !== undefined,
    { timeoutMs: 15_000 },
  );
  expect(leader).toBeDefined();
  await new Promise((r) => setTimeout(r, 2500));
  expect(await suite.store.get<JobRecord>(key)).toBeUndefined();
  // A replica registers (its member record, as a running admission writes it): the step is made with its URL.
  await suite.store.txn(
    [],
    [
      {
        put: suite.store.keys.member('admission', 'adm-1'),
        value: { service: 'admission', id: 'adm-1', pid: 1, startedAt: Date.now(), url: 'http://10.0.0.7:8080' },
      },
    ],
  );
  const made = await waitFor(
    () => suite.store.get<JobRecord>(key),
    (j) => j !== undefined,
    { timeoutMs: 15_000 },
  );
  expect(made?.value.spec.env.BATCH_API).toBe('http://10.0.0.7:8080');
  expect(made?.value.spec.env.BATCH_INPUTS_TOKEN).toMatch(/^bsi1\./);
});
