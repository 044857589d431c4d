/**
 * A new scheduler leader decides nothing before its caches hold every write of the leaders
 * before it (issue 13, defect 6): a queue's quota is a sum over all nodes while a bind compares
 * only the nodes it touches, so a cycle from a cache without the old leader's last binds could
 * over-commit the queue. Here the test itself is the old leader: it fills a queue's quota, then
 * its lease is revoked and an in-process scheduler takes over.
 */
import type { Binding, JobRecord, NodeAllocation } from '@batchapi/api';
import { bindPlan, campaign, EtcdStore, type LocalEtcd, startEtcd, submitJob } from '@batchapi/store';
import { type RunningService } from '@batchapi/runtime';
import { SchedulerService, startScheduler } from '../src';
import { waitFor } from '@batchapi/proc';
import { nodeRecord, putNode, putQueue, queuedJob } from './harness';

let etcd: LocalEtcd;
let store: EtcdStore;
let scheduler: RunningService | undefined;

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
});
afterAll(async () => {
  await scheduler?.close().catch(() => undefined);
  await store.close();
  await etcd.stop();
});

const job = (id: string, cpu: number): JobRecord => queuedJob(id, 1, { cpu });

it('runs its first cycle only once every cache reached the revision it won at, and never over-commits the queue', async () => {
  // Queue q may hold one core in all; nothing else changes under queues/, nodes/ or cordons/ from here on.
  await putNode(store, nodeRecord('big', 64, 0, 2 ** 40));
  await putQueue(store, { cpu: 1000 });
  const oldLease = await store.grantLease(5);
  const old = await campaign(store, 'scheduler', 'old-leader', oldLease);
  scheduler = await startScheduler({
    config: { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 2, logLevel: 'error', instanceId: 'new-leader' },
    tuning: { idleMs: 100, busyMs: 5 },
  });
  const svc = scheduler.app.get(SchedulerService);
  const terms: Array<{ wonAt: bigint; caches: Record<string, bigint> }> = [];
  svc.onTermReady = (t) => terms.push(t);

  // The old leader's last bind fills the queue's quota; then work that would need more arrives.
  const filler = (await submitJob(store, job('filler', 1000))).job;
  const binding: Binding = {
    jobId: 'filler',
    tenant: 't',
    queue: 'q',
    node: 'big',
    start: 0,
    end: 1,
    attempt: 1,
    resources: { cpu: 1000 },
    boundAt: Date.now(),
    command: ['true'],
    env: {},
    devices: [[]],
  };
  const bound = await bindPlan(
    store,
    old.fence(),
    [{ job: filler, next: { ...filler.value, phase: 'Running', pending: [] }, bindings: [binding] }],
    new Map([['big', undefined]]),
  );
  expect(bound.bound).toHaveLength(1);
  await submitJob(store, job('over-quota', 500));
  const lastOldWrite = BigInt((await store.get<NodeAllocation>(store.keys.alloc('big')))!.modRevision);

  await oldLease.revoke();
  expect(
    await waitFor(
      () => terms.length,
      (n) => n > 0,
    ),
  ).toBe(1);
  const [term] = terms;
  expect(term.wonAt).toBeGreaterThan(lastOldWrite);
  // Every cache — idle prefixes (queues, nodes, cordons) included — was complete up to the election when the first cycle began.
  for (const [prefix, revision] of Object.entries(term.caches)) expect({ prefix, caughtUp: revision >= term.wonAt }).toEqual({ prefix, caughtUp: true });

  // A cycle of the new term has run (its timestamp metric moved), and it left the queue within its quota.
  const cycled = async () =>
    Number(/batch_scheduler_last_cycle_timestamp_seconds\{[^}]*\} (\S+)/.exec(await (await fetch(`${scheduler!.url}/metrics`)).text())?.[1] ?? 0);
  const readyAt = Date.now() / 1000;
  expect(await waitFor(cycled, (t) => t > readyAt)).toBeGreaterThan(readyAt);
  expect((await store.get<JobRecord>(store.keys.job('over-quota')))?.value.pending).toEqual([{ start: 0, end: 1, attempt: 1 }]);
  expect((await store.get<NodeAllocation>(store.keys.alloc('big')))?.value.used.cpu).toBe(1000);
}, 60_000);
