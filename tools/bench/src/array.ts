/**
 * `bench array`: one wide array job through the whole local cluster (services as separate
 * processes, a simulated fleet) from submit to `Succeeded`. Every task that ends reaches its
 * job's one record, so this measures how fast completions fold into a hot record: the
 * makespan against the ideal (every task at once for its run time), how many writes the
 * job record took, and the completion rate per second.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobRecord } from '@batchapi/api';
import { LocalCluster } from '@batchapi/cli';
import { EtcdStore } from '@batchapi/store';
import { progress } from './rng';

export interface ArrayBenchOptions {
  /** Tasks in the array job. @default 100000 */ tasks: number;
  /** Simulated nodes (32 cores each; a task asks 100m). @default 1000 */ nodes: number;
  /** Seconds each task "runs". @default 1 */ taskSeconds: number;
  /** Give up after this many seconds. @default 300 */ timeout: number;
}

export async function benchArray(o: ArrayBenchOptions): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'batch-array-'));
  progress(`array: starting the local cluster with ${o.nodes} simulated nodes`);
  const cluster = await LocalCluster.start({ dataDir: dir, executors: 0, simulatedNodes: o.nodes, onStep: (s) => progress(`array: ${s}`) });
  const store = new EtcdStore({ endpoints: cluster.etcd!.endpoints, callTimeoutMs: 10_000 });
  try {
    const res = await fetch(`${cluster.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.tenantToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'wide-array',
        tasks: o.tasks,
        command: ['true'],
        resources: { cpu: '100m', memory: '64Mi' },
        env: { BATCH_SIM_SECONDS: String(o.taskSeconds) },
      }),
    });
    if (res.status !== 201) throw new Error(`submit failed: ${res.status} ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    const t0 = Date.now();
    // Every write of the job record, from its watch.
    let writes = 0;
    let last: JobRecord | undefined;
    const informer = await store.inform<JobRecord>(store.keys.job(id), {
      onSync: (items) => {
        last = items[0]?.value;
      },
      onEvent: (ev) => {
        writes++;
        if (ev.value) last = ev.value;
      },
    });
    const perSecond: number[] = [];
    let done = 0;
    try {
      for (let second = 1; ; second++) {
        await new Promise((r) => setTimeout(r, t0 + second * 1000 - Date.now()));
        const finished = last ? last.counts.succeeded + last.counts.failed + last.counts.cancelled : 0;
        perSecond.push(finished - done);
        done = finished;
        progress(`array: ${second} s: ${finished}/${o.tasks} tasks ended, job ${last?.phase}, ${writes} job-record writes`);
        if (last?.finishedAt !== undefined || second > o.timeout) break;
      }
    } finally {
      await informer.stop();
    }
    const job = last!;
    const makespanMs = job.finishedAt !== undefined ? job.finishedAt - job.createdAt : NaN;
    return {
      bench: 'array',
      tasks: o.tasks,
      nodes: o.nodes,
      taskSeconds: o.taskSeconds,
      phase: job.phase,
      succeeded: job.counts.succeeded,
      failed: job.counts.failed,
      firstBoundMs: job.startedAt !== undefined ? job.startedAt - job.createdAt : NaN,
      makespanMs,
      idealMs: o.taskSeconds * 1000,
      jobRecordWrites: writes,
      tasksPerJobRecordWrite: Math.round(job.counts.succeeded / Math.max(1, writes)),
      completionsPerSecond: perSecond,
    };
  } finally {
    await store.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
