/**
 * The executor against a real etcd with real child processes: GPU inventory from a fake
 * `nvidia-smi`, tasks run with their index and devices, outcomes reported in one place,
 * and self-fencing that kills the tasks when the lease is gone.
 */
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeAllocation, NodeRecord } from '@batchapi/api';
import { attemptPaths, cgroupOwner, type RunningExecutor } from '../src';
import { waitFor, waitUntil } from '@batchapi/proc';
import { alive, bind, groupOf, jobOf, runLong, startNode, useTestbed } from './harness';

const tb = useTestbed();
const start = (name: string, extra = {}) => startNode(tb, name, extra);

it('registers GPUs from nvidia-smi (and none without it)', async () => {
  const gpu = await start('gpu-node', { nvidiaSmi: tb.fakeSmi });
  const plain = await start('cpu-node');
  try {
    const g = (await tb.store.get<NodeRecord>(tb.store.keys.node('gpu-node')))!.value;
    expect(g.capacity.gpu).toBe(2000);
    expect(g.labels['gpu.model']).toBe('NVIDIA A100-SXM4-80GB');
    expect(g.gpus.map((d) => d.uuid)).toEqual(['GPU-aaaa', 'GPU-bbbb']);
    const c = (await tb.store.get<NodeRecord>(tb.store.keys.node('cpu-node')))!.value;
    expect(c.capacity).toEqual({ cpu: 8000, memory: 16 * 2 ** 30 });
    expect(c.gpus).toEqual([]);
  } finally {
    await gpu.close();
    await plain.close();
  }
});

it('registers GPUs from an nvidia-smi slower than the lease TTL: the executor keeps its lease while it waits', async () => {
  // nvidia-smi can take seconds on a GPU node (no persistence daemon); read synchronously, it once
  // blocked the executor past its 5 s lease, which then lapsed before the node was registered.
  const slowSmi = join(tb.dir, 'slow-nvidia-smi');
  writeFileSync(slowSmi, `#!/bin/sh\nsleep 6\nexec "${tb.fakeSmi}" "$@"\n`);
  chmodSync(slowSmi, 0o755);
  let fenced = false;
  const ex = await startNode(tb, 'slow-smi-node', { nvidiaSmi: slowSmi }, { onFenced: () => (fenced = true) });
  try {
    const g = (await tb.store.get<NodeRecord>(tb.store.keys.node('slow-smi-node')))!.value;
    expect(g.gpus.map((d) => d.uuid)).toEqual(['GPU-aaaa', 'GPU-bbbb']);
    expect(fenced).toBe(false);
  } finally {
    await ex.close();
  }
});

it('runs each task with its index and devices, records exit codes, releases the node and ends the job', async () => {
  const ex = await start('run-node', { nvidiaSmi: tb.fakeSmi });
  try {
    // task i exits with code i: 0 succeeds, 1 and 2 fail
    await bind(tb, 'run-node', 'arr', ['sh', '-c', 'echo "idx=$BATCH_TASK_INDEX dev=$CUDA_VISIBLE_DEVICES $GREETING"; exit $BATCH_TASK_INDEX'], 3, {
      devices: [[0], [1], []],
      resources: { cpu: 1000, gpu: 1000 },
    });
    const done = await waitFor(
      () => jobOf(tb, 'arr'),
      (j) => j?.phase === 'Failed',
    );
    expect(done).toMatchObject({ phase: 'Failed', counts: { succeeded: 1, failed: 2, cancelled: 0 } });
    const status = (await groupOf(tb, 'arr'))!;
    expect(status.tasks.map((t) => [t.state, t.exitCode])).toEqual([
      ['Succeeded', 0],
      ['Failed', 1],
      ['Failed', 2],
    ]);
    for (const [i, dev] of [
      [0, '0'],
      [1, '1'],
      [2, ''],
    ] as const) {
      expect(readFileSync(attemptPaths(join(tb.dir, 'run-node'), 'arr', i, 1).stdout, 'utf8').trim()).toBe(`idx=${i} dev=${dev} hi`.trim());
    }
    expect(await tb.store.get(tb.store.keys.binding('run-node', 'arr', 0, 1))).toBeUndefined();
    expect((await tb.store.get<NodeAllocation>(tb.store.keys.alloc('run-node')))!.value).toEqual({ used: {}, devices: {} });
  } finally {
    await ex.close();
  }
});

it('self-fences when its lease is gone: kills its tasks at once and stops', async () => {
  let fenced = false;
  const ex = await startNode(
    tb,
    'fence-node',
    {},
    {
      onFenced: () => {
        fenced = true;
      },
    },
  );
  try {
    const pid = await runLong(tb, 'fence-node', 'long', 'sleep 60', { cpu: 1000 });
    expect(alive(pid)).toBe(true);
    // The lease is revoked behind the executor's back (as if etcd expired it): its node key vanishes.
    await ex.ctx.store.client.leaseClient.leaseRevoke({ ID: ex.ctx.lease.id });
    expect(await waitUntil(() => fenced, { timeoutMs: 5000 })).toBe(true);
    expect(await waitUntil(() => !alive(pid), { timeoutMs: 3000 })).toBe(true);
    expect((await fetch(`${ex.url}/readyz`)).status).toBe(503);
  } finally {
    await ex.close();
  }
});

describe('limits and outcomes', () => {
  let ex: RunningExecutor;
  beforeAll(async () => {
    ex = await start('limit-node');
  });
  afterAll(async () => {
    await ex.close();
  });
  const status = (id: string) => groupOf(tb, id).then((s) => s?.tasks[0]);

  it('ends a command that cannot be started as Failed with exit code 127', async () => {
    await bind(tb, 'limit-node', 'nocmd', ['/nonexistent/command', 'x'], 1, { resources: { cpu: 100 } });
    const t = await waitFor(
      () => status('nocmd'),
      (x) => x?.state === 'Failed',
      { timeoutMs: 8000 },
    );
    expect(t).toMatchObject({ state: 'Failed', reason: 'Error', exitCode: 127 });
  });

  it('stops an attempt past its deadline: DeadlineExceeded', async () => {
    await bind(tb, 'limit-node', 'slow', ['sleep', '30'], 1, { resources: { cpu: 100 }, binding: { timeoutSeconds: 1 } });
    const t = await waitFor(
      () => status('slow'),
      (x) => x?.state === 'Failed',
      { timeoutMs: 8000 },
    );
    expect(t).toMatchObject({ state: 'Failed', reason: 'DeadlineExceeded', signal: 'SIGTERM' });
  });

  it('runs each attempt in its own cgroup with its limits, and reports an OOM kill as OOMKilled', async () => {
    if (ex.agent.isolation !== 'cgroup1' && ex.agent.isolation !== 'cgroup2') {
      console.warn(`skipped: this machine gives no writable cgroups (isolation: ${ex.agent.isolation})`);
      return;
    }
    // Its own CPU group's weight and quota, read from inside: half a core weighs cpu.shares 512 (v1) or
    // cpu.weight 1 + ⌊510 × 9,999 / 262,142⌋ = 20 (v2), with no quota (the default CPU limit is soft).
    const v1 = ex.agent.isolation === 'cgroup1';
    // v1: the line of the cpu controller, alone ("3:cpu:/…") or mounted with others ("3:cpu,cpuacct:/…")
    const cpuGroup = v1
      ? `$(sed -n 's/^[0-9]*:\\([^:]*,\\)\\{0,1\\}cpu\\(,[^:]*\\)\\{0,1\\}:\\(.*\\)$/\\3/p' /proc/self/cgroup)`
      : `$(sed -n 's/^0::\\(.*\\)$/\\1/p' /proc/self/cgroup)`;
    const files = v1 ? ['cpu.shares', 'cpu.cfs_quota_us'] : ['cpu.weight', 'cpu.max'];
    const script = `cat /proc/self/cgroup; g=/sys/fs/cgroup${v1 ? '/cpu' : ''}${cpuGroup}; ${files.map((f) => `echo "${f}=$(cat $g/${f})"`).join('; ')}`;
    await bind(tb, 'limit-node', 'where', ['sh', '-c', script], 1, { resources: { cpu: 500, memory: 64 * 2 ** 20 } });
    await waitFor(
      () => status('where'),
      (x) => x?.state === 'Succeeded',
      { timeoutMs: 8000 },
    );
    const out = readFileSync(attemptPaths(join(tb.dir, 'limit-node'), 'where', 0, 1).stdout, 'utf8');
    expect(out).toContain(`/batchapi/${cgroupOwner('limit-node', join(tb.dir, 'limit-node'))}-where-0-1`);
    expect(out).toContain(v1 ? 'cpu.shares=512\ncpu.cfs_quota_us=-1' : 'cpu.weight=20\ncpu.max=max 100000');
    // tail keeps all of a newline-free stream in memory: 300 MB against a 32 MiB limit
    await bind(tb, 'limit-node', 'hog', ['sh', '-c', 'head -c 300000000 /dev/zero | tail'], 1, { resources: { cpu: 500, memory: 32 * 2 ** 20 } });
    const t = await waitFor(
      () => status('hog'),
      (x) => x?.state === 'Failed',
      { timeoutMs: 15000 },
    );
    expect(t).toMatchObject({ state: 'Failed', reason: 'OOMKilled' });
  });
});

describe('logs', () => {
  it('rotate past their cap (checked each second), so a stream keeps about twice the cap on disk', async () => {
    const ex = await start('log-node', { logMaxBytes: 10_000 });
    try {
      // 30 lines of 2,001 bytes every 0.1 s: ~60 KB over ~3 s, ~20 KB a second
      await bind(tb, 'log-node', 'chatty', ['sh', '-c', 'for i in $(seq 1 30); do head -c 2000 /dev/zero | tr "\\0" x; echo; sleep 0.1; done'], 1, {
        resources: { cpu: 100 },
      });
      await waitFor(
        () => groupOf(tb, 'chatty').then((s) => s?.tasks[0].state),
        (s) => s === 'Succeeded',
        { timeoutMs: 15000 },
      );
      const out = attemptPaths(join(tb.dir, 'log-node'), 'chatty', 0, 1).stdout;
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
