/**
 * A history read caught in a deadlock runs again instead of failing, against a real PostgreSQL:
 * the lock cycle the archiver's DDL (next month's partitions: ACCESS EXCLUSIVE locks) can make
 * with a usage read that holds `tasks` and waits for `jobs`, which made `GET /v1/usage` answer 500
 * once in CI. Here a second session plays the archiver's part: it holds `jobs`, waits until the
 * read waits for it, then asks for `tasks`; PostgreSQL aborts the read (40P01), which runs again
 * once the session commits, and answers.
 */
import pg from 'pg';
import { HistoryStore, migrate } from '@batchapi/history';
import { usePostgres } from './history-fixture';

const postgres = usePostgres();
let url: string;
let history: HistoryStore;

beforeAll(async () => {
  url = await postgres.freshDatabase();
  await migrate(url);
  // The read's connections look for a deadlock 3 s after they start waiting (PostgreSQL looks once): time enough,
  // on a loaded box, for the other session to close the cycle first. That session looks only after a minute, so
  // the read is the one aborted.
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`ALTER DATABASE ${(await admin.query<{ d: string }>('SELECT current_database() AS d')).rows[0].d} SET deadlock_timeout = '3s'`);
  await admin.end();
  history = HistoryStore.connect(url);
});
afterAll(async () => {
  await history?.close();
});

async function deadlocks(c: pg.Client): Promise<number> {
  const { rows } = await c.query<{ n: string }>('SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()');
  return Number(rows[0].n);
}

it('runs a read again after PostgreSQL broke a deadlock by aborting it', async () => {
  const ddl = new pg.Client({ connectionString: url });
  const watcher = new pg.Client({ connectionString: url });
  await Promise.all([ddl.connect(), watcher.connect()]);
  try {
    const before = await deadlocks(watcher);
    await ddl.query("SET deadlock_timeout = '60s'");
    await ddl.query('BEGIN');
    await ddl.query('LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE');
    // the read locks tasks (first in its FROM), then waits for jobs
    const read = history.usage({ from: Date.UTC(2026, 0, 1), to: Date.UTC(2026, 0, 2), groupBy: 'queue' });
    for (let waiting = 0; waiting === 0;) {
      const { rows } = await watcher.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM tasks t JOIN jobs j%'`,
      );
      waiting = Number(rows[0].n);
      if (waiting === 0) await new Promise((r) => setTimeout(r, 20));
    }
    // the cycle: this session now waits for tasks, which the read holds; 3 s after the read began waiting, it is aborted
    const ddlLocks = ddl.query('LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE');
    await ddlLocks;
    await ddl.query('COMMIT');
    expect(await read).toEqual({ rows: [], truncated: false });
    // a deadlock did happen, and it was the read that PostgreSQL aborted (this session got both locks);
    // the counter is flushed to the statistics now and then: wait for it
    let seen = before;
    for (let i = 0; i < 100 && seen === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      seen = await deadlocks(watcher);
    }
    expect(seen).toBe(before + 1);
  } finally {
    await Promise.all([ddl.end(), watcher.end()]);
  }
}, 30_000);
