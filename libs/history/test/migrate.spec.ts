/**
 * The history schema's migrations on a real PostgreSQL: applied once whatever the number of
 * calls, sequential or concurrent (node-pg-migrate's advisory lock), into the tables and
 * indexes the reads depend on.
 */
import { readdirSync } from 'node:fs';
import { MIGRATIONS_DIR, MIGRATIONS_TABLE, migrate } from '@batchapi/history';
import pg from 'pg';
import { usePostgres } from './history-fixture';

const postgres = usePostgres();
/** Every migration, in the order they apply (their file names sort by timestamp). */
const ALL = readdirSync(MIGRATIONS_DIR)
  .filter((f) => f.endsWith('.sql'))
  .map((f) => f.replace(/\.sql$/, ''))
  .sort();

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('migrate', () => {
  it('applies the schema once and finds nothing to do the second time', async () => {
    const url = await postgres.freshDatabase();
    expect(ALL[0]).toBe('1796252081266_history-schema');
    expect(await migrate(url)).toEqual(ALL);
    expect(await migrate(url)).toEqual([]);
    const runs = await query<{ name: string }>(url, `SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY run_on, id`);
    expect(runs.map((r) => r.name)).toEqual(ALL);
  });

  it('applies the schema once when two callers migrate at the same time', async () => {
    const url = await postgres.freshDatabase();
    const [a, b] = await Promise.all([migrate(url), migrate(url)]);
    // one caller took the lock and migrated; the other waited for it and found nothing to do
    expect([...a, ...b]).toEqual(ALL);
    expect(await query(url, `SELECT name FROM ${MIGRATIONS_TABLE}`)).toHaveLength(ALL.length);
  });

  it('creates the four tables partitioned by range on finished_at, with the list indexes', async () => {
    const url = await postgres.freshDatabase();
    await migrate(url);
    const tables = await query<{ name: string; key: string }>(
      url,
      `SELECT c.relname AS name, pg_get_partkeydef(c.oid) AS key FROM pg_class c
        WHERE c.relkind = 'p' AND c.relnamespace = 'public'::regnamespace ORDER BY 1`,
    );
    expect(tables).toEqual(['jobs', 'results', 'tasks', 'workflows'].map((name) => ({ name, key: 'RANGE (finished_at)' })));
    const indexes = await query<{ def: string }>(url, `SELECT indexdef AS def FROM pg_indexes WHERE tablename = 'jobs' ORDER BY indexname`);
    expect(indexes.map((i) => i.def.replace(/^.* USING /, ''))).toEqual([
      // migration 3: windows of submit time
      'btree (created_at)',
      'btree (finished_at DESC, id DESC)',
      // migration 2: the id-ordered lists merged with etcd's (byte order)
      'btree (id COLLATE "C")',
      'gin (labels jsonb_path_ops)',
      'btree (name text_pattern_ops)',
      'btree (phase, finished_at DESC, id DESC)',
      'btree (id, finished_at)',
      'btree (queue, finished_at DESC, id DESC)',
      'btree (queue, id COLLATE "C")',
      'btree (tenant, created_at)',
      'btree (tenant, finished_at DESC, id DESC)',
      'btree (tenant, id COLLATE "C")',
      'btree (workflow_id) WHERE (workflow_id IS NOT NULL)',
    ]);
  });
});
