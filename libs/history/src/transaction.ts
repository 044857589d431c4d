/** One transaction on one pooled connection: the library's only BEGIN/COMMIT. */
import type pg from 'pg';

/**
 * Runs `fn` in a transaction on a connection of `pool`: commits when it resolves, rolls back and
 * rethrows when it throws. A connection that failed mid-transaction is closed, not reused.
 *
 * While checked out the connection has a listener of its own for 'error': pg emits one on a
 * connection the server ends (a restart, a kill) besides failing its query, and the pool listens
 * only on idle connections — without this, PostgreSQL going away mid-transaction was an unhandled
 * 'error' event that ended the process.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const onError = () => undefined; // the query in flight fails with the same error: that is what reports it
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    client.removeListener('error', onError);
    client.release();
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.removeListener('error', onError);
    client.release(err instanceof Error ? err : true);
    throw err;
  }
}
