/**
 * Starts real etcd members on free loopback ports: one for the local cluster and for each
 * integration suite, three when a test kills members. Uses the `etcd` binary on PATH
 * (Debian's `etcd-server`).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopProcess, waitUntil } from '@batchapi/proc';

/** Options of a local etcd member or cluster. */
export interface EtcdMemberOptions {
  /** Data directory; kept when given, else a temp dir removed on stop. */
  dataDir?: string;
  /** Members in the cluster. @default 1 */
  members?: number;
  /** Path of the etcd binary. @default "etcd" on PATH */
  binary?: string;
  /** How long to wait for the cluster to answer, in milliseconds. @default 15000 */
  startTimeoutMs?: number;
  /** Another local address each member also serves clients on (e.g. a veth of a test's network namespace). @default none */
  extraClientHost?: string;
  /**
   * History kept before etcd compacts it (`--auto-compaction-retention`, periodic mode: a Go
   * duration such as `1m`; etcd compacts every retention period, so between one and two periods
   * of history are kept). @default ETCD_COMPACTION_RETENTION ("30s")
   */
  compactionRetention?: string;
  /**
   * Each member's client and peer port, in that order (`[client0, peer0, client1, …]`), for the
   * first attempt only; later attempts take free ones. @default free ports (`freePort`)
   */
  ports?: number[];
}

/**
 * How much write history etcd keeps, as deployed (the Helm chart's `etcd.autoCompactionRetention`)
 * and in every local cluster: 30 seconds. etcd's database holds the live keys plus between 30 and
 * 60 seconds of writes (each one-task job leaves ~5 KiB of history), so its size follows the
 * submit rate, not the jobs run. A watcher that falls further behind than that relists (the
 * informers do so on a compacted revision), as Kubernetes' watchers do after its 5-minute compaction.
 */
export const ETCD_COMPACTION_RETENTION = '30s';

/** A running local etcd. */
export interface LocalEtcd {
  /** Client URLs of every member. */
  endpoints: string[];
  /** Client URLs on `extraClientHost` (empty without it). */
  extraEndpoints: string[];
  members: Array<{ name: string; clientUrl: string; process: ChildProcess; dataDir: string; args: string[] }>;
  /** Kills one member (`SIGKILL` by default). */
  kill(index: number, signal?: NodeJS.Signals): void;
  /** Restarts a killed member with its data. */
  restart(index: number): void;
  stop(): Promise<void>;
}

/** Says how to get etcd when it is missing. */
export function etcdBinaryOrExplain(binary = 'etcd'): string {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`etcd was not found (${binary}). Install it: sudo apt-get install -y etcd-server (Debian/Ubuntu), or put an etcd 3.4+ binary on PATH.`);
  }
  return binary;
}

/**
 * A started member is not the one answering at its URL: it exited (e.g. its port was taken
 * between `freePort` and its bind) or another etcd answers there.
 */
export class EtcdNotOursError extends Error {
  constructor(
    readonly member: string,
    readonly url: string,
  ) {
    super(`etcd member ${member} is not the one answering at ${url}: it exited while starting (its port taken?) or another etcd listens there`);
    this.name = 'EtcdNotOursError';
  }
}

/** Attempts of `startEtcd` with fresh ports when a member's port was taken (its own data directory only). */
const START_ATTEMPTS = 3;

/**
 * Starts a local etcd of `members` members on loopback and waits until it answers — itself: a
 * member whose port another process took between `freePort` and its bind exits, and another etcd
 * may answer at its URL, so each member's process must be alive and, when new (not started on data
 * of an earlier run), listed at its URL by name and peer URL. If not, with its own data directory,
 * it starts again on fresh ports (3 attempts).
 */
export async function startEtcd(opts: EtcdMemberOptions = {}): Promise<LocalEtcd> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdOnce(attempt === 1 ? opts : { ...opts, ports: undefined });
    } catch (err) {
      if (!(err instanceof EtcdNotOursError) || opts.dataDir || attempt >= START_ATTEMPTS) throw err;
    }
  }
}

async function startEtcdOnce(opts: EtcdMemberOptions): Promise<LocalEtcd> {
  const binary = etcdBinaryOrExplain(opts.binary);
  const n = opts.members ?? 1;
  const ownDir = !opts.dataDir;
  const base = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'batch-etcd-'));
  const ports = opts.ports ?? (await Promise.all(Array.from({ length: n * 2 }, () => freePort())));
  const specs = Array.from({ length: n }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
    dataDir: join(base, `m${i}`),
  }));
  // A member started on data of an earlier run keeps the peer URL it was created with (etcd reads
  // its membership from the data, not the flags): only a new one can be told by its peer URL.
  const fresh = specs.map((s) => !existsSync(join(s.dataDir, 'member')));
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');
  const members = specs.map((s) => {
    const args = [
      '--name',
      s.name,
      '--data-dir',
      s.dataDir,
      '--listen-client-urls',
      [s.clientUrl, ...(opts.extraClientHost ? [s.clientUrl.replace('127.0.0.1', opts.extraClientHost)] : [])].join(','),
      '--advertise-client-urls',
      s.clientUrl,
      '--listen-peer-urls',
      s.peerUrl,
      '--initial-advertise-peer-urls',
      s.peerUrl,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-state',
      'new',
      '--initial-cluster-token',
      `batch-${ports[0]}`,
      '--heartbeat-interval',
      '50',
      '--election-timeout',
      '500',
      '--log-level',
      'error',
      '--logger',
      'zap',
      // As deployed: write history older than ETCD_COMPACTION_RETENTION is compacted, so etcd's size follows live work, not history.
      '--auto-compaction-mode',
      'periodic',
      '--auto-compaction-retention',
      opts.compactionRetention ?? ETCD_COMPACTION_RETENTION,
      // As deployed: a snapshot every 10,000 applied entries, so the raft entries held in memory stay few (etcd 3.5's default, 100,000, holds GBs of batched transactions).
      '--snapshot-count',
      '10000',
      // As deploy/etcd: progress notifications advance an informer's revision on an idle prefix.
      '--experimental-watch-progress-notify-interval',
      '2s',
    ];
    return { name: s.name, clientUrl: s.clientUrl, dataDir: s.dataDir, args, process: launch(binary, args) };
  });
  const local: LocalEtcd = {
    endpoints: members.map((m) => m.clientUrl),
    extraEndpoints: opts.extraClientHost ? members.map((m) => m.clientUrl.replace('127.0.0.1', opts.extraClientHost!)) : [],
    members,
    kill(i, signal = 'SIGKILL') {
      members[i].process.kill(signal);
    },
    restart(i) {
      members[i].process = launch(
        binary,
        members[i].args.map((a) => (a === 'new' ? 'existing' : a)),
      );
    },
    async stop() {
      await Promise.all(members.map((m) => stopProcess(m.process)));
      if (ownDir) rmSync(base, { recursive: true, force: true });
    },
  };
  try {
    await waitHealthy(local.endpoints, opts.startTimeoutMs ?? 15000);
    for (const [i, spec] of specs.entries()) {
      const p = members[i].process;
      const exited = () => p.exitCode !== null || p.signalCode !== null;
      // Asked again after the member list: a member that lost its port may exit only while it was read.
      if (exited() || (fresh[i] && !(await listsMember(spec.clientUrl, spec.name, spec.peerUrl))) || exited())
        throw new EtcdNotOursError(spec.name, spec.clientUrl);
    }
  } catch (err) {
    await local.stop();
    throw err;
  }
  return local;
}

function launch(binary: string, args: string[]): ChildProcess {
  const p = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  p.stderr?.resume();
  return p;
}

async function waitHealthy(endpoints: string[], timeoutMs: number): Promise<void> {
  if (!(await waitUntil(() => isHealthy(endpoints[0]), { timeoutMs, intervalMs: 50 }))) {
    throw new Error(`etcd did not become healthy within ${timeoutMs} ms at ${endpoints.join(',')}`);
  }
}

/** Whether the etcd answering at `url` lists a member `name` with peer URL `peerUrl` (the v3 JSON gateway's member list). */
async function listsMember(url: string, name: string, peerUrl: string): Promise<boolean> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/v3/cluster/member/list`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
      const list = (await res.json()) as { members?: Array<{ name?: string; peerURLs?: string[] }> };
      // A member that joined but has not started lists no name yet: ask again.
      if (res.ok && list.members?.every((m) => m.name)) return list.members.some((m) => m.name === name && (m.peerURLs ?? []).includes(peerUrl));
    } catch {
      // not answering yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** Whether the member at `url` says it is healthy; false while it does not answer. */
async function isHealthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
    return res.ok && ((await res.json()) as { health?: string }).health === 'true';
  } catch {
    return false; // not up yet
  }
}
