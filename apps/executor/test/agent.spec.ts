/**
 * The executor against a real etcd with real child processes: GPU inventory from a fake
 * `nvidia-smi`, tasks run with their index and devices, outcomes reported in one place,
 * and self-fencing that kills the tasks when the lease is gone.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Binding, GroupStatus, JobRecord, NodeAllocation, NodeRecord } from '@batchapi/api';
import { bindPlan, campaign, EtcdStore, type LocalEtcd, startEtcd, submitJob } from '@batchapi/store';
import { attemptPaths, type RunningExecutor, startExecutor } from '../src';

let etcd: LocalEtcd;
let store: EtcdStore;
let dir: string;
let fakeSmi: string;

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  dir = mkdtempSync(join(tmpdir(), 'exec-test-'));
  fakeSmi = join(dir, 'nvidia-smi');
  // What `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits` prints on a 2-GPU node.
  writeFileSync(fakeSmi, '#!/bin/sh\necho "0, NVIDIA A100-SXM4-80GB, 81920, GPU-aaaa"\necho "1, NVIDIA A100-SXM4-80GB, 81920, GPU-bbbb"\n');
  chmodSync(fakeSmi, 0o755);
});
afterAll(async () => {
  await store.close();
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
});

const config = () => ({ etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 2, logLevel: 'error' });

async function start(name: string, extra: Record<string, unknown> = {}): Promise<RunningExecutor> {
  return startExecutor({ config: config(), executor: { nodeName: name, dataDir: join(dir, name), cpu: '8', memory: '16Gi', killGraceMs: 500, reportIntervalMs: 50, nvidiaSmi: join(dir, 'absent'), ...extra } });
}

/** Binds `tasks` tasks of a new job to `node`, the way the scheduler does (fenced bindPlan). */
async function bind(node: string, jobId: string, command: string[], tasks: number, devices: number[][] = [], resources: Record<string, number> = { cpu: 1000 }, extra: Partial<Binding> = {}) {
  const job: JobRecord = {
    id: jobId, tenant: 't', queue: 'q', phase: 'Queued', createdAt: Date.now(),
    spec: { name: jobId, command, env: { GREETING: 'hi' }, resources, tasks, priority: 0, labels: {} },
    pending: [{ start: 0, end: tasks, attempt: 1 }], counts: { succeeded: 0, failed: 0, cancelled: 0 },
  };
  const created = await submitJob(store, job);
  const lease = await store.grantLease(5);
  const leader = await campaign(store, `test-${jobId}`, 'me', lease);
  const b: Binding = {
    jobId, tenant: 't', queue: 'q', node, start: 0, end: tasks, attempt: 1, resources, boundAt: Date.now(), command, env: job.spec.env,
    devices: devices.length ? devices : Array.from({ length: tasks }, () => []), ...extra,
  };
  const alloc = await store.get<NodeAllocation>(store.keys.alloc(node));
  const res = await bindPlan(store, leader.fence(), [{ job: created.job, next: { ...job, phase: 'Running', pending: [] }, bindings: [b] }], new Map([[node, alloc]]));
  expect(res.bound).toHaveLength(1);
  await lease.revoke();
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 10000): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await fn();
  while (!ok(v) && Date.now() < deadline) { await new Promise((r) => setTimeout(r, 50)); v = await fn(); }
  return v;
}

const job = (id: string) => store.get<JobRecord>(store.keys.job(id)).then((j) => j?.value);

it('registers GPUs from nvidia-smi (and none without it)', async () => {
  const gpu = await start('gpu-node', { nvidiaSmi: fakeSmi });
  const plain = await start('cpu-node');
  try {
    const g = (await store.get<NodeRecord>(store.keys.node('gpu-node')))!.value;
    expect(g.capacity.gpu).toBe(2000);
    expect(g.labels['gpu.model']).toBe('NVIDIA A100-SXM4-80GB');
    expect(g.gpus.map((d) => d.uuid)).toEqual(['GPU-aaaa', 'GPU-bbbb']);
    const c = (await store.get<NodeRecord>(store.keys.node('cpu-node')))!.value;
    expect(c.capacity).toEqual({ cpu: 8000, memory: 16 * 2 ** 30 });
    expect(c.gpus).toEqual([]);
  } finally {
    await gpu.close();
    await plain.close();
  }
});

it('runs each task with its index and devices, records exit codes, releases the node and ends the job', async () => {
  const ex = await start('run-node', { nvidiaSmi: fakeSmi });
  try {
    // task i exits with code i: 0 succeeds, 1 and 2 fail
    await bind('run-node', 'arr', ['sh', '-c', 'echo "idx=$BATCH_TASK_INDEX dev=$CUDA_VISIBLE_DEVICES $GREETING"; exit $BATCH_TASK_INDEX'], 3, [[0], [1], []], { cpu: 1000, gpu: 1000 });
    const done = await until(() => job('arr'), (j) => j?.phase === 'Failed');
    expect(done).toMatchObject({ phase: 'Failed', counts: { succeeded: 1, failed: 2, cancelled: 0 } });
    const status = (await store.get<GroupStatus>(store.keys.group('arr', 0, 1)))!.value;
    expect(status.tasks.map((t) => [t.state, t.exitCode])).toEqual([['Succeeded', 0], ['Failed', 1], ['Failed', 2]]);
    for (const [i, dev] of [[0, '0'], [1, '1'], [2, '']] as const) {
      expect(readFileSync(attemptPaths(join(dir, 'run-node'), 'arr', i, 1).stdout, 'utf8').trim()).toBe(`idx=${i} dev=${dev} hi`.trim());
    }
    expect(await store.get(store.keys.binding('run-node', 'arr', 0, 1))).toBeUndefined();
    expect((await store.get<NodeAllocation>(store.keys.alloc('run-node')))!.value).toEqual({ used: {}, devices: {} });
  } finally {
    await ex.close();
  }
});

it('self-fences when its lease is gone: kills its tasks at once and stops', async () => {
  let fenced = false;
  const ex = await startExecutor({ config: config(), onFenced: () => { fenced = true; }, executor: { nodeName: 'fence-node', dataDir: join(dir, 'fence-node'), cpu: '8', memory: '16Gi', killGraceMs: 500, reportIntervalMs: 50, nvidiaSmi: join(dir, 'absent') } });
  try {
    await bind('fence-node', 'long', ['sh', '-c', 'echo $$; sleep 60'], 1);
    const out = attemptPaths(join(dir, 'fence-node'), 'long', 0, 1).stdout;
    await until(async () => { try { return readFileSync(out, 'utf8'); } catch { return ''; } }, (s) => s.trim().length > 0);
    const pid = Number(readFileSync(out, 'utf8').trim());
    expect(alive(pid)).toBe(true);
    // The lease is revoked behind the executor's back (as if etcd expired it): its node key vanishes.
    await ex.ctx.store.client.leaseClient.leaseRevoke({ ID: ex.ctx.lease.id });
    expect(await until(async () => fenced, (f) => f, 5000)).toBe(true);
    expect(await until(async () => alive(pid), (a) => !a, 3000)).toBe(false);
    expect((await fetch(`${ex.url}/readyz`)).status).toBe(503);
  } finally {
    await ex.close();
  }
});

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

describe('limits and outcomes', () => {
  let ex: RunningExecutor;
  beforeAll(async () => { ex = await start('limit-node'); });
  afterAll(async () => { await ex.close(); });
  const status = (id: string) => store.get<GroupStatus>(store.keys.group(id, 0, 1)).then((s) => s?.value.tasks[0]);

  it('stops an attempt past its deadline: DeadlineExceeded', async () => {
    await bind('limit-node', 'slow', ['sleep', '30'], 1, [], { cpu: 100 }, { timeoutSeconds: 1 });
    const t = await until(() => status('slow'), (x) => x?.state === 'Failed', 8000);
    expect(t).toMatchObject({ state: 'Failed', reason: 'DeadlineExceeded', signal: 'SIGTERM' });
  });

  it('runs each attempt in its own cgroup with its limits, and reports an OOM kill as OOMKilled', async () => {
    if (ex.agent.isolation !== 'cgroup1' && ex.agent.isolation !== 'cgroup2') {
      console.warn(`skipped: this machine gives no writable cgroups (isolation: ${ex.agent.isolation})`);
      return;
    }
    await bind('limit-node', 'where', ['cat', '/proc/self/cgroup'], 1, [], { cpu: 500, memory: 64 * 2 ** 20 });
    await until(() => status('where'), (x) => x?.state === 'Succeeded', 8000);
    expect(readFileSync(attemptPaths(join(dir, 'limit-node'), 'where', 0, 1).stdout, 'utf8')).toContain('/batchapi/limit-node-where-0-1');
    // tail keeps all of a newline-free stream in memory: 300 MB against a 32 MiB limit
    await bind('limit-node', 'hog', ['sh', '-c', 'head -c 300000000 /dev/zero | tail'], 1, [], { cpu: 500, memory: 32 * 2 ** 20 });
    const t = await until(() => status('hog'), (x) => x?.state === 'Failed', 15000);
    expect(t).toMatchObject({ state: 'Failed', reason: 'OOMKilled' });
  });
});

describe('logs', () => {
  it('rotate past their cap (checked each second), so a stream keeps about twice the cap on disk', async () => {
    const ex = await start('log-node', { logMaxBytes: 10_000 });
    try {
      // 30 lines of 2,001 bytes every 0.1 s: ~60 KB over ~3 s, ~20 KB a second
      await bind('log-node', 'chatty', ['sh', '-c', 'for i in $(seq 1 30); do head -c 2000 /dev/zero | tr "\\0" x; echo; sleep 0.1; done'], 1, [], { cpu: 100 });
      await until(() => store.get<GroupStatus>(store.keys.group('chatty', 0, 1)).then((s) => s?.value.tasks[0].state), (s) => s === 'Succeeded', 15000);
      const out = attemptPaths(join(dir, 'log-node'), 'chatty', 0, 1).stdout;
      const { statSync } = await import('node:fs');
      // each file stays under the cap plus one second of output: 10,000 + ~20,000
      expect(statSync(`${out}.1`).size).toBeGreaterThan(10_000);
      expect(statSync(`${out}.1`).size).toBeLessThan(32_000);
      expect(statSync(out).size).toBeLessThan(32_000);
      expect(statSync(`${out}.1`).size + statSync(out).size).toBeLessThan(60_030);
    } finally {
      await ex.close();
    }
  });
});
