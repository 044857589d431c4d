/**
 * The workflow controller's one-transaction write (`submitStepJobsFenced`): a reconcile's step
 * jobs and the record naming them, all or nothing, against a real etcd. Whatever compare fails
 * (a job already there, the record changed, the fence gone) or when it would be over the limits,
 * nothing is written, so the controller's one-at-a-time fallback sees etcd as it was.
 */
import type { JobRecord, WorkflowRecord } from '@batchapi/api';
import { type Compare, submitStepJobsFenced, submitWorkflow, type Versioned } from '@batchapi/store';
import { stepJobId } from '@batchapi/workflows';
import { finishedJob, quotaSuite, runningWorkflow } from './harness';

const suite = quotaSuite();

/** A fence as a leader holds one: a key and the revision that created it. */
async function fenceKey(name: string): Promise<Compare> {
  const key = `leaders/test-${name}`;
  await suite.store.txn([], [{ put: key, value: { holder: name } }]);
  const kv = await suite.store.get<unknown>(key);
  return { key, createRevision: kv!.createRevision };
}

/** A submitted workflow of two independent steps, as read back from etcd. */
async function workflow(id: string): Promise<Versioned<WorkflowRecord>> {
  const job = { command: ['true'], resources: { cpu: '100m', memory: '16Mi' } };
  const wf = runningWorkflow(id, [
    { name: 'a', dependsOn: [], when: 'success', job, criticalPath: 1, phase: 'Pending' },
    { name: 'b', dependsOn: [], when: 'success', job, criticalPath: 1, phase: 'Pending' },
  ]);
  await submitWorkflow(suite.store, wf);
  return (await suite.store.get<WorkflowRecord>(suite.store.keys.workflow(id)))!;
}

/** The step jobs of both steps (submitted, as the controller makes them) and the record naming them. */
function plan(cur: Versioned<WorkflowRecord>): { jobs: JobRecord[]; next: WorkflowRecord } {
  const jobs = [0, 1].map((i) => ({ ...finishedJob(stepJobId(cur.value.id, i), Date.now()), phase: 'Submitted' as const, finishedAt: undefined }));
  const next = { ...cur.value, steps: cur.value.steps.map((s, i) => ({ ...s, phase: 'Running' as const, jobId: jobs[i].id })) };
  return { jobs, next };
}

const jobIn = (id: string) => suite.store.get<JobRecord>(suite.store.keys.job(id));

it('creates every step job and writes the record in one transaction', async () => {
  const fence = await fenceKey('ok');
  const cur = await workflow('wf-writes-ok');
  const { jobs, next } = plan(cur);
  const rev = await submitStepJobsFenced(suite.store, fence, jobs, cur, next);
  expect(rev).toBeDefined();
  const stored = await suite.store.get<WorkflowRecord>(cur.key);
  expect(stored!.modRevision).toBe(rev);
  expect(stored!.value.steps.map((s) => s.jobId)).toEqual(jobs.map((j) => j.id));
  for (const j of jobs) expect((await jobIn(j.id))?.modRevision).toBe(rev);
});

it.each([
  {
    name: 'one job already there (a crashed controller created it): nothing else is written',
    tag: 'exists',
    arrange: async (cur: Versioned<WorkflowRecord>, jobs: JobRecord[]) => {
      await suite.store.txn([], [{ put: suite.store.keys.job(jobs[0].id), value: jobs[0] }]);
      return cur;
    },
    fence: (f: Compare) => f,
    firstJobThere: true,
  },
  {
    name: 'the record changed since it was read (a cancel): nothing is written',
    tag: 'changed',
    arrange: async (cur: Versioned<WorkflowRecord>) => {
      await suite.store.txn([], [{ put: cur.key, value: { ...cur.value, cancelRequestedAt: Date.now() } }]);
      return cur;
    },
    fence: (f: Compare) => f,
    firstJobThere: false,
  },
  {
    name: 'the fence is gone (a deposed leader): nothing is written',
    tag: 'fenced',
    arrange: async (cur: Versioned<WorkflowRecord>) => cur,
    // another term's key: created at another revision
    fence: (f: Compare) => ({ key: f.key, createRevision: '1' }),
    firstJobThere: false,
  },
])('$name', async ({ tag, arrange, fence, firstJobThere }) => {
  const f = fence(await fenceKey(tag));
  const read = await workflow(`wf-writes-${tag}`);
  const { jobs, next } = plan(read);
  const cur = await arrange(read, jobs);
  const before = await suite.store.get<WorkflowRecord>(cur.key);
  expect(await submitStepJobsFenced(suite.store, f, jobs, cur, next)).toBeUndefined();
  expect((await suite.store.get<WorkflowRecord>(cur.key))!.modRevision).toBe(before!.modRevision);
  expect((await jobIn(jobs[0].id)) !== undefined).toBe(firstJobThere);
  expect(await jobIn(jobs[1].id)).toBeUndefined();
});

it('sends nothing when the jobs and the record would be over the transaction limits', async () => {
  const fence = await fenceKey('large');
  const cur = await workflow('wf-writes-large');
  const { jobs, next } = plan(cur);
  // 2 jobs + the record = 3 puts; 4 compares (fence, record, 2 absences): a limit of 3 refuses it
  expect(await submitStepJobsFenced(suite.store, fence, jobs, cur, next, { maxOps: 3, maxBytes: 1024 * 1024 })).toBeUndefined();
  // 256 bytes: the record alone (two steps with their jobs) is larger
  expect(await submitStepJobsFenced(suite.store, fence, jobs, cur, next, { maxOps: 128, maxBytes: 256 })).toBeUndefined();
  expect((await suite.store.get<WorkflowRecord>(cur.key))!.modRevision).toBe(cur.modRevision);
  for (const j of jobs) expect(await jobIn(j.id)).toBeUndefined();
});
