/**
 * A fault-test cluster: a 3-member etcd on loopback and two replicas of every service as
 * separate processes (two process executors), a bounded steady submit load with idempotency
 * keys and client retries, and the consistency check every scenario ends with. Tasks append
 * `start` and `end` lines to a shared run log, so overlapping runs of one task show. With a
 * history store (`ClusterOptions.history`: a real PostgreSQL), finished jobs leave etcd for it
 * during the run, and the check follows them there: each accepted job in history once, with
 * the outcome etcd had, and the archive backlog drained.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type GroupStatus, type JobRecord, type NodeAllocation, type NodeRecord, TERMINAL_PHASES, WORKFLOW_LABEL } from '@batchapi/api';
import { createDatabase, type LocalPostgres, startPostgres } from '@batchapi/history';
import { FAILPOINTS_FILE_ENV, type FailpointAction, type FailpointName, newServiceToken, readyMemberUrl } from '@batchapi/runtime';
import { EtcdStore, type IdempotencyRecord, type LocalEtcd, startEtcd } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import pg from 'pg';

const ROOT = join(__dirname, '../../..');
const TOKEN = 'fault-tenant-token';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** One row of the table. */
export interface ScenarioResult {
  scenario: string;
  submitted: number;
  accepted: number;
  /** Accepted jobs missing from etcd, or not finished after the scenario (must be 0). */
  lost: number;
  /** Task runs that overlapped another run of the same task (must be 0). */
  duplicated: number;
  /** From the fault until a job submitted after it finished, in milliseconds. */
  recoverMs: number | null;
  /** Answers by status during the scenario. */
  statuses: Record<string, number>;
  /** With a history store: accepted jobs history holds once the backlog drained; null without one. */
  archived: number | null;
  /** With a history store: job rows and task-attempt rows history holds more than once, of this scenario's jobs (must be 0). */
  archivedTwice: number;
  /** With a history store: from the load settled until etcd held no finished job, in milliseconds; null when it did not within `DRAIN_MS`. */
  drainMs: number | null;
  /** Other broken invariants (nodes over capacity, jobs without their key), described. */
  problems: string[];
}

/** What became of an accepted job: its phase and end, as etcd or (once archived) history holds it. */
interface JobOutcome {
  phase: string;
  finishedAt?: number;
  archived: boolean;
}

/** How long the archive backlog may take to drain after a scenario settled, in milliseconds. */
export const DRAIN_MS = 60_000;

interface Service {
  name: string;
  app: string;
  env: Record<string, string>;
  url: string;
  proc?: ChildProcess;
  netns?: boolean;
  ns?: TestNetns;
}

/**
 * A network namespace of the test's own, joined to this one by a veth pair (10.N.k.1 here,
 * 10.N.k.2 there; N from the test's pid, so two suites running at once do not share addresses).
 */
export interface TestNetns {
  ns: string;
  hostIf: string;
  hostIp: string;
  nsIp: string;
}

/**
 * Makes namespace `k` and its veth pair; undefined (with why) where the machine does not allow
 * it. Namespace 0's host address is where etcd also serves; a namespace `k > 0` reaches it
 * through its own veth (a default route to its host end), so cutting one namespace's veth
 * leaves the others connected.
 */
export function makeNetns(k = 0): { netns?: TestNetns; why?: string } {
  if (k === 0) dropStaleNetns();
  const id = `${process.pid % 100000}${k ? `n${k}` : ''}`;
  const net = `10.${subnetOctet()}.${k}`;
  const n: TestNetns = { ns: `batchf-${id}`, hostIf: `bfh${id}`, hostIp: `${net}.1`, nsIp: `${net}.2` };
  const steps = [
    ['ip', 'netns', 'add', n.ns],
    ['ip', 'link', 'add', n.hostIf, 'type', 'veth', 'peer', 'name', `bfn${id}`],
    ['ip', 'link', 'set', `bfn${id}`, 'netns', n.ns],
    ['ip', 'addr', 'add', `${n.hostIp}/30`, 'dev', n.hostIf],
    ['ip', 'link', 'set', n.hostIf, 'up'],
    ['ip', 'netns', 'exec', n.ns, 'ip', 'addr', 'add', `${n.nsIp}/30`, 'dev', `bfn${id}`],
    ['ip', 'netns', 'exec', n.ns, 'ip', 'link', 'set', `bfn${id}`, 'up'],
    ['ip', 'netns', 'exec', n.ns, 'ip', 'link', 'set', 'lo', 'up'],
    ...(k ? [['ip', 'netns', 'exec', n.ns, 'ip', 'route', 'add', 'default', 'via', n.hostIp]] : []),
  ];
  for (const [cmd, ...args] of steps) {
    try {
      execFileSync(cmd, args, { stdio: 'pipe' });
    } catch (err) {
      dropNetns(n);
      return {
        why: `network namespaces unavailable here (${[cmd, ...args].join(' ')}: ${String((err as { stderr?: Buffer }).stderr ?? err)
          .trim()
          .slice(0, 120)})`,
      };
    }
  }
  return { netns: n };
}

/**
 * Deletes the namespaces (and with them their veth pairs) of test processes that are gone: a
 * suite killed by a signal cannot drop its own, and one left holding a subnet routes that
 * subnet's traffic to a dead end for the next suite that picks it.
 */
function dropStaleNetns(): void {
  let names: string[];
  try {
    names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter((n) => n.startsWith('batchf-'));
  } catch {
    return;
  }
  for (const ns of names) {
    const pid = Number(/^batchf-(\d+)/.exec(ns)?.[1]);
    if (!pid || pid === process.pid % 100000) continue;
    try {
      process.kill(pid, 0);
      continue;
    } catch {
      /* its test process is gone */
    }
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* gone meanwhile */
    }
  }
}

/** The second octet of this process's subnets: from its pid, moved past any that another live suite's interfaces hold. */
let octet: number | undefined;
function subnetOctet(): number {
  if (octet !== undefined) return octet;
  let used = '';
  try {
    used = execFileSync('ip', ['-br', 'addr'], { encoding: 'utf8' });
  } catch {
    /* none known */
  }
  for (let i = 0; i < 50; i++) {
    const candidate = 200 + ((process.pid + i) % 50);
    if (!used.includes(` 10.${candidate}.`)) return (octet = candidate);
  }
  return (octet = 200 + (process.pid % 50));
}

export function dropNetns(n: TestNetns): void {
  for (const args of [
    ['link', 'del', n.hostIf],
    ['netns', 'del', n.ns],
  ]) {
    try {
      execFileSync('ip', args, { stdio: 'ignore' });
    } catch {
      /* gone */
    }
  }
}

/** What `FaultCluster.start` starts beside the suite's defaults (the nemesis uses them). */
export interface ClusterOptions {
  /** Process executors `executor-<i>` (node `node-<i>`, 4 CPUs each). @default 2 */
  processExecutors?: number;
  /** `BATCH_NODE_LABELS` of the process executors' nodes, e.g. `kind=process`. @default none */
  processLabels?: string;
  /** Simulated fleets `fleet-<i>`, each an executor process of `simulatedNodes` nodes labelled `simulated=true`. @default 0 */
  fleets?: number;
  /** Nodes per simulated fleet (32 CPUs each). @default 50 */
  simulatedNodes?: number;
  /** The quota service's cluster config (tenant `default` must be in it). @default tenant and queue `default`, no quota */
  clusterConfig?: { tenants: Array<{ name: string }>; queues: Array<{ name: string; tenant: string } & Record<string, unknown>> };
  /** Services run in a network namespace of their own beside `scheduler-1` (cut one with `partition(ms, name)`). @default none */
  isolate?: string[];
  /** Extra environment of each service, by name (e.g. a preloaded clock offset). @default none */
  envFor?: (name: string) => Record<string, string>;
  /**
   * A history store: a real PostgreSQL (`BATCH_HISTORY_URL` of quota and admission) that the
   * elected archiver moves finished jobs to `archiveAfterS` seconds after they end. @default none (jobs stay in etcd)
   */
  history?: { archiveAfterS: number };
}

export class FaultCluster {
  etcd!: LocalEtcd;
  store!: EtcdStore;
  dir = '';
  readonly services = new Map<string, Service>();
  private runsFile = '';
  /** Set when the machine allows network namespaces: scheduler-1 then runs in one (see `partition`). */
  netns?: TestNetns;
  netnsWhy?: string;

  /** Namespaces of the services in `ClusterOptions.isolate`, by service name. */
  readonly isolated = new Map<string, TestNetns>();
  private envFor?: (name: string) => Record<string, string>;

  /** The history store (with `ClusterOptions.history`): restarted by `restartPostgres` on its data dir and port. */
  postgres?: LocalPostgres;
  private pgDir = '';
  /** Connections of the checks to the history database. */
  private history?: pg.Pool;
  /** `BATCH_ARCHIVE_AFTER` of the quota replicas, in milliseconds. */
  archiveAfterMs = 0;

  /** Starts etcd (3 members) and 2 replicas of each service with a lease TTL of `ttl` seconds. */
  async start(ttl = 2, o: ClusterOptions = {}): Promise<void> {
    this.envFor = o.envFor;
    this.dir = mkdtempSync(join(tmpdir(), 'faults-'));
    this.runsFile = join(this.dir, 'runs.log');
    writeFileSync(this.runsFile, '');
    const made = makeNetns();
    this.netns = made.netns;
    this.netnsWhy = made.why;
    for (const [k, name] of (this.netns ? (o.isolate ?? []) : []).entries()) {
      const other = makeNetns(k + 1);
      if (other.netns) this.isolated.set(name, other.netns);
      else this.netnsWhy = other.why;
    }
    this.etcd = await startEtcd({ members: 3, ...(this.netns ? { extraClientHost: this.netns.hostIp } : {}) });
    this.store = new EtcdStore({ endpoints: this.etcd.endpoints });
    writeFileSync(join(this.dir, 'tokens.json'), JSON.stringify({ tokens: [{ sha256: sha(TOKEN), tenant: 'default', role: 'tenant' }] }));
    // The services' shared credential for their internal calls (logs, the scheduler RPC).
    writeFileSync(join(this.dir, 'service-token'), newServiceToken(), { mode: 0o600 });
    writeFileSync(
      join(this.dir, 'cluster.json'),
      JSON.stringify(o.clusterConfig ?? { tenants: [{ name: 'default' }], queues: [{ name: 'default', tenant: 'default' }] }),
    );
    const common = { BATCH_LEASE_TTL: String(ttl) };
    const history = o.history ? await this.startHistory(o.history.archiveAfterS) : {};
    for (const i of [0, 1])
      await this.launch(`quota-${i}`, 'quota', {
        ...common,
        BATCH_CLUSTER_CONFIG: join(this.dir, 'cluster.json'),
        ...history,
        ...(o.history ? { BATCH_ARCHIVE_AFTER: String(o.history.archiveAfterS) } : {}),
      });
    await this.launch('scheduler-0', 'scheduler', common);
    await this.launch('scheduler-1', 'scheduler', common, !!this.netns);
    const ns = (name: string) => this.isolated.get(name) ?? false;
    for (let i = 0; i < (o.processExecutors ?? 2); i++)
      await this.launch(
        `executor-${i}`,
        'executor',
        {
          ...common,
          BATCH_NODE_NAME: `node-${i}`,
          BATCH_DATA_DIR: join(this.dir, `node-${i}`),
          BATCH_NODE_CPU: '4',
          BATCH_KILL_GRACE_MS: '500',
          BATCH_ISOLATION: 'none',
          ...(o.processLabels ? { BATCH_NODE_LABELS: o.processLabels } : {}),
        },
        ns(`executor-${i}`),
      );
    for (let i = 0; i < (o.fleets ?? 0); i++)
      await this.launch(
        `fleet-${i}`,
        'executor',
        { ...common, BATCH_NODE_NAME: `sim${i}`, BATCH_SIMULATE_NODES: String(o.simulatedNodes ?? 50) },
        ns(`fleet-${i}`),
      );
    for (const i of [0, 1])
      await this.launch(`admission-${i}`, 'admission', { ...common, BATCH_TOKENS_FILE: join(this.dir, 'tokens.json'), ...history }, ns(`admission-${i}`));
  }

  /** Starts PostgreSQL (its data dir apart: as root the server runs as `postgres`, which cannot enter `dir`) and a fresh database; the services' variables for it. */
  private async startHistory(archiveAfterS: number): Promise<Record<string, string>> {
    this.archiveAfterMs = archiveAfterS * 1000;
    this.pgDir = mkdtempSync(join(tmpdir(), 'faults-pg-'));
    this.postgres = await startPostgres({ dataDir: this.pgDir, ephemeral: true });
    const url = await createDatabase(this.postgres.url, 'history');
    this.history = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000 });
    this.history.on('error', () => undefined); // an idle connection dropped by a killed server
    return { BATCH_HISTORY_URL: url };
  }

  /** Kills PostgreSQL as a crash would: SIGKILL to the postmaster, then to every process it had started. */
  killPostgres(): void {
    const postmaster = this.postgres!.process;
    let children: number[] = [];
    try {
      children = execFileSync('pgrep', ['-P', String(postmaster.pid)], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      /* none */
    }
    // the postmaster first: killed after its children, it would start new ones (crash recovery)
    postmaster.kill('SIGKILL');
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /** Starts PostgreSQL again on its data dir and port (it recovers from its WAL). */
  async restartPostgres(): Promise<void> {
    const { port } = this.postgres!;
    // a killed server's processes can hold its shared memory a moment: try again for up to 10 s
    for (let attempt = 1; ; attempt++) {
      try {
        this.postgres = await startPostgres({ dataDir: this.pgDir, port, ephemeral: true });
        return;
      } catch (err) {
        if (attempt >= 20) throw err;
        await sleep(500);
      }
    }
  }

  async stop(): Promise<void> {
    for (const s of this.services.values()) {
      s.proc?.kill('SIGCONT');
      s.proc?.kill('SIGKILL');
    }
    await this.store?.close().catch(() => undefined);
    await this.etcd?.stop();
    await this.history?.end().catch(() => undefined);
    await this.postgres?.stop().catch(() => undefined);
    for (const n of this.isolated.values()) dropNetns(n);
    if (this.netns) dropNetns(this.netns);
    // FAULTS_KEEP=1 keeps the services' logs and the run log for a look after a failure.
    if (process.env.FAULTS_KEEP) process.stderr.write(`fault cluster files kept in ${this.dir}${this.pgDir ? ` and ${this.pgDir}` : ''}\n`);
    else for (const d of [this.dir, this.pgDir]) if (d) rmSync(d, { recursive: true, force: true });
  }

  /**
   * Starts (or restarts) a service process; resolves once it answers /readyz. It listens on a port
   * it picks itself (`BATCH_PORT=0`) and its URL is read from its member record — the one with this
   * child's pid — so no free port is raced for, nor another process's `/readyz` taken for its own.
   */
  async launch(name: string, app: string, env: Record<string, string>, inNetns: boolean | TestNetns = false): Promise<string> {
    const ns = inNetns === true ? this.netns! : inNetns || undefined;
    // Until it answers, a restarted service keeps its old URL (nothing answers there).
    const s: Service = { name, app, env, url: this.services.get(name)?.url ?? '', netns: !!ns, ns };
    this.services.set(name, s);
    this.spawn(s);
    const child = s.proc!;
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    const url = await waitFor(
      () => (exited() ? undefined : readyMemberUrl(this.store, app, name, child.pid)),
      (u) => u !== undefined || exited(),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    if (url) return (s.url = url);
    throw new Error(`${name} did not become ready${exited() ? ' (it exited)' : ''}; see ${join(this.dir, `${name}.log`)}`);
  }

  private spawn(s: Service): void {
    const log = openSync(join(this.dir, `${s.name}.log`), 'a');
    const main = [process.execPath, join(ROOT, 'apps', s.app, 'dist/main.js')];
    // In the namespace it reaches etcd only over the veth pair, which `partition` cuts.
    const [cmd, ...args] = s.ns ? ['ip', 'netns', 'exec', s.ns.ns, ...main] : main;
    const endpoints = s.netns ? this.etcd.extraEndpoints : this.etcd.endpoints;
    s.proc = spawn(cmd, args, {
      env: {
        ...process.env,
        BATCH_ETCD_ENDPOINTS: endpoints.join(','),
        BATCH_PORT: '0',
        BATCH_HOST: s.ns ? s.ns.nsIp : '127.0.0.1',
        BATCH_INSTANCE_ID: s.name,
        BATCH_LOG_LEVEL: process.env.FAULTS_LOG_LEVEL ?? 'warn',
        BATCH_SERVICE_TOKEN_FILE: join(this.dir, 'service-token'),
        [FAILPOINTS_FILE_ENV]: this.failpointsFile(s.name),
        ...this.envFor?.(s.name),
        ...s.env,
      },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
  }

  /** The failpoints file of a service (libs/runtime failpoints; absent: none armed). */
  failpointsFile(name: string): string {
    return join(this.dir, `${name}.failpoints`);
  }

  /** Arms failpoint `point` of a running (or restarted) service with `action`: it acts at its next hit. */
  armFailpoint(name: string, point: FailpointName, action: FailpointAction): void {
    writeFileSync(this.failpointsFile(name), `${point}=${action}\n`);
  }

  /** Disarms every failpoint of a service. */
  disarmFailpoints(name: string): void {
    rmSync(this.failpointsFile(name), { force: true });
  }

  /** Restarts a killed service on a new port (in its namespace if it ran in one). */
  async restart(name: string): Promise<void> {
    const s = this.services.get(name)!;
    await this.launch(name, s.app, s.env, s.ns ?? false);
  }

  /** Cuts the veth pair of the namespace (scheduler-1's, or the one `service` runs in) for `ms`, then joins it again. */
  async partition(ms: number, service?: string): Promise<void> {
    const n = service ? this.services.get(service)!.ns! : this.netns!;
    execFileSync('ip', ['link', 'set', n.hostIf, 'down']);
    await sleep(ms);
    execFileSync('ip', ['link', 'set', n.hostIf, 'up']);
  }

  signal(name: string, sig: NodeJS.Signals): void {
    this.services.get(name)!.proc!.kill(sig);
  }

  /** The scheduler replica holding the fenced leader key. */
  schedulerLeader(): Promise<string> {
    return this.leader('scheduler');
  }

  /** The replica holding the fenced key of elected role `role` (`scheduler`, `archiver`, …); waits up to 10 s for one. */
  async leader(role: string): Promise<string> {
    for (let i = 0; i < 100; i++) {
      const k = await this.store.get<{ identity: string }>(this.store.keys.leader(role)).catch(() => undefined);
      if (k) return k.value.identity;
      await sleep(100);
    }
    throw new Error(`no ${role} leader`);
  }

  /** Of `ids`, those history holds, with their phase, end and tasks. Throws while PostgreSQL is down. */
  async archivedJobs(ids: readonly string[]): Promise<Map<string, { phase: string; finishedAt: number; tasks: number }>> {
    const rows = await this.history!.query<{ id: string; phase: string; finished_at: Date; tasks: number }>(
      'SELECT id, phase, finished_at, tasks FROM jobs WHERE id = ANY($1)',
      [ids],
    );
    return new Map(rows.rows.map((r) => [r.id, { phase: r.phase, finishedAt: r.finished_at.getTime(), tasks: r.tasks }]));
  }

  /** The etcd member that leads raft now (by its /v3/maintenance/status). */
  async etcdLeader(): Promise<number> {
    // An election may be under way (a previous scenario): ask again for up to 10 s.
    for (let attempt = 0; attempt < 50; attempt++) {
      const statuses = await Promise.all(
        this.etcd.members.map((m) =>
          fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) }).then(
            (r) => r.json() as Promise<{ header?: { member_id: string }; leader?: string }>,
            () => undefined,
          ),
        ),
      );
      const i = statuses.findIndex((s) => s?.header && s.header.member_id === s.leader);
      if (i >= 0) return i;
      await sleep(200);
    }
    throw new Error('no etcd leader');
  }

  /** Restarts every service whose process ended (a scenario's collateral: a self-fenced replica exits), and PostgreSQL if it did. */
  async reviveAll(): Promise<void> {
    const pgProc = this.postgres?.process;
    if (pgProc && (pgProc.exitCode !== null || pgProc.signalCode !== null)) await this.restartPostgres();
    for (const [name, s] of this.services) if (s.proc && (s.proc.exitCode !== null || s.proc.signalCode !== null)) await this.restart(name);
  }

  /**
   * Runs a scenario: a steady load of one job (2 tasks) every `everyMs` on both admission
   * replicas, the fault after `faultAfterMs`, the load for `loadMs` in all, then waits until
   * every accepted job finished (at most `settleMs`) and checks the invariants; with a history
   * store, also that the archive backlog drains and history holds each job once, as it ended.
   */
  async scenario(
    name: string,
    fault: () => Promise<void>,
    o: { loadMs?: number; faultAfterMs?: number; everyMs?: number; settleMs?: number } = {},
  ): Promise<ScenarioResult> {
    const load = new Load(this, name);
    const loadMs = o.loadMs ?? 6000;
    const stopAt = Date.now() + loadMs;
    const running = load.run(o.everyMs ?? 100, stopAt);
    await sleep(o.faultAfterMs ?? 1500);
    const faultAt = Date.now();
    load.faultAt = faultAt;
    await fault();
    await running;
    const ids = [...load.accepted.keys()];
    const seenInEtcd = new Map<string, string>();
    let outcomes = await this.settle(ids, o.settleMs ?? 60_000, seenInEtcd);
    const recoverMs = load.firstDoneAfterFault(outcomes, faultAt);
    const problems = await this.invariants();
    const archive = this.history ? await this.checkArchive(ids, seenInEtcd) : undefined;
    if (archive) {
      outcomes = new Map([...outcomes, ...archive.outcomes]);
      problems.push(...archive.problems);
    }
    const missing = ids.filter((id) => outcomes.get(id)?.phase !== 'Succeeded');
    for (const id of missing.slice(0, 3)) problems.push(await this.describeJob(id, outcomes.get(id)));
    return {
      scenario: name,
      submitted: load.submitted,
      accepted: load.accepted.size,
      lost: missing.length,
      duplicated: this.duplicatedRuns(new Set(ids)),
      recoverMs,
      statuses: load.statuses,
      archived: archive ? archive.outcomes.size : null,
      archivedTwice: archive?.archivedTwice ?? 0,
      drainMs: archive ? archive.drainMs : null,
      problems,
    };
  }

  /**
   * Waits until every accepted job is terminal (in etcd, or archived to history); returns what
   * became of each, and records in `seenInEtcd` the terminal phase etcd held for each it saw.
   */
  private async settle(ids: readonly string[], ms: number, seenInEtcd: Map<string, string>): Promise<Map<string, JobOutcome>> {
    const deadline = Date.now() + ms;
    let outcomes = new Map<string, JobOutcome>();
    while (Date.now() < deadline) {
      try {
        outcomes = await this.outcomes(ids, seenInEtcd);
        if (ids.every((id) => TERMINAL_PHASES.has(outcomes.get(id)?.phase as JobRecord['phase']))) break;
      } catch {
        /* etcd or PostgreSQL recovering */
      }
      await sleep(250);
    }
    return outcomes;
  }

  /** What etcd holds of `ids` now, and history of those etcd no longer holds (history is written before etcd lets a job go). */
  private async outcomes(ids: readonly string[], seenInEtcd: Map<string, string>): Promise<Map<string, JobOutcome>> {
    const wanted = new Set(ids);
    const out = new Map<string, JobOutcome>();
    for (const { value: j } of (await this.store.listAll<JobRecord>(this.store.keys.jobs())).items) {
      if (!wanted.has(j.id)) continue;
      out.set(j.id, { phase: j.phase, finishedAt: j.finishedAt, archived: false });
      if (TERMINAL_PHASES.has(j.phase)) seenInEtcd.set(j.id, j.phase);
    }
    const gone = ids.filter((id) => !out.has(id));
    if (this.history && gone.length)
      for (const [id, h] of await this.archivedJobs(gone)) out.set(id, { phase: h.phase, finishedAt: h.finishedAt, archived: true });
    return out;
  }

  /**
   * The archive side of a settled scenario: waits (at most `DRAIN_MS`) until etcd holds no
   * finished job — the archiver moved them all, PostgreSQL back or not — then checks history
   * for the scenario's jobs: each is there (or still in etcd, counted as not drained), with the
   * phase etcd had, every task Succeeded once for a Succeeded job, and no job or task-attempt
   * row twice.
   */
  private async checkArchive(
    ids: readonly string[],
    seenInEtcd: ReadonlyMap<string, string>,
  ): Promise<{ outcomes: Map<string, JobOutcome>; archivedTwice: number; drainMs: number | null; problems: string[] }> {
    const problems: string[] = [];
    const started = Date.now();
    let drainMs: number | null = null;
    let left: JobRecord[] = [];
    while (Date.now() - started < DRAIN_MS) {
      try {
        left = (await this.store.listAll<JobRecord>(this.store.keys.jobs())).items.map((j) => j.value).filter((j) => TERMINAL_PHASES.has(j.phase));
        if (left.length === 0) {
          drainMs = Date.now() - started;
          break;
        }
      } catch {
        /* etcd recovering */
      }
      await sleep(500);
    }
    if (drainMs === null) {
      const oldest = Math.min(...left.map((j) => j.finishedAt ?? Date.now()));
      problems.push(
        `${left.length} finished jobs still in etcd ${DRAIN_MS / 1000} s after the scenario settled, the oldest finished ${((Date.now() - oldest) / 1000).toFixed(0)} s ago ` +
          `(archive after ${this.archiveAfterMs / 1000} s): the archive backlog did not drain`,
      );
    }
    const archived = await this.archivedJobs(ids);
    const outcomes = new Map<string, JobOutcome>([...archived].map(([id, h]) => [id, { phase: h.phase, finishedAt: h.finishedAt, archived: true }]));
    const note = (what: string, list: string[]) => {
      if (list.length) problems.push(`${list.length} ${what}, e.g. ${list.slice(0, 3).join(', ')}`);
    };
    note(
      'jobs archived with another phase than etcd had',
      [...archived].filter(([id, h]) => seenInEtcd.has(id) && seenInEtcd.get(id) !== h.phase).map(([id, h]) => `${id} ${seenInEtcd.get(id)} → ${h.phase}`),
    );
    const q = (sql: string) => this.history!.query<{ job_id: string; n: string }>(sql, [ids]).then((r) => r.rows);
    const jobsTwice = await q('SELECT id AS job_id, count(*) AS n FROM jobs WHERE id = ANY($1) GROUP BY id HAVING count(*) > 1');
    const tasksTwice = await q(
      `SELECT job_id || ' task ' || index || '@' || attempt AS job_id, count(*) AS n FROM tasks WHERE job_id = ANY($1) GROUP BY job_id, index, attempt HAVING count(*) > 1`,
    );
    note(
      'jobs archived more than once',
      jobsTwice.map((r) => `${r.job_id} ×${r.n}`),
    );
    note(
      'task attempts archived more than once',
      tasksTwice.map((r) => `${r.job_id} ×${r.n}`),
    );
    // a Succeeded job's every task Succeeded at exactly one attempt
    const succeededTasks = new Map(
      (await q(`SELECT job_id, count(DISTINCT index) AS n FROM tasks WHERE job_id = ANY($1) AND state = 'Succeeded' GROUP BY job_id`)).map((r) => [
        r.job_id,
        Number(r.n),
      ]),
    );
    note(
      'Succeeded jobs archived without a Succeeded row for every task',
      [...archived]
        .filter(([id, h]) => h.phase === 'Succeeded' && (succeededTasks.get(id) ?? 0) !== h.tasks)
        .map(([id, h]) => `${id} ${succeededTasks.get(id) ?? 0}/${h.tasks}`),
    );
    // not archived: what etcd holds of it (still there when the backlog did not drain), else nothing: lost
    if (archived.size < ids.length) {
      const live = await this.outcomes(
        ids.filter((id) => !archived.has(id)),
        new Map(),
      );
      for (const [id, o] of live) outcomes.set(id, o);
    }
    return { outcomes, archivedTwice: jobsTwice.length + tasksTwice.length, drainMs, problems };
  }

  /** What became of a job that did not succeed: its phase, reason and each task's end. */
  private async describeJob(id: string, outcome: JobOutcome | undefined): Promise<string> {
    if (!outcome) return `job ${id}: missing${this.history ? ' from etcd and history' : ''}`;
    if (outcome.archived) return `job ${id}: archived ${outcome.phase}`;
    const job = (await this.store.get<JobRecord>(this.store.keys.job(id)))?.value;
    if (!job) return `job ${id}: ${outcome.phase}, since gone from etcd`;
    const groups = (await this.store.listAll<GroupStatus>(this.store.keys.groupsOf(id))).items.map((g) => g.value);
    const tasks = groups.flatMap((g) =>
      g.tasks.map(
        (t, k) =>
          `${g.start + k}@${g.attempt} on ${g.node}: ${t.state}${t.reason ? `/${t.reason}` : ''}${t.exitCode !== undefined ? ` exit ${t.exitCode}` : ''}`,
      ),
    );
    return `job ${id}: ${job.phase}${job.reason ? ` (${job.reason.code}: ${job.reason.message})` : ''}; ${tasks.join(', ')}`;
  }

  /**
   * Nodes over capacity; jobs (not workflow steps, which have none) without an idempotency
   * record, in etcd or archived, the record in etcd or in history's `idempotency` table (every
   * submit has a key: a job without one is a second job made by a retried submit).
   */
  private async invariants(): Promise<string[]> {
    const out: string[] = [];
    const nodes = new Map((await this.store.listAll<NodeRecord>(this.store.keys.nodes())).items.map((n) => [n.value.name, n.value]));
    for (const a of (await this.store.listAll<NodeAllocation>(this.store.keys.allocs())).items) {
      const node = nodes.get(a.key.slice(this.store.keys.allocs().length));
      if (node && (a.value.used.cpu ?? 0) > (node.capacity.cpu ?? 0)) out.push(`node ${node.name} over capacity: ${a.value.used.cpu} > ${node.capacity.cpu}`);
    }
    const keyed = new Set((await this.store.listAll<Partial<IdempotencyRecord>>(this.store.keys.idempotencyAll())).items.map((k) => k.value.jobId));
    // after etcd's: a record that moves to history with its job (where the schema has them) is then seen at least once
    if (this.history && (await this.history.query("SELECT to_regclass('idempotency') AS t")).rows[0].t)
      for (const r of (await this.history.query<{ job_id: string }>('SELECT job_id FROM idempotency')).rows) keyed.add(r.job_id);
    // history first: a job archived meanwhile is then seen at least once
    const archived = this.history ? (await this.history.query<{ id: string }>('SELECT id FROM jobs WHERE workflow_id IS NULL')).rows.map((r) => r.id) : [];
    const live = (await this.store.listAll<JobRecord>(this.store.keys.jobs())).items
      .map((j) => j.value)
      .filter((j) => j.spec.labels?.[WORKFLOW_LABEL] === undefined)
      .map((j) => j.id);
    const unkeyed = [...new Set([...archived, ...live])].filter((id) => !keyed.has(id));
    if (unkeyed.length)
      out.push(`${unkeyed.length} jobs without an idempotency record (a retried submit made a second job), e.g. ${unkeyed.slice(0, 3).join(', ')}`);
    return out;
  }

  /** Task runs (start..end lines of one job and index) that overlap another run of the same task. */
  duplicatedRuns(jobs: Set<string>): number {
    const runs = new Map<string, Array<{ attempt: string; start: number; end: number }>>();
    if (!existsSync(this.runsFile)) return 0;
    for (const line of readFileSync(this.runsFile, 'utf8').split('\n')) {
      const [kind, job, index, attempt, ns] = line.split(' ');
      if (!job || !jobs.has(job)) continue;
      const key = `${job}/${index}`;
      const list = runs.get(key) ?? [];
      runs.set(key, list);
      const t = Number(ns) / 1e6;
      const run = list.filter((r) => r.attempt === attempt).pop(); // the latest run of this attempt
      // A killed run ends at its last heartbeat (every 50 ms) plus slack; a finished one at its end line.
      if (kind === 's') list.push({ attempt, start: t, end: t + 100 });
      else if (run && kind === 'h') run.end = Math.max(run.end, t + 100);
      else if (run && kind === 'e') run.end = t;
    }
    let dup = 0;
    for (const list of runs.values()) {
      for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) if (list[i].start < list[j].end && list[j].start < list[i].end) dup++;
    }
    return dup;
  }

  /** The task command: logs its start, a heartbeat every 50 ms for 300 ms, and its end, with the attempt. */
  taskCommand(): string[] {
    const f = this.runsFile;
    const mark = (k: string) => `echo "${k} $BATCH_JOB_ID $BATCH_TASK_INDEX $BATCH_ATTEMPT $(date +%s%N)" >> ${f}`;
    return ['sh', '-c', `${mark('s')}; for i in 1 2 3 4 5 6; do sleep 0.05; ${mark('h')}; done; ${mark('e')}`];
  }

  /**
   * Submits a two-step workflow (`first` → `second`) through admission and waits for it to end:
   * a problem, described, unless it Succeeded within `ms`. It proves that the elected workflow
   * controller (a quota replica) serves after a fault, not only that the replicas answer ready.
   */
  async workflowCompletes(ms = 60_000): Promise<string | undefined> {
    const step = (name: string, dependsOn: string[]) => ({ name, dependsOn, job: { tasks: 1, resources: { cpu: '100m', memory: '16Mi' }, command: ['true'] } });
    const body = JSON.stringify({ name: 'after-fault', steps: [step('first', []), step('second', ['first'])] });
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'idempotency-key': `wf-${Date.now()}` };
    const deadline = Date.now() + ms;
    let id: string | undefined;
    let phase = 'not accepted';
    for (let i = 0; Date.now() < deadline; i++) {
      const url = this.admissionUrls()[i % this.admissionUrls().length];
      try {
        if (!id) {
          const res = await fetch(`${url}/v1/workflows`, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) });
          if (res.status === 201 || res.status === 200) id = ((await res.json()) as { id: string }).id;
          else if (res.status !== 503 && res.status !== 429) return `a workflow submitted after the fault was answered ${res.status}`;
        } else {
          const res = await fetch(`${url}/v1/workflows/${id}`, { headers, signal: AbortSignal.timeout(5000) });
          if (res.ok) phase = ((await res.json()) as { phase: string }).phase;
          if (phase === 'Succeeded') return undefined;
          if (['Failed', 'Cancelled'].includes(phase)) break;
        }
      } catch {
        /* a replica restarting: ask again */
      }
      await sleep(250);
    }
    return `a workflow submitted after the fault ${id ? `is ${phase}` : 'was never accepted'} after ${ms / 1000} s (the elected workflow controller does not serve)`;
  }

  /**
   * One API call as the tenant, through whichever admission replica answers: a 503, a 429 or a
   * network error (a replica restarting) is tried again on the next replica, at most for `ms`.
   * Returns the status and the JSON body.
   */
  async api<T = unknown>(method: string, path: string, body?: unknown, ms = 20_000): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
    if (method === 'POST') headers['idempotency-key'] = `api-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const deadline = Date.now() + ms;
    for (let i = 0; ; i++) {
      const url = this.admissionUrls()[i % this.admissionUrls().length];
      try {
        const res = await fetch(`${url}${path}`, {
          method,
          headers,
          body: body !== undefined ? JSON.stringify(body) : undefined,
          signal: AbortSignal.timeout(5000),
        });
        if ((res.status !== 503 && res.status !== 429) || Date.now() > deadline) return { status: res.status, body: (await res.json()) as T };
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
      await sleep(250);
    }
  }

  admissionUrls(): string[] {
    return [...this.services.values()].filter((s) => s.app === 'admission').map((s) => s.url);
  }
}

/** The steady load of one scenario: submits with idempotency keys, retried on 503/429/network. */
class Load {
  submitted = 0;
  /** Accepted job id → when it was submitted. */
  readonly accepted = new Map<string, number>();
  readonly statuses: Record<string, number> = {};
  faultAt = 0;

  constructor(
    private readonly c: FaultCluster,
    private readonly name: string,
  ) {}

  async run(everyMs: number, stopAt: number): Promise<void> {
    const inflight: Array<Promise<void>> = [];
    for (let i = 0; Date.now() < stopAt; i++) {
      inflight.push(this.submit(`${this.name.replace(/[^A-Za-z0-9]+/g, '-')}-${i}`, i));
      await sleep(everyMs);
    }
    await Promise.all(inflight);
  }

  /** One job: retried with the same key on another replica until accepted or 30 s passed. */
  private async submit(key: string, i: number): Promise<void> {
    this.submitted++;
    const deadline = Date.now() + 30_000;
    const at = Date.now();
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const urls = this.c.admissionUrls();
      const url = urls[(i + attempt) % urls.length];
      try {
        const res = await fetch(`${url}/v1/jobs`, {
          method: 'POST',
          signal: AbortSignal.timeout(5000),
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({ name: `load-${i}`, tasks: 2, resources: { cpu: '100m', memory: '16Mi' }, command: this.c.taskCommand() }),
        });
        this.statuses[res.status] = (this.statuses[res.status] ?? 0) + 1;
        const body = (await res.json()) as { id?: string };
        if ((res.status === 201 || res.status === 200) && body.id) {
          this.accepted.set(body.id, at);
          return;
        }
        if (res.status !== 503 && res.status !== 429) return; // a 4xx is final
        await sleep(Number(res.headers.get('retry-after') ?? 1) * 200);
      } catch {
        this.statuses.network = (this.statuses.network ?? 0) + 1;
        await sleep(200);
      }
    }
  }

  /** Milliseconds from the fault until the first job submitted after it finished. */
  firstDoneAfterFault(jobs: ReadonlyMap<string, JobOutcome>, faultAt: number): number | null {
    let first = Number.POSITIVE_INFINITY;
    for (const [id, at] of this.accepted) {
      const j = jobs.get(id);
      if (at >= faultAt && j?.phase === 'Succeeded' && j.finishedAt) first = Math.min(first, j.finishedAt);
    }
    return Number.isFinite(first) ? Math.max(0, first - faultAt) : null;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The table every run prints. */
export function table(rows: ScenarioResult[]): string {
  const head = ['scenario', 'submitted', 'accepted', 'lost', 'dup runs', 'recover', 'archived', 'dup rows', 'drain', 'answers', 'problems'];
  const body = rows.map((r) => [
    r.scenario,
    String(r.submitted),
    String(r.accepted),
    String(r.lost),
    String(r.duplicated),
    r.recoverMs === null ? '-' : `${(r.recoverMs / 1000).toFixed(1)} s`,
    r.archived === null ? '-' : String(r.archived),
    r.archived === null ? '-' : String(r.archivedTwice),
    r.archived === null ? '-' : r.drainMs === null ? `> ${DRAIN_MS / 1000} s` : `${(r.drainMs / 1000).toFixed(1)} s`,
    Object.entries(r.statuses)
      .map(([k, v]) => `${k}:${v}`)
      .join(' '),
    r.problems.join('; ') || '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
