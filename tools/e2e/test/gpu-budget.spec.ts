/**
 * A queue's `gpuHoursPerDay` end to end (issue 17), in-process services on a real etcd with a
 * simulated GPU node: once the queue's GPU-hours of the last 24 h reach its budget, work asking
 * for GPUs waits — why-pending gives the figure and when the budget frees, the queue view shows
 * used/budget — while CPU-only work of the same queue runs; raising the budget lets it start.
 */
import type { QueueView } from '@batchapi/api';
import { api, until, useCluster, waitForJob } from './harness';

const c = useCluster({ fleet: { nodes: 1, capacity: { cpu: '8', memory: '16Gi', gpu: 2 }, taskMs: 100 } });

const OP = 'operator-token';
const putQueue = (body: unknown) => api(c.base, 'PUT', '/v1/queues/default', body, OP);
const submit = (body: unknown) => api(c.base, 'POST', '/v1/jobs', body);
const job = (name: string, gpu: number, seconds: number) => ({
  name,
  command: ['true'],
  resources: { cpu: '1', memory: '1Gi', ...(gpu ? { gpu } : {}) },
  env: { BATCH_SIM_SECONDS: String(seconds) },
});

it('holds GPU work once the queue used its GPU-hours of the day, lets CPU work run, and starts it when the budget is raised', async () => {
  // 0.001 GPU-h = 3.6 GPU-s; g1 holds 2 GPUs for 3 s: 6 GPU-s ≈ 0.0017 GPU-h, over the budget once it ends.
  expect((await putQueue({ tenant: 'default', gpuHoursPerDay: 0.001 })).status).toBe(200);
  const g1 = (await submit(job('g1', 2, 3))).body.id;
  expect((await waitForJob(c.base, g1, 30000)).phase).toBe('Succeeded');

  // g2 is written before c1: the cycle that starts c1 saw g2 and held it.
  const g2 = (await submit(job('g2', 1, 0.1))).body.id;
  const c1 = (await submit(job('c1', 0, 0.1))).body.id;
  expect((await waitForJob(c.base, c1, 30000)).phase).toBe('Succeeded');
  expect((await api(c.base, 'GET', `/v1/jobs/${g2}`)).body.phase).toBe('Queued');
  let messages: string[] = [];
  expect(
    await until(async () => {
      messages = (await api(c.base, 'GET', `/v1/jobs/${g2}/why`)).body.messages ?? [];
      return messages.some((m) =>
        /^queue "default" used [\d.]+ of its 0\.001 GPU-hours in the last 24 h \(gpuHoursPerDay\): 1 task waits; budget frees from \d{4}-/.test(m),
      );
    }),
  ).toBe(true);
  const view = (await api(c.base, 'GET', '/v1/queues/default')).body as QueueView;
  expect(view.caps?.queue.gpuHoursPerDay).toBe(0.001);
  expect(view.caps?.queue.gpuHoursUsed).toBeGreaterThanOrEqual(0.001);
  expect(Date.parse(view.caps!.queue.gpuBudgetFreesAt!)).toBeGreaterThan(Date.now() + 23 * 3_600_000);

  expect((await putQueue({ tenant: 'default', gpuHoursPerDay: 1 })).status).toBe(200);
  expect((await waitForJob(c.base, g2, 30000)).phase).toBe('Succeeded');
}, 90000);
