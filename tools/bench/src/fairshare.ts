/**
 * `bench fairshare`: Kueue's fair-sharing scenario through `simulate` — 15,000 workloads of
 * mixed sizes across 30 queues in 5 cohorts of 6, every queue with a nominal quota of 1/30
 * of the cluster that it may lend and borrow within its cohort, all submitted at once. Prints
 * the wall time, the average cluster usage while work waits, and how far any queue strays
 * from its fair share while every queue has work waiting.
 */
import { parseResources, type ResourceVector } from '@batchapi/api';
import { dominantShare, type NodeSnapshot } from '@batchapi/scheduling';
import { type SimQueue, simulate, type Submission } from '@batchapi/simulation';
import { progress, rng } from './rng';

/** Options of the fair-share benchmark. */
export interface FairShareBenchOptions {
  /** Workloads submitted at time 0. @default 15000 */ workloads: number;
  /** Queues, split evenly into cohorts. @default 30 */ queues: number;
  /** @default 5 */ cohorts: number;
  /** Nodes of 32 CPUs and 128 GiB. @default 100 */ nodes: number;
  /** @default 11 */ seed: number;
}

export function benchFairShare(o: FairShareBenchOptions): Record<string, unknown> {
  const nodes: NodeSnapshot[] = Array.from({ length: o.nodes }, (_, i) => ({
    name: `n${String(i).padStart(4, '0')}`,
    capacity: parseResources({ cpu: '32', memory: '128Gi' }),
    used: {},
    devices: {},
    gpuCount: 0,
    labels: {},
    taints: [],
  }));
  const capacity = nodes.reduce<ResourceVector>((acc, n) => ({ cpu: (acc.cpu ?? 0) + n.capacity.cpu, memory: (acc.memory ?? 0) + n.capacity.memory }), {});
  const perQueue = Math.floor(capacity.cpu / o.queues);
  const queues: SimQueue[] = Array.from({ length: o.queues }, (_, i) => ({
    name: `q${String(i).padStart(2, '0')}`,
    tenant: `t${i}`,
    weight: 1,
    cohort: `c${i % o.cohorts}`,
    nominal: { cpu: perQueue, memory: Math.floor(capacity.memory / o.queues) },
    borrowingLimit: {},
    lendingLimit: {},
  }));
  const rand = rng(o.seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  // Mixed sizes: 1–8 tasks of ⟨1–4 CPU, 1–16 GiB⟩ running 30–120 s (in 10 s steps).
  const workload: Submission[] = Array.from({ length: o.workloads }, (_, i) => ({
    name: `w${i}`,
    tenant: queues[i % o.queues].tenant,
    queue: queues[i % o.queues].name,
    submitAt: 0,
    tasks: 1 + Math.floor(rand() * 8),
    resources: parseResources({ cpu: pick(['1', '2', '3', '4']), memory: pick(['1Gi', '2Gi', '4Gi', '8Gi', '16Gi']) }),
    duration: 30 + 10 * Math.floor(rand() * 10),
    priority: 0,
    gang: false,
    selector: {},
    tolerations: [],
    line: i + 1,
  }));

  // The state after each cycle holds until the next one: integrate usage while work waits,
  // and each queue's deviation from 1/30 of the cluster while every queue has work waiting.
  const fair = 1 / o.queues;
  let prev = { t: 0, used: 0, waiting: false, deviation: -1 };
  let waitingSpan = 0,
    usedWhileWaiting = 0,
    contendedSpan = 0,
    deviationArea = 0,
    worst = 0;
  const res = simulate(nodes, workload, {
    queues,
    onProgress: (p) => progress(`fairshare: t=${p.time}s placed ${p.placed}, pending ${p.pending}`),
    progressEvery: 50,
    onCycle: (t, held, waiting) => {
      const dt = t - prev.t;
      if (prev.waiting) {
        waitingSpan += dt;
        usedWhileWaiting += prev.used * dt;
      }
      if (prev.deviation >= 0) {
        contendedSpan += dt;
        deviationArea += prev.deviation * dt;
      }
      let used = 0;
      for (const v of held.values()) used += v.cpu ?? 0;
      let deviation = -1;
      if (waiting.size === o.queues) {
        for (const q of queues) deviation = Math.max(deviation, Math.abs(dominantShare(held.get(q.name) ?? {}, capacity) - fair) / fair);
        worst = Math.max(worst, deviation);
      }
      prev = { t, used: used / capacity.cpu, waiting: waiting.size > 0, deviation };
    },
  });
  return {
    workloads: o.workloads,
    queues: o.queues,
    cohorts: o.cohorts,
    nodes: o.nodes,
    placed: res.placed,
    makespanSeconds: res.makespan,
    wallSeconds: res.wallSeconds,
    averageUsage: res.allocation.cpu,
    usageWhileWorkWaits: round(waitingSpan ? usedWhileWaiting / waitingSpan : 0),
    contendedSeconds: contendedSpan,
    maxDeviationFromFairShare: round(worst),
    meanDeviationFromFairShare: round(contendedSpan ? deviationArea / contendedSpan : 0),
  };
}

function round(x: number): number {
  return Math.round(x * 10000) / 10000;
}
