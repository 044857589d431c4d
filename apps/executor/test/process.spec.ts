/**
 * The executor as its own process (`node apps/executor/dist/main.js`, configured only by its
 * environment): GPUs from the first `nvidia-smi` on PATH; a restart after `kill -9` reports
 * what its predecessor ran as `Failed`/`NodeLost`; and a lost lease makes it kill its tasks
 * and exit non-zero so its supervisor restarts it. Build first: `npx tsc -b apps/executor/tsconfig.lib.json`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeAllocation, NodeRecord } from '@batchapi/api';
import { answersReady, newServiceToken } from '@batchapi/runtime';
import { freePort, waitFor, waitUntil } from '@batchapi/proc';
import { groupAlive, groupOf, jobOf, runLong, useTestbed } from './harness';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
const tb = useTestbed();
const children: ChildProcess[] = [];

afterAll(async () => {
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(
    running.map(
      (c) =>
        new Promise((r) => {
          c.once('exit', r);
          c.kill('SIGKILL');
        }),
    ),
  );
});

interface Launched {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
}

/** Starts an executor process for `node` and waits until it is ready. */
async function launch(node: string, env: Record<string, string> = {}): Promise<Launched> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npx tsc -b apps/executor/tsconfig.lib.json first`);
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      BATCH_ETCD_ENDPOINTS: tb.etcd.endpoints.join(','),
      BATCH_PORT: String(port),
      BATCH_LEASE_TTL: '2',
      BATCH_LOG_LEVEL: 'warn',
      BATCH_NODE_NAME: node,
      BATCH_DATA_DIR: join(tb.dir, node),
      BATCH_NODE_CPU: '4',
      BATCH_NODE_MEMORY: '8Gi',
      BATCH_KILL_GRACE_MS: '1000',
      BATCH_NVIDIA_SMI: join(tb.dir, 'absent'),
      BATCH_SERVICE_TOKEN: newServiceToken(), // the executor refuses to start without the cluster's service credential
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  const ready = await waitFor(
    () => answersReady(url),
    (ok) => ok || child.exitCode !== null,
    { timeoutMs: 15000 },
  );
  if (!ready) throw new Error(`executor ${node} did not become ready`);
  return { child, url, exited };
}

/** The id of the lease the node key is bound to. */
async function nodeLease(node: string): Promise<string> {
  const res = await tb.store.client.get(tb.store.keys.node(node)).exec();
  return res.kvs[0].lease;
}

it('registers the GPUs of the nvidia-smi found first on PATH, with their model as a label', async () => {
  const gpuBin = join(tb.dir, 'gpu-bin');
  mkdirSync(gpuBin);
  const { symlinkSync } = await import('node:fs');
  symlinkSync(tb.fakeSmi, join(gpuBin, 'nvidia-smi'));
  const ex = await launch('gpu-proc', { PATH: `${gpuBin}:${process.env.PATH}`, BATCH_NVIDIA_SMI: '', BATCH_NODE_LABELS: 'zone=a,pool=gpu' });
  try {
    const n = (await tb.store.get<NodeRecord>(tb.store.keys.node('gpu-proc')))!.value;
    expect(n.capacity).toEqual({ cpu: 4000, memory: 8 * 2 ** 30, gpu: 2000 });
    expect(n.gpus).toHaveLength(2);
    expect(n.labels).toEqual({ zone: 'a', pool: 'gpu', 'gpu.model': 'NVIDIA A100-SXM4-80GB' });
    expect(n.url).toBe(ex.url);
  } finally {
    ex.child.kill('SIGTERM');
    expect(await ex.exited).toBe(0);
  }
  // A clean stop revokes the lease: the node record goes with it.
  expect(await tb.store.get(tb.store.keys.node('gpu-proc'))).toBeUndefined();
});

it('after kill -9 and a restart, reports what the previous incarnation ran as Failed/NodeLost and releases the node', async () => {
  const first = await launch('crash-node');
  const pgid = await runLong(tb, 'crash-node', 'orphan', 'sleep 60', { cpu: 1000 });
  first.child.kill('SIGKILL');
  await first.exited;
  await launch('crash-node');
  const g = await waitFor(
    () => groupOf(tb, 'orphan'),
    (x) => x?.tasks[0].state === 'Failed',
  );
  expect(g?.tasks[0]).toMatchObject({ state: 'Failed', reason: 'NodeLost' });
  // Nothing of the old attempt runs: its main process died with the executor, the rest was reaped.
  expect(await waitUntil(() => !groupAlive(pgid), { timeoutMs: 3000 })).toBe(true);
  expect(await tb.store.get(tb.store.keys.binding('crash-node', 'orphan', 0, 1))).toBeUndefined();
  expect((await tb.store.get<NodeAllocation>(tb.store.keys.alloc('crash-node')))!.value.used).toEqual({});
  // The control plane decides what happens next (a node loss requeues at the next attempt).
  expect((await jobOf(tb, 'orphan'))?.pending).toEqual([{ start: 0, end: 1, attempt: 2 }]);
});

it('on a graceful stop (SIGTERM) with no drain grace ends its running tasks NodeLost at once, so they are requeued without using a retry', async () => {
  const ex = await launch('term-node', { BATCH_SERVICE_TOKEN: newServiceToken(), BATCH_DRAIN_GRACE_MS: '0' });
  const pgid = await runLong(tb, 'term-node', 'drained', 'sleep 60', { cpu: 1000 });
  ex.child.kill('SIGTERM');
  expect(await ex.exited).toBe(0);
  // Reported before the process exited, not left for the reaper to find after the lease expired.
  expect((await groupOf(tb, 'drained'))?.tasks[0]).toMatchObject({ state: 'Failed', reason: 'NodeLost', signal: 'SIGTERM' });
  expect(groupAlive(pgid)).toBe(false);
  // Back to pending at the next attempt, with no failure counted against the job.
  expect(await jobOf(tb, 'drained')).toMatchObject({ pending: [{ start: 0, end: 1, attempt: 2 }], counts: { failed: 0 } });
});

it('self-fences when its lease is revoked: kills its running task and exits non-zero', async () => {
  const ex = await launch('fence-proc');
  const pgid = await runLong(tb, 'fence-proc', 'doomed', 'sleep 60', { cpu: 1000 });
  expect(groupAlive(pgid)).toBe(true);
  const lease = await nodeLease('fence-proc');
  await tb.store.client.leaseClient.leaseRevoke({ ID: lease });
  // TTL (2 s) at most after the revoke; here at the first failed keep-alive.
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    ex.exited,
    new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), 5000);
    }),
  ]);
  clearTimeout(timer);
  expect(code).toBe(75);
  expect(await waitUntil(() => !groupAlive(pgid), { timeoutMs: 2000 })).toBe(true);
});
