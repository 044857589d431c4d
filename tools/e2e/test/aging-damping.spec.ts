/**
 * Priority aging and preemption thrash damping on a real cluster (etcd, the four services, one
 * executor running real processes): a waiting job's effective priority grows with its queue's
 * aging settings and why-pending names it; tasks within the preemption exempt time are not
 * preempted, why-pending says so and the scheduler counts it.
 */
import { api, until, useCluster, waitForJob } from './harness';

// Queue `aging` ages fast enough for a test: 36,000 points an hour = 1 point per 100 ms, at most 1000.
const CLUSTER = {
  tenants: [{ name: 'default' }],
  queues: [
    { name: 'default', tenant: 'default' },
    { name: 'aging', tenant: 'default', priorityAgingPerHour: 36_000, priorityAgingMax: 1000 },
  ],
};

// A 10-minute exempt time: every running task in these tests is protected from preemption.
const c = useCluster({ cluster: CLUSTER, scheduler: { preemption: { protectMs: 600_000, perQueuePerMinute: 100 } }, executor: {} });

const submit = async (body: Record<string, unknown>) => {
  const r = await api(c.base, 'POST', '/v1/jobs', body);
  expect(r.status).toBe(201);
  return r.body.id as string;
};
const why = async (id: string) => (await api(c.base, 'GET', `/v1/jobs/${id}/why`)).body;
const running = async (id: string) => (await api(c.base, 'GET', `/v1/jobs/${id}`)).body.taskCounts.running as number;

it('refuses queue aging settings out of their bounds, naming the field', async () => {
  const op = (body: unknown) => api(c.base, 'PUT', '/v1/queues/bad-aging', body, 'operator-token');
  expect((await op({ tenant: 'default', priorityAgingMax: 5000 })).body.error).toMatchObject({ code: 'invalid_argument', field: 'priorityAgingMax' });
  expect((await op({ tenant: 'default', priorityAgingPerHour: -1 })).body.error).toMatchObject({ code: 'invalid_argument', field: 'priorityAgingPerHour' });
  const q = await op({ tenant: 'default', priorityAgingPerHour: 6, priorityAgingMax: 20 });
  expect(q.body).toMatchObject({ name: 'bad-aging', priorityAgingPerHour: 6, priorityAgingMax: 20 });
});

it('takes per-queue fair-share prices within their bounds, and refuses others naming the field', async () => {
  const op = (body: unknown) => api(c.base, 'PUT', '/v1/queues/priced', body, 'operator-token');
  expect((await op({ tenant: 'default', prices: { disk: 1 } })).body.error).toMatchObject({ code: 'invalid_argument', field: 'prices.disk' });
  expect((await op({ tenant: 'default', prices: { 'gpu:H100': 2e6 } })).body.error).toMatchObject({ code: 'invalid_argument', field: 'prices.gpu:H100' });
  const q = await op({ tenant: 'default', prices: { 'gpu:H100': 4, 'gpu:T4': 0.5 } });
  expect(q.body).toMatchObject({ name: 'priced', prices: { 'gpu:H100': 4, 'gpu:T4': 0.5 }, fairShare: 0 });
});

it('starts a long-waiting priority-0 job before a fresh priority-10 one, and why-pending names its effective priority', async () => {
  // The whole node (4 cores) is held by a priority-100 blocker; low (prio 0) waits, ageing 1 point per 100 ms.
  const blocker = await submit({ name: 'blocker', queue: 'aging', priority: 100, resources: { cpu: '4' }, command: ['sleep', '60'] });
  expect(await until(async () => (await running(blocker)) === 1)).toBe(true);
  const low = await submit({ name: 'low', queue: 'aging', priority: 0, resources: { cpu: '4' }, command: ['true'] });
  // Once low has aged past 10 + 10 (two seconds), fresh priority-10 work cannot catch it up before the node frees.
  let message = '';
  expect(
    await until(async () => {
      message = ((await why(low)).messages as string[]).find((m) => m.startsWith('effective priority')) ?? '';
      return Number(/^effective priority (\d+)/.exec(message)?.[1] ?? 0) >= 20;
    }),
  ).toBe(true);
  expect(message).toMatch(/^effective priority \d+ = priority 0 \+ \d+ for waiting \d+s \(aging 36000\/hour, at most 1000\)$/);
  const high = await submit({ name: 'high', queue: 'aging', priority: 10, resources: { cpu: '4' }, command: ['true'] });
  // The fresh job is behind the aged one in the queue.
  expect(await until(async () => (await why(high)).position === 2)).toBe(true);
  await api(c.base, 'DELETE', `/v1/jobs/${blocker}`);
  const [l, h] = [await waitForJob(c.base, low, 20000), await waitForJob(c.base, high, 20000)];
  expect([l.phase, h.phase]).toEqual(['Succeeded', 'Succeeded']);
  expect(Date.parse(l.startedAt!)).toBeLessThanOrEqual(Date.parse(h.startedAt!));
});

it('does not preempt tasks within the exempt time: why-pending says so and the scheduler counts it', async () => {
  // 4 one-core priority-0 tasks fill the node; a 2-core priority-10 task would need 2 of them stopped, but they started
  // less than 600 s ago.
  const low = await submit({ name: 'low-protected', tasks: 4, priority: 0, resources: { cpu: '1' }, command: ['sleep', '60'] });
  expect(await until(async () => (await running(low)) === 4)).toBe(true);
  const high = await submit({ name: 'high-waits', priority: 10, resources: { cpu: '2' }, command: ['true'] });
  const expected =
    'not preempting lower-priority work for it: the tasks it would stop are protected from thrashing: 2 tasks started less than the preemption exempt time ago (600 s)';
  expect(await until(async () => ((await why(high)).messages as string[]).includes(expected))).toBe(true);
  expect(
    await until(async () =>
      /batch_scheduler_preemptions_held_total\{queue="default",reason="exempt-time",service="scheduler"\} \d+/.test(
        await (await fetch(`${c.scheduler.url}/metrics`)).text(),
      ),
    ),
  ).toBe(true);
  // Nothing was stopped.
  expect(await running(low)).toBe(4);
  expect(await (await fetch(`${c.scheduler.url}/metrics`)).text()).not.toMatch(/batch_scheduler_stops_total\{queue="default"/);
  for (const id of [high, low]) await api(c.base, 'DELETE', `/v1/jobs/${id}`);
  expect((await waitForJob(c.base, low, 20000)).phase).toBe('Cancelled');
});
