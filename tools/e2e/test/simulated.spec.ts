/**
 * Simulated executors: one process registers 200 nodes and "runs" a 2,000-task array job
 * through the real quota service, scheduler and reports — no task processes.
 */
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import { startSimulatedFleet } from '@batchapi/executor';
import { startQuota } from '@batchapi/quota';
import type { RunningService } from '@batchapi/runtime';
import { startScheduler } from '@batchapi/scheduler';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import type { NodeAllocation } from '@batchapi/api';
import { api, CLUSTER, TOKENS, waitForJob } from './harness';

let etcd: LocalEtcd;
const services: RunningService[] = [];
let base: string;

beforeAll(async () => {
  etcd = await startEtcd();
  const config = { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' };
  services.push(await startQuota({ cluster: CLUSTER, config }));
  services.push(await startScheduler({ config, tuning: { idleMs: 100, busyMs: 5 } }));
  services.push(await startSimulatedFleet({ nodes: 200, capacity: { cpu: '4', memory: '16Gi' }, taskMs: 300 }, config));
  const admission = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config });
  services.push(admission);
  base = admission.url;
});
afterAll(async () => {
  for (const s of services.reverse()) await s.close().catch(() => undefined);
  await etcd.stop();
});

it('runs a 2,000-task array job on 200 simulated nodes and releases every node', async () => {
  // 200 nodes × 4 cores = 800 one-core slots: 3 waves of 300 ms
  const submit = await api(base, 'POST', '/v1/jobs', { tasks: 2000, resources: { cpu: '1', memory: '1Gi' }, command: ['true'] });
  expect(submit.status).toBe(201);
  const job = await waitForJob(base, submit.body.id, 30000);
  expect(job).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 2000, failed: 0, pending: 0, running: 0 } });
  const store = new EtcdStore({ endpoints: etcd.endpoints });
  const allocs = (await store.listAll<NodeAllocation>(store.keys.allocs())).items;
  expect(allocs.every((a) => Object.keys(a.value.used).length === 0)).toBe(true);
  await store.close();
});
