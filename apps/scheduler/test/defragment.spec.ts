/**
 * Defragmentation for waiting work end to end on a real etcd, one scheduler with
 * `BATCH_DEFRAGMENT_MAX_MOVES` on (consolidation itself off): two nodes of 4 GPUs hold three and two
 * 1-GPU tasks — 3 GPUs free in all, but 1 and 2 per node — and a 3-GPU job waits. The leader asks
 * exactly one task on gb to stop (gb then has 3 free); its executor's stop is reported through the
 * store's own `reportGroups`; the requeued task goes to ga (its nominated destination, 1 free) and
 * the waiting job to gb (the node nominated for it). Meanwhile why-pending (the scheduler's RPC)
 * says the job waits for gb. Run twice: with the stop's answer received, and with it lost after the
 * stop committed (the leader reads the bindings back and acts on the stop that landed: counted,
 * its nodes nominated — none of it guessed). And `landedStops` on its own: a partial stop read
 * back serves only the jobs whose stops all landed.
 */
import { type Binding, type GroupStatus, type JobRecord, SCHEDULER_WHY, whyJobOf, type WhyView } from '@batchapi/api';
import type { DefragmentTarget, RunningTask } from '@batchapi/scheduling';
import { clearCordon, EtcdStore, registerNodes, reportGroups, setCordon, submitJob } from '@batchapi/store';
import { GRPCDeadlineExceededError } from 'etcd3';
import { waitFor } from '@batchapi/proc';
import { authorizeCalls } from '@batchapi/runtime';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { SchedulerService } from '../src';
import { landedStops } from '../src/consolidation';
import { allBindings, eagerConsolidation, nodeRecord, queuedJob, type SchedulerSuite, useScheduler } from './harness';

const tuning = {
  // Defragmentation on (at most 4 moves a pass), passes every 100 ms; consolidation off; no exempt time.
  consolidation: eagerConsolidation({ defragmentMaxMoves: 4 }),
  preemption: { protectMs: 0, perQueuePerMinute: 100 },
};

const where = (bs: readonly Binding[]) => bs.map((b) => `${b.jobId}@${b.node}`).sort();

describe('the stop answered', () => {
  const suite = useScheduler({ tuning });
  it('moves one task so that a waiting 3-GPU job gets a node, and places both where it nominated them', () => defragmentFlow(suite), 60_000);
  it('counts the stops etcd shows landed; serves only the jobs whose stops all landed', async () => {
    // Under a root of its own (the scheduler watches /batch/): bindings p1 on n1 (tasks 0, 1) and p2
    // on n2 (task 0). w1's one move (p1#0) landed; w2's moves are p1#1 (landed) and p2#0 (not: p2's
    // binding lists no stop). Landed: p1#0, p1#1 (2 of 3); served: w1 alone; the revision p1's.
    const store = new EtcdStore({ endpoints: suite.etcd.endpoints, prefix: '/partial/' });
    try {
      const bind = (jobId: string, node: string, preempt: number[]) =>
        store.txn([], [{ put: store.keys.binding(node, jobId, 0, 1), value: { jobId, node, start: 0, end: 2, attempt: 1, preempt } }]);
      await bind('p1', 'n1', [0, 1]);
      await bind('p2', 'n2', []);
      const p1 = await store.get<Binding>(store.keys.binding('n1', 'p1', 0, 1));
      const task = (jobId: string, node: string, index: number): RunningTask => ({
        jobId,
        queue: 'q',
        node,
        groupStart: 0,
        attempt: 1,
        index,
        priority: 0,
        resources: { cpu: 1000 },
        devices: [],
        boundAt: 0,
        stopping: false,
      });
      const w1: DefragmentTarget = { jobId: 'w1', nodes: ['n1'], freed: ['n1'], moves: [{ task: task('p1', 'n1', 0), to: 'n3', nominated: 'n3' }] };
      const w2: DefragmentTarget = {
        jobId: 'w2',
        nodes: ['n2'],
        freed: ['n2'],
        moves: [
          { task: task('p1', 'n1', 1), to: 'n3', nominated: 'n3' },
          { task: task('p2', 'n2', 0), to: 'n3', nominated: 'n3' },
        ],
      };
      const out = await landedStops(store, [w1, w2]);
      expect(out.served.map((t) => t.jobId)).toEqual(['w1']);
      expect(out.moved.map((m) => `${m.task.jobId}#${m.task.index}`)).toEqual(['p1#0', 'p1#1']);
      expect(out.revision).toBe(BigInt(p1!.modRevision));
    } finally {
      await store.close();
    }
  });
});

describe('a gang', () => {
  const suite = useScheduler({ tuning });
  it('gets room for both its members in one pass: two tasks move, the gang starts on both freed nodes at once', async () => {
    const store = suite.store;
    const lease = await store.grantLease(20);
    // Three nodes of 4 GPUs, two 1-GPU tasks on each (2 free each, 6 in all); a gang of 2 × 3 GPUs
    // fits none. First member: ga, gb, gc each need one move → gc, the least work lost (its tasks
    // started last); second: gb (gc is full now), before ga's older tasks. The two moved tasks go to
    // ga (2 free → 0): 2 moves, the fewest (one per member).
    await registerNodes(store, [nodeRecord('ga', 16, 4), nodeRecord('gb', 16, 4), nodeRecord('gc', 16, 4)], lease.id);
    const gpu1 = { cpu: 1000, gpu: 1000 };
    const nodes = ['ga', 'gb', 'gc'];
    for (const open of nodes) {
      for (const other of nodes) if (other !== open) await setCordon(store, { node: other, reason: 'maintenance', by: 'ops', at: Date.now() });
      await clearCordon(store, open);
      const ids = [`${open}1`, `${open}2`];
      for (const id of ids) await submitJob(store, queuedJob(id, 1, gpu1));
      await waitFor(
        () => allBindings(store),
        (bs) => ids.every((id) => where(bs).includes(`${id}@${open}`)),
      );
    }
    for (const n of nodes) await clearCordon(store, n);
    const gang = queuedJob('gang', 2, { cpu: 4000, gpu: 3000 });
    await submitJob(store, { ...gang, spec: { ...gang.spec, gang: true } });
    const asked = await waitFor(
      () => allBindings(store),
      (bs) => bs.filter((b) => (b.preempt ?? []).length > 0).length === 2,
    );
    const moved = asked.filter((b) => (b.preempt ?? []).length > 0);
    expect(moved.map((b) => b.node).sort()).toEqual(['gb', 'gc']);
    // Why pending (the leader's RPC): the gang waits for both freed nodes.
    const address = (await store.list<{ rpc?: string }>(store.keys.membersOf('scheduler'))).items.map((m) => m.value.rpc).find(Boolean)!;
    const at = address.lastIndexOf(':');
    const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: address.slice(0, at), port: Number(address.slice(at + 1)) } });
    authorizeCalls(client, suite.scheduler.ctx.credential);
    try {
      const record = (await store.get<JobRecord>(store.keys.job('gang')))!.value;
      const why = await waitFor(
        async () => (await firstValueFrom(client.send(SCHEDULER_WHY, { job: whyJobOf(record) }))) as WhyView,
        (w) => w.messages.some((m) => m.includes('defragmentation')),
      );
      expect(why.messages).toContain('waiting for nodes gc, gb: 2 tasks moving to make room, nominated by defragmentation');
    } finally {
      await client.close();
    }
    // The executors stop the first moved task only: the gang still waits (all or nothing), and nothing else moves.
    const stopOne = async (b: Binding) => {
      const [group] = (await store.listAll<GroupStatus>(store.keys.groupsOf(b.jobId))).items;
      const tasks = group.value.tasks.map(() => ({ state: 'Preempted' as const, finishedAt: Date.now() }));
      const res = await reportGroups(store, b.node, lease.id, [{ status: { ...group.value, tasks }, statusRevision: group.modRevision }], Date.now());
      expect(res.accepted.size).toBe(1);
    };
    await stopOne(moved[0]);
    const between = await waitFor(
      () => allBindings(store),
      (bs) => bs.some((x) => x.jobId === moved[0].jobId && x.node === 'ga'),
    );
    expect(between.some((x) => x.jobId === 'gang')).toBe(false);
    await stopOne(moved[1]);
    const after = await waitFor(
      () => allBindings(store),
      (bs) => bs.some((x) => x.jobId === 'gang'),
      { timeoutMs: 15_000 },
    );
    // Both members bound at once, on the freed nodes; the moved tasks on ga, as nominated.
    const gangOn = after.filter((x) => x.jobId === 'gang');
    expect(gangOn.map((x) => `${x.node}:${x.end - x.start}`).sort()).toEqual(['gb:1', 'gc:1']);
    expect(after.filter((x) => moved.some((m) => m.jobId === x.jobId)).map((x) => x.node)).toEqual(['ga', 'ga']);
    expect(after.filter((x) => (x.preempt ?? []).length > 0)).toEqual([]);
    await lease.revoke();
  }, 60_000);
});

describe("the stop's answer lost after it committed", () => {
  const suite = useScheduler({ tuning });
  it('reads the bindings back: the stop that landed is acted on, its nodes nominated as if answered', async () => {
    // The scheduler's first write that asks a task to stop commits, and its answer is lost.
    let lost = 0;
    suite.scheduler.ctx.store.seam = async (call, send) => {
      const stops = call.ops?.some((op) => 'put' in op && op.put.includes('/bindings/') && (op.value as Binding).preempt?.length);
      if (!call.writes || !stops || lost++ > 0) return send();
      await send();
      throw new GRPCDeadlineExceededError('answer lost after commit (test seam)');
    };
    try {
      await defragmentFlow(suite);
    } finally {
      suite.scheduler.ctx.store.seam = undefined;
    }
    expect(lost).toBeGreaterThan(0);
  }, 60_000);
});

async function defragmentFlow(suite: SchedulerSuite): Promise<void> {
  const store = suite.store;
  const lease = await store.grantLease(20);
  await registerNodes(store, [nodeRecord('ga', 16, 4), nodeRecord('gb', 16, 4)], lease.id);
  const gpu1 = { cpu: 1000, gpu: 1000 };
  // ga filled first with 3 one-GPU tasks (gb cordoned by an operator), then gb with 2.
  const fill = async (open: string, other: string, ids: string[]) => {
    await setCordon(store, { node: other, reason: 'maintenance', by: 'ops', at: Date.now() });
    await clearCordon(store, open);
    for (const id of ids) await submitJob(store, queuedJob(id, 1, gpu1));
    await waitFor(
      () => allBindings(store),
      (bs) => ids.every((id) => where(bs).includes(`${id}@${open}`)),
    );
  };
  await fill('ga', 'gb', ['a1', 'a2', 'a3']);
  await fill('gb', 'ga', ['b1', 'b2']);
  await clearCordon(store, 'ga');
  // 1 + 2 GPUs free, on two nodes: the 3-GPU job fits neither.
  await submitJob(store, queuedJob('big', 1, { cpu: 4000, gpu: 3000 }));
  // gb needs one move (2 + 1 = 3 free), ga two: one of gb's tasks is asked to stop, nothing else.
  const asked = await waitFor(
    () => allBindings(store),
    (bs) => bs.some((b) => (b.preempt ?? []).length > 0),
  );
  const moved = asked.filter((b) => (b.preempt ?? []).length > 0);
  expect(moved.map((b) => b.node)).toEqual(['gb']);
  expect(asked.some((b) => b.jobId === 'big')).toBe(false);
  // The pass records the stop's revision: the next cycle waits until its cache holds it (as after a
  // preemption), so no more victims are picked for big meanwhile.
  const [stop] = moved;
  const stopRevision = BigInt((await store.get(store.keys.binding(stop.node, stop.jobId, stop.start, stop.attempt)))!.modRevision);
  const service = suite.scheduler.app.get(SchedulerService);
  const recorded = await waitFor(
    async () => service['lastStopRevision'],
    (r) => r >= stopRevision,
  );
  expect(recorded >= stopRevision).toBe(true);
  // Why pending, asked of the leader while the moved task still runs on gb.
  const address = (await store.list<{ rpc?: string }>(store.keys.membersOf('scheduler'))).items.map((m) => m.value.rpc).find(Boolean)!;
  const at = address.lastIndexOf(':');
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: address.slice(0, at), port: Number(address.slice(at + 1)) } });
  authorizeCalls(client, suite.scheduler.ctx.credential);
  try {
    const job = (await store.get<JobRecord>(store.keys.job('big')))!.value;
    const why = await waitFor(
      async () => (await firstValueFrom(client.send(SCHEDULER_WHY, { job: whyJobOf(job) }))) as WhyView,
      (w) => w.messages.some((m) => m.includes('defragmentation')),
    );
    expect(why.messages).toContain('waiting for node gb: 1 task moving to make room, nominated by defragmentation');
  } finally {
    await client.close();
  }
  // The executor stops it (Preempted): requeued, it waits for ga, nominated for it; big takes gb.
  const [b] = moved;
  const [group] = (await store.listAll<GroupStatus>(store.keys.groupsOf(b.jobId))).items;
  const tasks = group.value.tasks.map(() => ({ state: 'Preempted' as const, finishedAt: Date.now() }));
  const res = await reportGroups(store, b.node, lease.id, [{ status: { ...group.value, tasks }, statusRevision: group.modRevision }], Date.now());
  expect(res.accepted.size).toBe(1);
  const after = await waitFor(
    () => allBindings(store),
    (bs) => bs.length === 6 && bs.some((x) => x.jobId === 'big'),
    { timeoutMs: 15_000 },
  );
  const other = b.jobId === 'b1' ? 'b2' : 'b1';
  expect(where(after)).toEqual([`${b.jobId}@ga`, 'a1@ga', 'a2@ga', 'a3@ga', 'big@gb', `${other}@gb`].sort());
  // No more stops: the job was served, nothing waits.
  expect(after.filter((x) => (x.preempt ?? []).length > 0)).toEqual([]);
  await lease.revoke();
}
