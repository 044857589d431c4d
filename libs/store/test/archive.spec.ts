/**
 * `removeArchived` against a real etcd: archived jobs leave etcd with their groups and results,
 * many jobs a transaction; a job that changed after it was read stays (only it, not the jobs
 * packed beside it); a job with more groups than one transaction holds is removed in parts; a
 * lost fence removes nothing; a reader of a job's results tells a job archived since it was found
 * from one that returned none (`listLiveResults`).
 */
import type { GroupStatus, JobRecord, TaskResult } from '@batchapi/api';
import { type ArchiveEntry, listLiveResults, listResults, readArchiveBatch, removeArchived, type Versioned } from '@batchapi/store';
import { type LeaderStore, queuedJob, startLeaderStore, stopLeaderStore } from './store-fixture';

let s: LeaderStore;
beforeAll(async () => {
  s = await startLeaderStore('/archive-test', 'archiver');
});
afterAll(async () => {
  await stopLeaderStore(s);
});

/** A finished job `id` of `groups` one-task groups, each with its result, written to etcd. */
async function finishedJob(id: string, groups = 1): Promise<Versioned<JobRecord>> {
  const { store } = s;
  const job: JobRecord = {
    ...queuedJob(id, groups),
    phase: 'Succeeded',
    finishedAt: 1_000,
    pending: [],
    counts: { succeeded: groups, failed: 0, cancelled: 0 },
  };
  const writes = [{ put: store.keys.job(id), value: job }];
  for (let i = 0; i < groups; i++) {
    const g: GroupStatus = {
      jobId: id,
      tenant: 'a',
      queue: 'q',
      node: 'n',
      start: i,
      end: i + 1,
      attempt: 1,
      resources: { cpu: 1000 },
      devices: [[]],
      boundAt: 1,
      tasks: [{ state: 'Succeeded', exitCode: 0, startedAt: 2, finishedAt: 3 }],
    };
    const r: TaskResult = { index: i, attempt: 1, value: i };
    writes.push({ put: store.keys.group(id, i, 1), value: g as never }, { put: store.keys.result(id, i), value: r as never });
  }
  for (let i = 0; i < writes.length; i += 100) await store.txn([], writes.slice(i, i + 100));
  return (await store.get<JobRecord>(store.keys.job(id)))!;
}

/** How many keys etcd holds for job `id`: the job, its groups and its results. */
async function keysOf(id: string): Promise<number> {
  const { store } = s;
  const [job, groups, results] = await Promise.all([
    store.get(store.keys.job(id)),
    store.listAll(store.keys.groupsOf(id)),
    store.listAll(store.keys.resultsOf(id)),
  ]);
  return (job ? 1 : 0) + groups.items.length + results.items.length;
}

it('removes 60 one-task jobs in a few transactions, with their groups and results', async () => {
  const jobs = await Promise.all(Array.from({ length: 60 }, (_, i) => finishedJob(`many-${i}`)));
  const entries = await readArchiveBatch(s.store, jobs);
  const before = (await s.store.client.get('x').exec()).header.revision;
  const removed = await removeArchived(s.store, s.leader.fence(), entries);
  const after = (await s.store.client.get('x').exec()).header.revision;
  expect(removed).toEqual({ jobs: jobs.map((j) => j.value.id), kept: 0 });
  for (const j of jobs) expect(await keysOf(j.value.id)).toBe(0);
  // each transaction is one revision: 60 jobs × 3 keys = 180 deletes, ≤ 128 ops a transaction → 2 (fewer than one a job)
  expect(Number(after) - Number(before)).toBeLessThanOrEqual(3);
});

it('keeps a job changed after it was read, and removes the jobs packed beside it', async () => {
  const jobs = await Promise.all(Array.from({ length: 5 }, (_, i) => finishedJob(`changed-${i}`)));
  const entries: ArchiveEntry[] = await readArchiveBatch(s.store, jobs);
  // job 2 changes after the read (e.g. a late label edit): its compare fails
  await s.store.txn([], [{ put: jobs[2].key, value: { ...jobs[2].value, spec: { ...jobs[2].value.spec, labels: { late: 'yes' } } } }]);
  const removed = await removeArchived(s.store, s.leader.fence(), entries);
  expect(removed.kept).toBe(1);
  expect(removed.jobs.sort()).toEqual(['changed-0', 'changed-1', 'changed-3', 'changed-4']);
  expect(await keysOf('changed-2')).toBe(3);
  for (const id of removed.jobs) expect(await keysOf(id)).toBe(0);
});

it('removes a job of 150 groups, more than one transaction holds, in parts', async () => {
  // 150 groups + 150 results + the job = 301 deletes > 128 ops: the children go first, in 3 transactions, then the job
  const big = await finishedJob('big', 150);
  const small = await finishedJob('small-beside-big');
  const removed = await removeArchived(s.store, s.leader.fence(), await readArchiveBatch(s.store, [big, small]));
  expect(removed).toEqual({ jobs: ['small-beside-big', 'big'], kept: 0 });
  expect(await keysOf('big')).toBe(0);
});

it('removes nothing once the fence is lost', async () => {
  const jobs = await Promise.all(Array.from({ length: 3 }, (_, i) => finishedJob(`fenced-${i}`)));
  const entries = await readArchiveBatch(s.store, jobs);
  const { campaign, ProcessLease } = await import('@batchapi/store');
  const lease = new ProcessLease(s.store, 5);
  await lease.ready();
  const other = await campaign(s.store, 'archiver-fence-test', 'M', lease);
  await other.resign();
  const removed = await removeArchived(s.store, other.fence(), entries);
  expect(removed).toEqual({ jobs: [], kept: 3 });
  for (const j of jobs) expect(await keysOf(j.value.id)).toBe(3);
  await lease.revoke();
});

it('reads a batch of 201 jobs, each with its own groups and results, a job of 150 groups whole', async () => {
  const jobs = await Promise.all(Array.from({ length: 200 }, (_, i) => finishedJob(`read-${i}`)));
  jobs.splice(100, 0, await finishedJob('read-big', 150));
  const entries = await readArchiveBatch(s.store, jobs);
  expect(entries.map((e) => e.job.value.id)).toEqual(jobs.map((j) => j.value.id));
  for (const e of entries) {
    const n = e.job.value.id === 'read-big' ? 150 : 1;
    expect(e.groups.map((g) => g.value.jobId)).toEqual(Array(n).fill(e.job.value.id));
    expect(e.results.map((r) => r.value.index)).toEqual(Array.from({ length: n }, (_, i) => i));
  }
});

it('lists many prefixes, one holding more keys than a page, each whole and in key order', async () => {
  // 3 prefixes: a (1 key), b (5 keys > a page of 2: listed on its own), c (none)
  await s.store.txn([], [{ put: '/archive-test/lm/a/1', value: 1 }, ...[1, 2, 3, 4, 5].map((i) => ({ put: `/archive-test/lm/b/${i}`, value: i }))]);
  const lists = await s.store.listMany<number>(['/archive-test/lm/a/', '/archive-test/lm/b/', '/archive-test/lm/c/'], 2);
  expect(lists.map((l) => l.map((kv) => kv.value))).toEqual([[1], [1, 2, 3, 4, 5], []]);
});

it("listLiveResults reads a live job's results, and tells a job archived since from one that returned none", async () => {
  await finishedJob('live-results', 2);
  const none = await finishedJob('no-results');
  await s.store.txn([], [{ delete: s.store.keys.result('no-results', 0) }]);
  const gone = await finishedJob('archived-results', 2);
  // a reader found 'archived-results' in etcd a moment ago; the archiver then removes it with its results
  await removeArchived(s.store, s.leader.fence(), await readArchiveBatch(s.store, [gone]));
  expect((await listLiveResults(s.store, 'live-results'))!.map((r) => r.value)).toEqual([0, 1]);
  expect(await listLiveResults(s.store, none.value.id)).toEqual([]);
  // the plain listing cannot tell the archived job from one without results: it reads none for both
  expect(await listResults(s.store, 'archived-results')).toEqual([]);
  expect(await listLiveResults(s.store, 'archived-results')).toBeUndefined();
});
