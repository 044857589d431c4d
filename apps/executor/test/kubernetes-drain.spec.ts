/**
 * The drain of a Kubernetes-backend executor (SIGTERM), against the fake API server: the node
 * record reports `kubernetes` isolation; while it drains, running task pods are not deleted — a
 * pod that completes within the grace ends `Succeeded` — and only the pods still running when the
 * grace is over are deleted (gracefully) and handed back `NodeLost`, no retry charged.
 */
import { waitFor } from '@batchapi/proc';
import { getNode } from '@batchapi/store';
import { podName, type RunningExecutor } from '../src';
import { FakeKube } from './fake-kube';
import { bind, groupOf, jobOf, startNode, useTestbed } from './harness';

const tb = useTestbed();
const kube = new FakeKube([{ name: 'k1', allocatable: { cpu: '8', memory: '32Gi', pods: '110' } }]);
const running: RunningExecutor[] = [];

beforeAll(() => kube.start());
afterAll(async () => {
  for (const ex of running) await ex.close();
  await kube.stop();
});

async function kubeNode(name: string, drainGraceMs: number): Promise<RunningExecutor> {
  const ex = await startNode(tb, name, {
    backend: 'kubernetes',
    drainGraceMs,
    kubernetes: { namespace: 'tasks', image: 'busybox:1.36', rewatchMs: 50, server: kube.url },
  });
  running.push(ex);
  return ex;
}

async function runningPod(node: string, jobId: string): Promise<string> {
  await bind(tb, node, jobId, ['sh', '-c', 'sleep 600'], 1);
  const name = podName(jobId, 0, 1);
  await waitFor(
    async () => kube.pods.get(`tasks/${name}`)?.status.phase,
    (p) => p === 'Running',
    { timeoutMs: 5000 },
  );
  await waitFor(
    () => groupOf(tb, jobId),
    (g) => g?.tasks[0].state === 'Running',
  );
  return name;
}

it('reports kubernetes isolation, keeps a running pod through the drain and lets it complete: Succeeded, not requeued', async () => {
  const ex = await kubeNode('kube-drain-a', 20000);
  expect((await getNode(tb.store, 'kube-drain-a'))?.isolation).toEqual({ kind: 'kubernetes' });
  const pod = await runningPod('kube-drain-a', 'k-completes');
  const drained = ex.agent.drain();
  await waitFor(
    () => getNode(tb.store, 'kube-drain-a'),
    (n) => n?.draining !== undefined,
  );
  // Draining: the pod runs on, not deleted.
  expect(kube.deleted).not.toContain(pod);
  expect(kube.pods.get(`tasks/${pod}`)?.status.phase).toBe('Running');
  kube.complete(pod);
  expect(await drained).toBe(0);
  await ex.close();
  expect((await groupOf(tb, 'k-completes'))?.tasks[0]).toMatchObject({ state: 'Succeeded', exitCode: 0 });
  expect(await jobOf(tb, 'k-completes')).toMatchObject({ phase: 'Succeeded' });
});

it('deletes only the pods still running when the drain grace is over, and hands them back NodeLost', async () => {
  const ex = await kubeNode('kube-drain-b', 300);
  const pod = await runningPod('kube-drain-b', 'k-outlives');
  // 1 pod still running when the 300 ms grace ran out
  expect(await ex.agent.drain()).toBe(1);
  expect(kube.deleted).not.toContain(pod);
  await ex.close();
  expect(kube.deleted).toContain(pod);
  expect((await groupOf(tb, 'k-outlives'))?.tasks[0]).toMatchObject({ state: 'Failed', reason: 'NodeLost' });
  expect(await jobOf(tb, 'k-outlives')).toMatchObject({ pending: [{ start: 0, end: 1, attempt: 2 }], counts: { failed: 0 } });
});
