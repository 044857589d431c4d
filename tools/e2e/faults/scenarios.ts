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

export const SCENARIOS: Scenario[] = [
  {
    name: 'scheduler leader kill -9 mid-burst',
    fast: true,
    async fault(c) {
      const leader = await c.schedulerLeader();
      c.signal(leader, 'SIGKILL');
      await sleep(300);
      await c.restart(leader); // back as a standby
    },
  },
  {
    name: 'scheduler leader SIGSTOP 2× lease, then SIGCONT',
    async fault(c) {
      const leader = await c.schedulerLeader();
      c.signal(leader, 'SIGSTOP');
      await sleep(2 * TTL * 1000);
      c.signal(leader, 'SIGCONT'); // its late writes are refused by the fence; it self-fences
      await reviveIfDead(c, leader);
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
      const leader = await c.etcdLeader();
      const follower = [0, 1, 2].find((i) => i !== leader)!;
      c.etcd.kill(follower);
      await sleep(2000);
      c.etcd.restart(follower);
    },
  },
  {
    name: 'etcd raft leader kill -9, restart',
    async fault(c) {
      const leader = await c.etcdLeader();
      c.etcd.kill(leader);
      await sleep(2000);
      c.etcd.restart(leader);
    },
  },
  {
    name: 'etcd quorum loss: 2 of 3 killed for 4 s',
    async fault(c) {
      const leader = await c.etcdLeader();
      const others = [0, 1, 2].filter((i) => i !== leader);
      for (const i of others) c.etcd.kill(i);
      await sleep(4000);
      for (const i of others) c.etcd.restart(i);
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
      c.etcd.kill(1, 'SIGTERM');
      await sleep(1000);
      c.etcd.restart(1);
    },
  },
  {
    name: 'executor kill -9 (tasks requeued after TTL + grace)',
    async fault(c) {
      c.signal('executor-0', 'SIGKILL');
      await sleep((TTL + 3) * 1000);
      await c.restart('executor-0');
    },
    opts: { loadMs: 9000 },
  },
  {
    name: 'executor SIGSTOP past its lease, then SIGCONT',
    async fault(c) {
      c.signal('executor-1', 'SIGSTOP');
      await sleep((2 * TTL + 1) * 1000);
      c.signal('executor-1', 'SIGCONT');
      await reviveIfDead(c, 'executor-1');
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
      c.signal('admission-0', 'SIGKILL');
      await sleep(1000);
      await c.restart('admission-0');
    },
  },
];
