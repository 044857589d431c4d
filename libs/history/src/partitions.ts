/**
 * Monthly partitions of the history tables, by `finished_at` in UTC: created on demand before
 * rows of a month are written, and dropped whole for retention — a month goes at once, no row is
 * ever deleted. A partition is named `<table>_<yyyy>_<mm>` (e.g. `jobs_2026_05`) and holds
 * `[first of the month, first of the next)`. Creating and dropping take one advisory lock
 * exclusively and writes take it shared (`writeIntoMonths`), so concurrent archivers and a
 * retention pass never race on the catalog, and no write meets a month dropped under it.
 */
import type pg from 'pg';
import { asHistoryError, HistoryUnavailableError } from './errors';
import { inTransaction } from './transaction';

/** The partitioned tables: a job, its tasks and results, and workflows, all by the month they finished. */
export const HISTORY_TABLES = ['jobs', 'tasks', 'results', 'workflows'] as const;
export type HistoryTable = (typeof HISTORY_TABLES)[number];

/** A month's partition of one table. */
export interface HistoryPartition {
  table: HistoryTable;
  /** `yyyy-mm`, UTC. */
  month: string;
  /** The partition's table name, `<table>_<yyyy>_<mm>`. */
  name: string;
}

/**
 * The advisory lock of partition DDL. Creating and dropping partitions hold it exclusively
 * (`pg_advisory_xact_lock`); a transaction that writes rows into partitions holds it shared
 * (`pg_advisory_xact_lock_shared`, see `writeIntoMonths`), so a drop waits for the writes in
 * flight to commit and a write never meets a partition dropped under it. Anything else that
 * drops partitions (an operator by hand) takes it exclusively too.
 */
export const PARTITION_LOCK_KEY = 2026_0020_0002;
/** How many times `writeIntoMonths` creates partitions a concurrent drop removed before it gives up. */
const WRITE_ATTEMPTS = 5;
const NAME = /^(jobs|tasks|results|workflows)_(\d{4})_(\d{2})$/;

/** A month as the number of months since year 0 (UTC): easy to step and compare. */
type MonthNumber = number;

function monthOf(time: Date | number): MonthNumber {
  const d = new Date(time);
  if (Number.isNaN(d.getTime())) throw new RangeError(`not a time: ${String(time)}`);
  return d.getUTCFullYear() * 12 + d.getUTCMonth();
}

function monthStart(m: MonthNumber): string {
  return new Date(Date.UTC(Math.floor(m / 12), m % 12, 1)).toISOString();
}

function partitionOf(table: HistoryTable, m: MonthNumber): HistoryPartition {
  const yyyy = String(Math.floor(m / 12)).padStart(4, '0');
  const mm = String((m % 12) + 1).padStart(2, '0');
  return { table, month: `${yyyy}-${mm}`, name: `${table}_${yyyy}_${mm}` };
}

/**
 * Creates the monthly partitions of every history table for each month from the one of `from`
 * to the one of `to`, both included, that does not exist yet; returns the partitions it created.
 * Cheap when they all exist (one catalog query, no lock).
 * @throws HistoryUnavailableError when PostgreSQL cannot be reached
 */
export async function ensurePartitions(pool: pg.Pool, from: Date | number, to: Date | number): Promise<HistoryPartition[]> {
  const first = monthOf(from);
  const last = monthOf(to);
  const months: MonthNumber[] = [];
  for (let m = first; m <= last; m++) months.push(m);
  return ensureMonths(pool, months);
}

/**
 * Runs `write` in one transaction that holds the partition lock shared, after the partitions
 * of the months of `times` exist: a retention pass cannot drop them between their creation and
 * the write's commit (it waits for the lock). When a drop committed between the creation and
 * the lock, the partitions are created again and the write runs again, at most
 * `WRITE_ATTEMPTS` (5) times. `write` must be safe to run again (its transaction was rolled back).
 * @throws HistoryUnavailableError when the partitions are dropped under every attempt, or
 * PostgreSQL cannot be reached
 */
export async function writeIntoMonths<T>(pool: pg.Pool, times: Iterable<Date | number>, write: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const months = [...new Set([...times].map(monthOf))];
  const names = months.flatMap((m) => HISTORY_TABLES.map((t) => partitionOf(t, m).name));
  for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
    await ensureMonths(pool, months);
    let out: { value: T } | undefined;
    try {
      out = await inTransaction(pool, async (client) => {
        await client.query('SELECT pg_advisory_xact_lock_shared($1)', [PARTITION_LOCK_KEY]);
        return (await missingTables(client, names)).length > 0 ? undefined : { value: await write(client) };
      });
    } catch (err) {
      throw asHistoryError(err, 'writing into history partitions');
    }
    if (out) return out.value;
  }
  throw new HistoryUnavailableError(
    `PostgreSQL history partitions were dropped under ${WRITE_ATTEMPTS} writes in a row (a retention pass and archived rows older than it?)`,
  );
}

/**
 * Which of the tables `names` do not exist, as this statement's snapshot sees the catalog. Not
 * `to_regclass`: it reads the session's catalog cache, which is refreshed when a transaction
 * starts or locks a table, not when it takes an advisory lock; after waiting for the partition
 * lock it could still see a partition whose drop has committed meanwhile.
 */
async function missingTables(client: pg.PoolClient, names: string[]): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT n AS name FROM unnest($1::text[]) AS n
      WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = n AND c.relnamespace = current_schema()::regnamespace)`,
    [names],
  );
  return rows.map((r) => r.name);
}

async function ensureMonths(pool: pg.Pool, months: MonthNumber[]): Promise<HistoryPartition[]> {
  const wanted = months.flatMap((m) => HISTORY_TABLES.map((t) => ({ ...partitionOf(t, m), start: monthStart(m), end: monthStart(m + 1) })));
  if (wanted.length === 0) return [];
  try {
    const { rows } = await pool.query<{ name: string }>('SELECT n AS name FROM unnest($1::text[]) AS n WHERE to_regclass(n) IS NULL', [
      wanted.map((p) => p.name),
    ]);
    const missing = new Set(rows.map((r) => r.name));
    if (missing.size === 0) return [];
    return await inTransaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
      const created: HistoryPartition[] = [];
      for (const p of wanted.filter((w) => missing.has(w.name))) {
        // Names and bounds are made here from integers, never from input: nothing to escape.
        if ((await missingTables(client, [p.name])).length === 0) continue;
        await client.query(`CREATE TABLE ${p.name} PARTITION OF ${p.table} FOR VALUES FROM ('${p.start}') TO ('${p.end}')`);
        created.push({ table: p.table, month: p.month, name: p.name });
      }
      return created;
    });
  } catch (err) {
    throw asHistoryError(err, 'creating history partitions');
  }
}

/**
 * Every monthly partition of the history tables, oldest month first (tables in the order of
 * `HISTORY_TABLES` within a month).
 * @throws HistoryUnavailableError when PostgreSQL cannot be reached
 */
export async function listPartitions(pool: pg.Pool): Promise<HistoryPartition[]> {
  try {
    const { rows } = await pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = ANY (ARRAY['jobs'::regclass, 'tasks'::regclass, 'results'::regclass, 'workflows'::regclass])`,
    );
    return rows
      .flatMap((r) => {
        const m = NAME.exec(r.name);
        return m ? [{ table: m[1] as HistoryTable, month: `${m[2]}-${m[3]}`, name: r.name }] : [];
      })
      .sort((a, b) => a.month.localeCompare(b.month) || HISTORY_TABLES.indexOf(a.table) - HISTORY_TABLES.indexOf(b.table));
  } catch (err) {
    throw asHistoryError(err, 'listing history partitions');
  }
}

/**
 * Retention: drops the partitions of every month that ended at or before `before` (the month
 * that contains `before` is kept), with all their jobs, tasks, results and workflows. Returns
 * what it dropped. E.g. 90 days of history: `dropPartitionsBefore(pool, now - 90 days)` keeps at
 * least 90 days and at most a month more.
 * @throws HistoryUnavailableError when PostgreSQL cannot be reached
 */
export async function dropPartitionsBefore(pool: pg.Pool, before: Date | number): Promise<HistoryPartition[]> {
  const keepFrom = monthOf(before);
  const old = (await listPartitions(pool)).filter((p) => monthOf(Date.parse(`${p.month}-01T00:00:00Z`)) < keepFrom);
  if (old.length === 0) return [];
  try {
    return await inTransaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
      for (const p of old) await client.query(`DROP TABLE IF EXISTS ${p.name}`);
      return old;
    });
  } catch (err) {
    throw asHistoryError(err, 'dropping history partitions');
  }
}
