/**
 * `pg.Pool.end()` resolves before its clients' sockets close; a server that shuts down right
 * after (a suite's afterAll, an operator's restart) ends each still-closing connection with an
 * error (57P01 "terminating connection due to administrator command") that the pool re-emits.
 * `createHistoryPool` listens for it, so it is never an unhandled error that kills the process.
 */
import { createHistoryPool, startPostgres } from '@batchapi/history';
import { inTransaction } from '../src/transaction';

it('raises no unhandled error when the server shuts down while the pool is closing', async () => {
  const server = await startPostgres({ ephemeral: true });
  const pool = createHistoryPool(server.url);
  // Several idle clients, so that some are still closing when the server goes.
  await Promise.all(Array.from({ length: 8 }, () => pool.query('SELECT pg_sleep(0.01)')));
  const unhandled: unknown[] = [];
  const onUncaught = (err: unknown) => unhandled.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    await Promise.all([pool.end(), server.stop()]);
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  expect(unhandled).toEqual([]);
  expect(pool.listenerCount('error')).toBeGreaterThan(0);
});

it('fails a transaction whose server goes away mid-way with an error, not an unhandled error event', async () => {
  const server = await startPostgres({ ephemeral: true });
  const pool = createHistoryPool(server.url);
  const unhandled: unknown[] = [];
  const onUncaught = (err: unknown) => unhandled.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    // the transaction holds its connection checked out (no pool listener on it) while the server stops
    const running = inTransaction(pool, async (client) => {
      await client.query('SELECT pg_sleep(30)');
    });
    await new Promise((r) => setTimeout(r, 300));
    await server.stop();
    await expect(running).rejects.toThrow(/terminating connection|Connection terminated/);
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    process.off('uncaughtException', onUncaught);
    await pool.end().catch(() => undefined);
  }
  expect(unhandled).toEqual([]);
});
