/**
 * The all-in-one local cluster: an embedded etcd member and the four services as child
 * processes on loopback, with generated tokens and a default tenant and queue. Used by
 * `batch dev` and by the end-to-end suites.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort, type LocalEtcd, startEtcd } from '@batchapi/store';

/** Options of a local cluster. */
export interface LocalClusterOptions {
  /** Where etcd data, tokens, config and task logs go. */
  dataDir: string;
  /** Local executors (nodes `local-0`, `local-1`, …). @default 1 */
  executors?: number;
  /** Simulated nodes (one extra executor process "runs" tasks without processes). @default 0 */
  simulatedNodes?: number;
  /** Show the services' logs on stderr, prefixed by service. @default false */
  verbose?: boolean;
  /** SIGTERM → SIGKILL grace for task stops, in milliseconds. @default 2000 */
  killGraceMs?: number;
  /** Lease TTL of every service, in seconds. @default 5 */
  leaseTtlSeconds?: number;
  /** Each start step, for progress output. */
  onStep?: (step: string) => void;
  /** A service process exited on its own (the cluster is then unhealthy). */
  onChildExit?: (name: string, code: number | null, signal: string | null) => void;
}

const SERVICES = ['quota', 'scheduler', 'executor', 'admission'] as const;

/** Path of a service's built main. */
function mainOf(service: string): string {
  return join(dirname(require.resolve(`@batchapi/${service}/package.json`)), 'dist', 'main.js');
}

export class LocalCluster {
  private readonly children = new Map<string, ChildProcess>();
  private stopping = false;
  etcd?: LocalEtcd;
  apiUrl = '';
  tenantToken = '';
  operatorToken = '';
  /** Base URL of each service by name. */
  readonly urls = new Map<string, string>();

  private constructor(readonly options: LocalClusterOptions) {}

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
    this.options.onStep?.(s);
  }

  private async boot(): Promise<void> {
    const o = this.options;
    mkdirSync(o.dataDir, { recursive: true });
    this.step('starting etcd');
    this.etcd = await startEtcd({ dataDir: join(o.dataDir, 'etcd') });
    this.tenantToken = `bt_${randomBytes(24).toString('base64url')}`;
    this.operatorToken = `bt_${randomBytes(24).toString('base64url')}`;
    const digest = (t: string) => createHash('sha256').update(t).digest('hex');
    const tokensFile = join(o.dataDir, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify({ tokens: [{ sha256: digest(this.tenantToken), tenant: 'default', role: 'tenant' }, { sha256: digest(this.operatorToken), tenant: 'default', role: 'operator' }] }, null, 2), { mode: 0o600 });
    const clusterFile = join(o.dataDir, 'cluster.json');
    // The default queue may use the whole local fleet: real executors are this machine, simulated nodes 32 cores / 128 GiB each.
    const real = o.executors ?? 1;
    const sim = o.simulatedNodes ?? 0;
    const nominal = { cpu: String(cpus().length * real + 32 * sim), memory: String(totalmem() * real + 128 * 2 ** 30 * sim) };
    writeFileSync(clusterFile, JSON.stringify({ tenants: [{ name: 'default', weight: 1 }], queues: [{ name: 'default', tenant: 'default', nominal }] }, null, 2));
    const common = { BATCH_ETCD_ENDPOINTS: this.etcd.endpoints.join(','), BATCH_HOST: '127.0.0.1', BATCH_LEASE_TTL: String(o.leaseTtlSeconds ?? 5), BATCH_LOG_LEVEL: o.verbose ? 'info' : 'warn' };
    for (const service of SERVICES) {
      const count = service === 'executor' ? (o.executors ?? 1) : 1;
      for (let i = 0; i < count; i++) {
        const name = service === 'executor' ? `executor-${i}` : service;
        const extra: Record<string, string> =
          service === 'admission' ? { BATCH_TOKENS_FILE: tokensFile }
          : service === 'quota' ? { BATCH_CLUSTER_CONFIG: clusterFile }
          : service === 'executor' ? { BATCH_NODE_NAME: `local-${i}`, BATCH_DATA_DIR: join(o.dataDir, `executor-${i}`), BATCH_KILL_GRACE_MS: String(o.killGraceMs ?? 2000) }
          : {};
        this.step(`starting ${name}`);
        this.urls.set(name, await this.launch(name, service, { ...common, ...extra }));
      }
    }
    if (o.simulatedNodes) {
      this.step(`starting ${o.simulatedNodes} simulated nodes`);
      this.urls.set('executor-sim', await this.launch('executor-sim', 'executor', { ...common, BATCH_SIMULATE_NODES: String(o.simulatedNodes), BATCH_NODE_NAME: 'sim' }));
    }
    this.apiUrl = this.urls.get('admission')!;
    this.step('all services ready');
  }

  private async launch(name: string, service: string, env: Record<string, string>): Promise<string> {
    const port = await freePort();
    // BATCH_PROFILE_DIR: each service writes a V8 CPU profile there when it exits (for `node --cpu-prof`).
    const profile = process.env.BATCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BATCH_PROFILE_DIR}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
    const child = spawn(process.execPath, [...profile, mainOf(service)], {
      env: { ...process.env, ...env, BATCH_PORT: String(port) },
      stdio: ['ignore', this.options.verbose ? 'pipe' : 'ignore', 'pipe'],
    });
    this.children.set(name, child);
    const prefix = (chunk: Buffer) => chunk.toString().split('\n').filter(Boolean).map((l) => `[${name}] ${l}\n`).join('');
    child.stdout?.on('data', (c: Buffer) => process.stderr.write(prefix(c)));
    child.stderr?.on('data', (c: Buffer) => { if (this.options.verbose) process.stderr.write(prefix(c)); else this.lastErr.set(name, c.toString().slice(-2000)); });
    child.once('exit', (code, signal) => {
      if (!this.stopping) this.options.onChildExit?.(name, code, signal);
    });
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode}: ${this.lastErr.get(name) ?? ''}`);
      if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return url;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${name} did not become ready within 30 s at ${url}`);
  }
  private readonly lastErr = new Map<string, string>();

  /** Stops the services (admission first, executors last, so running tasks are stopped cleanly), then etcd. */
  async stop(): Promise<void> {
    this.stopping = true;
    const order = ['admission', 'scheduler', 'quota', ...[...this.children.keys()].filter((n) => n.startsWith('executor'))];
    for (const name of order) {
      const child = this.children.get(name);
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => { clearTimeout(t); resolve(); });
        child.kill('SIGTERM');
      });
    }
    await this.etcd?.stop();
  }
}
