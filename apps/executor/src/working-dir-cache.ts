/**
 * The node's cache of `working_dir` packages (issue 15): each package is fetched from the blob
 * store once per tenant and digest — attempts that need one being fetched wait for that one
 * fetch —, verified against its digest, kept as `<dataDir>/working-dirs/<tenant>/<hex>.tar.gz`
 * and unpacked per attempt (read-only) into the attempt's work dir. The cache holds at most
 * `capBytes`; past it, the least recently used packages no attempt is unpacking are removed
 * (`planEviction`, pure). A package is "in use" only while it is being unpacked: an attempt runs
 * from its own unpacked copy, so eviction never touches a running task's files.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BlobStore, checkWorkingDir, unpackWorkingDir, workingDirKey } from '@batchapi/blobs';
import type { Clock } from '@batchapi/runtime';
import { Metric } from '@batchapi/telemetry';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

/** Bytes of working dir packages one node keeps by default (`BATCH_WORKING_DIR_CACHE_BYTES`). @default 1073741824 (1 GiB) */
export const DEFAULT_WORKING_DIR_CACHE_BYTES = 1024 * 1024 * 1024;

/**
 * The blob store answered that the tenant has no such package (never uploaded, or past the blob
 * retention): the job's fault, not the node's — its attempt fails `Error`, never `NodeError`
 * (which would count toward the node's quarantine on every node it tries).
 */
export class WorkingDirMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkingDirMissingError';
  }
}

/** One cached package as eviction sees it. */
export interface CachedPackage {
  /** `{tenant}/{digest}`. */
  id: string;
  /** Bytes on disk. */
  bytes: number;
  /** When an attempt last used it (any clock, the same for all entries). */
  lastUsed: number;
  /** Attempts unpacking it now: never evicted while above 0. */
  inUse: number;
}

/**
 * Which packages to remove so that the cache holds at most `capBytes`: least recently used
 * first (ties by id), skipping those in use. If what is in use alone is over the cap, every
 * other package goes and the cache stays over it until they are released. Pure.
 */
export function planEviction(entries: readonly CachedPackage[], capBytes: number): string[] {
  let total = entries.reduce((n, e) => n + e.bytes, 0);
  const out: string[] = [];
  const order = [...entries].sort((a, b) => a.lastUsed - b.lastUsed || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const e of order) {
    if (total <= capBytes) break;
    if (e.inUse > 0) continue;
    out.push(e.id);
    total -= e.bytes;
  }
  return out;
}

/** Settings of a `WorkingDirCache`. */
export interface WorkingDirCacheOptions {
  /** The executor's data directory: packages go under `<dataDir>/working-dirs/`. */
  dataDir: string;
  /** Most bytes of packages kept (`BATCH_WORKING_DIR_CACHE_BYTES`). @default DEFAULT_WORKING_DIR_CACHE_BYTES (1 GiB) */
  capBytes: number;
  /** Largest package accepted, its tar in bytes (the executor passes `capBytes`: a package is at most the whole cache). */
  maxBytes: number;
}

export class WorkingDirCache {
  private readonly dir: string;
  private readonly entries = new Map<string, CachedPackage>();
  /** Fetches under way, by id: a second attempt waits for the first's. */
  private readonly fetching = new Map<string, Promise<void>>();
  private readonly fetches: Counter;

  constructor(
    private readonly blobs: BlobStore | undefined,
    private readonly opts: WorkingDirCacheOptions,
    private readonly clock: Pick<Clock, 'now'>,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.dir = join(opts.dataDir, 'working-dirs');
    this.fetches = new Counter({
      name: Metric.executorWorkingDirFetches,
      help: 'Working dir packages an attempt needed, by outcome (cached, fetched, failed)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.load();
  }

  /**
   * Unpacks package `digest` of `tenant` into `dest` (read-only), fetching and verifying it first
   * unless cached. Throws an error whose message says what failed (for the task's stderr).
   */
  async unpackInto(tenant: string, digest: string, dest: string): Promise<void> {
    const id = `${tenant}/${digest}`;
    if (!this.entries.has(id)) {
      let pending = this.fetching.get(id);
      if (!pending) {
        pending = this.fetch(tenant, digest).finally(() => this.fetching.delete(id));
        this.fetching.set(id, pending);
      } else this.fetches.inc({ outcome: 'cached' });
      await pending;
    } else this.fetches.inc({ outcome: 'cached' });
    const entry = this.entries.get(id);
    if (!entry) throw new Error(`working dir ${digest} left the node's cache before it was unpacked; the attempt runs again`);
    entry.inUse++;
    entry.lastUsed = this.clock.now();
    try {
      await unpackWorkingDir(this.fileOf(id), dest);
    } catch (err) {
      throw new Error(`could not unpack working dir ${digest}: ${(err as Error).message}`, { cause: err });
    } finally {
      entry.inUse--;
      // After the unpack: a package larger than the cap is still unpacked once before it goes.
      this.evict();
    }
  }

  private async fetch(tenant: string, digest: string): Promise<void> {
    const id = `${tenant}/${digest}`;
    try {
      if (!this.blobs) throw new Error('this executor has no blob store (set BATCH_BLOB_STORE, or BATCH_HISTORY_URL for the history database)');
      const blob = await this.blobs.get(workingDirKey(tenant, digest)).catch((err: Error) => {
        throw new Error(`the blob store did not answer (${err.message})`);
      });
      if (!blob) {
        this.fetches.inc({ outcome: 'failed' });
        throw new WorkingDirMissingError(
          `could not fetch working dir ${digest}: tenant ${tenant} has no such package in the blob store (it may have passed the blob retention); upload it again (batch submit --working-dir does)`,
        );
      }
      const problem = await checkWorkingDir(blob.body, digest, this.opts.maxBytes);
      if (problem) {
        throw new Error(
          problem.kind === 'too_large'
            ? `its tar is over ${problem.maxBytes} bytes (this node's BATCH_WORKING_DIR_CACHE_BYTES)`
            : problem.kind === 'not_gzip'
              ? `the stored package is not gzip (${problem.detail})`
              : `the stored package's digest is ${problem.actual}`,
        );
      }
      const file = this.fileOf(id);
      mkdirSync(join(this.dir, tenant), { recursive: true });
      await writeFile(`${file}.part`, blob.body);
      await rename(`${file}.part`, file);
      this.entries.set(id, { id, bytes: blob.body.length, lastUsed: this.clock.now(), inUse: 0 });
      this.fetches.inc({ outcome: 'fetched' });
    } catch (err) {
      if (err instanceof WorkingDirMissingError) throw err;
      this.fetches.inc({ outcome: 'failed' });
      throw new Error(`could not fetch working dir ${digest}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Removes what `planEviction` chooses. */
  private evict(): void {
    for (const id of planEviction([...this.entries.values()], this.opts.capBytes)) {
      this.entries.delete(id);
      try {
        rmSync(this.fileOf(id), { force: true });
      } catch (err) {
        this.log.warn({ err: (err as Error).message, id }, 'could not remove an evicted working dir package');
      }
    }
  }

  private fileOf(id: string): string {
    const [tenant, digest] = id.split('/');
    return join(this.dir, tenant, `${digest.replace(/^sha256:/, '')}.tar.gz`);
  }

  /** Packages a previous run of this executor kept (verified when fetched), their last use their file's mtime. */
  private load(): void {
    let tenants: string[];
    try {
      tenants = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const tenant of tenants) {
      for (const name of readdirSync(join(this.dir, tenant))) {
        const file = join(this.dir, tenant, name);
        const m = /^([0-9a-f]{64})\.tar\.gz$/.exec(name);
        if (!m) {
          rmSync(file, { force: true }); // a fetch cut short
          continue;
        }
        const s = statSync(file);
        const id = `${tenant}/sha256:${m[1]}`;
        this.entries.set(id, { id, bytes: s.size, lastUsed: s.mtimeMs, inUse: 0 });
      }
    }
    this.evict();
  }
}
