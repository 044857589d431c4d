/**
 * Simulated executors: one process registers 200 nodes and "runs" a 2,000-task array job
 * through the real quota service, scheduler and reports — no task processes.
 */
import type { NodeAllocation } from '@batchapi/api';
import { api, useCluster, waitForJob } from './harness';

const cluster = useCluster({ fleet: { nodes: 200, capacity: { cpu: '4', memory: '16Gi' }, taskMs: 300 } });

it('runs a 2,000-task array job on 200 simulated nodes and releases every node', async () => {
  // 200 nodes × 4 cores = 800 one-core slots: 3 waves of 300 ms
  const submit = await api(cluster.base, 'POST', '/v1/jobs', { tasks: 2000, resources: { cpu: '1', memory: '1Gi' }, command: ['true'] });
  expect(submit.status).toBe(201);
  const job = await waitForJob(cluster.base, submit.body.id, 30000);
  expect(job).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 2000, failed: 0, pending: 0, running: 0 } });
  const allocs = (await cluster.store.listAll<NodeAllocation>(cluster.store.keys.allocs())).items;
  expect(allocs.every((a) => Object.keys(a.value.used).length === 0)).toBe(true);
});
