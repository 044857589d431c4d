/**
 * Cancelling one task of an array job (as Slurm's `scancel 123_7`) over HTTP, in-process services
 * on a real etcd with a real executor running real processes: a pending task ends `Cancelled` at
 * once, a running one is stopped (SIGTERM) and never runs again, the others run on, and the job ends
 * `Cancelled` (not every task ran). Bad indices and ended tasks are refused with stable codes naming
 * the field, and change nothing.
 */
import type { JobView, TaskView } from '@batchapi/api';
import { api, until, useCluster, waitForJob } from './harness';

const c = useCluster({ executor: { cpu: '8', memory: '8Gi' } });

const cancelTask = (id: string, index: string | number, token?: string) => api(c.base, 'DELETE', `/v1/jobs/${id}/tasks/${index}`, undefined, token);

it('cancels a pending task at once and a running one by stopping it; the others run on; the job ends Cancelled', async () => {
  // one task at a time: task 0 runs (until stopped), tasks 1 and 2 wait
  const submitted = await api(c.base, 'POST', '/v1/jobs', {
    name: 'three',
    tasks: 3,
    maxRunning: 1,
    resources: { cpu: '100m', memory: '16Mi' },
    command: ['sh', '-c', 'if [ "$BATCH_TASK_INDEX" = 0 ]; then sleep 60; fi; echo "task $BATCH_TASK_INDEX ran"'],
  });
  expect(submitted.status).toBe(201);
  const id = (submitted.body as JobView).id;
  const tasks = async () => ((await api(c.base, 'GET', `/v1/jobs/${id}/tasks`)).body as { tasks: TaskView[] }).tasks;
  expect(await until(async () => (await tasks()).some((t) => t.index === 0 && t.state === 'Running'), 20_000)).toBe(true);

  // task 2 is pending: cancelled at once, counted at once
  const pending = await cancelTask(id, 2);
  expect(pending.status).toBe(202);
  expect((pending.body as JobView).taskCounts).toMatchObject({ cancelled: 1, succeeded: 0 });
  // again: nothing changes
  expect((await cancelTask(id, 2)).body).toMatchObject({ taskCounts: { cancelled: 1 } });

  // task 0 runs: its executor stops it; then task 1 runs and succeeds; task 2 never runs
  expect((await cancelTask(id, 0)).status).toBe(202);
  const done = await waitForJob(c.base, id, 30_000);
  expect(done.phase).toBe('Cancelled');
  expect(done.taskCounts).toMatchObject({ succeeded: 1, failed: 0, cancelled: 2 });
  const byIndex = new Map((await tasks()).map((t) => [t.index, t]));
  expect(byIndex.get(0)).toMatchObject({ state: 'Cancelled', attempt: 1 });
  expect(byIndex.get(1)).toMatchObject({ state: 'Succeeded' });
  // task 2 never ran: no attempt of it; task 0 had one
  expect(byIndex.has(2)).toBe(false);
  expect((await tasks()).filter((t) => t.index === 0)).toHaveLength(1);

  // an ended job's task: 409 conflict, nothing changes
  const late = await cancelTask(id, 1);
  expect(late.status).toBe(409);
  expect(late.body).toMatchObject({ error: { code: 'conflict' } });
}, 60_000);

it('refuses indices the job does not have and other tenants, naming the field and changing nothing', async () => {
  const submitted = await api(c.base, 'POST', '/v1/jobs', { tasks: 2, resources: { cpu: '100m', memory: '16Mi' }, command: ['sleep', '30'] });
  const id = (submitted.body as JobView).id;
  for (const index of ['2', 'x', '-1', '1e3', '99999999999']) {
    const r = await cancelTask(id, index);
    expect([r.status, r.body]).toMatchObject([404, { error: { code: 'not_found', field: 'index' } }]);
  }
  // another tenant's job is not there for it
  expect((await cancelTask(id, 0, 'other-token')).status).toBe(404);
  const job = (await api(c.base, 'GET', `/v1/jobs/${id}`)).body as JobView;
  expect(job.taskCounts.cancelled).toBe(0);
  await api(c.base, 'DELETE', `/v1/jobs/${id}`);
});
