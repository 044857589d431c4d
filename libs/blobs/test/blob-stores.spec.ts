/**
 * One contract, both blob stores, real servers: PostgreSQL (the history database, chunked rows)
 * and an S3-compatible server (versitygw over a directory). A put is read back byte for byte
 * with its content type and encoding; a second put replaces the first whole; a missing key is
 * undefined; a listing is the keys under a prefix in key order (so a task's latest attempt is
 * its last log key); a blob of several chunks (2.5 MiB) comes back whole; a server that is down
 * is a retryable unavailable error, never a missing blob.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HistoryUnavailableError, HistoryStore, createDatabase, type LocalPostgres, migrate, startPostgres } from '@batchapi/history';
import { BlobStoreUnavailableError, type BlobStore, type LocalS3, logKey, logsOfTask, PostgresBlobStore, S3BlobStore, startS3Server } from '@batchapi/blobs';

const T = Date.UTC(2026, 11, 3, 12, 0, 0);
const text = { contentType: 'text/plain; charset=utf-8', contentEncoding: 'identity' as const };

let pg: LocalPostgres;
let s3: LocalS3;
let s3Dir: string;
const stores: Record<string, BlobStore> = {};

beforeAll(async () => {
  s3Dir = mkdtempSync(join(tmpdir(), 'batch-s3-'));
  [pg, s3] = await Promise.all([startPostgres({ ephemeral: true }), startS3Server(s3Dir)]);
  const url = await createDatabase(pg.url, 'blobs');
  await migrate(url);
  stores.postgres = new PostgresBlobStore(HistoryStore.connect(url, { connectTimeoutMs: 1000 }));
  stores.s3 = new S3BlobStore({ ...s3.options, prefix: 'cluster-1/' });
}, 60_000);
afterAll(async () => {
  await Promise.all(Object.values(stores).map((s) => s.close()));
  await Promise.all([pg?.stop(), s3?.stop()]);
  rmSync(s3Dir, { recursive: true, force: true });
});

describe.each(['postgres', 's3'])('%s blob store', (kind) => {
  const store = () => stores[kind];

  it('reads back what was put, with its content type and encoding; a missing key is undefined', async () => {
    await store().put('logs/j-1/a', Buffer.from('hello\n'), { contentType: 'text/plain; charset=utf-8', contentEncoding: 'gzip' }, T);
    const got = await store().get('logs/j-1/a');
    expect(got?.body.toString()).toBe('hello\n');
    expect(got?.info).toMatchObject({ key: 'logs/j-1/a', contentType: 'text/plain; charset=utf-8', contentEncoding: 'gzip', sizeBytes: 6, createdAt: T });
    expect(await store().get('logs/j-1/none')).toBeUndefined();
  });

  it('replaces a blob whole on a second put', async () => {
    await store().put('logs/j-2/a', Buffer.alloc(3 * 1024 * 1024, 'x'), text, T);
    await store().put('logs/j-2/a', Buffer.from('short'), text, T + 1);
    const got = await store().get('logs/j-2/a');
    expect(got?.body.toString()).toBe('short');
    expect(got?.info.createdAt).toBe(T + 1);
  });

  it('keeps a blob of several 1 MiB chunks whole (2.5 MiB)', async () => {
    const body = Buffer.alloc(2.5 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7919) % 251;
    await store().put('logs/j-3/big', body, text, T);
    expect((await store().get('logs/j-3/big'))?.body.equals(body)).toBe(true);
  });

  it("lists a task's logs under its prefix in key order: attempt 10 after attempt 9, another task apart", async () => {
    for (const [index, attempt] of [
      [4, 10],
      [4, 9],
      [4, 1],
      [40, 1],
    ]) {
      await store().put(logKey('j-4', index, attempt, 'stdout'), Buffer.from(`${index}/${attempt}`), text, T);
    }
    const keys = (await store().list(logsOfTask('j-4', 4), 100)).map((b) => b.key);
    expect(keys).toEqual([logKey('j-4', 4, 1, 'stdout'), logKey('j-4', 4, 9, 'stdout'), logKey('j-4', 4, 10, 'stdout')]);
    expect((await store().list(logsOfTask('j-4', 4), 2)).length).toBe(2);
  });
});

it('a server that is down is an unavailable error, never a missing blob', async () => {
  const down = new S3BlobStore({ ...s3.options, endpoint: 'http://127.0.0.1:9', maxAttempts: 1, requestTimeoutMs: 1000 });
  await expect(down.get('logs/x')).rejects.toBeInstanceOf(BlobStoreUnavailableError);
  await expect(down.put('logs/x', Buffer.from('x'), text, T)).rejects.toMatchObject({ code: 'blob_store_unavailable', retryAfterSeconds: 5 });
  await down.close();
  const pgDown = new PostgresBlobStore(HistoryStore.connect('postgres://batch@127.0.0.1:9/none', { connectTimeoutMs: 500 }));
  await expect(pgDown.get('logs/x')).rejects.toBeInstanceOf(HistoryUnavailableError);
  await pgDown.close();
});
