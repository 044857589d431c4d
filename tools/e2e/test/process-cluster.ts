/**
 * The services as separate processes (their built mains) on one real etcd, for the suites that
 * signal, pause and kill them. A temporary directory holds the tokens file (`TOKENS`), the tenants
 * and queues (`CLUSTER`), the service credential and each process's log, `{name}.log`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupOwner, detectIsolation, sweepCgroups } from '@batchapi/executor';
import { waitFor } from '@batchapi/proc';
import { readyMemberUrl } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { CLUSTER, TOKENS } from './harness';

/** The repository's root. */
export const ROOT = join(__dirname, '../../..');

/** How a `ProcessCluster` runs its processes. */
export interface ProcessClusterOptions {
  /** Names the temporary directory (`{name}-…`) and the line saying where the logs were kept, e.g. `e2e-procs`. */
  name: string;
  /** Each process's lease TTL, in seconds (`BATCH_LEASE_TTL`). */
  leaseTtlSeconds: number;
  /** Each process's log level (`BATCH_LOG_LEVEL`), e.g. `info`. */
  logLevel: string;
  /** The service credential every process reads from its file. */
  serviceToken: string;
}

export class ProcessCluster {
  /** Every process started, by name (kept after it exits). */
  readonly procs = new Map<string, ChildProcess>();
  /** The base URL of each process that became ready, by name. */
  readonly urls = new Map<string, string>();
  /** The executors started (`cgroupOwner` of node and data dir): their attempts' cgroups are swept by `stop`. */
  private readonly cgroupOwners = new Set<string>();

  private constructor(
    readonly etcd: LocalEtcd,
    /** A client of the etcd, for the test's own reads and writes. */
    readonly store: EtcdStore,
    /** The temporary directory, removed by `stop` (unless `E2E_KEEP` is set). */
    readonly dir: string,
    private readonly o: ProcessClusterOptions,
  ) {}

  /** Starts an etcd and writes the files the services read; starts no service. */
  static async start(o: ProcessClusterOptions): Promise<ProcessCluster> {
    const etcd = await startEtcd();
    const store = new EtcdStore({ endpoints: etcd.endpoints });
    const dir = mkdtempSync(join(tmpdir(), `${o.name}-`));
    writeFileSync(join(dir, 'tokens.json'), JSON.stringify(TOKENS));
    writeFileSync(join(dir, 'cluster.json'), JSON.stringify(CLUSTER));
    writeFileSync(join(dir, 'service-token'), o.serviceToken, { mode: 0o600 });
    return new ProcessCluster(etcd, store, dir, o);
  }

  /**
   * Starts `apps/{app}/dist/main.js` as process `name` (its `BATCH_INSTANCE_ID`) with `env` over the
   * cluster's settings and every line it logs in `{name}.log`; resolves with its URL once it answers
   * ready (20 s at most). It listens on a port it picks itself (`BATCH_PORT=0`), and its URL is read
   * from its member record — the one with this child's pid — so there is no free port to race
   * another process for, and never another process's `/readyz` taken for its own.
   */
  async launch(name: string, app: string, env: Record<string, string>): Promise<string> {
    const logFile = join(this.dir, `${name}.log`);
    const log = openSync(logFile, 'a');
    const child = spawn(process.execPath, [join(ROOT, 'apps', app, 'dist/main.js')], {
      env: {
        ...process.env,
        BATCH_ETCD_ENDPOINTS: this.etcd.endpoints.join(','),
        BATCH_PORT: '0',
        BATCH_LEASE_TTL: String(this.o.leaseTtlSeconds),
        BATCH_LOG_LEVEL: this.o.logLevel,
        BATCH_SERVICE_TOKEN_FILE: join(this.dir, 'service-token'),
        BATCH_INSTANCE_ID: name,
        ...env,
      },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    this.procs.set(name, child);
    if (env.BATCH_NODE_NAME && env.BATCH_DATA_DIR) this.cgroupOwners.add(cgroupOwner(env.BATCH_NODE_NAME, env.BATCH_DATA_DIR));
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    const url = await waitFor(
      () => (exited() ? undefined : readyMemberUrl(this.store, app, name, child.pid)),
      (u) => u !== undefined || exited(),
      { timeoutMs: 20000, intervalMs: 100 },
    );
    if (!url) throw new Error(`${name} did not become ready${exited() ? ' (it exited)' : ''}; see ${logFile}`);
    this.urls.set(name, url);
    return url;
  }

  /** Kills every process (a paused one too), sweeps the cgroups its executors could not, stops etcd and removes the directory. */
  async stop(): Promise<void> {
    for (const p of this.procs.values()) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    }
    // A killed executor cannot remove its attempts' cgroups; its restart would. Clean up for it.
    await new Promise((r) => setTimeout(r, 500));
    const kind = detectIsolation();
    for (const owner of this.cgroupOwners) sweepCgroups(kind, owner);
    await this.store.close();
    await this.etcd.stop();
    if (process.env.E2E_KEEP) console.log(`${this.o.name}: logs kept in ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}
