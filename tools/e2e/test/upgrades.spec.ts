/**
 * Upgrades that kill no task, with every service a separate process (their built mains) on a real
 * etcd. An executor sent SIGTERM drains: its node takes no new work at once, a running task that
 * ends within the drain grace ends as it would have (no requeue), one that outlives the grace is
 * handed back `NodeLost` and runs again elsewhere (never `Failed`, no retry charged). A scheduler
 * leader sent SIGTERM resigns its leader key, so the standby leads without waiting out the lease.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GroupStatus, JobRecord, NodeView } from '@batchapi/api';
import { detectIsolation } from '@batchapi/executor';
import { newServiceToken } from '@batchapi/runtime';
import type { Informer, WatchEvent } from '@batchapi/store';
import { api, until, waitForJob } from './harness';
import { ProcessCluster, ROOT } from './process-cluster';

/** Every process's lease TTL, seconds: a hand-off that waited for it would take at least this long. */
const LEASE_TTL_S = 5;
let pc: ProcessCluster;
let base: string;

/** An executor of node `node` (2 CPUs) that drains for `drainMs` on SIGTERM. */
const launchExecutor = (node: string, drainMs: number) =>
  pc.launch(`executor-${node}`, 'executor', {
    BATCH_NODE_NAME: node,
    BATCH_DATA_DIR: join(pc.dir, node),
    BATCH_NODE_CPU: '2',
    BATCH_KILL_GRACE_MS: '500',
    BATCH_DRAIN_GRACE_MS: String(drainMs),
  });

/** Resolves with the exit code once the process ended. */
function exited(name: string): Promise<number | null> {
  const p = pc.procs.get(name)!;
  if (p.exitCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((r) => p.once('exit', (code) => r(code)));
}

/** `batch nodes` (the built CLI) against the cluster with the operator token: its table's row of `node`, split on runs of spaces. */
function cliNodeRow(node: string): string[] | undefined {
  const out = spawnSync(process.execPath, [join(ROOT, 'apps/cli/dist/main.js'), 'nodes'], {
    env: { ...process.env, BATCH_API: base, BATCH_TOKEN: 'operator-token', XDG_CONFIG_HOME: pc.dir },
    encoding: 'utf8',
  });
  const [header, ...rows] = out.stdout.trim().split('\n');
  const cols = header.split(/\s{2,}/);
  const row = rows.map((r) => r.split(/\s{2,}/)).find((r) => r[0] === node);
  return row && cols.map((c, i) => `${c}=${row[i]}`);
}

const groupsOf = async (jobId: string) => (await pc.store.listAll<GroupStatus>(pc.store.keys.groupsOf(jobId))).items.map((g) => g.value);
const nodeView = async (name: string) =>
  ((await api(base, 'GET', '/v1/nodes', undefined, 'operator-token')).body.nodes as NodeView[]).find((n) => n.name === name);

beforeAll(async () => {
  pc = await ProcessCluster.start({ name: 'e2e-upgrades', leaseTtlSeconds: LEASE_TTL_S, logLevel: 'info', serviceToken: newServiceToken() });
  await pc.launch('quota', 'quota', { BATCH_CLUSTER_CONFIG: join(pc.dir, 'cluster.json') });
  await pc.launch('scheduler-1', 'scheduler', {});
  base = await pc.launch('admission', 'admission', { BATCH_TOKENS_FILE: join(pc.dir, 'tokens.json') });
}, 60000);

afterAll(() => pc?.stop());

it('reports its isolation level in its node record and the node view', async () => {
  await launchExecutor('node-a', 30000);
  const view = await nodeView('node-a');
  // What this machine offers: cgroup v2 (with its delegated controllers) or v1, else rlimits.
  const kind = detectIsolation();
  expect(view?.isolation?.kind).toBe(kind);
  // cgroup v2: the controllers delegated to it, as the kernel lists them.
  if (kind === 'cgroup2')
    expect(view?.isolation?.controllers).toEqual(readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').split(/\s+/).filter(Boolean).sort());
  expect(view?.draining).toBeUndefined();
  // batch nodes: the ISOLATION column (cgroup2 with its controllers in parentheses), the node ready
  const isolation = kind === 'cgroup2' ? `cgroup2(${view!.isolation!.controllers!.join(',')})` : kind;
  expect(cliNodeRow('node-a')).toEqual(expect.arrayContaining([`ISOLATION=${isolation}`, 'STATUS=ready']));
}, 30000);

it('SIGTERM: the node takes no new work at once, and a task that ends within the drain grace succeeds there, not requeued', async () => {
  const go = join(pc.dir, 'go-a');
  const running = await api(base, 'POST', '/v1/jobs', {
    tasks: 1,
    resources: { cpu: '1' },
    command: ['sh', '-c', `while [ ! -f ${go} ]; do sleep 0.05; done; echo finished`],
  });
  expect(await until(async () => (await api(base, 'GET', `/v1/jobs/${running.body.id}`)).body.taskCounts?.running === 1)).toBe(true);
  pc.procs.get('executor-node-a')!.kill('SIGTERM');
  // The drain marks the node at once (its record, on the executor's lease); the task goes on.
  expect(await until(async () => (await nodeView('node-a'))?.draining !== undefined, 10000)).toBe(true);
  const view = (await nodeView('node-a'))!;
  expect(Date.parse(view.draining!.deadline) - Date.parse(view.draining!.since)).toBe(30000);
  expect(cliNodeRow('node-a')).toEqual(expect.arrayContaining([`STATUS=stopping: executor draining until ${view.draining!.deadline}`]));
  // Work submitted now is not placed on the draining node (it has room for it): it waits for another.
  const later = await api(base, 'POST', '/v1/jobs', { tasks: 1, resources: { cpu: '1' }, command: ['sh', '-c', 'echo later'] });
  expect(await until(async () => (await api(base, 'GET', `/v1/jobs/${later.body.id}/why`)).body.messages?.some((m: string) => /draining/.test(m)), 10000)).toBe(
    true,
  );
  writeFileSync(go, '');
  expect(await exited('executor-node-a')).toBe(0);
  const job = await waitForJob(base, running.body.id, 15000);
  expect(job).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 1 } });
  expect((await groupsOf(job.id)).map((g) => [g.node, g.attempt, g.tasks[0].state])).toEqual([['node-a', 1, 'Succeeded']]);
  // The later job ran on the next node, never on the draining one (a bind that raced the mark is handed back unrun).
  await launchExecutor('node-b', 30000);
  const second = await waitForJob(base, later.body.id, 20000);
  expect(second.phase).toBe('Succeeded');
  const ran = (await groupsOf(second.id)).filter((g) => g.tasks.some((t) => t.startedAt !== undefined));
  expect(ran.map((g) => g.node)).toEqual(['node-b']);
}, 60000);

it('SIGTERM: a task that outlives the drain grace is handed back NodeLost and succeeds elsewhere, never Failed, no retry charged', async () => {
  // An idle executor's graceful stop is immediate, and its node leaves with it (no TTL wait).
  pc.procs.get('executor-node-b')!.kill('SIGTERM');
  expect(await exited('executor-node-b')).toBe(0);
  await launchExecutor('node-c', 1500);
  // Attempt 1 would run for a minute; attempt 2 finishes at once. The job has no retries (1 attempt).
  const started = join(pc.dir, 'outlives-started');
  const script = `if [ "$BATCH_ATTEMPT" = 1 ]; then touch ${started}; exec sleep 60; fi; echo "attempt $BATCH_ATTEMPT on $BATCH_NODE"`;
  const submit = await api(base, 'POST', '/v1/jobs', { tasks: 1, resources: { cpu: '1' }, command: ['sh', '-c', script] });
  expect(await until(async () => (await api(base, 'GET', `/v1/jobs/${submit.body.id}`)).body.taskCounts?.running === 1, 20000)).toBe(true);
  pc.procs.get('executor-node-c')!.kill('SIGTERM');
  expect(await exited('executor-node-c')).toBe(0);
  // Reported by the draining executor before it exited: handed back, back to pending at attempt 2, nothing charged.
  const first = await groupsOf(submit.body.id);
  expect(first.map((g) => [g.node, g.attempt, g.tasks[0].state, g.tasks[0].reason])).toEqual([['node-c', 1, 'Failed', 'NodeLost']]);
  const record = (await pc.store.get<JobRecord>(pc.store.keys.job(submit.body.id)))!.value;
  expect(record).toMatchObject({ pending: [{ start: 0, end: 1, attempt: 2 }], counts: { failed: 0 } });
  await launchExecutor('node-d', 1500);
  const job = await waitForJob(base, submit.body.id, 20000);
  expect(job).toMatchObject({ phase: 'Succeeded', taskCounts: { succeeded: 1, failed: 0 } });
  expect((await api(base, 'GET', `/v1/jobs/${job.id}/tasks/0/logs`)).body).toBe('attempt 2 on node-d\n');
}, 60000);

it('SIGTERM to the scheduler leader: it resigns its key, the standby leads before the old lease is gone, and work goes on', async () => {
  await pc.launch('scheduler-2', 'scheduler', {});
  const leaderKey = pc.store.keys.leader('scheduler');
  expect((await pc.store.get<{ identity: string }>(leaderKey))?.value.identity).toBe('scheduler-1');
  const events: Array<WatchEvent<unknown>> = [];
  const informers: Informer[] = [];
  for (const prefix of [leaderKey, pc.store.keys.member('scheduler', 'scheduler-1')])
    informers.push(await pc.store.inform<unknown>(prefix, { onSync: () => undefined, onEvent: (ev) => events.push(ev) }));
  try {
    const termAt = Date.now();
    pc.procs.get('scheduler-1')!.kill('SIGTERM');
    expect(await until(async () => (await pc.store.get<{ identity: string }>(leaderKey))?.value.identity === 'scheduler-2', 10000)).toBe(true);
    const handOffMs = Date.now() - termAt;
    expect(await exited('scheduler-1')).toBe(0);
    const isResign = (e: WatchEvent<unknown>) => e.type === 'delete' && e.key === leaderKey;
    const isWin = (e: WatchEvent<unknown>) => e.type === 'put' && e.key === leaderKey;
    const isLeaseGone = (e: WatchEvent<unknown>) => e.type === 'delete' && e.key === pc.store.keys.member('scheduler', 'scheduler-1');
    // All three from the watches: the read above can see the standby's seat before its watch event
    // arrives (each prefix has its own watch), so waiting for the member key's delete alone is not enough.
    expect(await until(() => events.some(isResign) && events.some(isWin) && events.some(isLeaseGone), 10000)).toBe(true);
    const rev = (pred: (e: WatchEvent<unknown>) => boolean) => BigInt(events.find(pred)!.modRevision);
    const resigned = rev(isResign);
    const won = rev(isWin);
    const leaseGone = rev(isLeaseGone);
    // Resigned, not expired: the leader key went before the old process's lease (an expiry deletes both at once),
    // and the standby won the seat after the resign.
    expect(resigned < leaseGone).toBe(true);
    expect(resigned < won).toBe(true);
    console.log(`scheduler hand-off on SIGTERM: ${handOffMs} ms from the signal to the standby holding the key (lease TTL ${LEASE_TTL_S} s)`);
    // The new leader schedules.
    const submit = await api(base, 'POST', '/v1/jobs', { tasks: 1, resources: { cpu: '1' }, command: ['sh', '-c', 'echo after hand-off'] });
    expect((await waitForJob(base, submit.body.id, 20000)).phase).toBe('Succeeded');
  } finally {
    for (const i of informers) await i.stop();
  }
}, 60000);
