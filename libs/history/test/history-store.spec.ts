/**
 * HistoryStore on a real PostgreSQL: idempotent archiving of jobs with their task attempts and
 * results, the job record round trip, every list filter, cursor paging, per-attempt task rows
 * with the state filter, and the typed errors (unavailable, invalid request).
 */
import { type JobRecord, parseLabelSelector, type WorkflowRecord } from '@batchapi/api';
import {
  createHistoryPool,
  HistoryStore,
  HistoryUnavailableError,
  idempotencyLookupKey,
  InvalidHistoryRequestError,
  type JobHistoryFilter,
  migrate,
} from '@batchapi/history';
import { createServer } from 'node:net';
import pg from 'pg';
import { archived, finishedJob, group, T0, usePostgres } from './history-fixture';

const postgres = usePostgres();
let url: string;
let history: HistoryStore;

beforeAll(async () => {
  url = await postgres.freshDatabase();
  await migrate(url);
  history = HistoryStore.connect(url);
});
afterAll(async () => {
  await history?.close();
});

const HOUR = 3_600_000;
const MINUTE = 60_000;

async function count(table: string, jobId: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const col = table === 'jobs' ? 'id' : 'job_id';
    return Number((await client.query(`SELECT count(*) AS n FROM ${table} WHERE ${col} = $1`, [jobId])).rows[0].n);
  } finally {
    await client.end();
  }
}

describe('archiveJobs', () => {
  it('is idempotent: the same batch archived twice leaves one row per job, task attempt and result', async () => {
    const batch = [archived(finishedJob('idem-1', { tasks: 3 })), archived(finishedJob('idem-2'))];
    await history.archiveJobs(batch);
    await history.archiveJobs(batch);
    expect(await Promise.all(['jobs', 'tasks', 'results'].map((t) => count(t, 'idem-1')))).toEqual([1, 3, 3]);
    expect(await Promise.all(['jobs', 'tasks', 'results'].map((t) => count(t, 'idem-2')))).toEqual([1, 1, 1]);
  });

  it('keeps the newer copy when a job is archived again with changed counters', async () => {
    const job = finishedJob('idem-3', { phase: 'Failed', counts: { succeeded: 0, failed: 1, cancelled: 0 } });
    await history.archiveJobs([archived(job)]);
    const later = { ...job, counts: { succeeded: 0, failed: 1, cancelled: 1 } };
    await history.archiveJobs([archived(later)]);
    expect((await history.getJob('idem-3'))?.counts).toEqual({ succeeded: 0, failed: 1, cancelled: 1 });
    expect(await count('jobs', 'idem-3')).toBe(1);
  });

  it('refuses a job that has not finished, writing nothing of the batch', async () => {
    const running: JobRecord = { ...finishedJob('unfinished'), phase: 'Running', finishedAt: undefined };
    await expect(history.archiveJobs([archived(finishedJob('with-unfinished')), archived(running)])).rejects.toMatchObject({
      code: 'invalid_history_request',
      field: 'batch[1].job.finishedAt',
    });
    expect(await history.getJob('with-unfinished')).toBeUndefined();
  });

  it('writes a million-task job in slices of rowsPerStatement', async () => {
    const sliced = new HistoryStore(createHistoryPool(url), { rowsPerStatement: 7 });
    try {
      const job = finishedJob('sliced', { tasks: 50 });
      await sliced.archiveJobs([archived(job)]);
      expect(await Promise.all(['tasks', 'results'].map((t) => count(t, 'sliced')))).toEqual([50, 50]);
    } finally {
      await sliced.close();
    }
  });
});

describe('getJob', () => {
  it('returns the archived record exactly as it was in etcd', async () => {
    const job = finishedJob('round-trip', {
      phase: 'Cancelled',
      reason: { code: 'cancelled', message: 'cancelled by team-a' },
      pending: [{ start: 5, end: 8, attempt: 1 }],
      counts: { succeeded: 3, failed: 1, cancelled: 1 },
      cancelRequestedAt: T0 - 1000,
      labels: { team: 'vision', 'batch.workflow': 'wf-7' },
      tasks: 8,
    });
    job.spec.retry = { maxAttempts: 3, backoffSeconds: 10 };
    job.spec.items = [{ lr: 0.1 }, null, 'x'];
    await history.archiveJobs([archived(job, [group(job, 0, 5, 1, 'node-1')], [])]);
    expect(await history.getJob('round-trip')).toEqual(job);
  });

  it('answers undefined for a job the history does not have', async () => {
    expect(await history.getJob('never-archived')).toBeUndefined();
  });
});

describe('idempotency records of archived jobs', () => {
  it('keeps the first job a key named, answers by tenant and digest, and drops records by age', async () => {
    const job = finishedJob('idem-key-1', { tenant: 'keys' });
    const record = { keyDigest: 'd1', requestHash: 'h1', createdAt: T0 - 10 * MINUTE };
    await history.archiveJobs([{ ...archived(job), idempotency: record }]);
    expect(await history.getIdempotency('keys', 'd1')).toEqual({ jobId: 'idem-key-1', requestHash: 'h1', createdAt: T0 - 10 * MINUTE });
    // another tenant's same digest is another key
    expect(await history.getIdempotency('other', 'd1')).toBeUndefined();
    // archived again (a crash between insert and delete), or another job under the key: the first stays
    await history.archiveJobs([{ ...archived(finishedJob('idem-key-2', { tenant: 'keys' })), idempotency: { ...record, requestHash: 'h2' } }]);
    expect(await history.getIdempotency('keys', 'd1')).toMatchObject({ jobId: 'idem-key-1', requestHash: 'h1' });
    // created 10 min before T0: kept by a cut at T0 − 11 min, dropped by one at T0
    expect(await history.dropIdempotencyBefore(T0 - 11 * MINUTE)).toBe(0);
    expect(await history.dropIdempotencyBefore(T0)).toBe(1);
    expect(await history.getIdempotency('keys', 'd1')).toBeUndefined();
  });

  it('answers many keys in one statement: the ones it has, by tenant and digest, and none for the rest', async () => {
    await history.archiveJobs([
      { ...archived(finishedJob('many-1', { tenant: 'many' })), idempotency: { keyDigest: 'm1', requestHash: 'h1', createdAt: T0 } },
      { ...archived(finishedJob('many-2', { tenant: 'many' })), idempotency: { keyDigest: 'm2', requestHash: 'h2', createdAt: T0 } },
    ]);
    const found = await history.getIdempotencyMany([
      { tenant: 'many', keyDigest: 'm1' },
      { tenant: 'many', keyDigest: 'm2' },
      { tenant: 'many', keyDigest: 'absent' },
      { tenant: 'other', keyDigest: 'm1' },
    ]);
    expect([...found.keys()].sort()).toEqual([idempotencyLookupKey('many', 'm1'), idempotencyLookupKey('many', 'm2')]);
    expect(found.get(idempotencyLookupKey('many', 'm2'))).toEqual({ jobId: 'many-2', requestHash: 'h2', createdAt: T0 });
    expect((await history.getIdempotencyMany([])).size).toBe(0);
  });
});

describe('listJobs', () => {
  // Seven jobs finished an hour apart on 2026-07-01, newest first: L7 (07:00) … L1 (01:00).
  const DAY = Date.UTC(2026, 6, 1);
  const at = (hour: number) => DAY + hour * HOUR;
  const jobs = [
    finishedJob('L1', { finishedAt: at(1), tenant: 'acme', queue: 'gpu', name: 'train-resnet', labels: { team: 'vision', env: 'prod' } }),
    finishedJob('L2', { finishedAt: at(2), tenant: 'acme', queue: 'cpu', name: 'train-bert', phase: 'Failed', labels: { team: 'nlp' } }),
    finishedJob('L3', { finishedAt: at(3), tenant: 'acme', queue: 'gpu', name: 'eval_resnet', labels: { team: 'vision', env: 'dev' } }),
    finishedJob('L4', { finishedAt: at(4), tenant: 'globex', queue: 'gpu', name: 'train-resnet', phase: 'Cancelled' }),
    finishedJob('L5', { finishedAt: at(5), tenant: 'globex', queue: 'cpu', name: 'etl%daily', labels: { 'batch.workflow': 'wf-1', 'batch.step': 'extract' } }),
    finishedJob('L6', { finishedAt: at(6), tenant: 'acme', queue: 'cpu', name: 'etl-daily', phase: 'Failed', labels: { 'batch.workflow': 'wf-2' } }),
    finishedJob('L7', { finishedAt: at(7), tenant: 'acme', queue: 'gpu', name: 'train-gpt', labels: { team: 'nlp', env: 'prod' } }),
  ].map((j) => ({ ...j, createdAt: j.finishedAt! - 10 * MINUTE })); // each submitted 10 minutes before it finished

  beforeAll(async () => {
    await history.archiveJobs(jobs.map((j) => archived(j)));
  });

  // Every case is bounded to that day, so the other tests' jobs do not show.
  const day = { finishedFrom: DAY, finishedBefore: DAY + 24 * HOUR };
  it.each<{ name: string; filter: JobHistoryFilter; ids: string[] }>([
    { name: 'nothing more: all of them, newest first', filter: {}, ids: ['L7', 'L6', 'L5', 'L4', 'L3', 'L2', 'L1'] },
    { name: 'tenant', filter: { tenant: 'globex' }, ids: ['L5', 'L4'] },
    { name: 'queue', filter: { queue: 'cpu' }, ids: ['L6', 'L5', 'L2'] },
    { name: 'one phase', filter: { phase: 'Failed' }, ids: ['L6', 'L2'] },
    { name: 'several phases', filter: { phase: ['Failed', 'Cancelled'] }, ids: ['L6', 'L4', 'L2'] },
    { name: 'one label', filter: { labels: { team: 'vision' } }, ids: ['L3', 'L1'] },
    { name: 'two labels, both matching', filter: { labels: { team: 'nlp', env: 'prod' } }, ids: ['L7'] },
    { name: 'name prefix', filter: { namePrefix: 'train-' }, ids: ['L7', 'L4', 'L2', 'L1'] },
    // `%` and `_` are characters of the prefix, not LIKE wildcards: 'etl%' is not 'etl-daily'
    { name: 'name prefix holding a %', filter: { namePrefix: 'etl%' }, ids: ['L5'] },
    { name: 'name prefix holding an _', filter: { namePrefix: 'eval_' }, ids: ['L3'] },
    { name: 'workflow', filter: { workflowId: 'wf-1' }, ids: ['L5'] },
    // from 03:00 included to 05:00 excluded: L3 and L4
    { name: 'finished time range', filter: { finishedFrom: at(3), finishedBefore: at(5) }, ids: ['L4', 'L3'] },
    { name: 'tenant, queue and label together', filter: { tenant: 'acme', queue: 'gpu', labels: { env: 'prod' } }, ids: ['L7', 'L1'] },
    { name: 'selector k=v', filter: { selector: parseLabelSelector('team=nlp') }, ids: ['L7', 'L2'] },
    // != and notin hold where the key is absent: L4, L5, L6 carry no team
    { name: 'selector k!=v', filter: { selector: parseLabelSelector('team!=vision') }, ids: ['L7', 'L6', 'L5', 'L4', 'L2'] },
    { name: 'selector k in (a,b)', filter: { selector: parseLabelSelector('env in (dev,prod)') }, ids: ['L7', 'L3', 'L1'] },
    { name: 'selector k notin (a,b)', filter: { selector: parseLabelSelector('env notin (prod)') }, ids: ['L6', 'L5', 'L4', 'L3', 'L2'] },
    { name: 'selector k (exists)', filter: { selector: parseLabelSelector('batch.workflow') }, ids: ['L6', 'L5'] },
    { name: 'selector !k (absent)', filter: { selector: parseLabelSelector('!team,!batch.workflow') }, ids: ['L4'] },
    { name: 'selector of several requirements', filter: { selector: parseLabelSelector('team=vision,env!=dev') }, ids: ['L1'] },
    // submitted 10 minutes before each finished: from 02:50 included to 04:50 excluded is L3 and L4
    { name: 'submitted time range', filter: { submittedFrom: at(3) - 10 * MINUTE, submittedBefore: at(5) - 10 * MINUTE }, ids: ['L4', 'L3'] },
  ])('filters by $name', async ({ filter, ids }) => {
    const { jobs: page, nextCursor } = await history.listJobs({ ...day, ...filter });
    expect(page.map((j) => j.id)).toEqual(ids);
    expect(nextCursor).toBeUndefined();
  });

  it('pages of 2 over 5 jobs give all 5 once, newest first, and no cursor after the last page', async () => {
    // L3..L7 (from 03:00): pages [L7 L6] [L5 L4] [L3]
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await history.listJobs({ ...day, finishedFrom: at(3), limit: 2, cursor });
      pages.push(page.jobs.map((j) => j.id));
      cursor = page.nextCursor;
      // a job archived between two pages, finished later than the first page: no page repeats or skips because of it
      if (pages.length === 1) await history.archiveJobs([archived(finishedJob('L8', { finishedAt: at(8) }))]);
    } while (cursor);
    expect(pages).toEqual([['L7', 'L6'], ['L5', 'L4'], ['L3']]);
  });

  it('pages earliest-finished first when ascending, continuing after a given (finishedAt, id)', async () => {
    const first = await history.listJobs({ ...day, ascending: true, limit: 3 });
    expect(first.jobs.map((j) => j.id)).toEqual(['L1', 'L2', 'L3']);
    const next = await history.listJobs({ ...day, ascending: true, limit: 3, after: { finishedAt: at(3), id: 'L3' } });
    expect(next.jobs.map((j) => j.id)).toEqual(['L4', 'L5', 'L6']);
  });

  it('orders jobs that finished in the same millisecond by id, across pages', async () => {
    const same = Date.UTC(2026, 6, 2);
    await history.archiveJobs(['S1', 'S2', 'S3', 'S4', 'S5'].map((id) => archived(finishedJob(id, { finishedAt: same }))));
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await history.listJobs({ finishedFrom: same, finishedBefore: same + 1, limit: 2, cursor });
      pages.push(page.jobs.map((j) => j.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(pages).toEqual([['S5', 'S4'], ['S3', 'S2'], ['S1']]);
  });

  it.each([
    { name: 'a limit over 1000', request: { limit: 1001 }, field: 'limit' },
    { name: 'a limit of 0', request: { limit: 0 }, field: 'limit' },
    { name: 'a cursor it did not make', request: { cursor: 'bm90LWEtY3Vyc29y' }, field: 'cursor' },
    { name: 'a cursor of the task list', request: { cursor: Buffer.from('[3,1]').toString('base64url') }, field: 'cursor' },
  ])('refuses $name', async ({ request, field }) => {
    const err = await history.listJobs(request).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidHistoryRequestError);
    expect(err).toMatchObject({ code: 'invalid_history_request', field });
  });
});

describe('listJobsById', () => {
  it('lists in byte order of the id, as etcd orders keys, whatever the database collation, after a given id', async () => {
    // bytes: '-' 0x2d < '0' 0x30 < 'B' 0x42 < 'a' 0x61 (a linguistic collation would put '-' and case elsewhere)
    const ids = ['zz-a', 'zz-B', 'zz--x', 'zz-0'];
    await history.archiveJobs(ids.map((id) => archived(finishedJob(id, { tenant: 'byid' }))));
    const all = await history.listJobsById({ tenant: 'byid', limit: 10 });
    expect(all.map((j) => j.id)).toEqual(['zz--x', 'zz-0', 'zz-B', 'zz-a']);
    expect((await history.listJobsById({ tenant: 'byid', afterId: 'zz-0', limit: 1 })).map((j) => j.id)).toEqual(['zz-B']);
    // descending: the reverse order, "after" meaning below
    expect((await history.listJobsById({ tenant: 'byid', descending: true, limit: 10 })).map((j) => j.id)).toEqual(['zz-a', 'zz-B', 'zz-0', 'zz--x']);
    expect((await history.listJobsById({ tenant: 'byid', descending: true, afterId: 'zz-B', limit: 1 })).map((j) => j.id)).toEqual(['zz-0']);
  });
});

describe('listTasks', () => {
  // 4 tasks: task 1 failed at attempt 1 on node-1 and succeeded at attempt 2 on node-2; task 3 failed twice.
  const job = finishedJob('T', { phase: 'Failed', tasks: 4, counts: { succeeded: 3, failed: 1, cancelled: 0 } });
  const groups = [
    group(job, 0, 4, 1, 'node-1', [
      {},
      { state: 'Failed', exitCode: 3, reason: 'Error' },
      {},
      { state: 'Failed', reason: 'OOMKilled', signal: 'SIGKILL', exitCode: undefined },
    ]),
    group(job, 1, 2, 2, 'node-2'),
    group(job, 3, 4, 2, 'node-2', [{ state: 'Failed', exitCode: 1, reason: 'Error' }]),
  ];

  beforeAll(async () => {
    await history.archiveJobs([archived(job, groups)]);
  });

  it('returns one row per task attempt, by index then attempt, with node, outcome and times', async () => {
    const { tasks, nextCursor } = await history.listTasks('T');
    expect(tasks.map((t) => [t.index, t.attempt, t.node, t.state])).toEqual([
      [0, 1, 'node-1', 'Succeeded'],
      [1, 1, 'node-1', 'Failed'],
      [1, 2, 'node-2', 'Succeeded'],
      [2, 1, 'node-1', 'Succeeded'],
      [3, 1, 'node-1', 'Failed'],
      [3, 2, 'node-2', 'Failed'],
    ]);
    expect(tasks[4]).toEqual({
      jobId: 'T',
      index: 3,
      attempt: 1,
      node: 'node-1',
      state: 'Failed',
      reason: 'OOMKilled',
      signal: 'SIGKILL',
      boundAt: groups[0].boundAt,
      startedAt: groups[0].tasks[3].startedAt,
      endedAt: groups[0].tasks[3].finishedAt,
    });
    expect(nextCursor).toBeUndefined();
  });

  it('filters by state: which attempts failed, and why', async () => {
    const { tasks } = await history.listTasks('T', { state: 'Failed' });
    expect(tasks.map((t) => ({ index: t.index, attempt: t.attempt, exitCode: t.exitCode, reason: t.reason }))).toEqual([
      { index: 1, attempt: 1, exitCode: 3, reason: 'Error' },
      { index: 3, attempt: 1, exitCode: undefined, reason: 'OOMKilled' },
      { index: 3, attempt: 2, exitCode: 1, reason: 'Error' },
    ]);
  });

  it('pages by (index, attempt) with the state filter kept', async () => {
    const first = await history.listTasks('T', { state: 'Failed', limit: 2 });
    const second = await history.listTasks('T', { state: 'Failed', limit: 2, cursor: first.nextCursor });
    expect([first.tasks, second.tasks].map((p) => p.map((t) => `${t.index}/${t.attempt}`))).toEqual([['1/1', '3/1'], ['3/2']]);
    expect(second.nextCursor).toBeUndefined();
  });

  it('is empty for a job the history does not have', async () => {
    expect(await history.listTasks('never-archived')).toEqual({ tasks: [] });
  });

  it('lists the results by index', async () => {
    const { results } = await history.listResults('T', { limit: 3 });
    expect(results).toEqual([0, 1, 2].map((i) => ({ index: i, attempt: 1, value: { i } })));
  });
});

describe('archiveWorkflows', () => {
  it('round-trips a finished workflow record, idempotently', async () => {
    const wf = {
      id: 'wf-9',
      name: 'nightly',
      tenant: 'acme',
      queue: 'default',
      labels: {},
      phase: 'Succeeded' as const,
      steps: [],
      createdAt: T0 - HOUR,
      finishedAt: T0,
    };
    await history.archiveWorkflows([wf]);
    await history.archiveWorkflows([wf]);
    expect(await history.getWorkflow('wf-9')).toEqual(wf);
  });

  it("lists one template's runs (their batch.template label), one tenant's, most recently finished first", async () => {
    const run = (id: string, tenant: string, template: string | undefined, finishedAt: number): WorkflowRecord => ({
      id,
      name: 'nightly',
      tenant,
      queue: 'default',
      labels: template ? { 'batch.template': template, 'batch.template-version': '1' } : ({} as Record<string, string>),
      phase: 'Succeeded' as const,
      steps: [],
      createdAt: finishedAt - HOUR,
      finishedAt,
      ...(template ? { template: { name: template, version: 1, params: { date: id } } } : {}),
    });
    await history.archiveWorkflows([
      run('wf-t1', 'acme', 'etl', T0 - 3 * HOUR),
      run('wf-t2', 'acme', 'etl', T0 - 2 * HOUR),
      run('wf-t3', 'acme', 'other', T0 - 2 * HOUR),
      run('wf-t4', 'acme', undefined, T0 - 2 * HOUR),
      run('wf-t5', 'beta', 'etl', T0 - HOUR),
    ]);
    const ids = async (f: { tenant?: string; template?: string }) => (await history.listWorkflows(f)).map((w) => w.id);
    expect(await ids({ tenant: 'acme', template: 'etl' })).toEqual(['wf-t2', 'wf-t1']);
    expect(await ids({ template: 'etl' })).toEqual(['wf-t5', 'wf-t2', 'wf-t1']);
    expect(await ids({ tenant: 'acme', template: 'none' })).toEqual([]);
    expect((await history.listWorkflows({ template: 'other' }))[0].template).toEqual({ name: 'other', version: 1, params: { date: 'wf-t3' } });
  });
});

describe('when PostgreSQL cannot be reached', () => {
  it('fails reads and writes with HistoryUnavailableError', async () => {
    // a port nothing listens on
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const down = HistoryStore.connect(`postgres://postgres@127.0.0.1:${port}/postgres`, { connectTimeoutMs: 1000 });
    try {
      for (const call of [() => down.getJob('x'), () => down.listJobs(), () => down.archiveJobs([archived(finishedJob('x'))])]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(HistoryUnavailableError);
        expect(err).toMatchObject({ code: 'history_unavailable', retryAfterSeconds: 5 });
      }
    } finally {
      await down.close();
    }
  });
});
