/**
 * `bench latency`: a bounded load generator on loopback holds a submit rate against the local
 * cluster (its services as separate processes, 1,000 simulated nodes) and prints submit
 * latency and submit → bound latency percentiles and the error count.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobRecord } from '@batchapi/api';
import { LocalCluster } from '@batchapi/cli';
import { EtcdStore } from '@batchapi/store';
import { openLoop } from './load';
import { percentile, progress } from './rng';

export interface LatencyBenchOptions {
  /** Submits per second. @default 1000 */ rate: number;
  /** Seconds to hold the rate. @default 60 */ seconds: number;
  /** Simulated nodes. @default 1000 */ nodes: number;
  /** Seconds at the same rate before the measured window (fresh processes are slow; 0 measures from a cold start). @default 10 */ warmup: number;
  /** Run the cluster with its history store (PostgreSQL), as `batch dev` does (`--history 0`: without, finished jobs stay in etcd). @default true */
  history?: boolean;
}

export async function benchLatency(o: LatencyBenchOptions): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'batch-latency-'));
  progress(`latency: starting the local cluster with ${o.nodes} simulated nodes`);
  const cluster = await LocalCluster.start({
    dataDir: dir,
    executors: 0,
    simulatedNodes: o.nodes,
    history: o.history ?? true,
    onStep: (s) => progress(`latency: ${s}`),
  });
  const store = new EtcdStore({ endpoints: cluster.etcd!.endpoints });
  try {
    const submitMs: number[] = [];
    const perSecond = new Map<number, number[]>();
    const ids: string[] = [];
    let errors = 0;
    const codes: Record<string, number> = {};
    const job = { command: ['true'], resources: { cpu: '100m', memory: '64Mi' }, env: { BATCH_SIM_SECONDS: '1' } };
    const load = { url: cluster.apiUrl, token: cluster.tenantToken, rate: o.rate, job };
    if (o.warmup > 0) {
      progress(`latency: warming up at ${o.rate} submits/s for ${o.warmup} s (not measured)`);
      await openLoop({ ...load, count: o.rate * o.warmup, key: (i) => `warm-${i}` });
    }
    const total = o.rate * o.seconds;
    progress(`latency: ${o.rate} submits/s for ${o.seconds} s (${total} jobs, each 1 task of 100m for 1 s)`);
    const sendSeconds = await openLoop({
      ...load,
      count: total,
      key: (i) => `lat-${i}`,
      onProgress: (sent) => progress(`latency: ${sent}/${total} sent, ${errors} errors`),
      onAnswer: (a) => {
        codes[a.status || 'network'] = (codes[a.status || 'network'] ?? 0) + 1;
        // 200 is a retry answered with the job already created (the same idempotency key): still one job.
        if ((a.status === 201 || a.status === 200) && a.body?.id) {
          submitMs.push(a.ms);
          const second = Math.floor(a.sentAt / 1000);
          perSecond.set(second, [...(perSecond.get(second) ?? []), a.ms]);
          ids.push(a.body.id);
        } else errors++;
      },
    });
    progress('latency: waiting for every job to be bound');
    const deadline = Date.now() + 60_000;
    let jobs: JobRecord[] = [];
    for (;;) {
      const measured = new Set(ids);
      jobs = (await store.listAll<JobRecord>(store.keys.jobs())).items.map((j) => j.value).filter((j) => measured.has(j.id));
      if (jobs.every((j) => j.startedAt !== undefined) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const bound = jobs
      .filter((j) => j.startedAt !== undefined)
      .map((j) => j.startedAt! - j.createdAt)
      .sort((a, b) => a - b);
    // Where the time to bound goes: quota's admission (created → queued), then placement and binding (queued → bound).
    const admitted = jobs
      .filter((j) => j.queuedAt !== undefined)
      .map((j) => j.queuedAt! - j.createdAt)
      .sort((a, b) => a - b);
    const placed = jobs
      .filter((j) => j.queuedAt !== undefined && j.startedAt !== undefined)
      .map((j) => j.startedAt! - j.queuedAt!)
      .sort((a, b) => a - b);
    submitMs.sort((a, b) => a - b);
    return {
      bench: 'latency',
      targetRate: o.rate,
      achievedRate: Math.round(total / sendSeconds),
      seconds: o.seconds,
      warmupSeconds: o.warmup,
      history: cluster.historyUrl !== undefined,
      submitted: total,
      accepted: submitMs.length,
      errors,
      codes,
      submitMs: { p50: round(percentile(submitMs, 50)), p99: round(percentile(submitMs, 99)), max: round(submitMs[submitMs.length - 1]) },
      submitP99MsBySecond: [...perSecond]
        .sort((a, b) => a[0] - b[0])
        .map(([, v]) =>
          round(
            percentile(
              v.sort((a, b) => a - b),
              99,
            ),
          ),
        ),
      submitToBoundMs: { p50: percentile(bound, 50), p99: percentile(bound, 99), max: bound[bound.length - 1], bound: bound.length },
      submitToQueuedMs: { p50: percentile(admitted, 50), p99: percentile(admitted, 99) },
      queuedToBoundMs: { p50: percentile(placed, 50), p99: percentile(placed, 99) },
      targets: { submitP99Ms: 50, submitToBoundP99Ms: 1000, errors: 0 },
    };
  } finally {
    await store.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
