/**
 * Applies the history schema: the SQL migrations in libs/history/migrations, in order, with
 * node-pg-migrate's runner. Each file is plain SQL with a `-- Up Migration` and a
 * `-- Down Migration` section, named `<epoch ms>_<what>.sql`; a migration, once released, is never
 * edited — a change is a new file. Applied migrations are recorded in their own table
 * (`history_migrations`), so the history can share a database with anything else.
 *
 * Every service that uses the history may call `migrate` at start: the runner holds a PostgreSQL
 * advisory lock (per database) from before it reads the migrations table to after the last
 * migration commits, and waits for it rather than failing, so concurrent callers run one after
 * the other and the later ones find nothing to do. All pending migrations run in one
 * transaction: a failure leaves the schema as it was.
 */
import { join } from 'node:path';
import pg from 'pg';
import { asHistoryError } from './errors';

/** Where the SQL migrations are: beside `src/` and `dist/` alike. */
export const MIGRATIONS_DIR = join(__dirname, '..', 'migrations');
/** The table that records which migrations ran. */
export const MIGRATIONS_TABLE = 'history_migrations';
/**
 * The advisory lock key of our migrations (node-pg-migrate's own default is shared by every user
 * of the tool; this one serializes only the history's runs).
 */
const MIGRATION_LOCK_KEY = 2026_0020_0001;

/** Options of `migrate`. */
export interface MigrateOptions {
  /** Where the runner's progress goes (`> Migrating files: …`). @default nowhere */
  log?: (message: string) => void;
  /** How long to wait for a connection, in milliseconds. @default 10000 */
  connectTimeoutMs?: number;
}

/**
 * Brings the database of `url` to the newest schema and returns the names of the migrations it
 * applied (none when it was up to date). Safe to call from several processes at once.
 * @throws HistoryUnavailableError when PostgreSQL cannot be reached
 */
export async function migrate(url: string, opts: MigrateOptions = {}): Promise<string[]> {
  // Our own client, so that a connection lost mid-run is an error we see, not an unhandled 'error' event.
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: opts.connectTimeoutMs ?? 10000 });
  client.on('error', () => undefined);
  const log = opts.log ?? (() => undefined);
  try {
    await client.connect();
    // Loaded here, not at start: every service that may use the history imported it (~70 ms a start).
    const { runner } = await import('node-pg-migrate');
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      // only the SQL files (and never a dotfile) are migrations
      ignorePattern: '\\..*|.*(?<!\\.sql)',
      migrationsTable: MIGRATIONS_TABLE,
      direction: 'up',
      checkOrder: true,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      lockValue: MIGRATION_LOCK_KEY,
      logger: { debug: undefined, info: log, warn: log, error: log },
    });
    return applied.map((m) => m.name);
  } catch (err) {
    throw asHistoryError(err, 'migrating the history schema');
  } finally {
    await client.end().catch(() => undefined);
  }
}
