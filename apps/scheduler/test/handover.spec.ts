/**
 * A scheduler leader that stops (SIGTERM: `close`) hands leadership over before anything else:
 * it resigns its leader key, the standby takes the seat without waiting for the old lease, and a
 * write fenced by the resigned term is refused by etcd. Against a real etcd, two replicas in-process.
 */
import type { Binding } from '@batchapi/api';
import { waitFor, waitUntil } from '@batchapi/proc';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, getLeader, type LocalEtcd, saveUsageHistory, startEtcd, submitJob } from '@batchapi/store';
import { SchedulerService, startScheduler } from '../src';
import { allBindings, nodeRecord, putNode, putQueue, queuedJob } from './harness';

let etcd: LocalEtcd;
let store: EtcdStore;
const replicas: RunningService[] = [];
/** Lease TTL, seconds: long, so that a hand-off that waited for the old lease would still be waiting. */
const TTL_S = 30;

const start = (instanceId: string) =>
  startScheduler({ config: { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: TTL_S, logLevel: 'error', instanceId }, tuning: { idleMs: 100, busyMs: 5 } });

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  await putQueue(store);
  await putNode(store, nodeRecord('n1', 8));
});
afterAll(async () => {
  for (const r of replicas) await r.close().catch(() => undefined);
  await store.close();
  await etcd.stop();
});

it('resigns on stop: the standby leads within a lease TTL of 30 s, the resigned term cannot write, and the new leader binds', async () => {
  const first = await start('s1');
  replicas.push(first);
  expect(await waitUntil(async () => (await getLeader(store, 'scheduler')) === 's1')).toBe(true);
  replicas.push(await start('s2'));
  const old = first.app.get(SchedulerService).leadership!;
  expect(old.held()).toBe(true);
  const stoppedAt = Date.now();
  await first.close();
  // Well within the 30 s the old lease would have held the seat: the seat went with the resign.
  expect(await waitUntil(async () => (await getLeader(store, 'scheduler')) === 's2', { timeoutMs: 5000 })).toBe(true);
  console.log(`scheduler hand-off on stop: ${Date.now() - stoppedAt} ms (lease TTL ${TTL_S} s)`);
  expect(old.held()).toBe(false);
  // A write under the resigned term's fence is refused by etcd itself.
  expect(await saveUsageHistory(store, old.fence(), { at: 1, queues: {} })).toBe(false);
  await submitJob(store, queuedJob('after-handover', 2, { cpu: 1000 }));
  const bound = await waitFor(
    async () => (await allBindings(store)).filter((b: Binding) => b.jobId === 'after-handover'),
    (b) => b.length > 0,
  );
  expect(bound.reduce((n, b) => n + b.end - b.start, 0)).toBe(2);
});
