/**
 * The store's per-entity repositories against a real etcd member: create-or-replace by
 * compare-and-swap, a queue deleted only as it was read, the fresh cluster read, fenced job
 * and usage-history writes, cordons and the leader's identity.
 */
import type { Binding, Cordon, JobRecord, NodeAllocation, NodeRecord, Queue, SemaphoreRecord, Tenant } from '@batchapi/api';
import {
  CasConflictError,
  campaign,
  clearCordon,
  deleteQueue,
  EtcdStore,
  getAllocation,
  getLeader,
  getNode,
  getQueue,
  getTenant,
  loadUsageHistory,
  type LocalEtcd,
  ProcessLease,
  putQueue,
  putVersioned,
  readCluster,
  readFleet,
  registerNodes,
  replaceJob,
  saveUsageHistory,
  setCordon,
  startEtcd,
  tenantAndQueues,
  updateNodeRecord,
} from '@batchapi/store';

let etcd: LocalEtcd;
let store: EtcdStore;
/** Another process's connection: the concurrent writer. */
let other: EtcdStore;

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/repo/' });
  other = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/repo/' });
});
afterEach(() => {
  store.seam = undefined;
});
afterAll(async () => {
  await store.close();
  await other.close();
  await etcd.stop();
});

function queue(name: string, weight = 1): Queue {
  return { name, tenant: 'a', nominal: { cpu: 4000 }, weight };
}

function job(id: string, q: string, phase: JobRecord['phase'] = 'Queued'): JobRecord {
  return {
    id,
    tenant: 'a',
    queue: q,
    phase,
    createdAt: 1,
    spec: { name: 'j', command: ['true'], env: {}, resources: { cpu: 1000 }, tasks: 1, priority: 0, labels: {} },
    pending: [{ start: 0, end: 1, attempt: 1 }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
  };
}

/** Before each write that compares `key`, another writer changes it (the write then loses its compare). */
function changeBeforeEachWriteOf(key: string, value: (n: number) => unknown): void {
  let n = 0;
  store.seam = async (call, send) => {
    if (call.writes && call.compares?.some((c) => c.key === key)) await other.txn([], [{ put: key, value: value(++n) }]);
    return send();
  };
}

describe('putVersioned', () => {
  it('creates a record, then replaces it, and leaves an equal value unwritten', async () => {
    const key = store.keys.queue('pv-1');
    expect(await putVersioned(store, key, queue('pv-1'))).toBe('created');
    expect(await putVersioned(store, key, queue('pv-1', 2))).toBe('replaced');
    const written = await store.get<Queue>(key);
    expect(written?.value.weight).toBe(2);
    expect(await putVersioned(store, key, queue('pv-1', 2))).toBe('unchanged');
    expect((await store.get(key))?.modRevision).toBe(written?.modRevision);
  });

  it('refuses with CasConflictError when another writer changes the record before every try, and the other write stands', async () => {
    const key = store.keys.queue('pv-2');
    await putVersioned(store, key, queue('pv-2'));
    changeBeforeEachWriteOf(key, (n) => queue('pv-2', 100 + n));
    const refused = putVersioned(store, key, queue('pv-2', 7), 'queue pv-2');
    await expect(refused).rejects.toBeInstanceOf(CasConflictError);
    await expect(refused).rejects.toMatchObject({ code: 'cas_conflict', id: 'pv-2' });
    store.seam = undefined;
    expect((await getQueue(store, 'pv-2'))?.value.weight).toBeGreaterThan(100);
  });

  it('creates only while absent: a record another writer created meanwhile is read again and replaced by compare', async () => {
    const key = store.keys.queue('pv-3');
    let raced = false;
    store.seam = async (call, send) => {
      if (!raced && call.writes && call.compares?.some((c) => c.key === key && 'absent' in c)) {
        raced = true;
        await other.txn([], [{ put: key, value: queue('pv-3', 5) }]);
      }
      return send();
    };
    // The first try's "absent" compare fails; the second reads the other writer's record and replaces it.
    expect(await putVersioned(store, key, queue('pv-3', 9))).toBe('replaced');
    expect(raced).toBe(true);
    expect((await getQueue(store, 'pv-3'))?.value.weight).toBe(9);
  });
});

describe('queues and tenants', () => {
  it('reads a tenant and its queues at one revision, undefined for what does not exist', async () => {
    await putVersioned(store, store.keys.tenant('a'), { name: 'a', weight: 1 } satisfies Tenant);
    await putQueue(store, queue('tq-1'));
    expect(await getTenant(store, 'a')).toEqual({ name: 'a', weight: 1 });
    expect(await getTenant(store, 'nobody')).toBeUndefined();
    const read = await tenantAndQueues(store, 'a', ['tq-1', 'tq-missing']);
    expect(read.tenant?.name).toBe('a');
    expect(read.queues.map((q) => q?.name)).toEqual(['tq-1', undefined]);
  });

  it('deleteQueue deletes an idle queue, says absent for none, and busy while a job in it has not finished', async () => {
    await putQueue(store, queue('dq-idle'));
    await putQueue(store, queue('dq-busy'));
    await store.txn([], [{ put: store.keys.job('dq-j1'), value: job('dq-j1', 'dq-busy', 'Running') }]);
    await store.txn([], [{ put: store.keys.job('dq-j2'), value: job('dq-j2', 'dq-busy', 'Succeeded') }]);
    expect(await deleteQueue(store, 'dq-idle')).toEqual({ outcome: 'deleted' });
    expect(await getQueue(store, 'dq-idle')).toBeUndefined();
    expect(await deleteQueue(store, 'dq-idle')).toEqual({ outcome: 'absent' });
    // one unfinished job (the finished one does not count)
    expect(await deleteQueue(store, 'dq-busy')).toEqual({ outcome: 'busy', unfinishedJobs: 1 });
    expect(await getQueue(store, 'dq-busy')).toBeDefined();
  });

  it('deleteQueue refuses a queue changed between its read and the delete with CasConflictError, and the queue stays as changed', async () => {
    await putQueue(store, queue('dq-changed'));
    changeBeforeEachWriteOf(store.keys.queue('dq-changed'), () => queue('dq-changed', 3));
    const refused = deleteQueue(store, 'dq-changed');
    await expect(refused).rejects.toBeInstanceOf(CasConflictError);
    await expect(refused).rejects.toMatchObject({ code: 'cas_conflict', id: 'dq-changed' });
    store.seam = undefined;
    expect((await getQueue(store, 'dq-changed'))?.value.weight).toBe(3);
  });
});

describe('readCluster', () => {
  it('returns the nodes, allocations by node, tenants, queues, jobs, cordons, bindings, semaphores and GPU usage that were written, as plain values', async () => {
    const s = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/cluster-read/' });
    try {
      const node: NodeRecord = { name: 'n1', url: 'http://n1', capacity: { cpu: 8000 }, labels: { zone: 'a' }, taints: [], gpus: [], registeredAt: 1 };
      const alloc: NodeAllocation = { used: { cpu: 1000 }, devices: {} };
      const cordon: Cordon = { node: 'n1', reason: 'disk', by: 'ops', at: 5 };
      const binding = { jobId: 'j1', node: 'n1', queue: 'q1', start: 0, end: 1, attempt: 1 } as unknown as Binding;
      const semaphore: SemaphoreRecord = { name: 'db/pool', tenant: 'a', capacity: 4, createdAt: 1, updatedAt: 1 };
      await s.txn(
        [],
        [
          { put: s.keys.node('n1'), value: node },
          { put: s.keys.alloc('n1'), value: alloc },
          { put: s.keys.queue('q1'), value: queue('q1') },
          { put: s.keys.job('j1'), value: job('j1', 'q1') },
          { put: s.keys.binding('n1', 'j1', 0, 1), value: binding },
          { put: s.keys.semaphore('a/db/pool'), value: semaphore },
          { put: s.keys.tenant('a'), value: { name: 'a', weight: 1, maxRunningTasks: 5 } },
          { put: s.keys.gpuUsage(), value: { at: 7, queues: { q1: { '0': 3600 } }, tenants: { a: { '0': 3600 } } } },
        ],
      );
      await setCordon(s, cordon);
      const read = await readCluster(s);
      expect(read).toEqual({
        nodes: [node],
        allocs: new Map([['n1', alloc]]),
        cordons: [cordon],
        queues: [queue('q1')],
        tenants: [{ name: 'a', weight: 1, maxRunningTasks: 5 }],
        jobs: [job('j1', 'q1')],
        bindings: [binding],
        semaphores: [semaphore],
        gpuUsage: { at: 7, queues: { q1: { '0': 3600 } }, tenants: { a: { '0': 3600 } } },
      });
      expect(await readFleet(s)).toEqual({ nodes: [node], allocs: new Map([['n1', alloc]]), cordons: [cordon] });
      expect(await getNode(s, 'n1')).toEqual(node);
      expect(await getAllocation(s, 'n1')).toEqual(alloc);
      expect(await getNode(s, 'n2')).toBeUndefined();

      await clearCordon(s, 'n1');
      expect((await readFleet(s)).cordons).toEqual([]);
    } finally {
      await s.close();
    }
  });
});

describe('fenced writes of the scheduler leader', () => {
  it('replaceJob and saveUsageHistory write while the fence holds, and refuse a changed job or a lost fence', async () => {
    const lease = new ProcessLease(store, 10);
    await lease.ready();
    try {
      const leadership = await campaign(store, 'repo-scheduler', 'sched-1', lease);
      expect(await getLeader(store, 'repo-scheduler')).toBe('sched-1');
      expect(await getLeader(store, 'nobody-leads')).toBeUndefined();

      await store.txn([], [{ put: store.keys.job('rj-1'), value: job('rj-1', 'q') }]);
      const read = (await store.get<JobRecord>(store.keys.job('rj-1')))!;
      const failed = { ...read.value, phase: 'Failed' as const };
      expect(await replaceJob(store, leadership.fence(), read, failed)).toBe(true);
      // the same read again: the job has changed since (this very write)
      expect(await replaceJob(store, leadership.fence(), read, { ...read.value, phase: 'Cancelled' })).toBe(false);
      expect((await store.get<JobRecord>(store.keys.job('rj-1')))?.value.phase).toBe('Failed');

      expect(await loadUsageHistory(store)).toBeUndefined();
      const history = { at: 10, queues: { q: { cpu: 500 } } };
      expect(await saveUsageHistory(store, leadership.fence(), history)).toBe(true);
      expect(await loadUsageHistory(store)).toEqual(history);

      await leadership.resign();
      const current = (await store.get<JobRecord>(store.keys.job('rj-1')))!;
      expect(await replaceJob(store, leadership.fence(), current, { ...current.value, phase: 'Cancelled' })).toBe(false);
      expect(await saveUsageHistory(store, leadership.fence(), { at: 20, queues: {} })).toBe(false);
      expect(await loadUsageHistory(store)).toEqual(history);
      expect(await getLeader(store, 'repo-scheduler')).toBeUndefined();
    } finally {
      await lease.revoke();
    }
  });
});

describe('node records of an executor', () => {
  const node = (name: string): NodeRecord => ({ name, url: `http://${name}`, capacity: { cpu: 8000 }, labels: {}, taints: [], gpus: [], registeredAt: 1 });

  it('registers nodes on a lease (they vanish with it), and changes one only while it is as read and on that lease', async () => {
    const lease = await store.grantLease(5);
    const names = Array.from({ length: 130 }, (_, i) => `reg-${String(i).padStart(3, '0')}`);
    // 130 nodes: two transactions of at most 128 puts
    await registerNodes(store, names.map(node), lease.id);
    expect((await readFleet(store)).nodes.filter((n) => n.name.startsWith('reg-'))).toHaveLength(130);

    const grown = await updateNodeRecord(store, 'reg-000', lease.id, (n) => ({ ...n, capacity: { cpu: 16000 } }));
    expect(grown).toEqual({ was: node('reg-000'), updated: true });
    expect((await getNode(store, 'reg-000'))?.capacity).toEqual({ cpu: 16000 });
    // nothing to change: nothing written
    expect(await updateNodeRecord(store, 'reg-000', lease.id, () => undefined)).toBeUndefined();
    expect(await updateNodeRecord(store, 'absent', lease.id, (n) => n)).toBeUndefined();
    // another lease (an executor that is not this node's) cannot change it
    const stranger = await store.grantLease(5);
    expect(await updateNodeRecord(store, 'reg-001', stranger.id, (n) => ({ ...n, capacity: { cpu: 1 } }))).toEqual({ was: node('reg-001'), updated: false });
    expect((await getNode(store, 'reg-001'))?.capacity).toEqual({ cpu: 8000 });
    await stranger.revoke();

    await lease.revoke();
    expect((await readFleet(store)).nodes.filter((n) => n.name.startsWith('reg-'))).toEqual([]);
  });
});
