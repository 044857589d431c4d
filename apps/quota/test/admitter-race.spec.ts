/**
 * A job whose tenant and queue are in etcd is decided on them even when the admitter's caches
 * (separate watches of tenants, queues and jobs) have not delivered them yet: the admitter reads
 * them from etcd before refusing a job as naming an unknown one. A CI run of the schedules suite
 * saw a Replace run's first job Rejected, its queue made just before it, on a loaded box. This
 * test writes each round's tenant, queue and job in one transaction; it does not force the watch
 * interleaving (it passed before the fix too on an idle box), it checks the outcome: all queued,
 * and a queue etcd lacks still refused.
 */
import type { JobRecord } from '@batchapi/api';
import { getJob } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { startQuota } from '../src';
import { quotaSuite } from './harness';

const suite = quotaSuite();

const submitted = (id: string, tenant: string, queue: string): JobRecord => ({
  id,
  tenant,
  queue,
  phase: 'Submitted',
  createdAt: Date.now(),
  spec: { name: id, command: ['true'], env: {}, resources: { cpu: 1000 }, tasks: 1, priority: 0, labels: {} },
  pending: [{ start: 0, end: 1, attempt: 1 }],
  counts: { succeeded: 0, failed: 0, cancelled: 0 },
});

it('queues jobs whose tenant and queue are written in the same transaction as the job; refuses a queue etcd lacks', async () => {
  suite.quota = await startQuota({ config: { etcdEndpoints: suite.etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' } });
  const { store } = suite;
  // 30 rounds, each a new tenant and queue with its first job, all in one transaction
  for (let i = 0; i < 30; i++) {
    await store.txn(
      [],
      [
        { put: store.keys.tenant(`t${i}`), value: { name: `t${i}` } },
        { put: store.keys.queue(`q${i}`), value: { name: `q${i}`, tenant: `t${i}`, nominal: {} } },
        { put: store.keys.job(`race-${i}`), value: submitted(`race-${i}`, `t${i}`, `q${i}`) },
      ],
    );
  }
  await store.txn([], [{ put: store.keys.job('no-queue'), value: submitted('no-queue', 't0', 'never-made') }]);
  const phases = await waitFor(
    () => Promise.all([...Array.from({ length: 30 }, (_, i) => `race-${i}`), 'no-queue'].map(async (id) => (await getJob(store, id))?.value.phase)),
    (ps) => ps.every((p) => p !== 'Submitted'),
    { timeoutMs: 15_000 },
  );
  expect(phases.slice(0, 30)).toEqual(Array.from({ length: 30 }, () => 'Queued'));
  expect(phases[30]).toBe('Rejected');
});
