/**
 * A cycle over a backlog stays cooperative: it yields to the event loop between its phases
 * (the process lease's keep-alive and self-fence check run on the same loop), and it considers
 * at most `maxJobs` pending jobs, the rest in later cycles through a rotating window. Structural
 * properties only: event-loop turns taken during a cycle, and which jobs a cycle considered.
 */
import type { JobRecord } from '@batchapi/api';
import { campaign, EtcdStore, type Leadership, type LocalEtcd, MAX_TXN_OPS, type Op, startEtcd } from '@batchapi/store';
import { SchedulerCache } from '../src/cache';
import { runCycle } from '../src/cycle';
import { nodeRecord, putNode, putQueue, queuedJob } from './harness';

const BACKLOG = 3000;
let etcd: LocalEtcd;
let store: EtcdStore;
let cache: SchedulerCache;
let leadership: Leadership;

function job(i: number): JobRecord {
  return { ...queuedJob(`bk-${String(i).padStart(5, '0')}`, 1, { cpu: 1000 }), createdAt: 1_000_000 + i };
}

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  // Queue q has no quota left (nominal 0 CPUs, no cohort): every job stays pending, and a cycle
  // does no I/O at all — no bind, no reclaim, no preemption — so only its own yields give the
  // event loop a turn.
  await putNode(store, nodeRecord('n1', 64, 0, 2 ** 38));
  await putQueue(store, { cpu: 0 });
  const ops: Op[] = Array.from({ length: BACKLOG }, (_, i) => ({ put: store.keys.job(job(i).id), value: job(i) }));
  for (let i = 0; i < ops.length; i += MAX_TXN_OPS) await store.txn([], ops.slice(i, i + MAX_TXN_OPS));
  cache = new SchedulerCache(store);
  await cache.start();
  leadership = await campaign(store, 'scheduler', 'backlog-test', await store.grantLease(5));
}, 60_000);
afterAll(async () => {
  await cache?.stop();
  await store?.close();
  await etcd?.stop();
});

it('yields to the event loop between the phases of a cycle over a backlog', async () => {
  expect(cache.jobs.items.size).toBe(BACKLOG);
  let turns = 0;
  let ticking = true;
  const tick = () => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const out = await runCycle(store, cache, leadership, Date.now(), 100_000, { budget: new Map(), protectMs: 60_000 }, undefined, { maxJobs: BACKLOG });
  ticking = false;
  expect(out.placed).toBe(0);
  // A cycle that never yielded would let the ticker run no turn at all before it returned.
  expect(turns).toBeGreaterThanOrEqual(2);
});

it('considers at most maxJobs pending jobs per cycle and defers the rest to the next cycles', async () => {
  const maxJobs = 500;
  let cursor = 0;
  const cursors = new Set<number>();
  for (let c = 0; c < 3; c++) {
    const out = await runCycle(store, cache, leadership, Date.now(), 100_000, { budget: new Map(), protectMs: 60_000 }, undefined, { maxJobs, cursor });
    expect(out.considered).toBe(maxJobs);
    expect(out.deferred).toBe(BACKLOG - maxJobs);
    // The window over the deferred jobs moves on from cycle to cycle.
    expect(cursors.has(out.cursor)).toBe(false);
    cursors.add(out.cursor);
    cursor = out.cursor;
  }
});
