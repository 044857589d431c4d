/**
 * Monthly partitions on a real PostgreSQL: archived rows land in the partition of the month
 * their job finished (UTC), partitions are created on demand and concurrently without error,
 * and retention drops whole months before a date and nothing else.
 */
import { createHistoryPool, dropPartitionsBefore, ensurePartitions, HistoryStore, listPartitions, migrate, PARTITION_LOCK_KEY } from '@batchapi/history';
import pg from 'pg';
import { archived, finishedJob, usePostgres } from './history-fixture';

const postgres = usePostgres();

/**
 * A migrated fresh database, with a pool and a store over it. The pool is `createHistoryPool`'s,
 * which listens for errors: `pool.end()` resolves before its clients' sockets close, and the
 * server's shutdown after the suite ends a still-closing connection with an error (57P01) that
 * a bare `pg.Pool` would raise as unhandled.
 */
async function freshHistory(): Promise<{ pool: pg.Pool; history: HistoryStore }> {
  const url = await postgres.freshDatabase();
  await migrate(url);
  return { pool: createHistoryPool(url), history: HistoryStore.connect(url) };
}

const APRIL_30_LATE = Date.UTC(2026, 3, 30, 23, 59, 59, 999);
const MAY_1 = Date.UTC(2026, 4, 1);

describe('partitions', () => {
  let pool: pg.Pool;
  let history: HistoryStore;
  beforeAll(async () => ({ pool, history } = await freshHistory()));
  afterAll(async () => {
    await pool?.end();
    await history?.close();
  });

  it('puts jobs that finished in two months into two partitions, with their tasks and results', async () => {
    // one millisecond apart, either side of midnight UTC between April and May
    await history.archiveJobs([archived(finishedJob('april', { finishedAt: APRIL_30_LATE, tasks: 2 })), archived(finishedJob('may', { finishedAt: MAY_1 }))]);
    expect((await listPartitions(pool)).map((p) => p.name)).toEqual([
      'jobs_2026_04',
      'tasks_2026_04',
      'results_2026_04',
      'workflows_2026_04',
      'jobs_2026_05',
      'tasks_2026_05',
      'results_2026_05',
      'workflows_2026_05',
    ]);
    const where = async (table: string) =>
      (
        await pool.query<{ p: string; id: string }>(
          `SELECT tableoid::regclass::text AS p, ${table === 'jobs' ? 'id' : 'job_id'} AS id FROM ${table} ORDER BY 1, 2`,
        )
      ).rows;
    expect(await where('jobs')).toEqual([
      { p: 'jobs_2026_04', id: 'april' },
      { p: 'jobs_2026_05', id: 'may' },
    ]);
    expect((await where('tasks')).map((r) => r.p)).toEqual(['tasks_2026_04', 'tasks_2026_04', 'tasks_2026_05']);
  });

  it('drops the months before a date and keeps the month of the date', async () => {
    // May 20: April ended before it (dropped); May holds it (kept)
    const dropped = await dropPartitionsBefore(pool, Date.UTC(2026, 4, 20));
    expect(dropped.map((p) => p.name)).toEqual(['jobs_2026_04', 'tasks_2026_04', 'results_2026_04', 'workflows_2026_04']);
    expect((await listPartitions(pool)).map((p) => p.month)).toEqual(['2026-05', '2026-05', '2026-05', '2026-05']);
    expect(await history.getJob('april')).toBeUndefined();
    expect((await history.getJob('may'))?.id).toBe('may');
    expect(await history.listTasks('may')).toMatchObject({ tasks: [{ index: 0 }] });
    // nothing older is left: a second pass drops nothing
    expect(await dropPartitionsBefore(pool, Date.UTC(2026, 4, 20))).toEqual([]);
  });

  it('creates each month of a range once, whatever the number of concurrent callers', async () => {
    const from = Date.UTC(2027, 0, 15);
    const to = Date.UTC(2027, 2, 1);
    const created = await Promise.all([1, 2, 3].map(() => ensurePartitions(pool, from, to)));
    // January to March 2027, four tables each: twelve partitions made, each by exactly one caller
    const names = created.flat().map((p) => p.name);
    expect(names).toHaveLength(12);
    expect(new Set(names).size).toBe(12);
    expect(await ensurePartitions(pool, from, to)).toEqual([]);
  });

  it('archives into a month a retention pass drops between the partition check and the write: the drop waits or the month is made again', async () => {
    // The interleaving CI met: the archiver found March 2028's partitions, retention dropped them,
    // then the archiver's INSERT found no partition for its row. Here the drop is held open, not
    // committed, while the archive runs: its check still sees the partitions (the drop is not
    // visible yet), and its write must not run until the drop has committed or rolled back.
    const MARCH_2028 = Date.UTC(2028, 2, 10);
    await ensurePartitions(pool, MARCH_2028, MARCH_2028);
    const retention = await pool.connect();
    try {
      await retention.query('BEGIN');
      await retention.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
      await retention.query('DROP TABLE jobs_2028_03, tasks_2028_03, results_2028_03, workflows_2028_03');
      const archiving = history.archiveJobs([archived(finishedJob('march-2028', { finishedAt: MARCH_2028, tasks: 1 }))]);
      const failed = archiving.then(
        () => undefined,
        (err: unknown) => err,
      );
      // the archive's transaction waits for the partition lock (shared) while the drop holds it
      const waiting = async () =>
        (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)).rows[0].n > 0;
      for (let i = 0; i < 500 && !(await waiting()); i++) await new Promise((r) => setTimeout(r, 10));
      expect(await waiting()).toBe(true);
      await retention.query('COMMIT');
      expect(await failed).toBeUndefined();
    } finally {
      retention.release();
    }
    // March 2028 was made again, and the job is there with its task
    expect((await listPartitions(pool)).filter((p) => p.month === '2028-03')).toHaveLength(4);
    expect((await history.getJob('march-2028'))?.finishedAt).toBe(MARCH_2028);
    expect(await history.listTasks('march-2028')).toMatchObject({ tasks: [{ index: 0 }] });
  });
});
