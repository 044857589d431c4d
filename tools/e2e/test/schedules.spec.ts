/**
 * Schedules end to end: in-process services on a real etcd with a real executor running real
 * processes, the `batch` CLI and the Python SDK as child processes, the TypeScript SDK and plain HTTP. The quota
 * service (the schedule controller) and admission read one injected clock — the cron has no seconds field, so
 * a minute's tick is a clock advance: a `* * * * *` cron job starts one job per tick that runs to
 * Succeeded; pause holds ticks back and resume starts from now; trigger-now starts a cron
 * workflow at once, a `schedule.tick` span at the root of its trace; a bad cron is a 400 naming `schedule`.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { type JobView, SCHEDULE_LABEL, type ScheduleView, type WorkflowView } from '@batchapi/api';
import { FakeClock } from '@batchapi/runtime';
import { ApiError, BatchClient } from '@batchapi/sdk';
import { initTracing } from '@batchapi/telemetry';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { batchAsync } from '../../../apps/cli/test/dev-process';
import { api, until, useCluster } from './harness';

const MIN = 60_000;
/** The schedule controller's clock: starts at the machine's time, moved by the tests. */
const clock = new FakeClock(Date.now());
const exporter = new InMemorySpanExporter();
let base: string;
let client: BatchClient;

beforeAll(() => initTracing('e2e-schedules', { exporter }));
// The same clock stamps creation and resume times: a resume is "from now" on the controller's clock.
const c = useCluster({ clock, schedules: { intervalMs: 50 }, scheduler: { idleMs: 50 }, executor: { nodeName: 'sched-node', killGraceMs: 300 } });
beforeAll(() => {
  base = c.base;
  client = new BatchClient({ url: base, token: 'tenant-token' });
});

/** `batch <args>` with the tenant token against the cluster, as a child process (the services live in this one). */
const batch = (args: string[]) =>
  batchAsync(args, { BATCH_API: base, BATCH_TOKEN: 'tenant-token', XDG_CONFIG_HOME: join(c.dir, 'config'), XDG_CACHE_HOME: join(c.dir, 'cache') });

/** Moves the controller's clock to the start of the next minute: exactly one `* * * * *` tick. */
function nextMinute(): number {
  const next = (Math.floor(clock.now() / MIN) + 1) * MIN;
  clock.advance(next - clock.now());
  return next;
}

async function jobsOf(name: string): Promise<JobView[]> {
  const page = await client.listJobs({ limit: 1000 });
  return page.jobs.filter((j) => j.labels[SCHEDULE_LABEL] === name);
}

/** Lets the controller run many passes (every 50 ms) on an unchanged clock. */
const manyPasses = () => new Promise((r) => setTimeout(r, 500));

it('refuses a bad cron with a 400 naming the field, and an unknown time zone naming timeZone', async () => {
  const bad = await api(base, 'POST', '/v1/schedules', { name: 'bad', schedule: '61 * * * *', job: { command: ['true'] } });
  expect([bad.status, bad.body.error.code, bad.body.error.field]).toEqual([400, 'invalid_argument', 'schedule']);
  const tz = await api(base, 'POST', '/v1/schedules', { name: 'bad', schedule: '0 2 * * *', timeZone: 'Mars/Olympus', job: { command: ['true'] } });
  expect([tz.status, tz.body.error.field]).toEqual([400, 'timeZone']);
  const both = await api(base, 'POST', '/v1/schedules', { name: 'bad', schedule: '0 2 * * *' });
  expect([both.status, both.body.error.field]).toEqual([400, 'job']);
  const step = await api(base, 'POST', '/v1/schedules', { name: 'bad', schedule: '0 2 * * *', job: { command: ['true'], tasks: -1 } });
  expect([step.status, step.body.error.field]).toEqual([400, 'job.tasks']);
});

it('a "* * * * *" cron job created with the CLI starts one job per tick, each runs to Succeeded; pause and resume hold ticks back', async () => {
  const file = c.file('every-minute.yaml', [
    'name: every-minute',
    "schedule: '* * * * *'",
    'concurrencyPolicy: Forbid',
    'job:',
    "  command: ['true']",
    '  resources: { cpu: 100m, memory: 16Mi }',
  ]);
  const created = await batch(['schedules', 'create', '-f', file]);
  expect([created.status, created.stdout]).toEqual([0, 'every-minute created\n']);

  for (let n = 1; n <= 2; n++) {
    const tick = nextMinute();
    expect(await until(async () => (await jobsOf('every-minute')).length === n)).toBe(true);
    await manyPasses();
    const jobs = await jobsOf('every-minute');
    expect(jobs.length).toBe(n);
    // Forbid: the next tick must find it finished, and the history must show it.
    expect(
      await until(async () => {
        const s = await client.schedules.get('every-minute');
        return s.active.length === 0 && s.succeeded.length === n && s.lastFiredTick === tick;
      }, 30_000),
    ).toBe(true);
  }

  const paused = await batch(['schedules', 'pause', 'every-minute']);
  expect(paused.stdout).toBe('every-minute paused\n');
  nextMinute();
  await manyPasses();
  expect((await jobsOf('every-minute')).length).toBe(2);
  await batch(['schedules', 'resume', 'every-minute']);
  // Resumed from now: the tick of the pause never fires, the next one does.
  nextMinute();
  expect(await until(async () => (await jobsOf('every-minute')).length === 3)).toBe(true);

  const listed = await batch(['schedules', 'list']);
  expect(listed.stdout).toMatch(/^every-minute\s+\* \* \* \* \*\s+UTC\s+job\s+Forbid\s+no\s/m);
  const got = JSON.parse((await batch(['schedules', 'get', 'every-minute', '-o', 'json'])).stdout) as ScheduleView;
  expect([got.missedTicks, got.suspend]).toEqual([0, false]);
  expect((await batch(['schedules', 'delete', 'every-minute'])).stdout).toBe('every-minute deleted\n');
  expect((await api(base, 'GET', '/v1/schedules/every-minute')).status).toBe(404);
  // The jobs it started stay.
  expect((await jobsOf('every-minute')).length).toBe(3);
});

it('trigger-now starts a cron workflow at once (SDK), which runs to Succeeded', async () => {
  await client.schedules.create({
    name: 'nightly-etl',
    schedule: '0 2 * * *',
    timeZone: 'Europe/Berlin',
    concurrencyPolicy: 'Forbid',
    startingDeadlineSeconds: 600,
    workflow: {
      name: 'etl',
      maxRunning: 1,
      steps: [
        { name: 'extract', job: { command: ['true'], resources: { cpu: '100m', memory: '16Mi' } } },
        { name: 'load', dependsOn: ['extract'], job: { command: ['true'], resources: { cpu: '100m', memory: '16Mi' } } },
      ],
    },
  });
  await expect(client.schedules.create({ name: 'nightly-etl', schedule: '@daily', job: { command: ['true'] } })).rejects.toMatchObject({
    code: 'conflict',
  } satisfies Partial<ApiError>);
  const pending = await client.schedules.trigger('nightly-etl');
  expect(pending.triggerRequestedAt).not.toBeNull();
  let s!: ScheduleView;
  expect(
    await until(async () => {
      s = await client.schedules.get('nightly-etl');
      return s.active.length + s.succeeded.length === 1;
    }),
  ).toBe(true);
  const id = [...s.active, ...s.succeeded][0].id;
  expect([...s.active, ...s.succeeded][0]).toMatchObject({ kind: 'workflow', manual: true });
  let wf!: WorkflowView;
  expect(
    await until(async () => {
      wf = await client.workflows.get(id);
      return wf.phase !== 'Running';
    }, 30_000),
  ).toBe(true);
  expect([wf.phase, wf.labels[SCHEDULE_LABEL], wf.maxRunning]).toEqual(['Succeeded', 'nightly-etl', 1]);
  // The tick is a span, and the workflow's trace hangs under it (its steps' spans included).
  const tick = exporter.getFinishedSpans().filter((x) => x.name === 'schedule.tick' && x.attributes['batch.workflow.id'] === id);
  expect(tick.map((x) => [x.attributes['batch.schedule.name'], x.attributes['batch.schedule.manual'], x.attributes['batch.schedule.outcome']])).toEqual([
    ['nightly-etl', true, 'written'],
  ]);
  expect(wf.traceId).toBe(tick[0].spanContext().traceId);
  expect(exporter.getFinishedSpans().some((x) => x.name === 'workflow.step' && x.spanContext().traceId === wf.traceId)).toBe(true);
  // A manual run is not a tick: the cron's record is untouched.
  expect((await client.schedules.get('nightly-etl')).lastFiredTick).toBeNull();
  // Another tenant does not see it.
  expect((await api(base, 'GET', '/v1/schedules/nightly-etl', undefined, 'other-token')).status).toBe(404);
});

it('the Python SDK lists, pauses and resumes a schedule, and gets the typed error of a bad cron', async () => {
  const script = [
    'import json',
    'from batchapi import Client',
    'from batchapi.errors import BatchError',
    'from batchapi.schedules import schedules',
    'c = Client()',
    'out = {"names": [s["name"] for s in schedules(c)]}',
    'out["paused"] = schedules(c, "pause", "nightly-etl")["suspend"]',
    'out["resumed"] = schedules(c, "resume", "nightly-etl")["suspend"]',
    'try:',
    '    schedules(c, "create", spec={"name": "bad", "schedule": "* * *", "job": {"command": ["true"]}})',
    'except BatchError as e:',
    '    out["error"] = [e.code, e.field]',
    'print(json.dumps(out))',
  ].join('\n');
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn('python3', ['-c', script], {
      env: { ...process.env, BATCH_API: base, BATCH_TOKEN: 'tenant-token', PYTHONPATH: join(__dirname, '../../../sdk/python') },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
  expect([r.status, r.stderr]).toEqual([0, '']);
  expect(JSON.parse(r.stdout)).toEqual({ names: ['nightly-etl'], paused: true, resumed: false, error: ['invalid_argument', 'schedule'] });
});
