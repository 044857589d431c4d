/**
 * Transactions sized in UTF-8 bytes against a real etcd member (issue 13, defect 3): a job too
 * large to ever bind is isolated and failed with a reason while the rest of the plan binds; a
 * group of very many tasks is cut into ranges that fit; a transaction whose answer is lost
 * stops the plan without throwing away what was not sent; preemption requests are chunked by
 * bytes, not by count.
 */
import { type Binding, type GroupStatus, type JobRecord, type NodeAllocation, type TaskResult } from '@batchapi/api';
import { boundGroupStatus, EMPTY_ALLOCATION, reserveOnNode } from '@batchapi/lifecycle';
import {
  bindPlan,
  type BindUnit,
  type EtcdStore,
  getJob,
  type Leadership,
  type LocalEtcd,
  OutcomeUnknownError,
  type ProcessLease,
  reportGroups,
  requestPreemption,
  submitJob,
  type Versioned,
} from '@batchapi/store';
import { GRPCDeadlineExceededError } from 'etcd3';
import { bindingOf, queuedJob, runningUnit, startLeaderStore, stopLeaderStore } from './store-fixture';

let etcd: LocalEtcd;
let store: EtcdStore;
let lease: ProcessLease;
let leader: Leadership;

beforeAll(async () => ({ etcd, store, lease, leader } = await startLeaderStore('/bs/', 'bind-size')));
afterEach(() => {
  store.seam = undefined;
});
afterAll(() => stopLeaderStore({ etcd, store, lease }));

/** What a job of a plan carries: `env` entries of `value`, `tasks` tasks bound as one group on node `node`. */
interface JobShape {
  id: string;
  tasks?: number;
  envEntries?: number;
  value?: string;
  node?: string;
}

/** Writes the job straight into etcd (as a record made large behind admission's back would be) and plans all its tasks on its node. */
async function unitOf(s: JobShape): Promise<BindUnit> {
  const env = Object.fromEntries(Array.from({ length: s.envEntries ?? 0 }, (_, k) => [`V${k}`, s.value ?? '']));
  const record = queuedJob(s.id, s.tasks ?? 1, { env, resources: { cpu: 1 } });
  const { job } = await submitJob(store, record);
  return runningUnit(job, [bindingOf(record, s.node ?? `node-${s.id}`, { boundAt: 5 })], { startedAt: 5 });
}

const allocsOf = (units: BindUnit[]) =>
  new Map<string, Versioned<NodeAllocation> | undefined>(units.flatMap((u) => u.bindings.map((b) => [b.node, undefined] as const)));
const boundTasks = async (id: string) =>
  (await store.listAll<{ start: number; end: number }>(store.keys.groupsOf(id))).items.reduce((n, g) => n + g.value.end - g.value.start, 0);

describe('bindPlan isolates what can never commit', () => {
  it.each([
    // [what, jobs of the plan in order, jobs that bind, jobs failed as too large, bind transactions sent, limits]
    // 30 × 32,000 chars = 960,000 bytes of env: record ≈ 960 KB + binding ≈ 960 KB > 1 MiB; the
    // small job after it binds (before: the first chunk held the big unit alone, etcd refused it, the plan threw)
    [
      "a job whose env makes one task's bind over 1 MiB, then a normal job",
      [
        { id: 'huge-env', envEntries: 30, value: 'x'.repeat(32_000) },
        { id: 'small-1', tasks: 2 },
      ],
      ['small-1'],
      ['huge-env'],
      1,
      undefined,
    ],
    // 30 × 11,000 "€" = 330,000 UTF-16 units but 990,000 bytes: record + binding ≈ 1.98 MB, over by
    // bytes though JSON.stringify().length counted ~660,000 and let it through
    [
      'a job whose env is small in UTF-16 units but large in UTF-8 bytes',
      [{ id: 'euro-env', envEntries: 30, value: '€'.repeat(11_000) }, { id: 'small-2' }],
      ['small-2'],
      ['euro-env'],
      1,
      undefined,
    ],
    // 60,000 tasks on one node: the status alone has 60,000 × 18 bytes ({"state":"Bound"},) ≈ 1.08 MB;
    // the group is cut in halves of 30,000 (≈ 540 KB of status + 90 KB of devices each), one a transaction
    ['a group of 60,000 tasks on one node', [{ id: 'wide', tasks: 60_000 }], ['wide'], [], 2, undefined],
    // limits above etcd's own (3 MiB): three units of ≈ 700 KB (350 KB record + 350 KB binding) make
    // one 2.1 MB chunk, which etcd refuses (over 1.5 MiB); then 2 a txn (1.4 MB) and the last alone: 3 txns
    [
      'etcd refuses a chunk as too large: the plan sends fewer parts a transaction',
      [0, 1, 2].map((k) => ({ id: `mid-${k}`, envEntries: 10, value: 'm'.repeat(35_000) })),
      ['mid-0', 'mid-1', 'mid-2'],
      [],
      3,
      { maxOps: 128, maxBytes: 3 * 1024 * 1024 },
    ],
    // limits above etcd's own: the chunk of both (≈ 1.9 MB) is refused, then the big one alone is
    // refused too and isolated, and the small one binds: 3 txns
    [
      'etcd refuses a lone part as too large: its job fails, the next binds',
      [{ id: 'over-etcd', envEntries: 30, value: 'o'.repeat(32_000) }, { id: 'small-3' }],
      ['small-3'],
      ['over-etcd'],
      3,
      { maxOps: 128, maxBytes: 3 * 1024 * 1024 },
    ],
  ])('%s', async (_name, shapes: JobShape[], bound, tooLarge, txns, limits) => {
    const units: BindUnit[] = [];
    for (const s of shapes) units.push(await unitOf(s));
    const res = await bindPlan(store, leader.fence(), units, allocsOf(units), { now: 7, ...(limits ? { limits } : {}) });
    expect(res.interrupted).toBeUndefined();
    expect([...new Set(res.bound.map((u) => u.next.id))].sort()).toEqual([...bound].sort());
    expect(res.tooLarge.map((u) => u.next.id)).toEqual(tooLarge);
    expect(res.refused).toEqual([]);
    expect(res.txns).toBe(txns);
    for (const s of shapes) {
      const stored = (await getJob(store, s.id))!.value;
      if (bound.includes(s.id)) {
        expect(stored).toMatchObject({ phase: 'Running', pending: [] });
        expect(await boundTasks(s.id)).toBe(s.tasks ?? 1);
      } else {
        // failed with a reason the API shows; nothing of it was bound
        expect(stored).toMatchObject({ phase: 'Failed', pending: [], finishedAt: 7, counts: { failed: s.tasks ?? 1 }, reason: { code: 'bind_too_large' } });
        expect(stored.reason!.message).toMatch(/do not fit the \d+ bytes of one etcd transaction/);
        expect(await boundTasks(s.id)).toBe(0);
      }
    }
  });
});

describe('bindPlan when failing a job too large to bind does not certainly land', () => {
  it("lists the unit as refused, not as failed, when the failure's answer is lost", async () => {
    const units = [await unitOf({ id: 'huge-unknown', envEntries: 30, value: 'u'.repeat(32_000) })];
    // the failure's CAS (a put of the job record alone) times out before reaching etcd
    store.seam = (call, send) => {
      if (!call.writes || !(call.ops ?? []).some((op) => 'put' in op && op.put === store.keys.job('huge-unknown'))) return send();
      return Promise.reject(new GRPCDeadlineExceededError('deadline exceeded (test seam)'));
    };
    const res = await bindPlan(store, leader.fence(), units, allocsOf(units), { now: 7 });
    // before: listed in tooLarge (every error was swallowed and the unit reported as failed)
    expect(res.tooLarge).toEqual([]);
    expect(res.refused.map((u) => u.next.id)).toEqual(['huge-unknown']);
    expect((await getJob(store, 'huge-unknown'))!.value.phase).toBe('Queued');
  });
});

describe('a lone report too large for one transaction', () => {
  it('ends its job with a reason (results written ahead, record trimmed) instead of being refused by etcd on every flush', async () => {
    const node = 'big-report-node';
    await store.txn([], [{ put: store.keys.node(node), value: { name: node }, lease: lease.id }]);
    // A job record of ≈ 1.25 MB (40 env entries of 31,250 bytes), written behind admission's back
    // (as a record from before the submit caps): 8 tasks, 6 bound as one group, 2 still pending.
    const env = Object.fromEntries(Array.from({ length: 40 }, (_, k) => [`V${k}`, 'e'.repeat(31_250)]));
    const record: JobRecord = {
      ...queuedJob('big-report', 8, { env, resources: { cpu: 1 }, labels: { team: 'x' } }),
      phase: 'Running',
      startedAt: 2,
      pending: [{ start: 6, end: 8, attempt: 1 }],
    };
    const b = bindingOf(record, node, { end: 6, boundAt: 2, env: {} });
    const statusKey = store.keys.group(record.id, 0, 1);
    await store.txn(
      [],
      [
        { put: store.keys.job(record.id), value: record },
        { put: store.keys.binding(node, record.id, 0, 1), value: b },
        { put: statusKey, value: boundGroupStatus(b) },
        { put: store.keys.alloc(node), value: reserveOnNode(EMPTY_ALLOCATION, b) },
      ],
    );
    const st = (await store.get<GroupStatus>(statusKey))!;
    // Every task succeeded with a 60,000-byte result: 6 × 60 KB of results + the 1.25 MB record is
    // ≈ 1.61 MB in one txn, over etcd's 1.5 MiB request limit (before: sent as is, refused, thrown, every flush)
    const results: TaskResult[] = Array.from({ length: 6 }, (_, index) => ({ index, attempt: 1, value: 'r'.repeat(60_000) }));
    const tasks = st.value.tasks.map(() => ({ state: 'Succeeded' as const, exitCode: 0, startedAt: 3, finishedAt: 4 }));
    const res = await reportGroups(store, node, lease.id, [{ status: { ...st.value, tasks }, statusRevision: st.modRevision, results }], 9);
    expect(res.fenced).toBe(false);
    expect(res.refused).toEqual([]);
    expect(res.accepted.has(statusKey)).toBe(true);
    const job = (await getJob(store, record.id))!.value;
    // the 6 reported successes count; the 2 pending tasks fail with the reason: the job is terminal
    expect(job).toMatchObject({ phase: 'Failed', pending: [], finishedAt: 9, counts: { succeeded: 6, failed: 2 }, reason: { code: 'report_too_large' } });
    expect(job.reason!.message).toMatch(/do not fit the \d+ bytes of one etcd transaction.*env, items, labels, selector and tolerations were dropped/);
    expect(job.spec).toMatchObject({ env: {}, labels: {}, command: ['true'], tasks: 8 });
    // its group ended: results in place, binding gone, room given back
    expect((await store.listAll(store.keys.resultsOf(record.id))).items).toHaveLength(6);
    expect((await store.get<GroupStatus>(statusKey))!.value.tasks.every((t) => t.state === 'Succeeded' && t.released)).toBe(true);
    expect(await store.get(store.keys.binding(node, record.id, 0, 1))).toBeUndefined();
    expect((await store.get<NodeAllocation>(store.keys.alloc(node)))!.value.used).toEqual({});
  });
});

describe("bindPlan when a transaction's answer is lost", () => {
  it('stops the plan without throwing: the rest is refused for the next cycle, nothing is guessed', async () => {
    const units = [
      await unitOf({ id: 'lost-0', envEntries: 1, value: 'v'.repeat(3000) }),
      await unitOf({ id: 'lost-1', envEntries: 1, value: 'v'.repeat(3000) }),
    ];
    // one unit a transaction (≈ 6.5 KB each against a 10 KB limit); the first commits, its answer is lost
    let sent = 0;
    store.seam = async (call, send) => {
      if (!call.writes || sent++ > 0) return send();
      await send();
      throw new GRPCDeadlineExceededError('answer lost after commit (test seam)');
    };
    const res = await bindPlan(store, leader.fence(), units, allocsOf(units), { limits: { maxOps: 128, maxBytes: 10_000 } });
    expect(res.interrupted).toBeInstanceOf(OutcomeUnknownError);
    expect(res.bound).toEqual([]);
    expect(res.refused.map((u) => u.next.id)).toEqual(['lost-0', 'lost-1']);
    expect(res.txns).toBe(1);
    // what landed is what etcd shows: the caches will see lost-0 bound; lost-1 was never sent
    expect((await getJob(store, 'lost-0'))!.value.phase).toBe('Running');
    expect((await getJob(store, 'lost-1'))!.value.phase).toBe('Queued');
  });
});

describe('requestPreemption', () => {
  it('chunks by bytes: six bindings of ~300 KB each are marked in transactions under the limit', async () => {
    // 6 × ~300 KB = 1.8 MB: one transaction (as when chunked 60 by count) is over etcd's 1.5 MiB
    const env = { BIG: 'p'.repeat(300_000) };
    const victims = [];
    for (let k = 0; k < 6; k++) {
      const b = bindingOf(queuedJob(`pre-${k}`, 2, { env, resources: { cpu: 1 } }), 'pn');
      await store.txn([], [{ put: store.keys.binding('pn', b.jobId, 0, 1), value: b }]);
      victims.push({ node: 'pn', jobId: b.jobId, start: 0, attempt: 1, index: 1 });
    }
    expect(await requestPreemption(store, leader.fence(), victims, 9)).toBe(6);
    for (let k = 0; k < 6; k++) {
      expect((await store.get<Binding>(store.keys.binding('pn', `pre-${k}`, 0, 1)))!.value).toMatchObject({ preempt: [1], preemptRequestedAt: 9 });
    }
  });
});
