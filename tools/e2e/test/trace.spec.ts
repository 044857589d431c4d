/**
 * One job through the four services in one process, with the SDK's in-memory exporter:
 * a single trace shows admission → quota → placement → binding → each task's run.
 */
import { initTracing } from '@batchapi/telemetry';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { api, until, useCluster, waitForJob } from './harness';

const exporter = new InMemorySpanExporter();
beforeAll(() => initTracing('e2e', { exporter }));
const c = useCluster({ scheduler: { preemption: { protectMs: 0, perQueuePerMinute: 100 } }, executor: {} });

it('runs an array job to completion with one trace across all services', async () => {
  const submit = await api(c.base, 'POST', '/v1/jobs', {
    name: 'traced',
    tasks: 3,
    resources: { cpu: '1', memory: '64Mi' },
    command: ['sh', '-c', 'echo "task $BATCH_TASK_INDEX attempt $BATCH_ATTEMPT"; echo "tp=$TRACEPARENT"'],
  });
  expect(submit.status).toBe(201);
  const job = await waitForJob(c.base, submit.body.id);
  expect(job.phase).toBe('Succeeded');
  expect(job.taskCounts).toMatchObject({ succeeded: 3, failed: 0, pending: 0, running: 0 });

  const logs = await api(c.base, 'GET', `/v1/jobs/${job.id}/tasks/2/logs`);
  expect(logs.status).toBe(200);
  expect(logs.body).toContain('task 2 attempt 1');

  const traceId = submit.body.traceId as string;
  expect(traceId).toMatch(/^[0-9a-f]{32}$/);
  expect(logs.body).toContain(`tp=00-${traceId}-`);
  const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  const named = (n: string) => spans.filter((s) => s.name === n);
  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
  const [submitSpan] = named('job.submit');
  expect(submitSpan).toBeDefined();
  for (const child of ['admission.authenticate', 'admission.validate', 'admission.commit'])
    expect(parentOf(named(child)[0])).toBe(submitSpan.spanContext().spanId);
  expect(named('quota.admit')).toHaveLength(1);
  const [bind] = named('schedule.bind');
  expect(bind.attributes['batch.bind.landed']).toBe(true);
  const runs = named('task.run');
  expect(runs.map((r) => r.attributes['batch.task.index']).sort()).toEqual([0, 1, 2]);
  for (const r of runs) {
    expect(parentOf(r)).toBe(bind.spanContext().spanId);
    expect(r.attributes['batch.outcome']).toBe('Succeeded');
  }
  // The cycle that placed it is its own trace, linked to the job.
  const cycle = exporter.getFinishedSpans().find((s) => s.name === 'schedule.cycle' && s.links.some((l) => l.context.traceId === traceId));
  expect(cycle).toBeDefined();
});

it('cancels a running job: its task gets SIGTERM and the job ends Cancelled', async () => {
  const submit = await api(c.base, 'POST', '/v1/jobs', { name: 'sleeper', tasks: 2, resources: { cpu: '1' }, command: ['sleep', '30'] });
  const running = await (async () => {
    for (let i = 0; i < 100; i++) {
      const { body } = await api(c.base, 'GET', `/v1/jobs/${submit.body.id}`);
      if (body.taskCounts.running === 2) return body;
      await new Promise((r) => setTimeout(r, 50));
    }
    return undefined;
  })();
  expect(running?.taskCounts.running).toBe(2);
  const started = Date.now();
  expect((await api(c.base, 'DELETE', `/v1/jobs/${submit.body.id}`)).status).toBe(202);
  const job = await waitForJob(c.base, submit.body.id, 10000);
  expect(job.phase).toBe('Cancelled');
  expect(job.taskCounts.cancelled).toBe(2);
  // sleep exits on SIGTERM at once: well within the 1 s grace
  expect(Date.now() - started).toBeLessThan(5000);
});

it("hides a job from another tenant's token", async () => {
  const submit = await api(c.base, 'POST', '/v1/jobs', { tasks: 1, command: ['true'] });
  expect((await api(c.base, 'GET', `/v1/jobs/${submit.body.id}`, undefined, 'other-token')).status).toBe(404);
  expect((await waitForJob(c.base, submit.body.id)).phase).toBe('Succeeded');
});

it('explains why a job is pending and what would let it run', async () => {
  // the only node has 4 cores; tasks ask for 8
  const submit = await api(c.base, 'POST', '/v1/jobs', { tasks: 2, resources: { cpu: '8' }, command: ['true'] });
  let why: any;
  for (let i = 0; i < 50; i++) {
    why = (await api(c.base, 'GET', `/v1/jobs/${submit.body.id}/why`)).body;
    if (why.phase === 'Queued') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // Worked out by the scheduler from its live cache (a @nestjs/microservices call), not by admission.
  expect(why).toMatchObject({ phase: 'Queued', pendingTasks: 2, placeableNow: 0, position: 1, explainedBy: 'scheduler' });
  expect(why.messages).toContain('1 node: capacity of cpu too small');
  expect(why.counterfactuals).toContain('with 4 cpu instead of 8 cpu: 1 task would fit now');
  await api(c.base, 'DELETE', `/v1/jobs/${submit.body.id}`);
});

it('preempts the fewest low-priority tasks for a high-priority job, which then runs; the victims are requeued', async () => {
  // The node has 4 cores: 4 one-core low-priority tasks fill it; a 2-core task of priority 10 needs 2 of them gone.
  const low = await api(c.base, 'POST', '/v1/jobs', { name: 'low', tasks: 4, priority: 0, resources: { cpu: '1' }, command: ['sleep', '60'] });
  expect(await until(async () => (await api(c.base, 'GET', `/v1/jobs/${low.body.id}`)).body.taskCounts.running === 4)).toBe(true);
  const high = await api(c.base, 'POST', '/v1/jobs', {
    name: 'high',
    tasks: 1,
    priority: 10,
    resources: { cpu: '2' },
    command: ['sh', '-c', 'echo urgent'],
  });
  const done = await waitForJob(c.base, high.body.id, 20000);
  expect(done.phase).toBe('Succeeded');
  // 2 tasks were preempted and went back to pending at attempt 2 at once; 2 kept running; then the
  // requeued 2 run again on the room the finished high-priority task left.
  const groups = (await api(c.base, 'GET', `/v1/jobs/${low.body.id}`)).body;
  expect(groups.taskCounts.failed).toBe(0);
  expect(await until(async () => (await api(c.base, 'GET', `/v1/jobs/${low.body.id}`)).body.taskCounts.running === 4)).toBe(true);
  const metrics = await (await fetch(`${c.scheduler.url}/metrics`)).text();
  expect(metrics).toMatch(/batch_scheduler_preemptions_total\{queue="default",service="scheduler"\} 2/);
  await api(c.base, 'DELETE', `/v1/jobs/${low.body.id}`);
  expect((await waitForJob(c.base, low.body.id, 20000)).phase).toBe('Cancelled');
});

it('starts a gang only when all its tasks fit, then runs them together', async () => {
  // 4 cores: a 3-task gang of 2-core tasks can never fit (6 cores) and holds nothing; a 2-task gang of 2 cores runs.
  const blocked = await api(c.base, 'POST', '/v1/jobs', { tasks: 3, gang: true, gangTimeoutSeconds: 2, resources: { cpu: '2' }, command: ['true'] });
  const fits = await api(c.base, 'POST', '/v1/jobs', { tasks: 2, gang: true, resources: { cpu: '2' }, command: ['sh', '-c', 'echo together'] });
  expect((await waitForJob(c.base, fits.body.id, 15000)).phase).toBe('Succeeded');
  const failed = await waitForJob(c.base, blocked.body.id, 15000);
  expect(failed.phase).toBe('Failed');
  expect(failed.reason?.code).toBe('gang_unschedulable');
  expect(failed.taskCounts).toMatchObject({ failed: 3, succeeded: 0 });
});

it('preempts for a high-priority gang only as a whole: every task of it then starts together', async () => {
  // 4 cores full with 4 one-core low-priority tasks; a gang of 2 two-core tasks at priority 10 needs all 4 gone.
  const low = await api(c.base, 'POST', '/v1/jobs', { name: 'low-for-gang', tasks: 4, priority: 0, resources: { cpu: '1' }, command: ['sleep', '60'] });
  expect(await until(async () => (await api(c.base, 'GET', `/v1/jobs/${low.body.id}`)).body.taskCounts.running === 4)).toBe(true);
  const gang = await api(c.base, 'POST', '/v1/jobs', {
    name: 'gang-high',
    tasks: 2,
    gang: true,
    gangTimeoutSeconds: 30,
    priority: 10,
    resources: { cpu: '2' },
    command: ['sh', '-c', 'echo together'],
  });
  const done = await waitForJob(c.base, gang.body.id, 20000);
  expect(done).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 2, failed: 0 } });
  // The victims went back to pending (not failed) and run again once the gang is done.
  expect((await api(c.base, 'GET', `/v1/jobs/${low.body.id}`)).body.taskCounts.failed).toBe(0);
  expect(await until(async () => (await api(c.base, 'GET', `/v1/jobs/${low.body.id}`)).body.taskCounts.running === 4)).toBe(true);
  await api(c.base, 'DELETE', `/v1/jobs/${low.body.id}`);
  expect((await waitForJob(c.base, low.body.id, 20000)).phase).toBe('Cancelled');
});

it('retries failed tasks with backoff until they succeed, and fails fast on a listed exit code', async () => {
  const flaky = await api(c.base, 'POST', '/v1/jobs', {
    tasks: 2,
    resources: { cpu: '500m' },
    retry: { maxAttempts: 3, backoffSeconds: 0.2, failFastOnExitCodes: [2] },
    command: ['sh', '-c', 'if [ "$BATCH_ATTEMPT" -lt 3 ]; then exit 1; fi; echo "ok at attempt $BATCH_ATTEMPT"'],
  });
  const done = await waitForJob(c.base, flaky.body.id, 20000);
  expect(done).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 2, failed: 0 } });
  expect((await api(c.base, 'GET', `/v1/jobs/${flaky.body.id}/tasks/1/logs`)).body).toBe('ok at attempt 3\n');
  // The trace shows each retry: 2 tasks × attempts 1 and 2 failed → 4 task.retry spans, beside 6 task.run spans
  const ofFlaky = (name: string) => exporter.getFinishedSpans().filter((x) => x.spanContext().traceId === flaky.body.traceId && x.name === name);
  await until(() => ofFlaky('task.run').length === 6 && ofFlaky('task.retry').length === 4);
  const retries = ofFlaky('task.retry');
  expect(retries.map((r) => [r.attributes['batch.task.index'], r.attributes['batch.attempt.next'], r.attributes['batch.retry.reason']]).sort()).toEqual([
    [0, 2, 'Error'],
    [0, 3, 'Error'],
    [1, 2, 'Error'],
    [1, 3, 'Error'],
  ]);
  for (const r of retries) expect(r.attributes['batch.retry.not_before']).toMatch(/^\d{4}-/);
  const usage = await api(c.base, 'POST', '/v1/jobs', {
    tasks: 1,
    retry: { maxAttempts: 5, failFastOnExitCodes: [2] },
    command: ['sh', '-c', 'exit 2'],
  });
  const failed = await waitForJob(c.base, usage.body.id, 10000);
  expect(failed).toMatchObject({ phase: 'Failed', taskCounts: { failed: 1 } });
});

it('lets operators (only) cordon a node (no new work) and drain it (running work stops at the deadline and is requeued)', async () => {
  const op = (method: string, path: string, body?: unknown) => api(c.base, method, path, body, 'operator-token');
  expect((await api(c.base, 'GET', '/v1/nodes')).body.error.code).toBe('permission_denied');
  expect((await op('GET', '/v1/nodes')).body.nodes.map((n: { name: string }) => n.name)).toEqual(['local-0']);
  expect((await op('POST', '/v1/nodes/nowhere/cordon', { reason: 'x' })).status).toBe(404);
  expect((await op('POST', '/v1/nodes/local-0/cordon', {})).body.error).toMatchObject({ code: 'invalid_argument', field: 'reason' });

  expect((await op('POST', '/v1/nodes/local-0/cordon', { reason: 'disk swap' })).body.cordon.reason).toBe('disk swap');
  const waiting = await api(c.base, 'POST', '/v1/jobs', { tasks: 1, resources: { cpu: '1' }, command: ['true'] });
  await new Promise((r) => setTimeout(r, 500));
  const why = (await api(c.base, 'GET', `/v1/jobs/${waiting.body.id}/why`)).body;
  expect(why.messages).toContain('1 node is cordoned by an operator and takes no new work');
  expect((await api(c.base, 'GET', `/v1/jobs/${waiting.body.id}`)).body.phase).toBe('Queued');
  await op('DELETE', '/v1/nodes/local-0/cordon');
  expect((await waitForJob(c.base, waiting.body.id, 10000)).phase).toBe('Succeeded');

  const long = await api(c.base, 'POST', '/v1/jobs', { tasks: 1, resources: { cpu: '1' }, command: ['sleep', '60'] });
  expect(await until(async () => (await api(c.base, 'GET', `/v1/jobs/${long.body.id}`)).body.taskCounts.running === 1)).toBe(true);
  await op('POST', '/v1/nodes/local-0/drain', { reason: 'kernel upgrade', deadlineSeconds: 0 });
  // Preempted at the deadline, requeued at attempt 2, and held back while the node stays cordoned.
  expect(await until(async () => (await api(c.base, 'GET', `/v1/jobs/${long.body.id}`)).body.taskCounts.pending === 1, 10000)).toBe(true);
  await op('DELETE', '/v1/nodes/local-0/cordon');
  await api(c.base, 'DELETE', `/v1/jobs/${long.body.id}`);
  expect((await waitForJob(c.base, long.body.id, 10000)).phase).toBe('Cancelled');
});

it('shows queues with quota, usage, fair share and pending work; a tenant sees only its own', async () => {
  const long = await api(c.base, 'POST', '/v1/jobs', { tasks: 2, resources: { cpu: '1' }, command: ['sleep', '30'] });
  expect(await until(async () => (await api(c.base, 'GET', `/v1/jobs/${long.body.id}`)).body.taskCounts.running === 2)).toBe(true);
  const mine = (await api(c.base, 'GET', '/v1/queues')).body.queues;
  expect(mine.map((q: { name: string }) => q.name)).toEqual(['default']);
  // 2 of the node's 4 cores: dominant share 0.5
  expect(mine[0]).toMatchObject({ tenant: 'default', used: { cpu: '2' }, runningTasks: 2, fairShare: 0.5 });
  expect((await api(c.base, 'GET', '/v1/queues/default', undefined, 'other-token')).status).toBe(404);
  await api(c.base, 'DELETE', `/v1/jobs/${long.body.id}`);
  await waitForJob(c.base, long.body.id, 10000);
});

it('lets operators create tenants and queues (tenants get 403); a job in a new queue runs within its quota; a busy queue cannot be deleted', async () => {
  const op = (method: string, path: string, body?: unknown) => api(c.base, method, path, body, 'operator-token');
  expect((await api(c.base, 'PUT', '/v1/queues/research', { tenant: 'default' })).body.error.code).toBe('permission_denied');
  expect((await op('PUT', '/v1/queues/research', { tenant: 'nobody' })).body.error).toMatchObject({ code: 'unknown_tenant', field: 'tenant' });
  expect((await op('PUT', '/v1/queues/research', { tenant: 'default', nominal: { cpu: 'lots' } })).body.error).toMatchObject({
    code: 'invalid_argument',
    field: 'nominal.cpu',
  });
  expect((await op('PUT', '/v1/tenants/default', { weight: 2 })).body).toEqual({ name: 'default', weight: 2 });
  const q = await op('PUT', '/v1/queues/research', { tenant: 'default', nominal: { cpu: '1' }, weight: 3 });
  expect(q.body).toMatchObject({ name: 'research', tenant: 'default', weight: 3, nominal: { cpu: '1' } });
  // The new queue is usable at once; its 1-core quota runs 2 half-core tasks together.
  const long = await api(c.base, 'POST', '/v1/jobs', { queue: 'research', tasks: 3, resources: { cpu: '500m' }, command: ['sleep', '30'] });
  expect(long.status).toBe(201);
  expect(await until(async () => (await api(c.base, 'GET', `/v1/jobs/${long.body.id}`)).body.taskCounts.running === 2)).toBe(true);
  await new Promise((r) => setTimeout(r, 300));
  expect((await api(c.base, 'GET', `/v1/jobs/${long.body.id}`)).body.taskCounts).toMatchObject({ running: 2, pending: 1 });
  expect((await op('DELETE', '/v1/queues/research')).body.error.code).toBe('conflict');
  await api(c.base, 'DELETE', `/v1/jobs/${long.body.id}`);
  await waitForJob(c.base, long.body.id, 10000);
  expect((await op('DELETE', '/v1/queues/research')).body).toEqual({ deleted: 'research' });
  expect((await op('DELETE', '/v1/queues/research')).status).toBe(404);
});

it('an executor whose lease lapsed fences itself; started again on its data directory, as its supervisor would, its node takes work', async () => {
  // What one CI run saw: the machine stalled past the 5 s lease TTL, the executor fenced itself, and every later
  // job of the suite waited for a node that was gone. Here the lease is revoked behind its back (as etcd expires it).
  const executor = c.services.find((s) => s.ctx.name === 'executor')!;
  await executor.ctx.store.client.leaseClient.leaseRevoke({ ID: executor.ctx.lease.id });
  expect(await until(() => c.services.some((s) => s.ctx.name === 'executor' && s !== executor), 15000)).toBe(true);
  const after = await api(c.base, 'POST', '/v1/jobs', { tasks: 2, resources: { cpu: '1' }, command: ['sh', '-c', 'echo after the fence'] });
  expect((await waitForJob(c.base, after.body.id, 20000)).phase).toBe('Succeeded');
});
