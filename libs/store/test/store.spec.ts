/**
 * The store's invariants against a real etcd member: durable idempotent submits, CAS that
 * never loses an update, fenced leadership, informers that miss nothing.
 */
import { createServer, type AddressInfo } from 'node:net';
import { type GroupStatus, type JobRecord, type NodeAllocation } from '@batchapi/api';
import { EMPTY_ALLOCATION } from '@batchapi/lifecycle';
import {
  bindPlan,
  campaign,
  CasConflictError,
  EtcdStore,
  getJob,
  IdempotencyConflictError,
  listResults,
  type LocalEtcd,
  reportGroups,
  startEtcd,
  StoreUnavailableError,
  SubmitCommitter,
  submitJob,
  updateJob,
  type Versioned,
  type WatchEvent,
} from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { bindingOf, queuedJob, runningUnit, submittedUnit } from './store-fixture';
import { TcpProxy } from './tcp-proxy';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let etcd: LocalEtcd;
let store: EtcdStore;

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/t/' });
});
afterAll(async () => {
  await store.close();
  await etcd.stop();
});

describe('submitJob', () => {
  it('creates exactly one job under 20 concurrent retries with one idempotency key', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => submitJob(store, queuedJob(`idem-${i}`), { key: 'k-1', requestHash: 'h' })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const ids = new Set(results.map((r) => r.job.value.id));
    expect(ids.size).toBe(1);
    const all = await store.listAll<JobRecord>(store.keys.jobs());
    expect(all.items.filter((kv) => kv.value.id.startsWith('idem-'))).toHaveLength(1);
  });

  it('answers a submit tried again after its answer was lost (no key) with its own job, and another job under the same id as a conflict', async () => {
    const j = queuedJob('lost-answer');
    await submitJob(store, j);
    // bound since the first try: the record changed, what the submit said did not
    await updateJob(store, 'lost-answer', (x) => ({ ...x, phase: 'Running', pending: [] }));
    await expect(submitJob(store, j)).resolves.toMatchObject({ created: true, job: { value: { id: 'lost-answer', phase: 'Running' } } });
    const other = submitJob(store, { ...j, createdAt: j.createdAt + 1 });
    await expect(other).rejects.toBeInstanceOf(CasConflictError);
    await expect(other).rejects.toMatchObject({ code: 'cas_conflict', id: 'lost-answer' });
  });

  it('refuses the same key with a different request as IdempotencyConflictError and writes nothing', async () => {
    await submitJob(store, queuedJob('first'), { key: 'k-2', requestHash: 'h1' });
    const refused = submitJob(store, queuedJob('second'), { key: 'k-2', requestHash: 'h2' });
    await expect(refused).rejects.toBeInstanceOf(IdempotencyConflictError);
    await expect(refused).rejects.toMatchObject({ code: 'idempotency_conflict', reason: 'differentRequest' });
    expect(await getJob(store, 'second')).toBeUndefined();
  });
});

describe('SubmitCommitter (group commit)', () => {
  it('commits 100 concurrent submits in fewer transactions than submits, each answered with its own job', async () => {
    const committer = new SubmitCommitter(store, { maxInflight: 2, maxBatch: 32 });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => committer.submit(queuedJob(`group-${i}`), { key: `gk-${i}`, requestHash: 'h' })));
    expect(results.every((r, i) => r.created && r.job.value.id === `group-${i}`)).toBe(true);
    // The first two go alone (nothing waited yet); the other 98 waited and went in batches of at most 32:
    // 2 + ceil(98 / 32) = 6 transactions, so at most 6 distinct revisions.
    const revisions = new Set(results.map((r) => r.job.modRevision));
    expect(revisions.size).toBeLessThanOrEqual(6);
    const stored = await store.getMany<JobRecord>(results.map((r) => r.job.key));
    expect(stored.map((kv) => kv?.modRevision)).toEqual(results.map((r) => r.job.modRevision));
  });

  it('answers a batch with a reused key, a conflicting key and new keys exactly as single submits would', async () => {
    const first = await submitJob(store, queuedJob('reused-first'), { key: 'gk-reused', requestHash: 'h' });
    await submitJob(store, queuedJob('other-first'), { key: 'gk-other', requestHash: 'h1' });
    const committer = new SubmitCommitter(store, { maxInflight: 1 });
    // The first submit goes alone; the next four wait and are tried as one batch, which fails on
    // the reused keys and is retried one by one.
    const [, retry, conflict, fresh, dup] = await Promise.allSettled([
      committer.submit(queuedJob('lead'), { key: 'gk-lead', requestHash: 'h' }),
      committer.submit(queuedJob('reused-second'), { key: 'gk-reused', requestHash: 'h' }),
      committer.submit(queuedJob('other-second'), { key: 'gk-other', requestHash: 'h2' }),
      committer.submit(queuedJob('fresh'), { key: 'gk-fresh', requestHash: 'h' }),
      committer.submit(queuedJob('fresh-again'), { key: 'gk-fresh', requestHash: 'h' }),
    ]);
    expect(retry).toMatchObject({ status: 'fulfilled', value: { created: false, job: { value: { id: first.job.value.id } } } });
    expect(conflict).toMatchObject({ status: 'rejected', reason: { code: 'idempotency_conflict', reason: 'differentRequest' } });
    expect(fresh).toMatchObject({ status: 'fulfilled', value: { created: true, job: { value: { id: 'fresh' } } } });
    // The same key twice in flight: the second waits for the next transaction and finds the first's job.
    expect(dup).toMatchObject({ status: 'fulfilled', value: { created: false, job: { value: { id: 'fresh' } } } });
    expect(await getJob(store, 'reused-second')).toBeUndefined();
    expect(await getJob(store, 'other-second')).toBeUndefined();
    expect(await getJob(store, 'fresh-again')).toBeUndefined();
  });

  it('commits the fresh submits of a batch that failed on a retried key together, not one by one', async () => {
    const first = await submitJob(store, queuedJob('retried-first'), { key: 'gk-retried', requestHash: 'h' });
    const committer = new SubmitCommitter(store, { maxInflight: 1, maxBatch: 32 });
    // 'lead' goes alone; the next 21 wait and form one batch, which fails on the retried key: one
    // read finds that key taken, it is answered on its own, and the 20 others go in one transaction
    // (one revision; one by one they had 20).
    const [, ...rest] = await Promise.all([
      committer.submit(queuedJob('lead-2'), { key: 'gk-lead-2', requestHash: 'h' }),
      committer.submit(queuedJob('retried-second'), { key: 'gk-retried', requestHash: 'h' }),
      ...Array.from({ length: 20 }, (_, i) => committer.submit(queuedJob(`fresh-${i}`), { key: `gk-fresh-${i}`, requestHash: 'h' })),
    ]);
    const [retry, ...fresh] = rest;
    expect(retry).toMatchObject({ created: false, job: { value: { id: first.job.value.id } } });
    expect(fresh.every((r, i) => r.created && r.job.value.id === `fresh-${i}`)).toBe(true);
    expect(new Set(fresh.map((r) => r.job.modRevision)).size).toBe(1);
    const stored = await store.getMany<JobRecord>(fresh.map((r) => r.job.key));
    expect(stored.map((kv) => kv?.modRevision)).toEqual(fresh.map((r) => r.job.modRevision));
  });

  it('answers StoreUnavailableError (503) without sending a submit that waited past maxWaitMs behind a slow transaction', async () => {
    let now = 0;
    const committer = new SubmitCommitter(store, { maxInflight: 1, maxWaitMs: 2000, clock: () => now });
    // Both arrive at 0 ms; the first goes at once; by the time its transaction is done the clock says 2,001 ms.
    const first = committer.submit(queuedJob('waited-first')).finally(() => {
      now = 2001;
    });
    const results = await Promise.allSettled([first, committer.submit(queuedJob('waited-second'))]);
    const [, second] = results;
    expect(results[0]).toMatchObject({ status: 'fulfilled', value: { created: true } });
    expect(second).toMatchObject({ status: 'rejected', reason: expect.any(StoreUnavailableError) });
    expect(second).toMatchObject({ reason: { code: 'store_unavailable', retryAfterSeconds: 1 } });
    expect(await getJob(store, 'waited-second')).toBeUndefined();
  });

  it('answers a waiting submit 503 once it has waited maxWaitMs, while the transaction ahead of it is still under way', async () => {
    // An endpoint that takes connections and never answers: the first submit's transaction hangs until its deadline.
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const stuck = new EtcdStore({ endpoints: [`http://127.0.0.1:${(silent.address() as AddressInfo).port}`], prefix: '/t/' });
    try {
      const committer = new SubmitCommitter(stuck, { maxInflight: 1, maxWaitMs: 200 });
      const order: string[] = [];
      const first = committer.submit(queuedJob('stuck-first')).catch(() => order.push('first'));
      const second = committer.submit(queuedJob('stuck-second')).catch((err: { code?: string }) => order.push(`second:${err.code}`));
      await Promise.all([first, second]);
      expect(order).toEqual(['second:store_unavailable', 'first']);
    } finally {
      await stuck.close();
      silent.close();
    }
  });

  it('rejects every submit of a batch when etcd cannot be reached, and writes nothing', async () => {
    const dead = new EtcdStore({ endpoints: ['http://127.0.0.1:1'], prefix: '/t/' });
    try {
      const committer = new SubmitCommitter(dead, { maxInflight: 1 });
      const settled = await Promise.allSettled(Array.from({ length: 3 }, (_, i) => committer.submit(queuedJob(`unreachable-${i}`))));
      expect(settled.every((s) => s.status === 'rejected')).toBe(true);
      expect(await getJob(store, 'unreachable-1')).toBeUndefined();
    } finally {
      await dead.close();
    }
  });
});

describe('updateJob', () => {
  it('loses no update when 10 writers increment the same counter concurrently', async () => {
    await submitJob(store, queuedJob('counter'));
    await Promise.all(
      Array.from({ length: 10 }, () => updateJob(store, 'counter', (j) => ({ ...j, counts: { ...j.counts, succeeded: j.counts.succeeded + 1 } }))),
    );
    expect((await getJob(store, 'counter'))!.value.counts.succeeded).toBe(10);
  });

  it('a compare on a stale mod revision fails and leaves the value as it was', async () => {
    const cur = (await getJob(store, 'counter'))!;
    await updateJob(store, 'counter', (j) => ({ ...j, spec: { ...j.spec, priority: 5 } }));
    const res = await store.txn(
      [{ key: cur.key, modRevision: cur.modRevision }],
      [{ put: cur.key, value: { ...cur.value, spec: { ...cur.value.spec, priority: 9 } } }],
    );
    expect(res.succeeded).toBe(false);
    expect((await getJob(store, 'counter'))!.value.spec.priority).toBe(5);
  });
});

describe('leadership', () => {
  it('resigns through a call that etcd never answered: the fenced delete is sent again, and the key goes while the lease holds', async () => {
    // The leader reaches etcd through a proxy: its first resign call is held there and times out
    // unanswered (500 ms), then the held bytes are dropped with the connection, never reaching etcd.
    const proxy = await TcpProxy.start(etcd.endpoints[0]);
    const leaderStore = new EtcdStore({ endpoints: [proxy.url], callTimeoutMs: 500 });
    try {
      const lease = await leaderStore.grantLease(10);
      const leader = await campaign(leaderStore, 'resign-retry', 'R', lease);
      proxy.holdUpstream();
      const resigned = leader.resign();
      await sleep(800);
      proxy.releaseUpstream();
      proxy.dropConnections(); // in the same tick: what was held is discarded, new connections pass
      await resigned;
      // Gone by the resign, not by the lease: the lease (10 s) is still held, and etcd says so.
      expect(await store.get(leader.key)).toBeUndefined();
      expect(lease.alive()).toBe(true);
      expect(Number((await store.client.leaseClient.leaseTimeToLive({ ID: lease.id })).TTL)).toBeGreaterThan(0);
      lease.release();
    } finally {
      await leaderStore.close();
      await proxy.close();
    }
  });

  it("a restarted process with the same identity does not adopt the leader key of its predecessor's lease", async () => {
    const before = await store.grantLease(2);
    const first = await campaign(store, 'same-name', 'S', before);
    before.release(); // the process died: nobody renews its lease any more
    // the same identity on a new lease (a restart reusing the name): it must wait for the old lease
    const after = await store.grantLease(2);
    const started = Date.now();
    const second = await campaign(store, 'same-name', 'S', after, { pollMs: 20 });
    // it got the seat only once the old lease expired (2 s TTL), with a new fence
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(second.createRevision).not.toBe(first.createRevision);
    // while on the same lease, the seat is still its own (a restart of the object, not the process)
    const again = await campaign(store, 'same-name', 'S', after);
    expect(again.createRevision).toBe(second.createRevision);
  });

  it("refuses a deposed leader's bind and accepts the new leader's", async () => {
    const leaseA = await store.grantLease(2);
    const a = await campaign(store, 'sched-test', 'A', leaseA);
    // A is deposed: its lease is revoked, so its key vanishes and B takes the seat.
    await leaseA.revoke();
    const leaseB = await store.grantLease(2);
    const b = await campaign(store, 'sched-test', 'B', leaseB, { pollMs: 20 });
    expect(b.createRevision).not.toBe(a.createRevision);

    const unit = await submittedUnit(store, queuedJob('fenced'), 'n1');
    const old = await bindPlan(store, a.fence(), [unit], new Map([['n1', undefined]]));
    expect(old.bound).toHaveLength(0);
    expect(await store.get(store.keys.binding('n1', 'fenced', 0, 1))).toBeUndefined();
    const cur = await bindPlan(store, b.fence(), [unit], new Map([['n1', undefined]]));
    expect(cur.bound).toHaveLength(1);
    expect(await store.get(store.keys.binding('n1', 'fenced', 0, 1))).toBeDefined();
    await leaseB.revoke();
  });
});

describe('informer', () => {
  it('lists, then sees every later change in order', async () => {
    await store.txn([], [{ put: '/t/inf/a', value: 1 }]);
    const seen: string[] = [];
    let listed: number[] = [];
    const inf = await store.inform<number>('/t/inf/', {
      onSync: (items) => {
        listed = items.map((i) => i.value);
      },
      onEvent: (ev: WatchEvent<number>) => seen.push(`${ev.type}:${ev.key}:${ev.value ?? ''}`),
    });
    for (let i = 0; i < 50; i++) await store.txn([], [{ put: `/t/inf/k${i}`, value: i }]);
    await store.txn([], [{ delete: '/t/inf/a' }]);
    await waitFor(
      () => seen.length,
      (n) => n >= 51,
      { timeoutMs: 5000, intervalMs: 20 },
    );
    await inf.stop();
    expect(listed).toEqual([1]);
    expect(seen).toHaveLength(51);
    expect(seen[0]).toBe('put:/t/inf/k0:0');
    expect(seen[49]).toBe('put:/t/inf/k49:49');
    expect(seen[50]).toBe('delete:/t/inf/a:');
  });
});

describe('bindPlan', () => {
  it('commits a unit too large for one transaction in parts, each comparing the revision the last one wrote', async () => {
    const lease = await store.grantLease(5);
    const leader = await campaign(store, 'big-bind', 'L', lease);
    const { job: j } = await submitJob(store, queuedJob('big', 100));
    // 100 one-task groups on 100 nodes: 40 groups a part → 3 transactions
    const bindings = Array.from({ length: 100 }, (_, i) => bindingOf(j.value, `bn-${i}`, { start: i, end: i + 1 }));
    const res = await bindPlan(store, leader.fence(), [runningUnit(j, bindings)], new Map());
    expect(res.txns).toBe(3);
    expect(res.refused).toHaveLength(0);
    expect((await getJob(store, 'big'))!.value.pending).toEqual([]);
    expect((await store.listAll(store.keys.groupsOf('big'))).items).toHaveLength(100);
    await lease.revoke();
  });

  it('refuses only the units on a node that lost room or a job that changed since the decision; a node that only got room back keeps its units', async () => {
    const lease = await store.grantLease(5);
    const leader = await campaign(store, 'stale-bind', 'L', lease);
    // 5 one-task jobs on nodes sn-0..4 (2 of 32 cores used on each), decided on allocations as they
    // were; then, before the plan is applied: an executor gives 1 core back on sn-1, someone takes
    // 3 more cores on sn-2, and job sb-4 is cancelled.
    const used = (cpu: number): NodeAllocation => ({ ...EMPTY_ALLOCATION, used: { cpu, memory: 0 } });
    const allocs = new Map<string, Versioned<NodeAllocation> | undefined>();
    const units = [];
    for (let k = 0; k < 5; k++) {
      await store.txn([], [{ put: store.keys.alloc(`sn-${k}`), value: used(2000) }]);
      allocs.set(`sn-${k}`, await store.get<NodeAllocation>(store.keys.alloc(`sn-${k}`)));
      units.push(await submittedUnit(store, queuedJob(`sb-${k}`), `sn-${k}`));
    }
    await store.txn([], [{ put: store.keys.alloc('sn-1'), value: used(1000) }]);
    await store.txn([], [{ put: store.keys.alloc('sn-2'), value: used(5000) }]);
    await updateJob(store, 'sb-4', (j) => ({ ...j, cancelRequestedAt: 1 }));
    const res = await bindPlan(store, leader.fence(), units, allocs);
    // one transaction refused (sn-1, sn-2 and sb-4 changed), then the other three in one
    expect(res.bound.map((u) => u.next.id)).toEqual(['sb-0', 'sb-1', 'sb-3']);
    expect(res.refused.map((u) => u.next.id).sort()).toEqual(['sb-2', 'sb-4']);
    expect(res.txns).toBe(2);
    expect((await store.listAll(store.keys.groupsOf('sb-2'))).items).toHaveLength(0);
    expect((await getJob(store, 'sb-3'))!.value.phase).toBe('Running');
    // sn-1's task is reserved on the allocation as it is now: 1000 + 1000 = 2000 millicores
    expect((await store.get<NodeAllocation>(store.keys.alloc('sn-1')))!.value.used.cpu).toBe(2000);
    expect((await store.get<NodeAllocation>(store.keys.alloc('sn-2')))!.value.used.cpu).toBe(5000);
    await lease.revoke();
  });

  it('refuses the whole plan when the fence fails (leadership lost)', async () => {
    const lease = await store.grantLease(5);
    const leader = await campaign(store, 'fenced-bind', 'L', lease);
    const unit = await submittedUnit(store, queuedJob('fb-0'), 'fn');
    await lease.revoke();
    const res = await bindPlan(store, leader.fence(), [unit], new Map([['fn', undefined]]));
    expect(res).toMatchObject({ bound: [], txns: 1 });
    expect(res.refused).toHaveLength(1);
    expect(await store.get(store.keys.binding('fn', 'fb-0', 0, 1))).toBeUndefined();
  });

  it('binds nothing to a node whose executor is gone since the decision (its key deleted, or made again by a new executor)', async () => {
    const lease = await store.grantLease(5);
    const leader = await campaign(store, 'gone-node-bind', 'L', lease);
    const executor = await store.grantLease(5);
    await store.txn([], [{ put: store.keys.node('gn'), value: { name: 'gn' }, lease: executor.id }]);
    const seen = (await store.get(store.keys.node('gn')))!.createRevision;
    const unitOf = (id: string) => submittedUnit(store, queuedJob(id), 'gn');
    // the executor's lease expired: its node key is gone
    await executor.revoke();
    const gone = await bindPlan(store, leader.fence(), [await unitOf('gn-0')], new Map([['gn', undefined]]), { nodes: new Map([['gn', seen]]) });
    expect(gone.bound).toHaveLength(0);
    expect(await store.get(store.keys.binding('gn', 'gn-0', 0, 1))).toBeUndefined();
    // a new executor registered the node again: not the incarnation the decision saw
    const again = await store.grantLease(5);
    await store.txn([], [{ put: store.keys.node('gn'), value: { name: 'gn' }, lease: again.id }]);
    const reborn = await bindPlan(store, leader.fence(), [await unitOf('gn-1')], new Map([['gn', undefined]]), { nodes: new Map([['gn', seen]]) });
    expect(reborn.bound).toHaveLength(0);
    // decided on what is there now, it binds
    const now = (await store.get(store.keys.node('gn')))!.createRevision;
    const fresh = await bindPlan(store, leader.fence(), [await unitOf('gn-2')], new Map([['gn', undefined]]), { nodes: new Map([['gn', now]]) });
    expect(fresh.bound).toHaveLength(1);
    await again.revoke();
    await lease.revoke();
  });
});

describe('reportGroups', () => {
  it('splits a batch whose job records (with items) are too large for one transaction, and stores each result with its outcome', async () => {
    const lease = await store.grantLease(5);
    const leader = await campaign(store, 'report-big', 'L', lease);
    await store.txn([], [{ put: store.keys.node('rn'), value: { name: 'rn' }, lease: lease.id }]);
    // 8 one-task jobs of ~200 KB of items each: 8 × 200 KB = 1.6 MB of job records, over etcd's 1.5 MiB request limit: the 8 reports cannot share one txn.
    const ids = Array.from({ length: 8 }, (_, i) => `rep-${i}`);
    for (const id of ids) {
      const unit = await submittedUnit(store, queuedJob(id, 1, { items: ['x'.repeat(200_000)] }), 'rn');
      await bindPlan(store, leader.fence(), [unit], new Map([['rn', await store.get(store.keys.alloc('rn'))]]));
    }
    const statuses = await store.getMany<GroupStatus>(ids.map((id) => store.keys.group(id, 0, 1)));
    const res = await reportGroups(
      store,
      'rn',
      lease.id,
      statuses.map((st, k) => ({
        status: { ...st!.value, tasks: [{ state: 'Succeeded' as const, exitCode: 0 }] },
        statusRevision: st!.modRevision,
        results: [{ index: 0, attempt: 1, value: { k } }],
      })),
      2,
    );
    expect(res.accepted.size).toBe(8);
    for (const [k, id] of ids.entries()) {
      expect((await getJob(store, id))!.value.phase).toBe('Succeeded');
      expect(await listResults(store, id)).toEqual([{ index: 0, attempt: 1, value: { k } }]);
    }
    await lease.revoke();
  });
});
