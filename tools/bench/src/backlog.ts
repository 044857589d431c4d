/**
 * `bench backlog`: a scheduler leader (in this process, lease TTL 2 s as in the fault cluster)
 * against a real etcd holding a backlog of queued jobs of mixed shapes — singles, gangs,
 * arrays, process-selector jobs — on simulated nodes whose queues' quota (a cohort, as in the
 * nemesis) is far below the backlog, so most of it stays queued and every cycle considers it.
 * A trickle of new jobs keeps the cache dirty, so cycles run back to back. Prints the longest
 * synchronous stretch of the event loop (what starves the lease keep-alive), cycle durations
 * and whether the process lease was lost.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import type { JobRecord, NodeRecord, Queue } from '@batchapi/api';
import { startScheduler, SchedulerService } from '@batchapi/scheduler';
import { EtcdStore, MAX_TXN_OPS, type Op, startEtcd } from '@batchapi/store';
import { percentile, progress, rng } from './rng';

export interface BacklogBenchOptions {
  /** Queued jobs written before the scheduler starts. @default 5000 */ jobs: number;
  /** Simulated nodes (32 CPUs each, `simulated=true`), besides 4 process nodes. @default 100 */ nodes: number;
  /** How long the leader is watched once the backlog is cached, seconds. @default 20 */ seconds: number;
  /** @default 11 */ seed: number;
  /** Most pending jobs a cycle considers (the scheduler's `maxJobsPerCycle`). @default the scheduler's */ maxJobs?: number;
  /** Write a CPU profile of the watch window to this file (`.cpuprofile`). @default none */ profile?: string;
}

const GI = 2 ** 30;

function job(id: string, createdAt: number, kind: 'single' | 'gang' | 'array' | 'process', tasks: number): JobRecord {
  const sim = { command: ['true'], env: { BATCH_SIM_SECONDS: '1' }, selector: { simulated: 'true' }, resources: { cpu: 1000, memory: GI } };
  const spec = kind === 'process' ? { command: ['true'], env: {}, selector: { kind: 'process' }, resources: { cpu: 100, memory: 16 * 2 ** 20 } } : sim;
  return {
    id,
    tenant: 'default',
    queue: kind === 'array' ? 'bulk' : 'default',
    phase: 'Queued',
    createdAt,
    spec: { name: kind, ...spec, tasks, priority: 0, labels: {}, ...(kind === 'gang' ? { gang: true } : {}) },
    pending: [{ start: 0, end: tasks, attempt: 1 }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
  } as JobRecord;
}

export async function benchBacklog(o: BacklogBenchOptions): Promise<Record<string, unknown>> {
  const etcd = await startEtcd();
  const store = new EtcdStore({ endpoints: etcd.endpoints });
  const rand = rng(o.seed);
  const put = async (ops: Op[]) => {
    for (let i = 0; i < ops.length; i += MAX_TXN_OPS) await store.txn([], ops.slice(i, i + MAX_TXN_OPS));
  };
  let scheduler: Awaited<ReturnType<typeof startScheduler>> | undefined;
  let leaseLost = 0;
  try {
    const nodes: NodeRecord[] = [];
    for (let i = 0; i < o.nodes; i++)
      nodes.push({
        name: `sim-${String(i).padStart(4, '0')}`,
        capacity: { cpu: 32_000, memory: 128 * GI },
        labels: { simulated: 'true' },
        taints: [],
        gpus: [],
        url: 'http://127.0.0.1:1',
        registeredAt: 0,
      });
    for (let i = 0; i < 4; i++)
      nodes.push({
        name: `proc-${i}`,
        capacity: { cpu: 4000, memory: 16 * GI },
        labels: { kind: 'process' },
        taints: [],
        gpus: [],
        url: 'http://127.0.0.1:1',
        registeredAt: 0,
      });
    // The nemesis quota: two queues of one cohort, 1,600 CPUs between them (half the simulated fleet).
    const queues: Queue[] = [
      { name: 'default', tenant: 'default', cohort: 'nemesis', nominal: { cpu: 1_000_000 }, borrowingLimit: { cpu: 400_000 } },
      { name: 'bulk', tenant: 'default', cohort: 'nemesis', nominal: { cpu: 600_000 }, borrowingLimit: { cpu: 400_000 } },
    ];
    await put([...nodes.map((n) => ({ put: store.keys.node(n.name), value: n })), ...queues.map((q) => ({ put: store.keys.queue(q.name), value: q }))]);
    const t0 = Date.now() - o.jobs * 5;
    let n = 0;
    const next = (createdAt: number): JobRecord => {
      const r = rand();
      const id = `bk-${String(n++).padStart(7, '0')}`;
      if (r < 0.005) return job(id, createdAt, 'array', Math.round(100 * 100 ** rand()));
      if (r < 0.065) return job(id, createdAt, 'gang', 4 + Math.floor(rand() * 13));
      if (r < 0.115) return job(id, createdAt, 'process', rand() < 0.5 ? 1 : 2);
      return job(id, createdAt, 'single', 1);
    };
    const backlog: JobRecord[] = [];
    for (let i = 0; i < o.jobs; i++) backlog.push(next(t0 + i * 5));
    await put(backlog.map((j) => ({ put: store.keys.job(j.id), value: j })));
    const tasks = backlog.reduce((s, j) => s + j.spec.tasks, 0);
    progress(`backlog: ${o.jobs} jobs (${tasks} tasks) queued on ${o.nodes} simulated nodes + 4 process nodes`);

    scheduler = await startScheduler({
      config: { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 2, logLevel: 'error' },
      tuning: { idleMs: 200, busyMs: 20, ...(o.maxJobs ? { maxJobsPerCycle: o.maxJobs } : {}) },
      onLeaseLost: () => {
        leaseLost++;
      },
    });
    const service = scheduler.app.get(SchedulerService);
    const deadline = Date.now() + 60_000;
    while (!service.leadership && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (!service.leadership) throw new Error('no scheduler leader within 60 s');

    // The watch window: a trickle of new singles (5/s) keeps the cache dirty.
    const h = monitorEventLoopDelay({ resolution: 10 });
    let maxGap = 0;
    let last = performance.now();
    const gapTimer = setInterval(() => {
      const t = performance.now();
      maxGap = Math.max(maxGap, t - last);
      last = t;
    }, 5);
    let trickling = true;
    const trickle = (async () => {
      while (trickling) {
        const j = next(Date.now());
        await store.txn([], [{ put: store.keys.job(j.id), value: j }]).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const session = o.profile ? new Session() : undefined;
    const post = (method: string, params?: object) =>
      new Promise<any>((res, rej) => session!.post(method, params ?? {}, (err, out) => (err ? rej(err) : res(out))));
    if (session) {
      session.connect();
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 200 });
      await post('Profiler.start');
    }
    const cycles0 = service.cycleStats?.().count ?? 0;
    h.enable();
    last = performance.now();
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    h.disable();
    clearInterval(gapTimer);
    trickling = false;
    await trickle;
    if (session) {
      const { profile } = await post('Profiler.stop');
      writeFileSync(o.profile!, JSON.stringify(profile));
      session.disconnect();
      progress(`backlog: CPU profile written to ${o.profile}`);
    }
    const stats = service.cycleStats?.();
    const durations = [...(stats?.recent ?? [])].sort((a, b) => a - b);
    const bound = (await store.listAll(store.keys.bindings())).items.length;
    return {
      bench: 'backlog',
      jobs: o.jobs,
      maxJobsPerCycle: o.maxJobs ?? 'default',
      tasks,
      nodes: o.nodes,
      seconds: o.seconds,
      eventLoopMaxMs: Math.round(h.max / 1e6),
      eventLoopP99Ms: Math.round(h.percentile(99) / 1e6),
      timerMaxGapMs: Math.round(maxGap),
      cycles: stats ? stats.count - cycles0 : undefined,
      cycleP50Ms: durations.length ? Math.round(percentile(durations, 50)) : undefined,
      cycleMaxMs: durations.length ? Math.round(durations[durations.length - 1]) : undefined,
      cycleTopMs: durations.slice(-5).map(Math.round),
      cycleLongestPhaseMs: stats ? Math.round(stats.longestPhaseMs) : undefined,
      bindings: bound,
      leaseLost,
      stillLeader: service.leadership?.held() ?? false,
    };
  } finally {
    await scheduler?.close().catch(() => undefined);
    await store.close();
    await etcd.stop();
  }
}
