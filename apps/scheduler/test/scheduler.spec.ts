/**
 * The scheduler against a real etcd: one of two replicas leads and binds pending tasks
 * without over-booking a node; when the leader stops, the standby takes over and binds
 * the rest; a job's tasks are bound exactly once.
 */
import type { Binding, JobRecord, NodeAllocation } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd, submitJob } from '@batchapi/store';
import { startScheduler } from '../src';
import { waitFor, waitUntil } from '@batchapi/proc';
import { allBindings, nodeRecord, putNode, putQueue, queuedJob } from './harness';

let etcd: LocalEtcd;
let store: EtcdStore;
const replicas: RunningService[] = [];

const config = () => ({ etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 2, logLevel: process.env.TEST_LOG ?? 'error' });

async function addNode(name: string, cpu: number, gpus = 0) {
  await putNode(store, nodeRecord(name, cpu, gpus));
}

async function queueJob(id: string, tasks: number, resources: Record<string, number>) {
  await submitJob(store, queuedJob(id, tasks, resources));
}

async function boundTasks(jobId: string): Promise<Binding[]> {
  return (await allBindings(store)).filter((b) => b.jobId === jobId);
}

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  await putQueue(store);
  replicas.push(await startScheduler({ config: config(), tuning: { idleMs: 100, busyMs: 5 } }));
  replicas.push(await startScheduler({ config: config(), tuning: { idleMs: 100, busyMs: 5 } }));
});
afterAll(async () => {
  for (const r of replicas) await r.close().catch(() => undefined);
  await store.close();
  await etcd.stop();
});

it('binds an array job across nodes without over-booking any node', async () => {
  await addNode('n1', 4);
  await addNode('n2', 2);
  // 4 + 2 cores, one core per task: 6 of the 10 tasks fit
  await queueJob('arr', 10, { cpu: 1000 });
  const bindings = await waitFor(
    () => boundTasks('arr'),
    (b) => b.reduce((n, x) => n + x.end - x.start, 0) >= 6,
  );
  const perNode = new Map<string, number>();
  for (const b of bindings) perNode.set(b.node, (perNode.get(b.node) ?? 0) + b.end - b.start);
  expect(Object.fromEntries(perNode)).toEqual({ n1: 4, n2: 2 });
  const alloc = await store.get<NodeAllocation>(store.keys.alloc('n1'));
  expect(alloc?.value.used.cpu).toBe(4000);
  const job = await store.get<JobRecord>(store.keys.job('arr'));
  expect(job?.value.phase).toBe('Running');
  expect(job?.value.pending).toEqual([{ start: 6, end: 10, attempt: 1 }]);
});

it('hands leadership to the standby when the leader stops, and the standby binds new work', async () => {
  const leaderKey = await store.get<{ identity: string }>(store.keys.leader('scheduler'));
  const leader = replicas.find((r) => r.ctx.config.instanceId === leaderKey?.value.identity)!;
  const standby = replicas.find((r) => r !== leader)!;
  const stoppedAt = Date.now();
  await leader.close();
  await addNode('n3', 8);
  const bindings = await waitFor(
    () => boundTasks('arr'),
    (b) => b.reduce((n, x) => n + x.end - x.start, 0) >= 10,
  );
  const tookMs = Date.now() - stoppedAt;
  const now = await store.get<{ identity: string }>(store.keys.leader('scheduler'));
  expect(now?.value.identity).toBe(standby.ctx.config.instanceId);
  // Every task index bound exactly once.
  const seen = new Set<number>();
  for (const b of bindings)
    for (let i = b.start; i < b.end; i++) {
      expect(seen.has(i)).toBe(false);
      seen.add(i);
    }
  expect(seen.size).toBe(10);
  expect(tookMs).toBeLessThan(10000);
});

it('gives whole-GPU tasks distinct devices', async () => {
  await addNode('gpu-1', 32, 4);
  await queueJob('gpus', 2, { cpu: 1000, gpu: 2000 });
  const bindings = await waitFor(
    () => boundTasks('gpus'),
    (b) => b.reduce((n, x) => n + x.end - x.start, 0) >= 2,
  );
  const devices = bindings
    .flatMap((b) => b.devices)
    .flat()
    .sort();
  expect(devices).toEqual([0, 1, 2, 3]);
});

it('requeues the tasks of a lost node only after lease TTL + grace, at the next attempt, onto another node', async () => {
  const before = await boundTasks('arr');
  const lostIndices = before.filter((b) => b.node === 'n3').flatMap((b) => Array.from({ length: b.end - b.start }, (_, k) => b.start + k));
  expect(lostIndices.length).toBeGreaterThan(0);
  const lostAt = Date.now();
  await store.txn([], [{ delete: store.keys.node('n3') }]);
  const rebound = (bs: Binding[]) => bs.filter((b) => b.attempt === 2).reduce((n, b) => n + b.end - b.start, 0);
  const after = await waitFor(
    () => boundTasks('arr'),
    (bs) => rebound(bs) === lostIndices.length,
    { timeoutMs: 15000 },
  );
  const waitedMs = Date.now() - lostAt;
  // default wait: lease TTL 2 s + grace 2 s
  expect(waitedMs).toBeGreaterThanOrEqual(4000);
  expect(after.filter((b) => b.node === 'n3')).toHaveLength(0);
  const moved = after.filter((b) => b.attempt === 2);
  expect(moved.flatMap((b) => Array.from({ length: b.end - b.start }, (_, k) => b.start + k)).sort()).toEqual([...lostIndices].sort());
  expect(await store.get(store.keys.alloc('n3'))).toBeUndefined();
  const status = await store.get<{ tasks: Array<{ state: string; reason?: string }> }>(store.keys.group('arr', before.find((b) => b.node === 'n3')!.start, 1));
  expect(status?.value.tasks.every((t) => t.state === 'Failed' && t.reason === 'NodeLost')).toBe(true);
  const leaderId = (await store.get<{ identity: string }>(store.keys.leader('scheduler')))!.value.identity;
  const leader = replicas.find((r) => r.ctx.config.instanceId === leaderId)!;
  const metrics = await (await fetch(`${leader.url}/metrics`)).text();
  expect(metrics).toContain(`batch_scheduler_node_lost_tasks_total{service="scheduler"} ${lostIndices.length}`);
});

it('exports leadership, placements and the oldest pending age per queue on /metrics', async () => {
  const leaderKey = await store.get<{ identity: string }>(store.keys.leader('scheduler'));
  const leader = replicas.find((r) => r.ctx.config.instanceId === leaderKey?.value.identity)!;
  await queueJob('waits', 1, { cpu: 1_000_000 }); // a thousand cores: never fits
  await waitUntil(async () => (await (await fetch(`${leader.url}/metrics`)).text()).includes('queue="q"'));
  const text = await (await fetch(`${leader.url}/metrics`)).text();
  expect(text).toMatch(/batch_scheduler_is_leader\{service="scheduler"\} 1/);
  expect(text).toMatch(/batch_scheduler_placements_total\{service="scheduler"\} [1-9]/);
  expect(text).toMatch(/batch_queue_oldest_pending_age_seconds\{queue="q",service="scheduler"\} \d/);
  expect(text).toMatch(/batch_cluster_allocation_ratio\{resource="cpu",service="scheduler"\} 0\.\d+/);
  expect(text).toMatch(/batch_queue_usage\{queue="q",resource="cpu",service="scheduler"\} [1-9]/);
  expect(text).toMatch(/batch_cluster_gpus_fragmented\{service="scheduler"\} \d/);
  expect(text).toMatch(/batch_queue_fair_share\{queue="q",service="scheduler"\} \d+(\.\d+)?(e-\d+)?\n/);
  expect(text).toMatch(/batch_queue_pending_tasks\{queue="q",service="scheduler"\} [1-9]/);
  expect(text).toMatch(/batch_etcd_request_duration_seconds_count\{[^}]*op="txn"[^}]*\} [1-9]/);
});

it('places a gang all together or fails it with the reason after its timeout, holding nothing meanwhile', async () => {
  // Nodes now: n1 4, n2 2, n4 8, gpu-1 32 cores — busy with earlier tests. A gang of 200 one-core tasks can never fit.
  const job = queuedJob('gang', 200, { cpu: 1000 });
  await submitJob(store, { ...job, queuedAt: job.createdAt, spec: { ...job.spec, gang: true, gangTimeoutSeconds: 1 } });
  const failed = await waitFor(
    () => store.get<JobRecord>(store.keys.job('gang')),
    (j) => j?.value.phase === 'Failed',
    { timeoutMs: 10000 },
  );
  expect(failed?.value.reason?.code).toBe('gang_unschedulable');
  expect(failed?.value.reason?.message).toMatch(/^gang of 200 tasks could not start together within 1 s/);
  expect(await boundTasks('gang')).toHaveLength(0);
});

it('answers "why pending" over its RPC port, and a call it cannot answer gets an error reply rather than silence', async () => {
  const { ClientProxyFactory, Transport } = await import('@nestjs/microservices');
  const { firstValueFrom } = await import('rxjs');
  const { SCHEDULER_WHY, whyJobOf } = await import('@batchapi/api');
  const { authorizeCalls } = await import('@batchapi/runtime');
  const members = await store.list<{ rpc?: string }>(store.keys.membersOf('scheduler'));
  const address = members.items.map((m) => m.value.rpc).find(Boolean)!;
  const at = address.lastIndexOf(':');
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: address.slice(0, at), port: Number(address.slice(at + 1)) } });
  authorizeCalls(client, replicas[0].ctx.credential); // in-process replicas share their process's credential
  try {
    await queueJob('too-big', 1, { cpu: 1_000_000 });
    const job = (await store.get<JobRecord>(store.keys.job('too-big')))!.value;
    const why = await firstValueFrom(client.send(SCHEDULER_WHY, { job: whyJobOf(job) }));
    expect(why).toMatchObject({ jobId: 'too-big', explainedBy: 'scheduler', placeableNow: 0 });
    // No deadline on these calls: before the fix the reply never came and the test timed out.
    await expect(firstValueFrom(client.send(SCHEDULER_WHY, { job: null }))).rejects.toMatchObject({ code: 'invalid_argument', field: 'job' });
  } finally {
    await client.close();
  }
});

it('answers the queue views over its RPC port from its cache, with positions for one queue, and refuses a bad queue name', async () => {
  const { ClientProxyFactory, Transport } = await import('@nestjs/microservices');
  const { firstValueFrom } = await import('rxjs');
  const { SCHEDULER_QUEUES } = await import('@batchapi/api');
  const { authorizeCalls } = await import('@batchapi/runtime');
  const address = (await store.list<{ rpc?: string }>(store.keys.membersOf('scheduler'))).items.map((m) => m.value.rpc).find(Boolean)!;
  const at = address.lastIndexOf(':');
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: address.slice(0, at), port: Number(address.slice(at + 1)) } });
  authorizeCalls(client, replicas[0].ctx.credential);
  try {
    await queueJob('queued-view', 1, { cpu: 1_000_000 });
    // the replica's cache sees the job within a watch event
    const answer = await waitFor(
      () => firstValueFrom(client.send(SCHEDULER_QUEUES, { queue: 'q' })),
      (a: { queues: Array<{ name: string }>; positions?: Array<{ jobId: string }> }) => (a.positions ?? []).some((p) => p.jobId === 'queued-view'),
    );
    expect(answer.queues.map((q) => q.name)).toContain('q');
    expect(answer.positions!.find((p) => p.jobId === 'queued-view')).toMatchObject({ pendingTasks: 1 });
    // another tenant's view of the same queue lists none of these jobs
    expect(await firstValueFrom(client.send(SCHEDULER_QUEUES, { queue: 'q', tenant: 'someone-else' }))).toMatchObject({ positions: [] });
    await expect(firstValueFrom(client.send(SCHEDULER_QUEUES, { queue: 'Not A Name' }))).rejects.toMatchObject({ code: 'invalid_argument', field: 'queue' });
  } finally {
    await client.close();
  }
});

it('validates and bounds every call: unknown fields, too many selector entries and an oversized frame are refused, and nothing is explained without the service credential', async () => {
  const { ClientProxyFactory, Transport } = await import('@nestjs/microservices');
  const { firstValueFrom } = await import('rxjs');
  const { SCHEDULER_WHY, whyJobOf, MAX_SELECTOR_ENTRIES } = await import('@batchapi/api');
  const { authorizeCalls, RPC_MAX_FRAME_CHARS } = await import('@batchapi/runtime');
  const { connect } = await import('node:net');
  const address = (await store.list<{ rpc?: string }>(store.keys.membersOf('scheduler'))).items.map((m) => m.value.rpc).find(Boolean)!;
  const host = address.slice(0, address.lastIndexOf(':'));
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  await queueJob('why-bounds', 1, { cpu: 1_000_000 });
  const job = whyJobOf((await store.get<JobRecord>(store.keys.job('why-bounds')))!.value);
  const anonymous = ClientProxyFactory.create({ transport: Transport.TCP, options: { host, port } });
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host, port } });
  authorizeCalls(client, replicas[0].ctx.credential);
  try {
    await expect(firstValueFrom(anonymous.send(SCHEDULER_WHY, { job }))).rejects.toMatchObject({ code: 'unauthenticated', field: 'metadata.authorization' });
    const full = (await store.get<JobRecord>(store.keys.job('why-bounds')))!.value; // command, env, counts: not part of a why
    await expect(firstValueFrom(client.send(SCHEDULER_WHY, { job: full }))).rejects.toMatchObject({
      code: 'invalid_argument',
      field: 'job.spec.name',
      message: expect.stringMatching(/unrecognized key/i),
    });
    const selector = Object.fromEntries(Array.from({ length: MAX_SELECTOR_ENTRIES + 1 }, (_, i) => [`k${i}`, 'v']));
    await expect(firstValueFrom(client.send(SCHEDULER_WHY, { job: { ...job, spec: { ...job.spec, selector } } }))).rejects.toMatchObject({
      code: 'invalid_argument',
      field: 'job.spec.selector',
    });
    await expect(firstValueFrom(client.send(SCHEDULER_WHY, { job: { ...job, pending: [{ start: 0, end: 1e12, attempt: 1 }] } }))).rejects.toMatchObject({
      code: 'invalid_argument',
      field: 'job.pending.0.end',
    });
    // The same replica still answers a valid call on the same connection.
    expect(await firstValueFrom(client.send(SCHEDULER_WHY, { job }))).toMatchObject({ jobId: 'why-bounds', explainedBy: 'scheduler' });
  } finally {
    await client.close();
    await anonymous.close();
  }
  // A frame over the limit: the connection is closed at once (with Nest's default of 512 MB the
  // replica buffered it and waited 30 s for the rest).
  const socket = connect(port, host);
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  socket.on('error', () => undefined);
  const size = 4 * RPC_MAX_FRAME_CHARS;
  socket.write(`${size}#{"pattern":"scheduler.why","id":"1","data":"`);
  let written = 0;
  const chunk = 'x'.repeat(64 * 1024);
  while (written < size && !socket.destroyed) {
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r).once('close', r));
    written += chunk.length;
  }
  const closedAt = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
  socket.destroy();
  expect(closedAt).toBeGreaterThan(0);
});
