/**
 * An executor that runs pods loads the Kubernetes client before it takes its process lease.
 * The load is synchronous; on a busy machine it once took longer than the lease's TTL after the
 * grant, so the executor fenced itself and its registration failed ("requested lease not
 * found"). Here the load is made to block longer than the TTL (a synchronous sleep, no CPU).
 */
import { type NodeRecord } from '@batchapi/api';
import { type RunningExecutor } from '../src';
import { FakeKube } from './fake-kube';
import { startNode, useTestbed } from './harness';

/** Longer than the harness's 5 s lease TTL. */
const LOAD_MS = 6_000;
let loads = 0;
jest.mock('@kubernetes/client-node', () => {
  loads++;
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LOAD_MS);
  return jest.requireActual('@kubernetes/client-node');
});

const tb = useTestbed();
const kube = new FakeKube([{ name: 'k1', allocatable: { cpu: '4', memory: '8Gi', pods: '110' } }]);
let ex: RunningExecutor | undefined;
afterAll(async () => {
  await ex?.close();
  await kube.stop();
});

it('registers although loading the client blocks for longer than the lease TTL: the load comes before the lease', async () => {
  await kube.start();
  let fenced = false;
  ex = await startNode(
    tb,
    'kube',
    { backend: 'kubernetes', kubernetes: { namespace: 'tasks', image: 'busybox:1.36', rewatchMs: 50, server: kube.url } },
    { onFenced: () => (fenced = true) },
  );
  expect(loads).toBe(1);
  const node = (await tb.store.get<NodeRecord>(tb.store.keys.node('kube')))!.value;
  // 4 CPUs, 8 GiB
  expect(node.capacity).toMatchObject({ cpu: 4000, memory: 8 * 2 ** 30 });
  expect(fenced).toBe(false);
});
