/**
 * Running caps end to end (issue 17), in-process services on a real etcd with a real executor
 * running real processes: a queue's `maxRunningTasks` of 2 never has more than 2 of its tasks
 * running at once, across jobs, and why-pending, the queue view and the scheduler's gauges say
 * so; a tenant's cap holds too; bad caps are refused with a stable code naming the field. Each
 * task appends its own start and end (nanoseconds, from the process) to a file: overlap is
 * measured on what really ran.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { QueueView } from '@batchapi/api';
import { api, until, useCluster, waitForJob } from './harness';

const c = useCluster({ executor: { cpu: '8', memory: '8Gi' } });

const small = { resources: { cpu: '100m', memory: '16Mi' } };
/** A task that records its start and end in `log` around `seconds` of sleep. */
const timed = (log: string, name: string, seconds: number) => ({
  ...small,
  name,
  command: ['sh', '-c', `echo "${name} start $(date +%s%N)" >> ${log}; sleep ${seconds}; echo "${name} end $(date +%s%N)" >> ${log}`],
});

/** The most tasks running at once in `log` (ends before starts at the same instant). */
function mostAtOnce(log: string): { most: number; tasks: number } {
  const events = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([, what, ns]) => ({ at: BigInt(ns), d: what === 'start' ? 1 : -1 }))
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.d - b.d));
  let now = 0;
  let most = 0;
  for (const e of events) most = Math.max(most, (now += e.d));
  return { most, tasks: events.length / 2 };
}

const OP = 'operator-token';
const putQueue = (body: unknown) => api(c.base, 'PUT', '/v1/queues/default', body, OP);
const putTenant = (body: unknown) => api(c.base, 'PUT', '/v1/tenants/default', body, OP);
const submit = (body: unknown) => api(c.base, 'POST', '/v1/jobs', body);

it('refuses bad caps with 400 naming the field, and shows set ones in the queue view', async () => {
  expect((await putQueue({ tenant: 'default', maxRunningTasks: -1 })).body.error).toMatchObject({ code: 'invalid_argument', field: 'maxRunningTasks' });
  expect((await putQueue({ tenant: 'default', maxRunningTasks: 2.5 })).body.error).toMatchObject({ code: 'invalid_argument', field: 'maxRunningTasks' });
  expect((await putTenant({ gpuHoursPerDay: 1e8 })).body.error).toMatchObject({ code: 'invalid_argument', field: 'gpuHoursPerDay' });
  expect((await putTenant({ gpuHoursPerDay: 'lots' })).body.error).toMatchObject({ code: 'invalid_argument', field: 'gpuHoursPerDay' });
  const tenant = await putTenant({ gpuHoursPerDay: 100 });
  expect(tenant.status).toBe(200);
  expect(tenant.body).toEqual({ name: 'default', weight: 1, gpuHoursPerDay: 100 });
  const queue = await putQueue({ tenant: 'default', maxRunningTasks: 2 });
  expect(queue.status).toBe(200);
  expect((queue.body as QueueView).caps).toEqual({
    queue: { runningTasks: 0, maxRunningTasks: 2, gpuHoursUsed: 0 },
    tenant: { runningTasks: 0, gpuHoursUsed: 0, gpuHoursPerDay: 100 },
  });
});

it('a queue capped at 2 runs at most 2 of its tasks at once across jobs; why-pending, the view and the gauges say so', async () => {
  expect((await putQueue({ tenant: 'default', maxRunningTasks: 2 })).status).toBe(200);
  const log = join(c.dir, 'queue-cap.log');
  const ids: string[] = [];
  for (const name of ['a', 'b', 'c']) {
    const r = await submit({ ...timed(log, name, 1.5), tasks: 2 });
    expect(r.status).toBe(201);
    ids.push(r.body.id);
  }
  let why: { messages: string[] } | undefined;
  expect(
    await until(async () => {
      for (const id of ids) {
        why = (await api(c.base, 'GET', `/v1/jobs/${id}/why`)).body;
        if (why?.messages?.some((m) => m.startsWith('queue "default" runs 2 of its 2 tasks (maxRunningTasks)'))) return true;
      }
      return false;
    }),
  ).toBe(true);
  const view = (await api(c.base, 'GET', '/v1/queues/default')).body as QueueView;
  expect(view.caps?.queue.maxRunningTasks).toBe(2);
  expect(view.caps?.queue.runningTasks).toBeLessThanOrEqual(2);
  const metrics = await (await fetch(`${c.scheduler.url}/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^${name}\\{[^}]*scope="queue"[^}]*queue="default"[^}]*\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
  expect(gauge('batch_queue_max_running_tasks')).toBe(2);
  expect(gauge('batch_queue_cap_running_tasks')).toBeLessThanOrEqual(2);
  for (const id of ids) expect((await waitForJob(c.base, id, 60000)).phase).toBe('Succeeded');
  expect(mostAtOnce(log)).toEqual({ most: 2, tasks: 6 });
}, 90000);

it('a tenant capped at 1 runs its tasks one at a time, whatever its queue allows', async () => {
  expect((await putQueue({ tenant: 'default' })).status).toBe(200);
  expect((await putTenant({ maxRunningTasks: 1 })).status).toBe(200);
  const log = join(c.dir, 'tenant-cap.log');
  const ids: string[] = [];
  for (const name of ['x', 'y']) ids.push((await submit({ ...timed(log, name, 0.5), tasks: 2 })).body.id);
  for (const id of ids) expect((await waitForJob(c.base, id, 60000)).phase).toBe('Succeeded');
  expect(mostAtOnce(log)).toEqual({ most: 1, tasks: 4 });
  expect((await putTenant({})).status).toBe(200);
}, 90000);
