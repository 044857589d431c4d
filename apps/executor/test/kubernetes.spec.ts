/**
 * The Kubernetes backend against a fake API server on loopback and a real etcd: the cluster's
 * allocatable resources become the node's capacity; each attempt runs as a pod with the
 * task's resources, env, selector and owner labels; pod phases and container states map to
 * outcomes (Succeeded, Failed with the exit code, OOMKilled, DeadlineExceeded, a bad image);
 * a cancel deletes the pod; logs are kept; pods are deleted once done; states come from a
 * watch that resumes; an evicted pod is a node error; pods a previous executor left are deleted;
 * per Kubernetes node, pods that are not BatchAPI's are left out of the capacity; a working dir
 * is refused (no pod), saying why.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type NodeRecord, pythonEnvOf } from '@batchapi/api';
import { attemptPaths, podExit, podName, podRequests, type RunningExecutor } from '../src';
import { FakeKube } from './fake-kube';
import { waitFor } from '@batchapi/proc';
import { bind, groupOf, startNode, useTestbed } from './harness';

const tb = useTestbed();
const kube = new FakeKube([
  { name: 'k1', allocatable: { cpu: '8', memory: '32Gi', pods: '110' } },
  { name: 'k2', allocatable: { cpu: '7500m', memory: '16Gi', 'nvidia.com/gpu': '2' }, labels: { 'nvidia.com/gpu.product': 'NVIDIA-A100' } },
]);
let ex: RunningExecutor;

beforeAll(async () => {
  await kube.start();
  ex = await startNode(tb, 'kube', { backend: 'kubernetes', kubernetes: { namespace: 'tasks', image: 'busybox:1.36', rewatchMs: 50, server: kube.url } });
});
afterAll(async () => {
  await ex?.close();
  await kube.stop();
});

const outcome = async (id: string) =>
  (await waitFor(
    () => groupOf(tb, id),
    (g) => !!g && g.tasks.every((t) => ['Succeeded', 'Failed', 'Cancelled'].includes(t.state)),
    { timeoutMs: 8000 },
  ))!.tasks[0];

it("registers the cluster as one node: the sum of its nodes' allocatable resources and GPUs", async () => {
  const node = (await tb.store.get<NodeRecord>(tb.store.keys.node('kube')))!.value;
  // 8 + 7.5 CPUs, 32 + 16 GiB, 2 GPUs
  expect(node.capacity).toEqual({ cpu: 15_500, memory: 48 * 2 ** 30, gpu: 2000 });
  // the node runs images: jobs that name one may come here
  expect(node.labels).toMatchObject({ 'batchapi.io/backend': 'kubernetes', 'batchapi.io/container-runtime': 'kubernetes', 'gpu.model': 'NVIDIA-A100' });
});

it("runs an attempt as a pod with the task's resources, env, selector and labels, keeps its log and deletes the pod", async () => {
  await bind(tb, 'kube', 'ok-job', ['sh', '-c', 'exit 0'], 1, {
    resources: { cpu: 1500, memory: 2 ** 30, gpu: 1000 },
    binding: { selector: { pool: 'train' }, image: 'python:3.12' },
  });
  expect(await outcome('ok-job')).toMatchObject({ state: 'Succeeded', exitCode: 0 });
  const pod = kube.created.find((p) => p.metadata.name === podName('ok-job', 0, 1))!;
  expect(pod.metadata.labels).toMatchObject({
    'batchapi.io/job': 'ok-job',
    'batchapi.io/task': '0',
    'batchapi.io/attempt': '1',
    'batchapi.io/tenant': 't',
    'app.kubernetes.io/managed-by': 'batchapi',
  });
  expect(pod.spec).toMatchObject({ restartPolicy: 'Never', nodeSelector: { pool: 'train' } });
  const c = pod.spec.containers[0];
  expect(c).toMatchObject({
    image: 'python:3.12',
    command: ['sh', '-c', 'exit 0'],
    // CPU is a request only (`BATCH_CPU_LIMIT` soft, the default): the pod may use idle CPU; memory and GPUs are limits too
    resources: { requests: { cpu: '1500m', memory: String(2 ** 30), 'nvidia.com/gpu': '1' }, limits: { memory: String(2 ** 30), 'nvidia.com/gpu': '1' } },
  });
  expect(c.resources?.limits).toEqual({ memory: String(2 ** 30), 'nvidia.com/gpu': '1' });
  const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
  expect(env).toMatchObject({ BATCH_JOB_ID: 'ok-job', BATCH_TASK_INDEX: '0', BATCH_ATTEMPT: '1', GREETING: 'hi' });
  expect(env.CUDA_VISIBLE_DEVICES).toBeUndefined();
  expect(readFileSync(attemptPaths(join(tb.dir, 'kube'), 'ok-job', 0, 1).stdout, 'utf8')).toBe(
    `log of ${pod.metadata.name}: sh -c exit 0\nend of ${pod.metadata.name}\n`,
  );
  await waitFor(
    async () => kube.pods.size,
    (n) => n === 0,
    { timeoutMs: 3000 },
  );
  expect(kube.deleted).toContain(pod.metadata.name);
});

it('gives a pod a CPU limit equal to its request when the CPU limit is hard (BATCH_CPU_LIMIT=hard)', async () => {
  const hard = await startNode(tb, 'kube-hard', {
    backend: 'kubernetes',
    cpuLimit: 'hard',
    kubernetes: { namespace: 'tasks', image: 'busybox:1.36', rewatchMs: 50, server: kube.url },
  });
  try {
    await bind(tb, 'kube-hard', 'hard-job', ['sh', '-c', 'exit 0'], 1, { resources: { cpu: 1500, memory: 2 ** 30 } });
    expect(await outcome('hard-job')).toMatchObject({ state: 'Succeeded' });
    const pod = kube.created.find((p) => p.metadata.name === podName('hard-job', 0, 1))!;
    expect(pod.spec.containers[0].resources).toEqual({
      requests: { cpu: '1500m', memory: String(2 ** 30) },
      limits: { cpu: '1500m', memory: String(2 ** 30) },
    });
  } finally {
    await hard.close();
  }
});

it.each([
  // [job, command, binding extras, expected status]
  ['fail-job', ['sh', '-c', 'exit 3'], {}, { state: 'Failed', reason: 'Error', exitCode: 3 }],
  ['oom-job', ['sh', '-c', 'oom'], {}, { state: 'Failed', reason: 'OOMKilled', exitCode: 137 }],
  ['slow-job', ['sh', '-c', 'sleep 600'], { timeoutSeconds: 1 }, { state: 'Failed', reason: 'DeadlineExceeded' }],
  ['image-job', ['true'], { image: 'bad-image' }, { state: 'Failed', reason: 'Error', exitCode: 125 }],
])('maps %s to its outcome', async (id, command, binding, want) => {
  await bind(tb, 'kube', id as string, command as string[], 1, { binding: binding as object });
  expect(await outcome(id as string)).toMatchObject(want as object);
});

it("copies a running pod's log into the attempt's stdout file while it runs (batch logs -f follows it)", async () => {
  await bind(tb, 'kube', 'follow-job', ['sh', '-c', 'sleep 600'], 1);
  const name = podName('follow-job', 0, 1);
  const stdout = attemptPaths(join(tb.dir, 'kube'), 'follow-job', 0, 1).stdout;
  const read = async () => {
    try {
      return readFileSync(stdout, 'utf8');
    } catch {
      return '';
    }
  };
  expect(await waitFor(read, (t) => t.length > 0, { timeoutMs: 3000 })).toBe(`log of ${name}: sh -c sleep 600\n`);
  expect(kube.pods.get(`tasks/${name}`)?.status.phase).toBe('Running');
  const key = tb.store.keys.binding('kube', 'follow-job', 0, 1);
  const cur = (await tb.store.get<object>(key))!;
  await tb.store.txn([{ key, modRevision: cur.modRevision }], [{ put: key, value: { ...cur.value, cancelRequested: true } }]);
  expect(await outcome('follow-job')).toMatchObject({ state: 'Cancelled' });
});

it("follows a pod's log again when the server closes the stream while the container runs, and keeps the whole log", async () => {
  await bind(tb, 'kube', 'refollow-job', ['sh', '-c', 'sleep 600'], 1);
  const name = podName('refollow-job', 0, 1);
  const stdout = attemptPaths(join(tb.dir, 'kube'), 'refollow-job', 0, 1).stdout;
  const read = async () => {
    try {
      return readFileSync(stdout, 'utf8');
    } catch {
      return '';
    }
  };
  await waitFor(read, (t) => t.length > 0, { timeoutMs: 3000 });
  const follows = kube.followRequests;
  kube.dropFollowers();
  // the container ends once the log is being followed again
  await waitFor(
    async () => kube.followRequests,
    (n) => n > follows,
    { timeoutMs: 3000 },
  );
  kube.complete(name);
  expect(await outcome('refollow-job')).toMatchObject({ state: 'Succeeded' });
  expect(await read()).toBe(`log of ${name}: sh -c sleep 600\nend of ${name}\n`);
});

it('cancels by deleting the pod', async () => {
  await bind(tb, 'kube', 'cancel-job', ['sh', '-c', 'sleep 600'], 1);
  const name = podName('cancel-job', 0, 1);
  await waitFor(
    async () => kube.pods.get(`tasks/${name}`)?.status.phase,
    (p) => p === 'Running',
    { timeoutMs: 3000 },
  );
  const key = tb.store.keys.binding('kube', 'cancel-job', 0, 1);
  const cur = (await tb.store.get<object>(key))!;
  await tb.store.txn([{ key, modRevision: cur.modRevision }], [{ put: key, value: { ...cur.value, cancelRequested: true } }]);
  expect(await outcome('cancel-job')).toMatchObject({ state: 'Cancelled' });
  expect(kube.deleted).toContain(name);
});

it("follows pods with a watch on this node's label, resumed from its resource version when the server ends it", async () => {
  expect(kube.watches.some((q) => q.includes('labelSelector=batchapi.io%2Fnode%3Dkube'))).toBe(true);
  const before = kube.watches.length;
  kube.dropWatches();
  await waitFor(
    async () => kube.watches.length,
    (n) => n > before,
    { timeoutMs: 3000 },
  );
  // The new watch continues from the last version seen, not from the start (no relist).
  expect(Number(new URLSearchParams(kube.watches[kube.watches.length - 1]).get('resourceVersion'))).toBeGreaterThan(0);
  await bind(tb, 'kube', 'after-rewatch', ['sh', '-c', 'exit 0'], 1);
  expect(await outcome('after-rewatch')).toMatchObject({ state: 'Succeeded' });
});

it('ends an attempt whose pod the cluster deleted (eviction) as a node error, so it is retried', async () => {
  await bind(tb, 'kube', 'evict-job', ['sh', '-c', 'sleep 600'], 1);
  const name = podName('evict-job', 0, 1);
  await waitFor(
    async () => kube.pods.get(`tasks/${name}`)?.status.phase,
    (p) => p === 'Running',
    { timeoutMs: 3000 },
  );
  kube.evict(name);
  expect(await outcome('evict-job')).toMatchObject({ state: 'Failed', reason: 'NodeError' });
});

it('ends an attempt whose pod the kubelet evicted for node pressure (the pod stays, its container killed) as a node error', async () => {
  await bind(tb, 'kube', 'pressure-job', ['sh', '-c', 'sleep 600'], 1);
  const name = podName('pressure-job', 0, 1);
  await waitFor(
    async () => kube.pods.get(`tasks/${name}`)?.status.phase,
    (p) => p === 'Running',
    { timeoutMs: 3000 },
  );
  kube.evictForPressure(name);
  expect(await outcome('pressure-job')).toMatchObject({ state: 'Failed', reason: 'NodeError' });
});

it('refuses a working dir: the attempt fails Error with exit code 125 and says why in its stderr, and no pod is made', async () => {
  await bind(tb, 'kube', 'wd-job', ['cat', 'x'], 1, { binding: { workingDir: { digest: `sha256:${'a'.repeat(64)}` } } });
  expect(await outcome('wd-job')).toMatchObject({ state: 'Failed', reason: 'Error', exitCode: 125 });
  expect(kube.pods.has(`tasks/${podName('wd-job', 0, 1)}`)).toBe(false);
  expect(readFileSync(attemptPaths(join(tb.dir, 'kube'), 'wd-job', 0, 1).stderr, 'utf8')).toMatch(
    /^batch: working_dir is not supported on this node's backend/,
  );
});

it('refuses a python environment: the attempt fails Error with exit code 125 and says why in its stderr, and no pod is made', async () => {
  await bind(tb, 'kube', 'py-job', ['python3', '-c', 'import numpy'], 1, { binding: { python: pythonEnvOf({ requirements: ['numpy==2.0'] }) } });
  expect(await outcome('py-job')).toMatchObject({ state: 'Failed', reason: 'Error', exitCode: 125 });
  expect(kube.pods.has(`tasks/${podName('py-job', 0, 1)}`)).toBe(false);
  expect(readFileSync(attemptPaths(join(tb.dir, 'kube'), 'py-job', 0, 1).stderr, 'utf8')).toMatch(
    /^batch: python environments are not supported on this node's backend/,
  );
});

it('deletes a task pod of this node that no attempt of this executor started (left by a previous one)', async () => {
  const pod = {
    metadata: { name: 'batch-left-over-0-a1', labels: { 'batchapi.io/node': 'kube', 'batchapi.io/job': 'left-over' } },
    spec: { containers: [{ name: 'task', image: 'busybox:1.36', command: ['sleep', '600'] }] },
  };
  const res = await fetch(`${kube.url}/api/v1/namespaces/tasks/pods`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(pod),
  });
  expect(res.status).toBe(201);
  await waitFor(
    async () => kube.deleted,
    (d) => d.includes('batch-left-over-0-a1'),
    { timeoutMs: 3000 },
  );
  expect(kube.pods.has('tasks/batch-left-over-0-a1')).toBe(false);
});

describe('one executor per Kubernetes node (BATCH_K8S_NODE)', () => {
  let perNode: RunningExecutor;
  beforeAll(async () => {
    kube.addForeignPod('k2', 'daemon-k2', 500);
    perNode = await startNode(tb, 'k2', {
      backend: 'kubernetes',
      kubernetes: { namespace: 'tasks', image: 'busybox:1.36', rewatchMs: 50, server: kube.url, kubeNode: 'k2' },
    });
  });
  afterAll(async () => {
    await perNode?.close();
  });

  it("registers that node: its allocatable resources less what pods that are not BatchAPI's request, GPUs and labels", async () => {
    const node = (await tb.store.get<NodeRecord>(tb.store.keys.node('k2')))!.value;
    // k2 alone: 7.5 CPUs less a DaemonSet pod's 0.5 = 7 CPUs; 16 GiB, 2 GPUs
    expect(node.capacity).toEqual({ cpu: 7_000, memory: 16 * 2 ** 30, gpu: 2000 });
    expect(node.gpus).toHaveLength(2);
    expect(node.labels).toMatchObject({ 'nvidia.com/gpu.product': 'NVIDIA-A100', 'gpu.model': 'NVIDIA-A100', 'batchapi.io/backend': 'kubernetes' });
  });

  it('binds each pod to the node by nodeName (BatchAPI placed it)', async () => {
    await bind(tb, 'k2', 'k2-job', ['sh', '-c', 'exit 0'], 1);
    expect(await outcome('k2-job')).toMatchObject({ state: 'Succeeded' });
    expect(kube.created.find((p) => p.metadata.name === podName('k2-job', 0, 1))!.spec.nodeName).toBe('k2');
  });

  it('ends an attempt the node refused for room (OutOfcpu) as a node error, reads its capacity again, and does not count it toward quarantine', async () => {
    kube.addForeignPod('k2', 'late-k2', 6500);
    try {
      // 500m + 6500m taken of 7500m: a 1-CPU pod does not fit. Three refusals: as many as would quarantine a broken node.
      for (const id of ['crowded-0', 'crowded-1', 'crowded-2']) {
        await bind(tb, 'k2', id, ['sh', '-c', 'exit 0'], 1);
        expect(await outcome(id)).toMatchObject({ state: 'Failed', reason: 'NodeError' });
      }
      expect(await tb.store.get(tb.store.keys.cordon('k2'))).toBeUndefined();
      // 7500 - 500 - 6500 = 500 millicores left for BatchAPI
      const node = await waitFor(
        async () => (await tb.store.get<NodeRecord>(tb.store.keys.node('k2')))!.value,
        (n) => n.capacity.cpu === 500,
        { timeoutMs: 3000 },
      );
      expect(node.capacity).toMatchObject({ cpu: 500, memory: 16 * 2 ** 30, gpu: 2000 });
    } finally {
      kube.evict('late-k2');
    }
  });
});

it('podExit and podName: the pure mapping', () => {
  expect(podExit({ status: { phase: 'Running' } })).toBeUndefined();
  expect(podExit({ status: { phase: 'Succeeded' } })).toEqual({ exitCode: 0 });
  expect(podExit({ status: { phase: 'Failed', reason: 'DeadlineExceeded' } })).toEqual({ deadlineExceeded: true, signal: 'SIGKILL' });
  expect(podExit({ status: { phase: 'Failed', reason: 'Evicted', message: 'low on memory' } })).toEqual({
    exitCode: 126,
    nodeError: 'pod failed: Evicted: low on memory',
  });
  const terminated = (exitCode: number, reason?: string) => [
    { name: 'task', image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, reason } } },
  ];
  // evicted for node pressure: its container was killed, still the node's doing
  expect(podExit({ status: { phase: 'Failed', reason: 'Evicted', containerStatuses: terminated(137) } })).toEqual({
    exitCode: 126,
    nodeError: 'pod failed: Evicted',
  });
  expect(podExit({ status: { phase: 'Failed', reason: 'Shutdown', containerStatuses: terminated(143) } })).toEqual({
    exitCode: 126,
    nodeError: 'pod failed: Shutdown',
  });
  expect(podExit({ status: { phase: 'Failed', reason: 'OutOfcpu' } })).toEqual({ exitCode: 126, nodeError: 'pod failed: OutOfcpu', nodeFull: true });
  // a resource BatchAPI does not model: re-reading the capacity would not help, a plain node error
  expect(podExit({ status: { phase: 'Failed', reason: 'OutOfpods' } })).toEqual({ exitCode: 126, nodeError: 'pod failed: OutOfpods' });
  expect(podExit({ status: { phase: 'Failed', containerStatuses: terminated(137, 'OOMKilled') } })).toEqual({ exitCode: 137, oomKilled: true });
  expect(podExit({ status: { phase: 'Failed', containerStatuses: terminated(2) } })).toEqual({ exitCode: 2 });
  // requests as the kubelet counts them: max(containers 250m + 750m, init 2000m) + overhead 100m = 2100m;
  // memory max(1 GiB + 1 GiB, 1 GiB) = 2 GiB; 1 GPU
  expect(
    podRequests({
      spec: {
        containers: [
          { name: 'a', resources: { requests: { cpu: '250m', memory: '1Gi', 'nvidia.com/gpu': '1' } } },
          { name: 'b', resources: { requests: { cpu: '750m', memory: '1Gi' } } },
        ],
        initContainers: [{ name: 'i', resources: { requests: { cpu: '2', memory: '1Gi' } } }],
        overhead: { cpu: '100m' },
      },
    }),
  ).toEqual({ cpu: 2100, memory: 2 * 2 ** 30, gpu: 1000 });
  // a sidecar (an init container that keeps running) adds to the containers: 500m + 100m = 600m
  expect(
    podRequests({
      spec: {
        containers: [{ name: 'a', resources: { requests: { cpu: '500m' } } }],
        initContainers: [{ name: 'proxy', restartPolicy: 'Always', resources: { requests: { cpu: '100m' } } }],
      },
    }),
  ).toEqual({ cpu: 600, memory: 0, gpu: 0 });
  // a 63-character limit, DNS-1123
  expect(podName('X'.repeat(80), 12, 3)).toMatch(/^batch-x+-12-a3$/);
  expect(podName('X'.repeat(80), 12, 3).length).toBeLessThanOrEqual(63);
});
