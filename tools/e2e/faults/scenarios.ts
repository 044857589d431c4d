/**
 * The fault scenarios. Each injects its fault into a running `FaultCluster` under load and
 * leaves the cluster whole again (killed processes restarted) for the next one.
 */
import { type JobRecord, TERMINAL_PHASES } from '@batchapi/api';
import { DRAIN_MS, type FaultCluster, type ScenarioResult, sleep } from './fault-cluster';

/** Lease TTL of every service in the fault cluster, in seconds. */
export const TTL = 2;

/** `BATCH_ARCHIVE_AFTER` of the fault cluster, in seconds: short, so that jobs leave etcd for history during each scenario. */
export const ARCHIVE_AFTER_S = 1;

export interface Scenario {
  name: string;
  /** In the fast subset that `npm test` runs. */
  fast?: boolean;
  fault(c: FaultCluster): Promise<void>;
  opts?: Parameters<FaultCluster['scenario']>[2];
  /** Extra checks of the row (beyond 0 lost, 0 duplicated, no problems). */
  expect?(r: ScenarioResult): string | undefined;
  /** A check once the scenario settled, on the whole cluster again (e.g. a workflow still completes). */
  after?(c: FaultCluster): Promise<string | undefined>;
  /** Why it cannot run on this machine, if it cannot. */
  skip?(c: FaultCluster): string | undefined;
}

/** Restarts a service if its process ended (a self-fenced service exits). */
async function reviveIfDead(c: FaultCluster, name: string): Promise<void> {
  const p = c.services.get(name)!.proc!;
  await sleep(500);
  if (p.exitCode !== null || p.signalCode !== null) await c.restart(name);
}

/** Stops etcd members `members` with `signal`, waits `downMs`, and starts them again on their data. */
async function etcdDown(c: FaultCluster, members: number[], downMs: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  for (const i of members) c.etcd.kill(i, signal);
  await sleep(downMs);
  for (const i of members) c.etcd.restart(i);
}

/** The etcd members that are not the raft leader now. */
async function etcdFollowers(c: FaultCluster): Promise<number[]> {
  const leader = await c.etcdLeader();
  return [0, 1, 2].filter((i) => i !== leader);
}

/** Kills service `name` with -9, waits `downMs`, and starts it again. */
async function killFor(c: FaultCluster, name: string, downMs: number): Promise<void> {
  c.signal(name, 'SIGKILL');
  await sleep(downMs);
  await c.restart(name);
}

/** Pauses service `name` (SIGSTOP) for `pausedMs`, resumes it (SIGCONT), and restarts it if it fenced itself and exited meanwhile. */
async function pauseFor(c: FaultCluster, name: string, pausedMs: number): Promise<void> {
  c.signal(name, 'SIGSTOP');
  await sleep(pausedMs);
  c.signal(name, 'SIGCONT');
  await reviveIfDead(c, name);
}

const noHistory = (c: FaultCluster) => (c.postgres ? undefined : 'the fault cluster has no history store');

/** The finished jobs etcd holds now (ids); throws while etcd is unavailable. */
async function finishedInEtcd(c: FaultCluster, olderThanMs = 0): Promise<string[]> {
  const now = Date.now();
  return (await c.store.listAll<JobRecord>(c.store.keys.jobs())).items
    .map((j) => j.value)
    .filter((j) => TERMINAL_PHASES.has(j.phase) && now - (j.finishedAt ?? now) >= olderThanMs)
    .map((j) => j.id);
}

/**
 * PostgreSQL, the history store, crashes (SIGKILL to all its processes) under load and is
 * started again on its data and port after `downMs`. Meanwhile archive passes fail and etcd
 * keeps the finished jobs; once it is back the backlog drains, each job archived once.
 */
export function postgresKilled(downMs: number): Scenario {
  let waited: string[] = [];
  let drainedMs: number | undefined;
  return {
    name: `PostgreSQL killed for ${downMs / 1000} s under load`,
    skip: noHistory,
    async fault(c) {
      c.killPostgres();
      await sleep(downMs);
      // what the archiver could not move: finished longer ago than the delay and a pass (5 s)
      waited = await finishedInEtcd(c, c.archiveAfterMs + 6000);
      await c.restartPostgres();
      const back = Date.now();
      drainedMs = undefined;
      while (Date.now() - back < DRAIN_MS) {
        const left = new Set(await finishedInEtcd(c).catch(() => waited));
        if (!waited.some((id) => left.has(id))) {
          drainedMs = Date.now() - back;
          break;
        }
        await sleep(250);
      }
      console.log(
        `PostgreSQL down ${downMs / 1000} s: ${waited.length} finished jobs waited in etcd; ${drainedMs === undefined ? 'not' : `${(drainedMs / 1000).toFixed(1)} s`} after it was back they had left`,
      );
    },
    opts: { loadMs: downMs + 6000 },
    expect: () =>
      waited.length === 0
        ? 'no finished job waited in etcd while PostgreSQL was down (did archiving go on without it?)'
        : drainedMs === undefined
          ? `the ${waited.length} jobs that waited in etcd while PostgreSQL was down were still there ${DRAIN_MS / 1000} s after it was back`
          : undefined,
  };
}

/**
 * Waits (at most `ms`) until the elected archiver removes a job from etcd — its batch is then
 * written to history and its removal under way — and freezes it there (SIGSTOP). Returns the
 * frozen replica and how many jobs etcd still holds that history already has (the rest of the
 * batch), or undefined when no batch was caught with jobs left (each one let go again).
 */
async function freezeArchiverMidBatch(c: FaultCluster, ms: number): Promise<{ name: string; inBoth: number } | undefined> {
  const name = await c.leader('archiver');
  let removed = () => {};
  let next = new Promise<void>((r) => (removed = r));
  const informer = await c.store.inform<JobRecord>(c.store.keys.jobs(), {
    onSync: () => undefined,
    onEvent: (e) => {
      if (e.type === 'delete') removed();
    },
  });
  try {
    for (const deadline = Date.now() + ms; Date.now() < deadline;) {
      if ((await Promise.race([next.then(() => true), sleep(deadline - Date.now()).then(() => false)])) === false) break;
      c.signal(name, 'SIGSTOP');
      const inBoth = (await c.archivedJobs(await finishedInEtcd(c))).size;
      if (inBoth > 0) return { name, inBoth };
      // the batch had ended (a batch of one): let it go, wait for the next one
      c.signal(name, 'SIGCONT');
      next = new Promise<void>((r) => (removed = r));
    }
    return undefined;
  } finally {
    await informer.stop();
  }
}

/**
 * The elected archiver is killed (-9) in the middle of a batch: history has the batch, etcd
 * still holds part of it. The other quota replica takes the role after the lease TTL and
 * archives those jobs again: an upsert, never a second row.
 */
export function archiverKilledMidBatch(): Scenario {
  let caught: { name: string; inBoth: number } | undefined;
  return {
    name: 'archiver kill -9 mid-batch (in history, not yet out of etcd)',
    skip: noHistory,
    async fault(c) {
      caught = await freezeArchiverMidBatch(c, 20_000);
      if (!caught) return;
      console.log(`archiver ${caught.name} frozen, then killed, with ${caught.inBoth} jobs of its batch in history and still in etcd`);
      c.signal(caught.name, 'SIGKILL'); // a stopped process dies of it too
      await sleep(1000);
      await c.restart(caught.name);
    },
    opts: { loadMs: 10_000 },
    expect: () => (caught ? undefined : 'the archiver was never caught mid-batch within 20 s'),
  };
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'scheduler leader kill -9 mid-burst',
    fast: true,
    async fault(c) {
      await killFor(c, await c.schedulerLeader(), 300); // back as a standby
    },
  },
  {
    name: 'scheduler leader SIGSTOP 2× lease, then SIGCONT',
    async fault(c) {
      // once resumed, its late writes are refused by the fence; it self-fences
      await pauseFor(c, await c.schedulerLeader(), 2 * TTL * 1000);
    },
  },
  {
    name: 'scheduler leader churn: 5 kills in a row',
    async fault(c) {
      for (let i = 0; i < 5; i++) {
        const leader = await c.schedulerLeader();
        c.signal(leader, 'SIGKILL');
        await c.restart(leader);
        await sleep(200);
      }
    },
    opts: { loadMs: 12_000 },
  },
  {
    name: 'etcd follower kill -9, restart',
    fast: true,
    async fault(c) {
      const [follower] = await etcdFollowers(c);
      await etcdDown(c, [follower], 2000);
    },
  },
  {
    name: 'etcd raft leader kill -9, restart',
    async fault(c) {
      await etcdDown(c, [await c.etcdLeader()], 2000);
    },
  },
  {
    name: 'etcd quorum loss: 2 of 3 killed for 4 s',
    async fault(c) {
      await etcdDown(c, await etcdFollowers(c), 4000);
      // services that lost their leases meanwhile fenced themselves and exited: the supervisor (here, this) restarts them
      for (const name of [...c.services.keys()]) await reviveIfDead(c, name);
    },
    opts: { loadMs: 10_000, settleMs: 90_000 },
    expect: (r) => ((r.statuses['503'] ?? 0) + (r.statuses.network ?? 0) > 0 ? undefined : 'no submit saw 503 while etcd had no quorum'),
    // Every quota replica lost its lease: its elected roles must campaign again on the new one.
    after: (c) => c.workflowCompletes(),
  },
  {
    name: 'etcd member restart with its data (SIGTERM)',
    async fault(c) {
      await etcdDown(c, [1], 1000, 'SIGTERM');
    },
  },
  {
    name: 'executor kill -9 (tasks requeued after TTL + grace)',
    async fault(c) {
      await killFor(c, 'executor-0', (TTL + 3) * 1000);
    },
    opts: { loadMs: 9000 },
  },
  {
    name: 'executor SIGSTOP past its lease, then SIGCONT',
    async fault(c) {
      await pauseFor(c, 'executor-1', (2 * TTL + 1) * 1000);
    },
    opts: { loadMs: 9000 },
  },
  {
    name: 'network partition of the scheduler leader from etcd (netns)',
    skip: (c) => (c.netns ? undefined : c.netnsWhy),
    async fault(c) {
      // make the replica in the namespace the leader, then cut it off for 2× its lease
      if ((await c.schedulerLeader()) !== 'scheduler-1') {
        c.signal('scheduler-0', 'SIGKILL');
        for (let i = 0; i < 50 && (await c.schedulerLeader()) !== 'scheduler-1'; i++) await sleep(200);
        await c.restart('scheduler-0');
      }
      await c.partition(2 * TTL * 1000 + 1000);
      await reviveIfDead(c, 'scheduler-1');
    },
    opts: { loadMs: 10_000 },
  },
  {
    name: 'admission kill -9 mid-request; clients retry the same key',
    fast: true,
    async fault(c) {
      await killFor(c, 'admission-0', 1000);
    },
  },
  postgresKilled(30_000),
  { ...archiverKilledMidBatch(), fast: true },
];
