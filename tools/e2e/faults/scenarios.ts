/**
 * The fault scenarios. Each injects its fault into a running `FaultCluster` under load and
 * leaves the cluster whole again (killed processes restarted) for the next one.
 */
import { type FaultCluster, type ScenarioResult, sleep } from './fault-cluster';

/** Lease TTL of every service in the fault cluster, in seconds. */
export const TTL = 2;

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
];
