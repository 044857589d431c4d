/**
 * Writes whose answer is lost (issue 13, defects 1 and 7) against real etcd: the client never
 * re-sends a txn by itself; an executor report that landed is recognised by its token and
 * never read as a refusal; the node reaper settles a lost answer by listing again, always
 * ends with the allocation deleted, and leaves a node that came back alone.
 *
 * "Commit, then lose the answer" is injected through the store's test seam (`EtcdStore.seam`):
 * the txn is really sent and committed, and its caller sees a deadline instead.
 */
import { type GroupStatus, type NodeAllocation, type TaskStatus } from '@batchapi/api';
import {
  bindPlan,
  type CallSeam,
  EtcdStore,
  getJob,
  type Leadership,
  type LocalEtcd,
  NodeReturnedError,
  OutcomeUnknownError,
  type ProcessLease,
  reapLostNode,
  reportGroups,
  startEtcd,
  StoreUnavailableError,
} from '@batchapi/store';
import { GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import { ConnectionPool } from 'etcd3/lib/connection-pool';
import { queuedJob, startLeaderStore, stopLeaderStore, submittedUnit } from './store-fixture';

/** Seam: the first write txn that `matches` is sent (and commits), then its answer is replaced by `after(send)`. */
function onFirstWrite(matches: (ops: string[]) => boolean, after: <T>(send: () => Promise<T>) => Promise<T>): { seam: CallSeam; hits: () => number } {
  let hits = 0;
  const seam: CallSeam = (call, send) => {
    const keys = (call.ops ?? []).map((op) => ('put' in op ? op.put : op.delete));
    if (!call.writes || hits > 0 || !matches(keys)) return send();
    hits++;
    return after(send);
  };
  return { seam, hits: () => hits };
}

/** The answer of a committed txn is lost: the caller sees a deadline. */
const loseAnswer = async <T>(send: () => Promise<T>): Promise<T> => {
  await send();
  throw new GRPCDeadlineExceededError('deadline exceeded (answer lost after commit, test seam)');
};
/** What the etcd3 client's own retry did: the txn is sent again after a commit whose answer was lost; the re-send's compare fails. */
const resend = async <T>(send: () => Promise<T>): Promise<T> => {
  await send();
  return send();
};
/** The ways a write lands though its writer was not told so: [how, the seam's `after`]. */
const LANDED_THOUGH = [
  ['its answer is lost after the commit', loseAnswer],
  ['the client re-sends it after the commit and the re-send fails its compare', resend],
] as const;

describe('on one member', () => {
  let etcd: LocalEtcd;
  let store: EtcdStore;
  let lease: ProcessLease;
  let leader: Leadership;
  beforeAll(async () => ({ etcd, store, lease, leader } = await startLeaderStore('/o/', 'outcome')));
  afterEach(() => {
    store.seam = undefined;
  });
  afterAll(() => stopLeaderStore({ etcd, store, lease }));

  /** A job of `tasks` tasks bound as one group on `node` (registered on the test's lease unless `register` is false). */
  async function bound(node: string, id: string, tasks: number, register = true): Promise<{ status: string; binding: string }> {
    if (register) await store.txn([], [{ put: store.keys.node(node), value: { name: node }, lease: lease.id }]);
    const unit = await submittedUnit(store, queuedJob(id, tasks), node);
    const res = await bindPlan(store, leader.fence(), [unit], new Map([[node, await store.get<NodeAllocation>(store.keys.alloc(node))]]));
    expect(res.bound).toHaveLength(1);
    return { status: store.keys.group(id, 0, 1), binding: store.keys.binding(node, id, 0, 1) };
  }

  const report = async (node: string, key: string, tasks: TaskStatus[], statusRevision?: string) => {
    const st = (await store.get<GroupStatus>(key))!;
    return reportGroups(store, node, lease.id, [{ status: { ...st.value, tasks }, statusRevision: statusRevision ?? st.modRevision }], 2);
  };
  const done: TaskStatus[] = [
    { state: 'Succeeded', exitCode: 0 },
    { state: 'Succeeded', exitCode: 0 },
  ];

  describe('reportGroups', () => {
    it.each(LANDED_THOUGH)('accepts a report whose txn landed though %s, and applies its outcomes once', async (_, after) => {
      const node = `rn-${after.name}`;
      const id = `landed-${after.name}`;
      const { status, binding } = await bound(node, id, 2);
      const seam = onFirstWrite((keys) => keys.includes(status), after);
      store.seam = seam.seam;
      const res = await report(node, status, done);
      expect(seam.hits()).toBe(1);
      const now = (await store.get<GroupStatus>(status))!;
      expect(res.refused).toEqual([]);
      expect(res.accepted.get(status)).toBe(now.modRevision);
      expect(now.value.reporter?.lease).toBe(lease.id);
      expect((await getJob(store, id))!.value).toMatchObject({ phase: 'Succeeded', counts: { succeeded: 2, failed: 0 } });
      expect(await store.get(binding)).toBeUndefined();
      expect((await store.get<NodeAllocation>(store.keys.alloc(node)))!.value).toEqual({ used: {}, devices: {} });
    });

    it('settles a report whose answer and re-read were both lost with the next report: rebased on its own landed write, never refused, outcomes counted once', async () => {
      const node = 'rn-rebase';
      const id = 'rebase';
      const { status } = await bound(node, id, 2);
      const first = (await store.get<GroupStatus>(status))!;
      // Task 0 ends (its room and outcome go back in this txn); the answer is lost, and so are the next reads (a member down).
      let armed = true;
      let readsDown = 0;
      store.seam = (call, send) => {
        if (!call.writes && readsDown > 0) {
          readsDown--;
          return Promise.reject(new GRPCUnavailableError('unavailable (test seam)'));
        }
        if (!call.writes || !armed || !call.ops!.some((op) => 'put' in op && op.put === status)) return send();
        armed = false;
        readsDown = 4; // the settling read and its 3 retries
        return loseAnswer(send);
      };
      await expect(report(node, status, [{ state: 'Succeeded', exitCode: 0 }, { state: 'Running' }], first.modRevision)).rejects.toBeInstanceOf(
        StoreUnavailableError,
      );
      store.seam = undefined;
      // The executor kept its old revision; the status in etcd is its own landed write.
      expect((await store.get<GroupStatus>(status))!.modRevision).not.toBe(first.modRevision);
      const res = await report(node, status, done, first.modRevision);
      expect(res.refused).toEqual([]);
      expect(res.accepted.get(status)).toBe((await store.get<GroupStatus>(status))!.modRevision);
      // 2 tasks, 2 successes: task 0's outcome and room went back once, in the lost txn.
      expect((await getJob(store, id))!.value).toMatchObject({ phase: 'Succeeded', counts: { succeeded: 2, failed: 0 } });
      expect((await store.get<NodeAllocation>(store.keys.alloc(node)))!.value).toEqual({ used: {}, devices: {} });
    });

    it('refuses a report only once another writer changed the status and the binding is gone', async () => {
      const node = 'rn-other';
      const { status, binding } = await bound(node, 'other', 2);
      const st = (await store.get<GroupStatus>(status))!;
      // Another writer changes the status and leaves the binding: not refused (sent again later).
      await store.txn([], [{ put: status, value: { ...st.value, tasks: st.value.tasks } }]);
      const kept = await report(node, status, done, st.modRevision);
      expect(kept.refused).toEqual([]);
      expect(kept.accepted.size).toBe(0);
      // The binding goes too: refused.
      await store.txn([], [{ delete: binding }]);
      const gone = await report(node, status, done, st.modRevision);
      expect(gone.refused).toEqual([status]);
    });
  });

  describe('reapLostNode', () => {
    it.each(LANDED_THOUGH)('ends the groups and deletes the allocation of a lost node when a reap txn landed though %s', async (_, after) => {
      const node = `lost-${after.name}`;
      const id = `reaped-${after.name}`;
      const { status, binding } = await bound(node, id, 2, false);
      expect(await store.get(store.keys.alloc(node))).toBeDefined();
      const seam = onFirstWrite((keys) => keys.includes(binding), after);
      store.seam = seam.seam;
      const res = await reapLostNode(store, leader.fence(), node, 5);
      expect(seam.hits()).toBe(1);
      expect(res).toEqual({ groups: 1, tasks: 2 });
      expect(await store.get(binding)).toBeUndefined();
      expect((await store.get<GroupStatus>(status))!.value.tasks.map((t) => t.reason)).toEqual(['NodeLost', 'NodeLost']);
      // Requeued once, at the next attempt; the dead node's usage no longer counts.
      expect((await getJob(store, id))!.value.pending).toMatchObject([{ start: 0, end: 2, attempt: 2 }]);
      expect(await store.get(store.keys.alloc(node))).toBeUndefined();
    });

    it("takes each reaped group's reservation out of the allocation in its own txn: a reap stopped half-way by the node coming back leaves only the unreaped group's", async () => {
      const node = 'half';
      // two jobs of 2 tasks × 1 CPU on the lost node: 4 CPUs reserved, one reap txn per job
      await bound(node, 'half-a', 2, false);
      const b = await bound(node, 'half-b', 2, false);
      expect((await store.get<NodeAllocation>(store.keys.alloc(node)))!.value.used).toEqual({ cpu: 4000 });
      // half-a's reap txn lands, then the executor registers again under the same name: half-b's is refused
      store.seam = onFirstWrite(
        (keys) => keys.includes(store.keys.binding(node, 'half-a', 0, 1)),
        async (send) => {
          const res = await send();
          await store.txn([], [{ put: store.keys.node(node), value: { name: node }, lease: lease.id }]);
          return res;
        },
      ).seam;
      await expect(reapLostNode(store, leader.fence(), node, 5)).rejects.toBeInstanceOf(NodeReturnedError);
      store.seam = undefined;
      expect((await store.get<GroupStatus>(store.keys.group('half-a', 0, 1)))!.value.tasks).toMatchObject([
        { reason: 'NodeLost', released: true },
        { reason: 'NodeLost', released: true },
      ]);
      expect(await store.get(b.binding)).toBeDefined();
      // before: 4000 (the allocation was only ever deleted at the end, which the returned node stops)
      const alloc = (await store.get<NodeAllocation>(store.keys.alloc(node)))!.value;
      expect(alloc.used).toEqual({ cpu: 2000 });
      expect(alloc.queues).toEqual({ q: { cpu: 2000 } });
    });

    it('stops after a bounded number of refused allocation deletes and throws, so the caller retries next cycle', async () => {
      const node = 'stuck-alloc';
      await bound(node, 'stuck-alloc', 1, false);
      // every delete of the allocation is refused though the node is gone and the fence holds (before: sent forever)
      let deletes = 0;
      store.seam = (call, send) => {
        if (!call.writes || !(call.ops ?? []).some((op) => 'delete' in op && op.delete === store.keys.alloc(node))) return send();
        deletes++;
        return Promise.resolve({ succeeded: false, header: { revision: '0' }, responses: [] } as never);
      };
      await expect(reapLostNode(store, leader.fence(), node, 5)).rejects.toThrow(/deleting its allocation was refused 3 times; retry next cycle/);
      expect(deletes).toBe(3);
      // the groups were reaped; what was left of the allocation (nothing) is deleted by the next cycle's reap
      store.seam = undefined;
      expect(await reapLostNode(store, leader.fence(), node, 5)).toEqual({ groups: 0, tasks: 0 });
      expect(await store.get(store.keys.alloc(node))).toBeUndefined();
    });

    it('refuses to reap a node whose key exists again (its executor came back), and changes nothing', async () => {
      const node = 'back';
      const { status, binding } = await bound(node, 'back', 1, false);
      const before = await store.getMany([status, binding, store.keys.alloc(node), store.keys.job('back')]);
      // The reaper's cache still says "gone"; the executor registered again meanwhile.
      await store.txn([], [{ put: store.keys.node(node), value: { name: node }, lease: lease.id }]);
      await expect(reapLostNode(store, leader.fence(), node, 5)).rejects.toBeInstanceOf(NodeReturnedError);
      expect((await store.getMany([status, binding, store.keys.alloc(node), store.keys.job('back')])).map((kv) => kv?.modRevision)).toEqual(
        before.map((kv) => kv?.modRevision),
      );
    });
  });
});

describe('on three members, one of them paused', () => {
  let etcd: LocalEtcd;
  let paused = -1;
  beforeAll(async () => {
    etcd = await startEtcd({ members: 3 });
    // A follower: pausing it keeps the quorum, so a txn re-sent elsewhere would commit.
    const leaderId = await memberStatus(etcd.endpoints[0]).then((s) => s.leader);
    for (const [i, url] of etcd.endpoints.entries()) if (paused < 0 && (await memberStatus(url)).header.member_id !== leaderId) paused = i;
    ConnectionPool.deterministicOrder = true; // the last endpoint is tried first
  });
  afterAll(async () => {
    ConnectionPool.deterministicOrder = false;
    if (paused >= 0) etcd.kill(paused, 'SIGCONT');
    await etcd.stop();
  });

  it('sends a txn to the paused member once and answers OutcomeUnknownError (no re-send to a live member); a read is retried on the live member', async () => {
    const live = etcd.endpoints.find((_, i) => i !== paused)!;
    const store = new EtcdStore({ endpoints: [live, etcd.endpoints[paused]], prefix: '/p/', callTimeoutMs: 500 });
    const direct = new EtcdStore({ endpoints: [live], prefix: '/p/' });
    try {
      await direct.txn([], [{ put: 'k', value: 'before' }]);
      const before = (await direct.get<string>('k'))!;
      // Connected to the paused member first (it is tried first): the txn is really sent to it.
      // Without a connection it would wait for one, never leave, and rightly go to the live member.
      await store.get('k');
      etcd.kill(paused, 'SIGSTOP');
      const txnsBefore = await startedTxns(live);
      await expect(store.txn([{ key: 'k', modRevision: before.modRevision }], [{ put: 'k', value: 'mine' }])).rejects.toBeInstanceOf(OutcomeUnknownError);
      // Not re-sent: the live member saw no txn, and the value is as it was.
      expect(await startedTxns(live)).toBe(txnsBefore);
      expect((await direct.get<string>('k'))!.value).toBe('before');
      // A read is idempotent: retried on the live member.
      await expect(store.get<string>('k')).resolves.toMatchObject({ value: 'before' });
    } finally {
      etcd.kill(paused, 'SIGCONT');
      await store.close();
      await direct.close();
    }
  });
});

async function memberStatus(url: string): Promise<{ header: { member_id: string }; leader: string }> {
  const res = await fetch(`${url}/v3/maintenance/status`, { method: 'POST', body: '{}' });
  return (await res.json()) as { header: { member_id: string }; leader: string };
}

/** Txn calls a member has started serving (its gRPC metrics). */
async function startedTxns(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('grpc_server_started_total{') && l.includes('grpc_method="Txn"'));
  return Number(line?.split(' ').pop() ?? 0);
}
