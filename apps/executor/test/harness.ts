/**
 * What the executor's tests share: a real etcd member per test file, a temp dir, a fake
 * `nvidia-smi`, executors started in-process, and bindings written the way the scheduler
 * writes them (a fenced `bindPlan` under a leader key of the test's own).
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Binding, GroupStatus, JobRecord, NodeAllocation } from '@batchapi/api';
import { bindPlan, campaign, EtcdStore, type LocalEtcd, startEtcd, submitJob } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { attemptPaths, type ExecutorConfig, type ExecutorOptions, type RunningExecutor, startExecutor } from '../src';

/** One test file's etcd, store and temp dir; filled in `beforeAll`. */
export interface Testbed {
  etcd: LocalEtcd;
  store: EtcdStore;
  dir: string;
  /** A fake `nvidia-smi` that lists two A100s. */
  fakeSmi: string;
}

/** Registers `beforeAll`/`afterAll` that start and remove a testbed. */
export function useTestbed(): Testbed {
  const tb = {} as Testbed;
  beforeAll(async () => {
    tb.etcd = await startEtcd();
    tb.store = new EtcdStore({ endpoints: tb.etcd.endpoints });
    tb.dir = mkdtempSync(join(tmpdir(), 'exec-test-'));
    tb.fakeSmi = join(tb.dir, 'nvidia-smi');
    // What `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits` prints on a 2-GPU node.
    writeFileSync(tb.fakeSmi, '#!/bin/sh\necho "0, NVIDIA A100-SXM4-80GB, 81920, GPU-aaaa"\necho "1, NVIDIA A100-SXM4-80GB, 81920, GPU-bbbb"\n');
    chmodSync(tb.fakeSmi, 0o755);
  });
  afterAll(async () => {
    await tb.store?.close();
    await tb.etcd?.stop();
    if (tb.dir) rmSync(tb.dir, { recursive: true, force: true });
  });
  return tb;
}

/**
 * Service settings of an in-process executor: quiet logs and a 5 s lease, long enough that a
 * loaded 2-core CI machine does not miss renewals (tests of expiry revoke the lease instead).
 */
export const serviceConfig = (tb: Testbed) => ({ etcdEndpoints: tb.etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' });

/** Starts an executor in this process for node `name` (8 CPUs, 16 GiB, no GPUs unless `nvidiaSmi` says so). */
export function startNode(
  tb: Testbed,
  name: string,
  extra: Partial<ExecutorConfig> = {},
  opts: Omit<ExecutorOptions, 'executor' | 'config'> = {},
): Promise<RunningExecutor> {
  return startExecutor({
    ...opts,
    config: serviceConfig(tb),
    executor: {
      nodeName: name,
      dataDir: join(tb.dir, name),
      cpu: '8',
      memory: '16Gi',
      killGraceMs: 500,
      reportIntervalMs: 50,
      nvidiaSmi: join(tb.dir, 'absent'),
      ...extra,
    },
  });
}

/** What `bind` writes. */
export interface BindOptions {
  /** Devices per task (offset in the group). @default none */
  devices?: number[][];
  /** @default { cpu: 1000 } */
  resources?: Record<string, number>;
  /** Extra binding fields, e.g. `cancelRequested`, `timeoutSeconds`. @default none */
  binding?: Partial<Binding>;
}

/** Binds `tasks` tasks of a new job to `node`, the way the scheduler does (fenced bindPlan). */
export async function bind(tb: Testbed, node: string, jobId: string, command: string[], tasks: number, o: BindOptions = {}): Promise<Binding> {
  const { store } = tb;
  const resources = o.resources ?? { cpu: 1000 };
  const job: JobRecord = {
    id: jobId,
    tenant: 't',
    queue: 'q',
    phase: 'Queued',
    createdAt: Date.now(),
    spec: { name: jobId, command, env: { GREETING: 'hi' }, resources, tasks, priority: 0, labels: {} },
    pending: [{ start: 0, end: tasks, attempt: 1 }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
  };
  const created = await submitJob(store, job);
  const lease = await store.grantLease(5);
  const leader = await campaign(store, `test-${jobId}`, 'me', lease);
  const b: Binding = {
    jobId,
    tenant: 't',
    queue: 'q',
    node,
    start: 0,
    end: tasks,
    attempt: 1,
    resources,
    boundAt: Date.now(),
    command,
    env: job.spec.env,
    devices: o.devices?.length ? o.devices : Array.from({ length: tasks }, () => []),
    ...o.binding,
  };
  const alloc = await store.get<NodeAllocation>(store.keys.alloc(node));
  const res = await bindPlan(
    store,
    leader.fence(),
    [{ job: created.job, next: { ...job, phase: 'Running', pending: [] }, bindings: [b] }],
    new Map([[node, alloc]]),
  );
  await lease.revoke();
  if (res.bound.length !== 1) throw new Error(`binding ${jobId} to ${node} was refused`);
  return b;
}

export const jobOf = (tb: Testbed, id: string) => tb.store.get<JobRecord>(tb.store.keys.job(id)).then((j) => j?.value);
export const groupOf = (tb: Testbed, id: string, attempt = 1) => tb.store.get<GroupStatus>(tb.store.keys.group(id, 0, attempt)).then((g) => g?.value);

/**
 * Binds a one-task job to `node` whose shell prints its pid (= its process group: each attempt
 * runs in a group of its own) and then runs `rest`; returns that pid once the task is Running.
 */
export async function runLong(tb: Testbed, node: string, jobId: string, rest = 'sleep 60', resources = { cpu: 100 }): Promise<number> {
  await bind(tb, node, jobId, ['sh', '-c', `echo $$; ${rest}`], 1, { resources });
  const pid = await waitFor(
    () => readOrEmpty(attemptPaths(join(tb.dir, node), jobId, 0, 1).stdout),
    (s) => s.trim().length > 0,
  );
  await waitFor(
    () => groupOf(tb, jobId),
    (g) => g?.tasks[0].state === 'Running',
  );
  return Number(pid.trim());
}

/** The file's text, or "" while it does not exist. */
export function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Running (a zombie — dead but not yet reaped — does not count). */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** True while some process of process group `pgid` runs (zombies do not count). */
export function groupAlive(pgid: number): boolean {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // fields after "(comm) ": state ppid pgrp ...
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') return true;
    } catch {
      /* gone meanwhile */
    }
  }
  return false;
}
