/**
 * The nemesis: the fault suite's cluster (3 etcd members, two replicas of admission, quota and
 * scheduler) with two process executors, two simulated fleets and a queue quota, under the
 * seeded nemesis load, while a seeded random schedule of faults runs one after another:
 * everything the scenario suite does plus etcd member pauses and slow-disk bursts, etcd
 * compaction, partitions of an executor, an admission replica and a scheduler replica
 * (network namespaces), quota replica kills and clock jumps of single services. Samplers
 * watch capacity, quota and scheduler leadership every 500 ms; when the load stops, the
 * checker waits up to 60 s for the accepted work to end, reads etcd and the run log, and
 * prints the table (`checker.ts`). Same seed, same load and same schedule.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { GroupStatus, JobRecord, NodeAllocation, NodeRecord, Queue, WorkflowRecord } from '@batchapi/api';
import { FaultCluster, sleep } from './fault-cluster';
import {
  capacityViolations,
  type EtcdView,
  failures,
  nemesisTable,
  type NemesisReport,
  queueUsage,
  quotaViolationsOf,
  type Samples,
  summarize,
} from './checker';
import { NemesisLoad, rng } from './nemesis-load';

/** Lease TTL of every service, seconds (as in the scenario suite). */
export const NEMESIS_TTL = 2;
const TOKEN = 'fault-tenant-token';

/** Options of one nemesis run. */
export interface NemesisOptions {
  seed: number;
  /** Minutes of load (and faults). */
  minutes: number;
  /** Submits per second. @default 200 */
  rate?: number;
  /**
   * How long the checker waits after the load for accepted work to end, milliseconds; past it, it
   * keeps waiting while some open job still changes within 30 s, up to five times as long. @default 60000
   */
  settleMs?: number;
  /** Progress lines. @default stderr */
  log?: (line: string) => void;
  /** Faults to draw from (`NEMESIS_FAULTS=a,b` in the specs), to chase one kind; `none` for the load alone. @default every fault */
  faults?: FaultName[];
}

/** Every fault the nemesis knows. */
export const FAULTS = [
  'scheduler-kill',
  'scheduler-stop',
  'scheduler-partition',
  'quota-kill',
  'admission-kill',
  'admission-partition',
  'executor-kill',
  'executor-stop',
  'executor-partition',
  'etcd-follower-kill',
  'etcd-leader-kill',
  'etcd-quorum-loss',
  'etcd-restart',
  'etcd-pause',
  'etcd-slow-disk',
  'etcd-compact',
  'clock-jump',
  'clock-back-stop',
] as const;
export type FaultName = (typeof FAULTS)[number];

/** Relative weights: quorum loss is rare. */
const WEIGHTS: Partial<Record<FaultName, number>> = { 'etcd-quorum-loss': 0.3 };

/** One planned fault: started `gapMs` after the previous one ended. */
export interface PlannedFault {
  gapMs: number;
  fault: FaultName;
  /** The service or etcd member it hits when not chosen at run time (a leader is). */
  target?: string;
  /** How long it lasts, milliseconds. */
  ms: number;
  /** Clock offset of a clock jump, milliseconds. */
  offsetMs?: number;
  /** For a compaction: done while a follower is down, so watches resume from a compacted revision. */
  withKill?: boolean;
}

const EXECUTORS = ['executor-0', 'executor-1', 'fleet-0', 'fleet-1'];
const CLOCK_TARGETS = ['scheduler-0', 'scheduler-1', 'quota-0', 'quota-1', 'admission-0', 'admission-1', ...EXECUTORS];

/**
 * The fault schedule of a seed: enough faults for `ms` of load (at ~8 s per fault with its gap),
 * drawn from `only` (default: every fault). Pure.
 */
export function faultSchedule(seed: number, ms: number, only: readonly FaultName[] = FAULTS): PlannedFault[] {
  const rand = rng(seed ^ 0xfa17);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const between = (lo: number, hi: number) => Math.round(lo + rand() * (hi - lo));
  const total = only.reduce((a, f) => a + (WEIGHTS[f] ?? 1), 0);
  const out: PlannedFault[] = [];
  for (let t = 0; t < ms;) {
    let r = rand() * total;
    const fault = only.find((f) => (r -= WEIGHTS[f] ?? 1) < 0) ?? only[only.length - 1];
    const gapMs = between(1000, 5000);
    const p: PlannedFault = { gapMs, fault, ms: 0 };
    switch (fault) {
      case 'scheduler-kill':
        p.ms = 300;
        break;
      case 'scheduler-stop':
        p.ms = 2 * NEMESIS_TTL * 1000;
        break;
      case 'scheduler-partition':
        p.target = 'scheduler-1';
        p.ms = 2 * NEMESIS_TTL * 1000 + 1000;
        break;
      case 'quota-kill':
        p.target = pick(['quota-0', 'quota-1']);
        p.ms = 500;
        break;
      case 'admission-kill':
        p.target = pick(['admission-0', 'admission-1']);
        p.ms = 1000;
        break;
      case 'admission-partition':
        p.target = 'admission-1';
        p.ms = between(2000, 5000);
        break;
      case 'executor-kill':
        p.target = pick(EXECUTORS);
        p.ms = (NEMESIS_TTL + 3) * 1000;
        break;
      // below the lease (nothing may happen) or past it (the node is lost, its tasks requeued once)
      case 'executor-stop':
        p.target = pick(EXECUTORS);
        p.ms = between(1000, 2 * NEMESIS_TTL * 1000 + 1000);
        break;
      case 'executor-partition':
        p.target = 'executor-1';
        p.ms = between(1000, 2 * NEMESIS_TTL * 1000 + 1000);
        break;
      case 'etcd-follower-kill':
      case 'etcd-leader-kill':
        p.ms = 2000;
        break;
      case 'etcd-quorum-loss':
        p.ms = 4000;
        break;
      case 'etcd-restart':
        p.target = String(between(0, 2));
        p.ms = 1000;
        break;
      case 'etcd-pause':
        p.target = String(between(0, 2));
        p.ms = between(1000, 3000);
        break;
      case 'etcd-slow-disk':
        p.target = String(between(0, 2));
        p.ms = between(3000, 6000);
        break;
      case 'etcd-compact':
        p.withKill = rand() < 0.5;
        p.ms = p.withKill ? 2000 : 0;
        break;
      case 'clock-jump':
        p.target = pick(CLOCK_TARGETS);
        p.offsetMs = (rand() < 0.5 ? -1 : 1) * between(5000, 60_000);
        p.ms = between(5000, 10_000);
        break;
      // the wall clock steps back, then the process stalls past its lease: a self-fence kept on
      // the wall clock would believe the lease still fresh when it resumes
      case 'clock-back-stop':
        p.target = pick(['scheduler-leader', 'executor-0', 'executor-1']);
        p.offsetMs = -between(10_000, 60_000);
        p.ms = 2 * NEMESIS_TTL * 1000 + 1000;
        break;
    }
    out.push(p);
    t += gapMs + p.ms + 1500; // + the time a fault takes to find its target and restart what it killed
  }
  return out;
}

/** One line of the printed schedule. */
export function describeFault(p: PlannedFault): string {
  const what = [
    p.fault,
    p.target && `on ${p.target}`,
    p.ms && `for ${p.ms} ms`,
    p.offsetMs && `offset ${p.offsetMs > 0 ? '+' : ''}${p.offsetMs} ms`,
    p.withKill && 'while a follower is down',
  ]
    .filter(Boolean)
    .join(' ');
  return `+${p.gapMs} ms: ${what}`;
}

/** The quota of the nemesis cluster: two queues of one cohort, so borrowing and its limits are exercised. */
export const NEMESIS_CLUSTER = {
  tenants: [{ name: 'default' }],
  queues: [
    { name: 'default', tenant: 'default', cohort: 'nemesis', nominal: { cpu: '1000' }, borrowingLimit: { cpu: '400' } },
    { name: 'bulk', tenant: 'default', cohort: 'nemesis', nominal: { cpu: '600' }, borrowingLimit: { cpu: '400' } },
  ],
};

/** A cluster under the nemesis: which processes it holds down or stopped, so the supervisor and samplers leave them alone. */
class Nemesis {
  /** Services a fault took down and restarts itself. */
  readonly held = new Set<string>();
  /** Services (or `etcd-<i>`) SIGSTOPped now. */
  readonly stopped = new Set<string>();
  readonly samples: Samples = { capacity: [], quota: [], leaders: [] };
  readonly log: string[] = [];
  /** Highest CPU usage each queue reached in a sample, millicores. */
  readonly peakCpu = new Map<string, number>();
  private done = false;
  private readonly loops: Array<Promise<void>> = [];

  constructor(
    readonly c: FaultCluster,
    private readonly say: (l: string) => void,
    private readonly queues: Queue[],
  ) {}

  running(name: string): boolean {
    const p = this.c.services.get(name)?.proc;
    return !!p && p.exitCode === null && p.signalCode === null && !this.stopped.has(name);
  }

  note(line: string): void {
    this.log.push(line);
    this.say(line);
  }

  /** The supervisor (restarts what exited unless a fault holds it down) and the samplers. */
  startLoops(): void {
    this.loops.push(
      this.every(1000, async () => {
        for (const [name, s] of this.c.services) {
          if (this.held.has(name) || !s.proc || (s.proc.exitCode === null && s.proc.signalCode === null)) continue;
          this.note(`supervisor: ${name} exited (${s.proc.exitCode ?? s.proc.signalCode}); restarting`);
          this.held.add(name);
          await this.c
            .restart(name)
            .catch((err) => this.note(`supervisor: ${name} not ready yet: ${(err as Error).message}`))
            .finally(() => this.held.delete(name));
        }
      }),
    );
    this.loops.push(
      this.every(500, async () => {
        const { store } = this.c;
        const [nodes, allocs] = await Promise.all([
          // Whole listings (a page may come back short: a sample must see every node and allocation).
          store.listAll<NodeRecord>(store.keys.nodes()),
          store.listAll<NodeAllocation>(store.keys.allocs()),
        ]).catch(() => [undefined, undefined]);
        if (!nodes || !allocs) return; // etcd unavailable: no sample
        const byName = new Map(allocs.items.map((a) => [a.key.slice(store.keys.allocs().length), a.value]));
        this.samples.capacity.push(capacityViolations(new Map(nodes.items.map((n) => [n.value.name, n.value.capacity])), byName));
        const usage = queueUsage(byName.values());
        for (const [q, u] of usage) this.peakCpu.set(q, Math.max(this.peakCpu.get(q) ?? 0, u.cpu ?? 0));
        this.samples.quota.push(quotaViolationsOf(this.queues, usage));
      }),
    );
    this.loops.push(
      this.every(500, async () => {
        const replicas = ['scheduler-0', 'scheduler-1'].filter((n) => this.running(n));
        const answers = await Promise.all(
          replicas.map(async (n) => {
            const text = await fetch(`${this.c.services.get(n)!.url}/metrics`, { signal: AbortSignal.timeout(400) }).then(
              (r) => r.text(),
              () => '',
            );
            // still running (not stopped or killed meanwhile) when it answered
            return /^batch_scheduler_is_leader(\{[^}]*\})? 1$/m.test(text) && this.running(n) ? n : undefined;
          }),
        );
        this.samples.leaders.push(answers.filter((a): a is string => !!a));
      }),
    );
  }

  async stopLoops(): Promise<void> {
    this.done = true;
    await Promise.all(this.loops);
  }

  private async every(ms: number, fn: () => Promise<void>): Promise<void> {
    while (!this.done) {
      const t = Date.now();
      await fn().catch(() => undefined);
      await sleep(Math.max(50, ms - (Date.now() - t)));
    }
  }

  /** Stops a process for `ms` (SIGSTOP … SIGCONT). */
  async pause(name: string, ms: number): Promise<void> {
    this.stopped.add(name);
    try {
      this.c.signal(name, 'SIGSTOP');
      await sleep(ms);
    } finally {
      this.c.signal(name, 'SIGCONT');
      this.stopped.delete(name);
    }
  }

  /**
   * Sets a service's wall-clock offset: writes its clock file and tells its process — and an
   * executor's watchdog, which shares its machine's clock — to read it (SIGUSR2, see
   * clock-offset.js). A process started meanwhile reads the file when it starts.
   */
  async setClock(name: string, offsetMs: number): Promise<void> {
    writeFileSync(join(this.c.dir, `${name}.clock`), String(offsetMs));
    const pid = this.c.services.get(name)?.proc?.pid;
    const dataDir = this.c.services.get(name)?.env.BATCH_DATA_DIR;
    const pids = [pid, ...(dataDir ? watchdogPids(dataDir) : [])].filter((p): p is number => !!p);
    for (const p of pids)
      try {
        process.kill(p, 'SIGUSR2');
      } catch {
        /* gone */
      }
  }

  /** Kills a service, keeps it down `ms`, then restarts it. */
  async killFor(name: string, ms: number): Promise<void> {
    // never two launches of one service at once: wait for the supervisor's restart to end
    for (let i = 0; i < 300 && this.held.has(name); i++) await sleep(100);
    this.held.add(name);
    try {
      this.c.signal(name, 'SIGKILL');
      await sleep(ms);
      await this.c.restart(name).catch((err) => this.note(`  ${name} not ready after restart: ${(err as Error).message}`));
    } finally {
      this.held.delete(name);
    }
  }

  /**
   * The etcd member a pause may stop: `i`, unless `i` is the raft leader now — then the next
   * member, a follower — or no member says which leads (an election under way, another fault):
   * then none (undefined; the pause is skipped, its time waited out). Both noted. A resumed raft
   * leader may revoke the leases it saw expire while it was stopped (etcd-io/etcd#15247; narrowed
   * in 3.5.11 but not closed, 1 pause in 15 here: libs/store/test/lease-member-faults.spec.ts),
   * which revokes every service's lease at once.
   */
  private async pausable(i: number): Promise<number | undefined> {
    const leader = await this.c.etcdLeader().catch(() => undefined);
    if (leader === undefined) {
      this.note(`  no etcd member says it leads: member ${i} is not paused (a resumed leader may revoke live leases, etcd#15247)`);
      return undefined;
    }
    if (leader !== i) return i;
    const follower = (i + 1) % 3;
    this.note(`  etcd member ${i} leads; a resumed leader may revoke live leases (etcd#15247): member ${follower} instead`);
    return follower;
  }

  /** Runs one planned fault; resolves when the cluster is whole again (or what could not be restarted is noted). */
  async run(p: PlannedFault): Promise<void> {
    const { c } = this;
    const member = (i: number) => c.etcd.members[i].process;
    const etcdStop = (i: number, ms: number) => {
      member(i).kill('SIGSTOP');
      return sleep(ms).then(() => {
        member(i).kill('SIGCONT');
      });
    };
    switch (p.fault) {
      case 'scheduler-kill':
        return this.killFor(await c.schedulerLeader(), p.ms);
      case 'scheduler-stop':
        return this.pause(await c.schedulerLeader(), p.ms);
      case 'quota-kill':
      case 'admission-kill':
        return this.killFor(p.target!, p.ms);
      case 'executor-kill':
        return this.killFor(p.target!, p.ms);
      case 'executor-stop':
        return this.pause(p.target!, p.ms);
      case 'scheduler-partition':
      case 'admission-partition':
      case 'executor-partition':
        if (!c.services.get(p.target!)?.ns) return this.note(`  skipped: ${p.target} does not run in a network namespace (${c.netnsWhy ?? 'not isolated'})`);
        return c.partition(p.ms, p.target === 'scheduler-1' ? undefined : p.target);
      case 'etcd-follower-kill':
      case 'etcd-leader-kill': {
        const leader = await c.etcdLeader();
        const i = p.fault === 'etcd-leader-kill' ? leader : [0, 1, 2].filter((k) => k !== leader)[Math.floor(Math.random() * 2)];
        this.note(`  etcd member ${i}${i === leader ? ' (raft leader)' : ''}`);
        c.etcd.kill(i);
        await sleep(p.ms);
        return c.etcd.restart(i);
      }
      case 'etcd-quorum-loss': {
        const leader = await c.etcdLeader();
        const others = [0, 1, 2].filter((k) => k !== leader);
        for (const i of others) c.etcd.kill(i);
        await sleep(p.ms);
        for (const i of others) c.etcd.restart(i);
        return;
      }
      case 'etcd-restart': {
        const i = Number(p.target);
        c.etcd.kill(i, 'SIGTERM');
        await sleep(p.ms);
        return c.etcd.restart(i);
      }
      case 'etcd-pause': {
        const i = await this.pausable(Number(p.target));
        return i === undefined ? sleep(p.ms) : etcdStop(i, p.ms);
      }
      case 'etcd-slow-disk': {
        // Many short stops: its raft messages and fsyncs stall the way a slow disk stalls them.
        const i = await this.pausable(Number(p.target));
        const until = Date.now() + p.ms;
        if (i === undefined) return sleep(p.ms);
        while (Date.now() < until) {
          await etcdStop(i, 20 + Math.random() * 130);
          await sleep(10 + Math.random() * 40);
        }
        return;
      }
      case 'etcd-compact': {
        let killed: number | undefined;
        if (p.withKill) {
          const leader = await c.etcdLeader();
          killed = (leader + 1) % 3;
          c.etcd.kill(killed);
        }
        try {
          // the test's own client may have been on the killed member: it reconnects to another
          for (let attempt = 1; ; attempt++) {
            try {
              const { revision } = await c.store.list(c.store.keys.leader('scheduler'), { limit: 1 });
              await c.store.client.kv.compact({ revision });
              this.note(`  compacted to revision ${revision}`);
              break;
            } catch (err) {
              if (attempt === 10) throw err;
              await sleep(300);
            }
          }
        } finally {
          if (killed !== undefined) {
            await sleep(p.ms);
            c.etcd.restart(killed);
          }
        }
        return;
      }
      case 'clock-jump': {
        await this.setClock(p.target!, p.offsetMs!);
        await sleep(p.ms);
        return this.setClock(p.target!, 0);
      }
      case 'clock-back-stop': {
        const name = p.target === 'scheduler-leader' ? await c.schedulerLeader() : p.target!;
        this.note(`  on ${name}`);
        await this.setClock(name, p.offsetMs!);
        try {
          await sleep(200);
          await this.pause(name, p.ms);
          await sleep(5000); // resumed with its clock still behind
        } finally {
          await this.setClock(name, 0);
        }
        return;
      }
    }
  }
}

/** Pids of the watchdog processes guarding an executor's data dir (found by their command line). */
function watchdogPids(dataDir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes('watchdog.js') && cmd.includes(`${dataDir}/`)) out.push(Number(entry));
    } catch {
      /* ended */
    }
  }
  return out;
}

/** Reads what etcd holds at the end, a page at a time (groups of one job are adjacent, so one job's indices at a time). */
async function readEtcd(c: FaultCluster): Promise<EtcdView> {
  const { store } = c;
  const work: EtcdView['work'] = new Map();
  const pages = async function* <T>(prefix: string) {
    let startAfter: string | undefined;
    for (;;) {
      const page = await store.list<T>(prefix, { limit: 2000, ...(startAfter ? { startAfter } : {}) });
      yield page.items;
      if (!page.more || !page.items.length) return;
      startAfter = page.items[page.items.length - 1].key;
    }
  };
  for await (const items of pages<JobRecord>(store.keys.jobs())) {
    for (const { value: j } of items)
      work.set(j.id, {
        phase: j.phase,
        ...(j.reason ? { reason: `${j.reason.code}: ${j.reason.message}` } : {}),
        ...(j.spec.labels?.nkey ? { key: j.spec.labels.nkey } : {}),
      });
  }
  for await (const items of pages<WorkflowRecord>(store.keys.workflows())) {
    for (const { value: w } of items) work.set(w.id, { phase: w.phase, ...(w.labels?.nkey ? { key: w.labels.nkey } : {}) });
  }
  const succeededTwice: EtcdView['succeededTwice'] = [];
  let job = '';
  let seen = new Map<number, string[]>();
  const flush = () => {
    for (const [index, groups] of seen) if (groups.length > 1) succeededTwice.push({ job, index, groups });
  };
  for await (const items of pages<GroupStatus>(store.keys.groupsOf(''))) {
    for (const { key, value: g } of items) {
      if (g.jobId !== job) {
        flush();
        job = g.jobId;
        seen = new Map();
      }
      g.tasks.forEach((t, k) => {
        if (t.state === 'Succeeded') seen.set(g.start + k, [...(seen.get(g.start + k) ?? []), key.slice(store.keys.groupsOf('').length)]);
      });
    }
  }
  flush();
  return { work, succeededTwice };
}

/**
 * Waits until every accepted job and workflow is terminal, judging by progress: at least `ms`,
 * then for as long as some open one still changed within the last 30 s (a backlog draining is
 * not a hang), but at most `maxMs` in all. Reads only those not yet finished. Returns the ones
 * still open that changed in the last 30 s of the wait.
 */
async function settle(c: FaultCluster, ids: string[], ms: number, maxMs: number, say: (l: string) => void): Promise<Set<string>> {
  const started = Date.now();
  const seen = new Map<string, { rev: string; at: number }>();
  let lastChange = started;
  let open = ids;
  const waiting = () => {
    const now = Date.now();
    if (now - started >= maxMs) return false;
    return now - started < ms || now - lastChange < 30_000;
  };
  while (open.length && waiting()) {
    const still: string[] = [];
    for (let i = 0; i < open.length; i += 500) {
      const chunk = open.slice(i, i + 500);
      const got = await c.store
        .getMany<{ phase: string }>(chunk.map((id) => (id.startsWith('wf-') ? c.store.keys.workflow(id) : c.store.keys.job(id))))
        .catch(() => undefined);
      chunk.forEach((id, k) => {
        if (got && ['Succeeded', 'Failed', 'Cancelled', 'Rejected'].includes(got[k]?.value.phase ?? '')) return;
        still.push(id);
        const rev = got?.[k]?.modRevision;
        if (rev && seen.get(id)?.rev !== rev) {
          seen.set(id, { rev, at: Date.now() });
          lastChange = Date.now();
        }
      });
    }
    if (still.length !== open.length) {
      lastChange = Date.now();
      say(`settle: ${still.length} of ${ids.length} accepted not finished yet`);
    }
    open = still;
    if (open.length) await sleep(1000);
  }
  const end = Date.now();
  return new Set(open.filter((id) => (seen.get(id)?.at ?? 0) > end - 30_000));
}

/**
 * A suspect job, compactly (an array has thousands of tasks): phase, reason, pending ranges,
 * counts, then each group with its tasks' states counted, and for a group not ended whether its
 * binding and its node still exist.
 */
async function describeJob(c: FaultCluster, id: string): Promise<string> {
  const { store } = c;
  const j = (await store.get<JobRecord>(store.keys.job(id)))?.value;
  if (!j) return `job ${id}: missing`;
  const groups = (await store.listAll<GroupStatus>(store.keys.groupsOf(id))).items.map((g) => g.value);
  const parts = await Promise.all(
    groups.map(async (g) => {
      const states = new Map<string, number>();
      for (const t of g.tasks) {
        const k = `${t.state}${t.reason ? `/${t.reason}` : ''}`;
        states.set(k, (states.get(k) ?? 0) + 1);
      }
      const open = g.tasks.some((t) => !['Succeeded', 'Failed', 'Cancelled', 'Preempted'].includes(t.state));
      const live = open
        ? `; binding ${(await store.get(store.keys.binding(g.node, g.jobId, g.start, g.attempt))) ? 'present' : 'gone'}, node ${(await store.get(store.keys.node(g.node))) ? 'up' : 'gone'}`
        : '';
      return `[${g.start},${g.end})@${g.attempt} on ${g.node}: ${[...states].map(([k, n]) => `${n} ${k}`).join(', ')}${live}`;
    }),
  );
  return (
    `job ${id} (${j.spec.name}, ${j.spec.tasks} tasks, queue ${j.queue}): ${j.phase}${j.reason ? ` (${j.reason.code}: ${j.reason.message})` : ''}${j.cancelRequestedAt ? ', cancel requested' : ''}; ` +
    `counts ${JSON.stringify(j.counts)}; pending ${JSON.stringify(j.pending)}; groups ${parts.join(' | ') || 'none'}`
  );
}

/** What a workflow's steps became, for the evidence of a suspect workflow. */
async function describeWorkflow(c: FaultCluster, id: string): Promise<string> {
  const w = await c.store.get<WorkflowRecord>(c.store.keys.workflow(id));
  if (!w) return `workflow ${id}: missing`;
  const steps = await Promise.all(w.value.steps.map(async (s) => `${s.name} ${s.phase}${s.jobId ? ` → ${await describeJob(c, s.jobId)}` : ''}`));
  return `workflow ${id}: ${w.value.phase}${w.value.cancelRequestedAt ? ', cancel requested' : ''}; ${steps.join(' | ')}`;
}

/** Runs the nemesis and returns its verdict; prints the seed, the schedule, progress and the table. */
export async function runNemesis(o: NemesisOptions): Promise<{ report: NemesisReport; table: string; evidence: string[] }> {
  const say = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const loadMs = o.minutes * 60_000;
  // `none`: the load alone, the baseline a run with faults is compared to
  const none = o.faults?.includes('none' as FaultName);
  const unknown = (o.faults ?? []).filter((f) => !FAULTS.includes(f) && (f as string) !== 'none');
  if (unknown.length) throw new Error(`unknown faults ${unknown.join(', ')}; known: ${FAULTS.join(', ')} (or none)`);
  const schedule = none ? [] : faultSchedule(o.seed, loadMs - 5000, o.faults?.length ? o.faults : FAULTS);
  say(
    `nemesis seed ${o.seed}: ${o.minutes} min at ${o.rate ?? 200} submits/s; fault schedule (${schedule.length}); pauses spare the raft leader (etcd#15247):\n${schedule.map((p, i) => `  ${i + 1}. ${describeFault(p)}`).join('\n')}`,
  );
  const c = new FaultCluster();
  const clockJs = join(__dirname, 'clock-offset.js');
  await c.start(NEMESIS_TTL, {
    processExecutors: 2,
    processLabels: 'kind=process',
    fleets: 2,
    simulatedNodes: 50,
    clusterConfig: NEMESIS_CLUSTER,
    isolate: ['executor-1', 'admission-1'],
    // NEMESIS_PROFILE=scheduler: a CPU profile of each process of that service, written to <dir>/prof when it exits (cpu-profile.js)
    envFor: (name) => {
      const prof = !!process.env.NEMESIS_PROFILE && name.startsWith(process.env.NEMESIS_PROFILE);
      return {
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${clockJs}${prof ? ` --require ${join(__dirname, 'cpu-profile.js')}` : ''}`.trim(),
        BATCH_FAKE_CLOCK_FILE: join(c.dir, `${name}.clock`),
        ...(prof ? { BATCH_CPU_PROFILE_DIR: join(c.dir, 'prof') } : {}),
      };
    },
  });
  try {
    const runLog = join(c.dir, 'nemesis-runs.log');
    const fifo = join(c.dir, 'sleep.fifo');
    writeFileSync(runLog, '');
    execFileSync('mkfifo', [fifo]);
    const queues = (await c.store.listAll<Queue>(c.store.keys.queues())).items.map((q) => q.value);
    const n = new Nemesis(c, say, queues);
    say(`cluster up in ${c.dir}: ${[...c.services.keys()].join(', ')}${c.netnsWhy ? ` (no partitions: ${c.netnsWhy})` : ''}`);
    n.startLoops();
    const load = new NemesisLoad({ seed: o.seed, rate: o.rate ?? 200, urls: () => c.admissionUrls(), token: TOKEN, runLog, fifo });
    // The test process's own health: a load generator that is late (event loop behind, CPU starved)
    // times out requests to replicas that answered, so its delay is printed beside the answers.
    const lag = monitorEventLoopDelay({ resolution: 20 });
    lag.enable();
    let cpu = process.cpuUsage();
    let cpuAt = performance.now();
    const loadDone = load.run(Date.now() + loadMs);
    const progress = setInterval(() => {
      const used = process.cpuUsage(cpu);
      const now = performance.now();
      const share = (used.user + used.system) / 1000 / (now - cpuAt);
      cpu = process.cpuUsage();
      cpuAt = now;
      say(
        `load: ${load.submitted} submits, ${[...load.submits.values()].filter((s) => s.ids.length).length} accepted, answers ${JSON.stringify(load.statuses)}${load.statuses.network ? `, no answer ${JSON.stringify(load.networkErrors)}` : ''}; ` +
          `test process: event loop delay p99 ${Math.round(lag.percentile(99) / 1e6)} ms, max ${Math.round(lag.max / 1e6)} ms, CPU ${Math.round(share * 100)}%, heap ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MiB; box load ${loadavg()[0].toFixed(1)}`,
      );
      lag.reset();
    }, 15_000);
    const faultsEnd = Date.now() + loadMs - 5000;
    let faults = 0;
    for (const p of schedule) {
      await sleep(p.gapMs);
      if (Date.now() > faultsEnd) break;
      faults++;
      const t0 = Date.now();
      n.note(`fault ${faults}: ${describeFault(p)}`);
      await n.run(p).catch((err) => n.note(`  fault ${faults} could not run: ${(err as Error).message}`));
      n.note(`  done in ${Date.now() - t0} ms`);
    }
    await loadDone;
    clearInterval(progress);
    lag.disable();
    const loadEnd = Date.now();
    say(
      `load stopped: ${load.submitted} submits in ${load.seconds.toFixed(0)} s (${load.rate().toFixed(1)}/s), ${load.resubmits} resubmits, ${load.cancels} cancels, ${load.requests} requests; answers ${JSON.stringify(load.statuses)}${load.statuses.network ? `; no answer: ${JSON.stringify(load.networkErrors)}` : ''}`,
    );
    const accepted = [...load.submits.values()].filter((s) => s.ids.length).map((s) => s.ids[0]);
    const settleMs = Math.max(0, (o.settleMs ?? 60_000) - (Date.now() - loadEnd));
    const moving = await settle(c, accepted, settleMs, settleMs * 5, say);
    await n.stopLoops();
    const view = await readEtcd(c);
    const report = summarize(
      { seed: o.seed, minutes: o.minutes, submitRate: load.rate(), faults },
      load.submits.values(),
      view,
      readFileSync(runLog, 'utf8'),
      n.samples,
    );
    const evidence = [...report.problems];
    if (moving.size && report.row.stuck > 0)
      evidence.push(`stuck but still changing in the last 30 s of the wait (a backlog draining, not a hang): ${moving.size} of ${report.row.stuck}`);
    if (load.statuses.network) evidence.push(`requests without an answer, by replica and error: ${JSON.stringify(load.networkErrors)}`);
    for (const id of report.suspects) {
      evidence.push(await (id.startsWith('wf-') ? describeWorkflow(c, id) : describeJob(c, id)).catch((e) => `${id}: ${e}`));
    }
    const table = nemesisTable([report.row]);
    const { capacity, quota, leaders } = n.samples;
    say(
      `\nnemesis seed ${o.seed} (${o.minutes} min, ${faults} faults; accepted/completed by kind: ${Object.entries(report.byKind)
        .map(([k, [a, d]]) => `${k} ${a}/${d}`)
        .join(
          ', ',
        )}; samples: ${capacity.length} capacity, ${quota.length} quota, ${leaders.length} leader (${[0, 1, 2].map((k) => `${leaders.filter((l) => l.length === k).length} with ${k}`).join(', ')}); peak CPUs held: ${[...n.peakCpu].map(([q, m]) => `${q} ${Math.round(m / 1000)}`).join(', ')}):\n${table}${evidence.length ? `\n${evidence.join('\n')}` : ''}`,
    );
    if (failures(report.row).length) say(`nemesis: cluster files ${process.env.FAULTS_KEEP ? `kept in ${c.dir}` : 'removed (FAULTS_KEEP=1 keeps them)'}`);
    return { report, table, evidence };
  } finally {
    await c.stop();
  }
}
