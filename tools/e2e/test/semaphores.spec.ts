/**
 * Named semaphores and mutexes end to end (issue 17), in-process services on a real etcd with a
 * real executor running real processes: a semaphore of capacity 2 never has more than 2 tasks of
 * its jobs running at once, across jobs, and why-pending names it and its holders meanwhile; a
 * lock runs the tasks of every job naming it one at a time; bad names, unknown semaphores and
 * requests over a capacity are refused with a stable code naming the field, and change nothing.
 * Each task appends its own start and end (nanoseconds, from the process) to a file: overlap is
 * measured on what really ran, not on what the services say.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JobView, SemaphoreView } from '@batchapi/api';
import { api, until, useCluster, waitForJob } from './harness';

const c = useCluster({ executor: { cpu: '8', memory: '8Gi' } });

const small = { resources: { cpu: '100m', memory: '16Mi' } };
/** A task that records its start and end in `log` (one line each: `<job> <index> start|end <ns>`) around `seconds` of sleep. */
const timed = (log: string, name: string, seconds: number) => ({
  ...small,
  name,
  command: [
    'sh',
    '-c',
    `echo "${name} $BATCH_TASK_INDEX start $(date +%s%N)" >> ${log}; sleep ${seconds}; echo "${name} $BATCH_TASK_INDEX end $(date +%s%N)" >> ${log}`,
  ],
});

/** The most tasks running at once in `log` (ends before starts at the same instant). */
function mostAtOnce(log: string): { most: number; tasks: number } {
  const events = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([, , what, ns]) => ({ at: BigInt(ns), d: what === 'start' ? 1 : -1 }))
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.d - b.d));
  let now = 0;
  let most = 0;
  for (const e of events) most = Math.max(most, (now += e.d));
  return { most, tasks: events.length / 2 };
}

const put = (name: string, body: unknown, token?: string) => api(c.base, 'PUT', `/v1/semaphores/${encodeURIComponent(name)}`, body, token);
const submit = (body: unknown) => api(c.base, 'POST', '/v1/jobs', body);

it('creates, shows and changes a semaphore; refuses bad input with a stable code naming the field, changing nothing', async () => {
  const created = await put('db/warehouse-conn', { capacity: 3, description: 'warehouse connections' });
  expect(created.status).toBe(200);
  expect(created.body).toEqual({
    name: 'db/warehouse-conn',
    tenant: 'default',
    mutex: false,
    capacity: 3,
    held: 0,
    holders: [],
    waitingTasks: 0,
    description: 'warehouse connections',
  });
  expect((await put('db/warehouse-conn', { capacity: 2 })).body).toMatchObject({ capacity: 2 });
  expect((await api(c.base, 'GET', `/v1/semaphores/${encodeURIComponent('db/warehouse-conn')}`)).body).toMatchObject({ capacity: 2, held: 0 });

  // A tenant may not create a shared one; a bad name or capacity is 400 naming the field.
  expect((await put('global/licences', { capacity: 1 })).body.error).toMatchObject({ code: 'permission_denied', field: 'name' });
  expect((await put('global/licences', { capacity: 4 }, 'operator-token')).status).toBe(200);
  expect((await put('Bad Name', { capacity: 1 })).body.error).toMatchObject({ code: 'invalid_argument', field: 'name' });
  expect((await put('ok', { capacity: 0 })).body.error).toMatchObject({ code: 'invalid_argument', field: 'capacity' });

  // A job naming a semaphore its tenant lacks, or asking for more than its capacity, could never start.
  const unknown = await submit({ ...small, command: ['true'], limits: { 'db/nope': 1 } });
  expect(unknown.status).toBe(422);
  expect(unknown.body.error).toMatchObject({ code: 'unknown_semaphore', field: 'limits.db/nope' });
  const over = await submit({ ...small, command: ['true'], limits: { 'db/warehouse-conn': 3 } });
  expect(over.body.error).toMatchObject({ code: 'exceeds_semaphore', field: 'limits.db/warehouse-conn' });
  expect((await submit({ ...small, command: ['true'], locks: ['a', 'a'] })).body.error).toMatchObject({ code: 'invalid_argument', field: 'locks' });
  // Another tenant does not see this tenant's semaphore; the global one is everyone's.
  const other = (await api(c.base, 'GET', '/v1/semaphores', undefined, 'other-token')).body.semaphores as SemaphoreView[];
  expect(other.map((s) => s.name)).toEqual(['global/licences']);
  expect((await api(c.base, 'GET', '/v1/jobs?limit=10')).body.jobs).toEqual([]);
});

it('a semaphore of capacity 2 has at most 2 tasks of its jobs running at once; why-pending names it and its holders', async () => {
  expect((await put('db/pool', { capacity: 2 })).status).toBe(200);
  const log = join(c.dir, 'pool.log');
  const ids: string[] = [];
  for (const name of ['p1', 'p2', 'p3', 'p4']) {
    const r = await submit({ ...timed(log, name, 1.5), tasks: 2, limits: { 'db/pool': 1 } });
    expect(r.status).toBe(201);
    ids.push(r.body.id);
  }
  // While two run, the others wait for the semaphore, and say so.
  let why: { messages: string[] } | undefined;
  expect(
    await until(async () => {
      for (const id of ids) {
        why = (await api(c.base, 'GET', `/v1/jobs/${id}/why`)).body;
        if (why?.messages?.some((m) => m.startsWith('waiting for semaphore db/pool (2/2 units held by job'))) return true;
      }
      return false;
    }),
  ).toBe(true);
  const view = (await api(c.base, 'GET', `/v1/semaphores/${encodeURIComponent('db/pool')}`)).body as SemaphoreView;
  expect(view.held).toBeLessThanOrEqual(2);
  // The scheduler leader's gauges show the same count, and the wait.
  const metrics = await (await fetch(`${c.scheduler.url}/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^${name}\\{[^}]*semaphore="db/pool"[^}]*\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
  expect(gauge('batch_semaphore_capacity')).toBe(2);
  expect(gauge('batch_semaphore_held_units')).toBeLessThanOrEqual(2);
  expect(gauge('batch_semaphore_oldest_wait_seconds')).toBeGreaterThanOrEqual(0);
  for (const id of ids) expect((await waitForJob(c.base, id, 60000)).phase).toBe('Succeeded');
  expect(mostAtOnce(log)).toEqual({ most: 2, tasks: 8 });
  expect((await api(c.base, 'GET', `/v1/semaphores/${encodeURIComponent('db/pool')}`)).body).toMatchObject({ held: 0, holders: [] });
}, 90000);

it('a lock runs the tasks of every job naming it one at a time, and frees when they end', async () => {
  const log = join(c.dir, 'lock.log');
  const ids: string[] = [];
  for (const name of ['l1', 'l2', 'l3']) ids.push((await submit({ ...timed(log, name, 0.5), tasks: 2, locks: ['dataset/lidar-2026-11'] })).body.id);
  // Work on another lock is not held up by this one.
  const free = (await submit({ ...timed(join(c.dir, 'free.log'), 'free', 0.1), locks: ['dataset/other'] })).body.id;
  expect((await waitForJob(c.base, free, 30000)).phase).toBe('Succeeded');
  const views: JobView[] = [];
  for (const id of ids) views.push(await waitForJob(c.base, id, 60000));
  expect(views.map((v) => v.phase)).toEqual(['Succeeded', 'Succeeded', 'Succeeded']);
  expect(mostAtOnce(log)).toEqual({ most: 1, tasks: 6 });
}, 90000);
