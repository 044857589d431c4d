/** One transaction on one pooled connection: the library's only BEGIN/COMMIT. */
import type pg from 'pg';

/**
 * Runs `fn` in a transaction on a connection of `pool`: commits when it resolves, rolls back and
 * rethrows when it throws. A connection that failed mid-transaction is closed, not reused.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(err instanceof Error ? err : true);
    throw err;
  }
}
