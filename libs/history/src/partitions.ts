/**
 * Monthly partitions of the history tables, by `finished_at` in UTC: created on demand before
 * rows of a month are written, and dropped whole for retention — a month goes at once, no row is
 * ever deleted. A partition is named `<table>_<yyyy>_<mm>` (e.g. `jobs_2026_05`) and holds
 * `[first of the month, first of the next)`. Creating and dropping take one advisory lock, so
 * concurrent archivers and a retention pass never race on the catalog.
 */
import type pg from 'pg';
import { asHistoryError } from './errors';
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

/** Serializes partition DDL (creating and dropping) across processes. */
const PARTITION_LOCK_KEY = 2026_0020_0002;
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

/** `ensurePartitions` for a set of months (the distinct months of an archive batch). */
export async function ensurePartitionsFor(pool: pg.Pool, times: Iterable<Date | number>): Promise<HistoryPartition[]> {
  return ensureMonths(pool, [...new Set([...times].map(monthOf))]);
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
        const r = await client.query<{ absent: boolean }>(`SELECT to_regclass('${p.name}') IS NULL AS absent`);
        if (!r.rows[0].absent) continue;
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
