/**
 * The node's working dir cache. `planEviction` as a table (pure: sizes and last uses are given).
 * Then `WorkingDirCache` over a real PostgreSQL blob store: concurrent attempts of one package
 * share one fetch; a package whose bytes do not match its digest, or that is missing, fails with
 * a message that says so; packages of another tenant are not found; past the cap the least
 * recently used package leaves the disk.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BlobStore, packWorkingDir, PostgresBlobStore, WORKING_DIR_CONTENT, workingDirKey } from '@batchapi/blobs';
import { createDatabase, HistoryStore, type LocalPostgres, migrate, startPostgres } from '@batchapi/history';
import pino from 'pino';
import { Registry } from 'prom-client';
import { type CachedPackage, planEviction, WorkingDirCache } from '../src/working-dir-cache';

describe('planEviction', () => {
  const e = (id: string, bytes: number, lastUsed: number, inUse = 0): CachedPackage => ({ id, bytes, lastUsed, inUse });
  it.each([
    { name: 'under the cap: nothing', entries: [e('a', 10, 1), e('b', 10, 2)], cap: 20, out: [] },
    // 30 bytes, cap 20: removing the oldest (a, used at 1) leaves 20
    { name: 'over: the least recently used first', entries: [e('b', 10, 2), e('a', 10, 1), e('c', 10, 3)], cap: 20, out: ['a'] },
    // 40 bytes, cap 15: a (1) leaves 30, b (2) leaves 20, c (3) leaves 10
    { name: 'as many as it takes', entries: [e('a', 10, 1), e('b', 10, 2), e('c', 10, 3), e('d', 10, 4)], cap: 15, out: ['a', 'b', 'c'] },
    // a is the oldest but in use: b (2) goes, leaving 20
    { name: 'never one in use', entries: [e('a', 10, 1, 1), e('b', 10, 2), e('c', 10, 3)], cap: 20, out: ['b'] },
    // in use alone (25) is over the cap: every other goes, the cache stays over until a release
    { name: 'in use over the cap: all the others', entries: [e('a', 25, 1, 2), e('b', 5, 2), e('c', 5, 3)], cap: 20, out: ['b', 'c'] },
    // a and b used at the same time: the id breaks the tie
    { name: 'ties by id', entries: [e('b', 10, 1), e('a', 10, 1), e('c', 10, 2)], cap: 20, out: ['a'] },
    { name: 'one package larger than the cap, idle: removed', entries: [e('big', 50, 9)], cap: 20, out: ['big'] },
  ])('$name', ({ entries, cap, out }) => {
    expect(planEviction(entries, cap)).toEqual(out);
  });
});

describe('WorkingDirCache over PostgreSQL', () => {
  let pg: LocalPostgres;
  let blobs: BlobStore;
  let scratch: string;
  beforeAll(async () => {
    pg = await startPostgres({ ephemeral: true });
    const url = await createDatabase(pg.url, 'workdirs');
    await migrate(url);
    blobs = new PostgresBlobStore(HistoryStore.connect(url, { connectTimeoutMs: 1000 }));
  }, 60_000);
  afterAll(async () => {
    await blobs?.close();
    await pg?.stop();
  });
  beforeEach(() => (scratch = mkdtempSync(join(tmpdir(), 'wdcache-'))));
  afterEach(() => rmSync(scratch, { recursive: true, force: true }));

  let now = 1000;
  const cacheOf = (registry: Registry, capBytes = 1 << 30) =>
    new WorkingDirCache(blobs, { dataDir: join(scratch, 'data'), capBytes, maxBytes: 1 << 20 }, { now: () => now++ }, pino({ level: 'silent' }), registry);
  const fetches = async (registry: Registry) =>
    Object.fromEntries(
      ((await registry.getSingleMetric('batch_executor_working_dir_fetches_total')!.get()).values ?? []).map((v) => [v.labels.outcome, v.value]),
    );
  async function upload(tenant: string, files: Record<string, string>): Promise<string> {
    const dir = join(scratch, `src-${Object.keys(files).join('-')}-${now++}`);
    mkdirSync(dir, { recursive: true });
    for (const [p, c] of Object.entries(files)) writeFileSync(join(dir, p), c);
    const packed = await packWorkingDir(dir);
    await blobs.put(workingDirKey(tenant, packed.digest), packed.gz, WORKING_DIR_CONTENT, now);
    return packed.digest;
  }

  it('fetches a package once for attempts that need it at the same time, and unpacks each into its own dir', async () => {
    const digest = await upload('t1', { 'input.txt': 'shared\n' });
    const registry = new Registry();
    const cache = cacheOf(registry);
    const dests = [1, 2, 3].map((i) => join(scratch, `attempt-${i}`));
    await Promise.all(dests.map((d) => cache.unpackInto('t1', digest, d)));
    for (const d of dests) expect(readFileSync(join(d, 'input.txt'), 'utf8')).toBe('shared\n');
    await cache.unpackInto('t1', digest, join(scratch, 'attempt-4'));
    expect(await fetches(registry)).toEqual({ fetched: 1, cached: 3 });
  });

  it("refuses a stored package that is not its digest's, one never uploaded, and another tenant's", async () => {
    const digest = await upload('t1', { 'a.txt': 'a' });
    const other = await upload('t1', { 'b.txt': 'b' });
    // t2's key holds t1's other package: bytes that do not match the digest they are stored under
    const stored = await blobs.get(workingDirKey('t1', other));
    await blobs.put(workingDirKey('t2', digest), stored!.body, WORKING_DIR_CONTENT, now);
    const cache = cacheOf(new Registry());
    await expect(cache.unpackInto('t2', digest, join(scratch, 'x'))).rejects.toThrow(
      `could not fetch working dir ${digest}: the stored package's digest is ${other}`,
    );
    await expect(cache.unpackInto('t3', digest, join(scratch, 'y'))).rejects.toMatchObject({
      name: 'WorkingDirMissingError',
      message: expect.stringMatching(/tenant t3 has no such package in the blob store/),
    });
  });

  it('keeps at most its cap on disk, the least recently used package removed first', async () => {
    const a = await upload('t1', { 'a.txt': 'a'.repeat(2000) });
    const b = await upload('t1', { 'b.txt': 'b'.repeat(2000) });
    const c = await upload('t1', { 'c.txt': 'c'.repeat(2000) });
    const sizeOf = async (d: string) => (await blobs.get(workingDirKey('t1', d)))!.body.length;
    const cap = (await sizeOf(a)) + (await sizeOf(b)) + (await sizeOf(c)) - 1;
    const cache = cacheOf(new Registry(), cap);
    await cache.unpackInto('t1', a, join(scratch, '1'));
    await cache.unpackInto('t1', b, join(scratch, '2'));
    await cache.unpackInto('t1', a, join(scratch, '3')); // a used again: b is now the least recent
    await cache.unpackInto('t1', c, join(scratch, '4'));
    const kept = readdirSync(join(scratch, 'data', 'working-dirs', 't1')).sort();
    expect(kept).toEqual([a, c].map((d) => `${d.slice('sha256:'.length)}.tar.gz`).sort());
    // what an attempt unpacked stays with it
    expect(existsSync(join(scratch, '2', 'b.txt'))).toBe(true);
  });
});
