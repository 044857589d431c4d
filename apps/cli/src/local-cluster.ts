/**
 * The all-in-one local cluster: an embedded etcd member and the four services as child
 * processes on loopback, with generated tokens and a default tenant and queue. Used by
 * `batch dev`, the end-to-end suites and the latency benchmark.
 *
 * It owns its data directory while it runs (a lock file names its processes), so a second
 * cluster cannot start on the same data, and processes a crashed one left behind are
 * stopped before the data is used again.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ClusterConfig, TokensFile } from '@batchapi/api';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { ensureDatabase, type LocalPostgres, startPostgres } from '@batchapi/history';

/** Options of a local cluster. */
export interface LocalClusterOptions {
  /** Where etcd data, tokens, config and task logs go; kept after `stop()`. */
  dataDir: string;
  /** Local executors (nodes `local-0`, `local-1`, …), each running tasks as processes of this machine. @default 1 */
  executors?: number;
  /** Simulated nodes (one extra executor process "runs" tasks without processes). @default 0 */
  simulatedNodes?: number;
  /** Show the services' logs on stderr, each line prefixed by `[service]`. @default false */
  verbose?: boolean;
  /** Grace between SIGTERM and SIGKILL when a task is stopped, in milliseconds. @default 2000 */
  killGraceMs?: number;
  /** Lease TTL of every service, in seconds. @default 5 */
  leaseTtlSeconds?: number;
  /** How long each service may take to answer `/readyz` 200, in milliseconds. @default 30000 */
  readyTimeoutMs?: number;
  /** Aborting it stops a start under way: `start` then stops what it started and throws. @default never aborted */
  signal?: AbortSignal;
  /** Called with each start step (e.g. "starting etcd"), for progress output. */
  onStep?: (step: string) => void;
  /** Run a PostgreSQL beside etcd as the history store (finished jobs leave etcd a minute after they end). @default true, when PostgreSQL is installed */
  history?: boolean;
  /**
   * More environment of each local executor, over the machine's: e.g. `{ BATCH_PIP_FIND_LINKS: dir,
   * BATCH_PIP_NO_INDEX: 'true' }` so jobs' Python environments install from a local wheel cache.
   * @default none
   */
  executorEnv?: Record<string, string>;
  /** A process of the cluster (a service or etcd) exited on its own: the cluster is no longer whole. */
  onChildExit?: (name: string, code: number | null, signal: string | null, stderrTail: string) => void;
}

/** A local cluster could not start: names the step and, for a process, the end of its stderr. */
export class LocalClusterError extends Error {}

/** Start order: quota seeds tenants and queues before admission answers. */
const SERVICES = ['quota', 'scheduler', 'executor', 'admission'] as const;
/**
 * Where a local cluster keeps its PostgreSQL data: under its data dir — or, run as root, under
 * /tmp (keyed by the data dir), since PostgreSQL runs as the `postgres` user and cannot enter
 * root's home. Removing a cluster's data removes this too.
 */
export function postgresDataDir(dataDir: string): string {
  return process.getuid?.() === 0
    ? join(tmpdir(), `batchapi-dev-pg-${createHash('sha256').update(dataDir).digest('hex').slice(0, 12)}`)
    : join(dataDir, 'postgres');
}

/** Stop order: the API first (no new work), executors last (they stop running tasks cleanly). */
const STOP_ORDER = ['admission', 'scheduler', 'quota', 'executor'];
const LOCK_FILE = 'cluster.lock.json';
/** How long a service may take to exit after SIGTERM before it gets SIGKILL, in milliseconds. */
const STOP_GRACE_MS = 10_000;

/**
 * Path of a service's main. Run from the bundled CLI (apps/cli/build.mjs), the service's bundle
 * beside it (`dist/bundle/<service>.js`): an installed copy has no checkout to find a build in,
 * and the services always match the CLI that starts them. Run from tsc's build (the suites, the
 * benchmark), the service package's `dist/main.js`.
 */
function mainOf(service: string): string {
  const bundled = join(__dirname, `${service}.js`);
  if (existsSync(bundled)) return bundled;
  const main = join(dirname(require.resolve(`@batchapi/${service}/package.json`)), 'dist', 'main.js');
  if (!existsSync(main)) throw new LocalClusterError(`the ${service} service is not built (${main} is missing): run npm run build`);
  return main;
}

/**
 * V8 heap limit of each service the local cluster starts, MiB (`--max-old-space-size`): the Helm
 * chart's defaults (`<service>.maxOldSpaceMiB` in deploy/helm/batchapi/values.yaml; a test keeps
 * them equal). The limit also sets how V8 grows the heap: with none, on a machine with over 16 GB
 * V8 allows 4 GB and lets the heap reach several times its live objects before a full
 * collection, so in `bench soak` quota and the simulated fleet (~40–70 MiB live) peaked at
 * 340–370 MiB RSS; with these limits the same load peaks at ~175 and ~215 MiB. A
 * `--max-old-space-size` in the caller's NODE_OPTIONS wins.
 */
export const SERVICE_HEAP_MIB: Readonly<Record<'admission' | 'quota' | 'scheduler' | 'executor', number>> = {
  admission: 768,
  quota: 768,
  scheduler: 3072,
  executor: 768,
};

/** The node flags that give `service` its heap limit, unless NODE_OPTIONS sets one (`nodeOptions`: its value). */
export function heapFlags(service: string, nodeOptions: string | undefined): string[] {
  const mib = (SERVICE_HEAP_MIB as Record<string, number | undefined>)[service];
  if (mib === undefined || /--max-old-space-size\b/.test(nodeOptions ?? '')) return [];
  return [`--max-old-space-size=${mib}`];
}

const sha256 = (t: string) => createHash('sha256').update(t).digest('hex');
const newToken = () => `bt_${randomBytes(24).toString('base64url')}`;

interface Owned {
  name: string;
  process: ChildProcess;
  /** argv as started: proves a pid is still ours before a later cleanup kills it. */
  argv: string[];
}

export class LocalCluster {
  private readonly owned: Owned[] = [];
  private readonly stderrTail = new Map<string, string>();
  private stopped?: Promise<void>;
  etcd?: LocalEtcd;
  /** The launcher's etcd client: reads the services' member records while they start. */
  private store?: EtcdStore;
  /** The history store's server, when one runs. */
  postgres?: LocalPostgres;
  /** URL of the history database (`BATCH_HISTORY_URL` of quota and admission), when one runs. */
  historyUrl?: string;
  apiUrl = '';
  tenantToken = '';
  operatorToken = '';
  /** Base URL of each service by name (`admission`, `quota`, `scheduler`, `executor-0`, …). */
  readonly urls = new Map<string, string>();

  private constructor(readonly options: LocalClusterOptions) {}

  /** Starts etcd and the services and waits until every service is ready; on failure stops what it started and throws. */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const c = new LocalCluster(options);
    try {
      await c.boot();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  private step(s: string): void {
    this.options.signal?.throwIfAborted();
    this.options.onStep?.(s);
  }

  private async boot(): Promise<void> {
    const o = this.options;
    mkdirSync(o.dataDir, { recursive: true });
    for (const note of await claimDataDir(o.dataDir)) this.step(note); // e.g. processes a crashed cluster left behind
    this.step('starting etcd');
    this.etcd = await startEtcd({ dataDir: join(o.dataDir, 'etcd') });
    this.etcd.members.forEach((m, i) => this.own(this.etcd!.members.length > 1 ? `etcd-${i}` : 'etcd', m.process, ['etcd', ...m.args]));
    this.options.signal?.throwIfAborted();
    const historyUrl = await this.startHistory();

    this.step('writing tokens and the cluster config');
    this.tenantToken = newToken();
    this.operatorToken = newToken();
    const tokensFile = join(o.dataDir, 'tokens.json');
    const tokens: TokensFile = {
      tokens: [
        { sha256: sha256(this.tenantToken), tenant: 'default', role: 'tenant' },
        { sha256: sha256(this.operatorToken), tenant: 'default', role: 'operator' },
      ],
    };
    writeFileSync(tokensFile, JSON.stringify(tokens, null, 2), { mode: 0o600 });
    // The services' shared credential for their internal calls (admission → executor logs, → scheduler RPC).
    const serviceTokenFile = join(o.dataDir, 'service-token');
    writeFileSync(serviceTokenFile, newToken(), { mode: 0o600 });
    const clusterFile = join(o.dataDir, 'cluster.json');
    // The default queue may use the whole local fleet: each real executor is this machine, a simulated node 32 cores / 128 GiB.
    const real = o.executors ?? 1;
    const sim = o.simulatedNodes ?? 0;
    const nominal = { cpu: String(cpus().length * real + 32 * sim), memory: String(totalmem() * real + 128 * 2 ** 30 * sim) };
    const config: ClusterConfig = { tenants: [{ name: 'default', weight: 1 }], queues: [{ name: 'default', tenant: 'default', nominal }] };
    writeFileSync(clusterFile, JSON.stringify(config, null, 2));

    const common = {
      BATCH_ETCD_ENDPOINTS: this.etcd.endpoints.join(','),
      BATCH_SERVICE_TOKEN_FILE: serviceTokenFile,
      BATCH_HOST: '127.0.0.1',
      BATCH_LEASE_TTL: String(o.leaseTtlSeconds ?? 5),
      BATCH_LOG_LEVEL: o.verbose ? 'info' : 'warn',
    };
    const history: Record<string, string> = historyUrl ? { BATCH_HISTORY_URL: historyUrl } : {};
    for (const service of SERVICES) {
      const count = service === 'executor' ? real : 1;
      for (let i = 0; i < count; i++) {
        const name = service === 'executor' ? `executor-${i}` : service;
        const extra: Record<string, string> =
          service === 'admission'
            ? { BATCH_TOKENS_FILE: tokensFile, ...history }
            : service === 'quota'
              ? { BATCH_CLUSTER_CONFIG: clusterFile, ...history }
              : service === 'executor'
                ? {
                    BATCH_NODE_NAME: `local-${i}`,
                    BATCH_DATA_DIR: join(o.dataDir, `executor-${i}`),
                    BATCH_KILL_GRACE_MS: String(o.killGraceMs ?? 2000),
                    // a local stop hands running tasks back at once (no drain): the cluster is going away, not upgrading
                    BATCH_DRAIN_GRACE_MS: '0',
                    // ended attempts' logs go to the history database (BATCH_BLOB_STORE=auto), so they outlive the executor
                    ...history,
                    ...o.executorEnv,
                  }
                : {};
        this.step(`starting ${name}`);
        this.urls.set(name, await this.launch(name, service, { ...common, ...extra }));
      }
    }
    if (sim) {
      this.step(`starting ${sim} simulated nodes`);
      this.urls.set('executor-sim', await this.launch('executor-sim', 'executor', { ...common, BATCH_SIMULATE_NODES: String(sim), BATCH_NODE_NAME: 'sim' }));
    }
    this.apiUrl = this.urls.get('admission')!;
    this.step('all services ready');
  }

  /**
   * The history store: a PostgreSQL server beside etcd (data in `postgresDataDir`) and its
   * `batch` database; finished jobs move there a minute after they end.
   * Without PostgreSQL (not installed) the cluster runs without history, and says so.
   */
  private async startHistory(): Promise<string | undefined> {
    const o = this.options;
    if (o.history === false) return undefined;
    this.step('starting PostgreSQL (history)');
    const dataDir = postgresDataDir(o.dataDir);
    try {
      this.postgres = await startPostgres({ dataDir });
      this.own('postgres', this.postgres.process, this.postgres.argv);
      const url = await ensureDatabase(this.postgres.url, 'batch');
      this.historyUrl = url;
      return url;
    } catch (err) {
      await this.postgres?.stop().catch(() => undefined);
      this.postgres = undefined;
      this.step(`no history: ${(err as Error).message.split('\n')[0]} (finished jobs stay in etcd)`);
      return undefined;
    }
  }

  /** Tracks a child: exits are reported, stderr kept (or shown), and the lock file names it. */
  private own(name: string, child: ChildProcess, argv: string[]): void {
    this.owned.push({ name, process: child, argv });
    writeLock(this.options.dataDir, this.owned);
    if (child.stderr) {
      const lines = createInterface({ input: child.stderr, crlfDelay: Infinity });
      lines.on('line', (l) => {
        if (this.options.verbose) process.stderr.write(`[${name}] ${l}\n`);
        this.stderrTail.set(name, `${this.stderrTail.get(name) ?? ''}${l}\n`.slice(-2000));
      });
    }
    if (child.stdout) createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (l) => process.stderr.write(`[${name}] ${l}\n`));
    child.once('exit', (code, signal) => {
      if (!this.stopped) this.options.onChildExit?.(name, code, signal, this.stderrTail.get(name) ?? '');
    });
  }

  /**
   * Starts `service` as process `name` (`BATCH_INSTANCE_ID` `{name}-{random}`) and resolves with its URL once it
   * answers ready. It listens on a port it picks itself (`BATCH_PORT=0`) and the URL is read from its
   * member record — the one carrying this child's pid — so no free port is raced for with another
   * process, and another process's `/readyz` on a reused port is never taken for this one's.
   */
  private async launch(name: string, service: string, env: Record<string, string>): Promise<string> {
    // BATCH_PROFILE_DIR: each service writes a V8 CPU profile there when it exits (for `node --cpu-prof`).
    const profile = process.env.BATCH_PROFILE_DIR
      ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BATCH_PROFILE_DIR}`, `--cpu-prof-name=${name}.cpuprofile`]
      : [];
    const argv = [process.execPath, ...heapFlags(service, process.env.NODE_OPTIONS), ...profile, mainOf(service)];
    // A new identity per start: a restart must never pass for its predecessor (a leader's lease, a member record).
    const instanceId = `${name}-${randomBytes(4).toString('hex')}`;
    const child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, ...env, BATCH_PORT: '0', BATCH_INSTANCE_ID: instanceId },
      stdio: ['ignore', this.options.verbose ? 'pipe' : 'ignore', 'pipe'],
    });
    this.own(name, child, argv);
    this.store ??= new EtcdStore({ endpoints: this.etcd!.endpoints });
    const timeoutMs = this.options.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      this.options.signal?.throwIfAborted();
      if (child.exitCode !== null || child.signalCode !== null) {
        await new Promise((r) => setImmediate(r)); // let the last stderr lines arrive
        const tail = (this.stderrTail.get(name) ?? '').trim().split('\n').slice(-10).join('\n  ');
        throw new LocalClusterError(
          `${name} exited while starting (${child.signalCode ?? `code ${child.exitCode}`})${tail ? `. The last lines it wrote on stderr:\n  ${tail}` : ''}`,
        );
      }
      const url = await readyMemberUrl(this.store, service, instanceId, child.pid);
      if (url) return url;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new LocalClusterError(
      `${name} was not ready within ${timeoutMs / 1000} s (no ready member record of pid ${child.pid})${this.options.verbose ? '' : '; --verbose shows its log'}`,
    );
  }

  /**
   * Stops the services (admission first, executors last, so running tasks are stopped cleanly),
   * each with SIGTERM then SIGKILL after 10 s, then etcd; removes the lock. Safe to call again:
   * later calls wait for the same stop.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      const services = this.owned.filter((o) => !o.name.startsWith('etcd') && o.name !== 'postgres');
      const rank = (n: string) => STOP_ORDER.findIndex((s) => n.startsWith(s));
      for (const tier of [...new Set(services.map((s) => rank(s.name)))].sort((a, b) => a - b)) {
        await Promise.all(services.filter((s) => rank(s.name) === tier).map((s) => stopProcess(s.process, STOP_GRACE_MS)));
      }
      await this.store?.close().catch(() => undefined);
      await this.postgres?.stop();
      await this.etcd?.stop();
      rmSync(join(this.options.dataDir, LOCK_FILE), { force: true });
    })();
    return this.stopped;
  }

  /** SIGKILL to every process of the cluster at once (when a clean stop takes too long); `stop()` then returns promptly. */
  kill(): void {
    for (const o of this.owned) if (alive(o.process)) o.process.kill('SIGKILL');
  }
}

/**
 * The URL of process `pid`, started as instance `id` of `service`, once its member record carries
 * that pid and a URL and it answers `GET /readyz` 200 there; else undefined (poll again).
 */
async function readyMemberUrl(store: EtcdStore, service: string, id: string, pid: number | undefined): Promise<string | undefined> {
  const member = (await store.get<{ pid?: number; url?: string }>(store.keys.member(service, id)).catch(() => undefined))?.value;
  if (!member?.url || member.pid !== pid) return undefined;
  const ready = await fetch(`${member.url}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
    (r) => r.ok,
    () => false,
  );
  return ready ? member.url : undefined;
}

const alive = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;

async function stopProcess(p: ChildProcess, graceMs: number): Promise<void> {
  if (!alive(p)) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

interface LockFile {
  /** The process that runs the cluster (e.g. `batch dev`). */
  pid: number;
  processes: Array<{ name: string; pid: number; argv: string[] }>;
}

function writeLock(dataDir: string, owned: Owned[]): void {
  const lock: LockFile = { pid: process.pid, processes: owned.filter((o) => o.process.pid).map((o) => ({ name: o.name, pid: o.process.pid!, argv: o.argv })) };
  writeFileSync(join(dataDir, LOCK_FILE), JSON.stringify(lock, null, 2));
}

/** Whether `pid` runs; an exited process its parent has not reaped yet (a zombie) does not. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true; // no /proc: kill(0) said it exists
  }
}

/** argv of a live process (Linux `/proc`); undefined when it is gone or cannot be read. */
function argvOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return undefined;
  }
}

/**
 * Makes `dataDir` this process's: refuses when another live local cluster owns it; stops the
 * processes a dead owner left behind (only those whose argv is still the recorded one, so a
 * reused pid is never touched). Returns what it did, for the user.
 */
export async function claimDataDir(dataDir: string): Promise<string[]> {
  const file = join(dataDir, LOCK_FILE);
  let lock: LockFile | undefined;
  try {
    lock = JSON.parse(readFileSync(file, 'utf8')) as LockFile;
  } catch {
    lock = undefined; // none, or unreadable: nobody to protect
  }
  const notes: string[] = [];
  if (lock && lock.pid !== process.pid) {
    if (pidAlive(lock.pid)) {
      throw new LocalClusterError(
        `another local cluster (pid ${lock.pid}) is using ${dataDir}: stop it first (Ctrl-C in its terminal, or kill -INT ${lock.pid}), or use another --data-dir`,
      );
    }
    const leftovers = (lock.processes ?? []).filter((p) => JSON.stringify(argvOf(p.pid)) === JSON.stringify(p.argv));
    for (const p of leftovers) process.kill(p.pid, 'SIGKILL');
    const deadline = Date.now() + 5000;
    while (leftovers.some((p) => argvOf(p.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (leftovers.length)
      notes.push(
        `stopped ${leftovers.map((p) => `${p.name} (pid ${p.pid})`).join(', ')}, left running by an earlier local cluster (pid ${lock.pid}) that did not stop cleanly`,
      );
  }
  mkdirSync(dataDir, { recursive: true });
  writeLock(dataDir, []);
  return notes;
}
