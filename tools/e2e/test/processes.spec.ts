/**
 * The four services as separate processes (their built mains) against a real etcd: a job
 * runs to completion, its logs are read through admission; killing the executor with -9
 * makes the scheduler requeue its tasks after lease TTL + grace onto a second executor,
 * and no task attempt ever runs in two places at once.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GroupStatus } from '@batchapi/api';
import { newServiceToken, RPC_AUTHORIZATION } from '@batchapi/runtime';
import { api, until, waitForJob } from './harness';
import { ProcessCluster, ROOT } from './process-cluster';

const SERVICE_TOKEN = newServiceToken();
let pc: ProcessCluster;
let base: string;

beforeAll(async () => {
  // Every line a service logs (debug and up) goes to its file: the secrets test reads them all.
  pc = await ProcessCluster.start({ name: 'e2e-procs', leaseTtlSeconds: 2, logLevel: 'debug', serviceToken: SERVICE_TOKEN });
  await pc.launch('quota', 'quota', { BATCH_CLUSTER_CONFIG: join(pc.dir, 'cluster.json') });
  await pc.launch('scheduler', 'scheduler', {});
  await pc.launch('executor-a', 'executor', { BATCH_NODE_NAME: 'node-a', BATCH_DATA_DIR: join(pc.dir, 'a'), BATCH_NODE_CPU: '2', BATCH_KILL_GRACE_MS: '1000' });
  base = await pc.launch('admission', 'admission', { BATCH_TOKENS_FILE: join(pc.dir, 'tokens.json') });
}, 60000);

afterAll(() => pc?.stop());

it('runs a job to completion through four separate service processes', async () => {
  const submit = await api(base, 'POST', '/v1/jobs', {
    tasks: 4,
    resources: { cpu: '1', memory: '32Mi' },
    command: ['sh', '-c', 'echo "hello from $BATCH_TASK_INDEX"'],
  });
  expect(submit.status).toBe(201);
  const job = await waitForJob(base, submit.body.id);
  expect(job).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 4 } });
  expect((await api(base, 'GET', `/v1/jobs/${job.id}/tasks/3/logs`)).body).toBe('hello from 3\n');
  const list = await api(base, 'GET', '/v1/jobs?state=Succeeded');
  expect(list.body.jobs.map((j: { id: string }) => j.id)).toContain(job.id);
});

it('shows secret env values as *** while the task gets them, and no service ever logs a token or a secret', async () => {
  const secret = 'hunter2-very-secret-value';
  const submit = await api(base, 'POST', '/v1/jobs', {
    resources: { cpu: '100m' },
    env: { DB_PASSWORD: secret, API_TOKEN: secret, MODE: 'fast' },
    command: ['sh', '-c', 'test "$DB_PASSWORD" = "$API_TOKEN" && echo "got ${#DB_PASSWORD} chars, mode $MODE"'],
  });
  expect(submit.status).toBe(201);
  expect(submit.body.env).toEqual({ DB_PASSWORD: '***', API_TOKEN: '***', MODE: 'fast' });
  const job = await waitForJob(base, submit.body.id);
  expect(job).toMatchObject({ phase: 'Succeeded', env: { DB_PASSWORD: '***', API_TOKEN: '***', MODE: 'fast' } });
  expect((await api(base, 'GET', `/v1/jobs/${job.id}/tasks/0/logs`)).body).toBe(`got ${secret.length} chars, mode fast\n`);
  // the tokens file holds only digests; a wrong token is refused without echoing it
  expect((await api(base, 'GET', '/v1/jobs', undefined, 'wrong-token-value')).status).toBe(401);
  for (const name of pc.procs.keys()) {
    const text = readFileSync(join(pc.dir, `${name}.log`), 'utf8');
    for (const leak of [secret, 'tenant-token', 'wrong-token-value', SERVICE_TOKEN])
      expect({ name, leaks: text.includes(leak) }).toEqual({ name, leaks: false });
  }
});

it('serves internal calls only with the service credential: executor logs 401 and scheduler RPC refused without it, each refusal counted', async () => {
  const submit = await api(base, 'POST', '/v1/jobs', { resources: { cpu: '100m' }, command: ['sh', '-c', 'echo internal-ok'] });
  const job = await waitForJob(base, submit.body.id);
  expect(job.phase).toBe('Succeeded');
  // Admission reads the log from the executor with the credential.
  expect((await api(base, 'GET', `/v1/jobs/${job.id}/tasks/0/logs`)).body).toBe('internal-ok\n');
  // Anyone else on the network (a task pod of the Kubernetes backend) gets 401 and no bytes.
  const logUrl = `${pc.urls.get('executor-a')}/internal/logs/${job.id}/0/1/stdout`;
  for (const headers of [{}, { authorization: 'Bearer tenant-token' }, { authorization: `Bearer ${SERVICE_TOKEN.slice(0, -1)}x` }] as Array<
    Record<string, string>
  >) {
    const res = await fetch(logUrl, { headers });
    const text = await res.text();
    expect({ status: res.status, code: JSON.parse(text).error?.code, leaked: text.includes('internal-ok') }).toEqual({
      status: 401,
      code: 'unauthenticated',
      leaked: false,
    });
  }
  expect(await fetch(logUrl, { headers: { authorization: `Bearer ${SERVICE_TOKEN}` } }).then((r) => r.text())).toBe('internal-ok\n');
  const executorMetrics = await (await fetch(`${pc.urls.get('executor-a')}/metrics`)).text();
  expect(executorMetrics).toMatch(/batch_internal_calls_refused_total\{surface="http",reason="missing",service="executor"\} 1\n/);
  expect(executorMetrics).toMatch(/batch_internal_calls_refused_total\{surface="http",reason="invalid",service="executor"\} 2\n/);

  // The scheduler's RPC: without the credential in the packet metadata, an unauthenticated reply at once.
  const { ClientProxyFactory, Transport } = await import('@nestjs/microservices');
  const { firstValueFrom } = await import('rxjs');
  const member = (await pc.store.list<{ rpc?: string }>(pc.store.keys.membersOf('scheduler'))).items.map((m) => m.value.rpc).find(Boolean)!;
  const at = member.lastIndexOf(':');
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: member.slice(0, at), port: Number(member.slice(at + 1)) } });
  try {
    const record = (await pc.store.get<any>(pc.store.keys.job(job.id)))!.value;
    await expect(firstValueFrom(client.send('scheduler.why', { job: record }))).rejects.toMatchObject({
      code: 'unauthenticated',
      field: `metadata.${RPC_AUTHORIZATION}`,
    });
    client.setOnDispatchHook((p) => {
      p.metadata = { [RPC_AUTHORIZATION]: 'Bearer not-the-service-token-but-long-enough' };
    });
    await expect(firstValueFrom(client.send('scheduler.why', { job: record }))).rejects.toMatchObject({ code: 'unauthenticated' });
  } finally {
    await client.close();
  }
  const schedulerMetrics = await (await fetch(`${pc.urls.get('scheduler')}/metrics`)).text();
  expect(schedulerMetrics).toMatch(/batch_internal_calls_refused_total\{surface="rpc",reason="missing",service="scheduler"\} 1\n/);
  expect(schedulerMetrics).toMatch(/batch_internal_calls_refused_total\{surface="rpc",reason="invalid",service="scheduler"\} 1\n/);
});

it('refuses to start a service without the service credential, naming the variable to set', async () => {
  for (const app of ['admission', 'quota', 'scheduler', 'executor']) {
    const { BATCH_SERVICE_TOKEN: _t, BATCH_SERVICE_TOKEN_FILE: _f, ...env } = process.env;
    const child = spawn(process.execPath, [join(ROOT, 'apps', app, 'dist/main.js')], {
      env: { ...env, BATCH_ETCD_ENDPOINTS: pc.etcd.endpoints.join(','), BATCH_TOKENS_FILE: join(pc.dir, 'tokens.json') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise((r) => child.once('exit', r));
    expect({ app, code, stderr }).toEqual({ app, code: 2, stderr: expect.stringContaining(`${app}: set BATCH_SERVICE_TOKEN_FILE`) });
  }
});

it('requeues the tasks of a killed executor onto another only after TTL + grace, never running an attempt twice', async () => {
  // Attempt 1 would run for a minute and records its pid; attempt 2 finishes at once.
  const pidFile = join(pc.dir, 'attempt1-$BATCH_TASK_INDEX.pid');
  const script = `if [ "$BATCH_ATTEMPT" = 1 ]; then echo $$ > ${pidFile}; exec sleep 60; fi; echo "done $BATCH_TASK_INDEX attempt $BATCH_ATTEMPT"`;
  const submit = await api(base, 'POST', '/v1/jobs', { tasks: 2, resources: { cpu: '1' }, command: ['sh', '-c', script] });
  expect(await until(async () => (await api(base, 'GET', `/v1/jobs/${submit.body.id}`)).body.taskCounts?.running === 2)).toBe(true);
  const pids = await (async () => {
    await until(() => [0, 1].every((i) => existsSync(join(pc.dir, `attempt1-${i}.pid`))));
    return [0, 1].map((i) => Number(readFileSync(join(pc.dir, `attempt1-${i}.pid`), 'utf8')));
  })();
  expect(pids.every(alive)).toBe(true);
  const killedAt = Date.now();
  pc.procs.get('executor-a')!.kill('SIGKILL');
  // The kernel kills the tasks with their executor (parent-death signal): no second live run later.
  expect(await until(() => pids.every((p) => !alive(p)), 3000)).toBe(true);
  await pc.launch('executor-b', 'executor', { BATCH_NODE_NAME: 'node-b', BATCH_DATA_DIR: join(pc.dir, 'b'), BATCH_NODE_CPU: '2' });
  const job = await waitForJob(base, submit.body.id, 30000);
  expect(job).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 2 } });
  const groups = (await pc.store.listAll<GroupStatus>(pc.store.keys.groupsOf(job.id))).items.map((g) => g.value);
  const first = groups.filter((g) => g.attempt === 1);
  const second = groups.filter((g) => g.attempt === 2);
  expect(first.every((g) => g.node === 'node-a' && g.tasks.every((t) => t.state === 'Failed' && t.reason === 'NodeLost'))).toBe(true);
  expect(second.every((g) => g.node === 'node-b' && g.tasks.every((t) => t.state === 'Succeeded'))).toBe(true);
  // Attempt 2 started only after lease TTL (2 s) + grace (2 s) past the kill.
  const secondStart = Math.min(...second.flatMap((g) => g.tasks.map((t) => t.startedAt ?? Infinity)));
  expect(secondStart - killedAt).toBeGreaterThanOrEqual(4000);
  expect((await api(base, 'GET', `/v1/jobs/${job.id}/tasks/1/logs`)).body).toBe('done 1 attempt 2\n');
});

/** Running (a zombie — dead but not yet reaped by its stopped parent — does not count). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

it('a paused executor (SIGSTOP) has its tasks killed by its watchdog before they run anywhere else', async () => {
  await pc.launch('executor-c', 'executor', { BATCH_NODE_NAME: 'node-c', BATCH_DATA_DIR: join(pc.dir, 'c'), BATCH_NODE_CPU: '1' });
  pc.procs.get('executor-b')!.kill('SIGKILL'); // only node-c (1 core) is left for the job
  const pidFile = join(pc.dir, 'paused-$BATCH_ATTEMPT.pid');
  const submit = await api(base, 'POST', '/v1/jobs', { tasks: 1, resources: { cpu: '1' }, command: ['sh', '-c', `echo $$ > ${pidFile}; exec sleep 60`] });
  expect(await until(() => existsSync(join(pc.dir, 'paused-1.pid')), 15000)).toBe(true);
  const pid = Number(readFileSync(join(pc.dir, 'paused-1.pid'), 'utf8'));
  const stoppedAt = Date.now();
  pc.procs.get('executor-c')!.kill('SIGSTOP');
  // Lease TTL is 2 s: the watchdog kills the task about then, while the executor sleeps.
  expect(await until(() => !alive(pid), 6000)).toBe(true);
  const killedAfterMs = Date.now() - stoppedAt;
  await pc.launch('executor-d', 'executor', { BATCH_NODE_NAME: 'node-d', BATCH_DATA_DIR: join(pc.dir, 'd'), BATCH_NODE_CPU: '1' });
  expect(await until(() => existsSync(join(pc.dir, 'paused-2.pid')), 20000)).toBe(true);
  const rerunAfterMs = Date.now() - stoppedAt;
  expect(killedAfterMs).toBeLessThan(rerunAfterMs);
  // Resumed, the old executor finds its lease gone and fences itself: it exits.
  const exited = new Promise((r) => pc.procs.get('executor-c')!.once('exit', r));
  pc.procs.get('executor-c')!.kill('SIGCONT');
  await exited;
  await api(base, 'DELETE', `/v1/jobs/${submit.body.id}`);
}, 60000);
