/**
 * Shared pieces of the end-to-end suites: tokens, HTTP calls, waiting, and a cluster of in-process
 * services on simulated nodes or one real executor.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import type { ClusterConfig, JobRecord, JobView } from '@batchapi/api';
import { type ExecutorConfig, type FleetOptions, startExecutor, startSimulatedFleet } from '@batchapi/executor';
import { createDatabase, type LocalPostgres, startPostgres } from '@batchapi/history';
import { waitFor, waitUntil } from '@batchapi/proc';
import { type QuotaOptions, startQuota } from '@batchapi/quota';
import type { Clock, RunningService } from '@batchapi/runtime';
import { type SchedulerTuning, startScheduler } from '@batchapi/scheduler';
import { campaign, createStepJob, EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { stepJobId } from '@batchapi/workflows';

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');
export const TOKENS = {
  tokens: [
    { sha256: sha('tenant-token'), tenant: 'default', role: 'tenant' as const },
    { sha256: sha('other-token'), tenant: 'other', role: 'tenant' as const },
    { sha256: sha('operator-token'), tenant: 'default', role: 'operator' as const },
  ],
};
export const CLUSTER = { tenants: [{ name: 'default' }, { name: 'other' }], queues: [{ name: 'default', tenant: 'default' }] };

export async function api(base: string, method: string, path: string, body?: unknown, token = 'tenant-token') {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* text */
  }
  return { status: res.status, body: json };
}

const TERMINAL_PHASES = ['Succeeded', 'Failed', 'Cancelled', 'Rejected'];

/** Polls a job until it reaches a terminal phase or `ms` pass; returns its last view. */
export async function waitForJob(base: string, id: string, ms = 30000): Promise<JobView> {
  return waitFor(
    async () => (await api(base, 'GET', `/v1/jobs/${id}`)).body as JobView,
    (job) => TERMINAL_PHASES.includes(job.phase),
    { timeoutMs: ms, intervalMs: 100 },
  );
}

/** True once `ok` holds, false when `ms` passed first (`waitUntil` with the end-to-end suites' longer default). */
export async function until(ok: () => Promise<boolean> | boolean, ms = 15000): Promise<boolean> {
  return waitUntil(ok, { timeoutMs: ms });
}

/** What `startCluster` starts on an etcd. */
export interface ClusterOptions {
  /** Tenants and queues. @default CLUSTER */
  cluster?: ClusterConfig;
  /** Quota replicas, named `quota-0`, `quota-1`… @default 1 */
  quotaReplicas?: number;
  /** The simulated nodes: how many, the capacity of each, how long a task runs. Give this or `executor`. @default none */
  fleet?: FleetOptions;
  /**
   * One real executor running real processes, in place of a simulated fleet: these settings over
   * node `local-0` with 4 CPUs and 8Gi, a kill grace of 1000 ms, a report every 50 ms, its data in
   * `node/` of the cluster's directory, and no GPUs (`nvidiaSmi` an absent path). @default none
   */
  executor?: Partial<ExecutorConfig>;
  /** The scheduler's tuning, over a pause of 100 ms when idle and 5 ms while busy. @default those two */
  scheduler?: Partial<SchedulerTuning>;
  /** The clock quota (admitter, controllers, retention) and admission read. @default systemClock */
  clock?: Clock;
  /** Quota's schedule controller. @default the service's (one pass a second) */
  schedules?: QuotaOptions['schedules'];
  /** History store of quota's archiver and of admission. @default none */
  historyUrl?: string;
  /** Quota's archiving (with `historyUrl`). @default the service's */
  archive?: QuotaOptions['archive'];
  /** Admission's trace UI template (`BATCH_TRACE_URL`), for the console's trace links. @default none */
  traceUrl?: string;
  /**
   * `useCluster` only: a PostgreSQL history store of the cluster's own (a server on a free port,
   * removed after), in place of `historyUrl`, with quota archiving as these settings say. @default none
   */
  withHistory?: QuotaOptions['archive'];
}

/** The four services in this process on one etcd: quota, scheduler, simulated nodes, admission. */
export interface Cluster {
  /** A client of the cluster's etcd, for the test's own reads and writes. */
  store: EtcdStore;
  /** Every service, in the order they started. */
  services: RunningService[];
  scheduler: RunningService;
  /** Admission's base URL. */
  base: string;
  /** A temporary directory for the test's own files (the real executor keeps its data in `node/`), removed by `close`. */
  dir: string;
  /** The history store's URL, when the cluster has one. @default none */
  historyUrl?: string;
  /** Writes `lines` (each ended by a newline) to the file `name` in `dir`, e.g. a spec for `batch … -f`; returns its path. */
  file(name: string, lines: string[]): string;
  /** Stops the services, last started first, closes `store` and removes `dir` (etcd is the caller's). */
  close(): Promise<void>;
}

/** Starts quota, the scheduler, a simulated fleet or a real executor, and admission (this order) on `etcd`, with 5 s leases and quiet logs. */
export async function startCluster(etcd: LocalEtcd, o: ClusterOptions): Promise<Cluster> {
  const config = { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 5, logLevel: 'error' };
  const store = new EtcdStore({ endpoints: etcd.endpoints });
  const dir = mkdtempSync(join(tmpdir(), 'e2e-cluster-'));
  const services: RunningService[] = [];
  let closing = false;
  const close = async () => {
    closing = true;
    for (const s of [...services].reverse()) await s.close().catch(() => undefined);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < (o.quotaReplicas ?? 1); i++) {
      const quota = { cluster: o.cluster ?? CLUSTER, clock: o.clock, schedules: o.schedules, historyUrl: o.historyUrl, archive: o.archive };
      services.push(await startQuota({ ...quota, config: { ...config, instanceId: `quota-${i}` } }));
    }
    const scheduler = await startScheduler({ config, tuning: { idleMs: 100, busyMs: 5, ...o.scheduler } });
    services.push(scheduler);
    if (o.fleet) services.push(await startSimulatedFleet(o.fleet, config));
    if (o.executor) {
      const node = join(dir, 'node');
      const executor = {
        nodeName: 'local-0',
        dataDir: node,
        cpu: '4',
        memory: '8Gi',
        killGraceMs: 1000,
        reportIntervalMs: 50,
        nvidiaSmi: join(node, 'absent'),
      };
      // As its supervisor does in a deployment (the process exits 75 and is started again): an executor
      // that fenced itself — its lease lapsed, e.g. the machine stalled past the 5 s TTL — is started
      // again on the same data directory, and says so. Without this one stall left the node gone for
      // every later test of the suite.
      const at = services.length;
      const settings = { ...executor, ...o.executor };
      const launch = (): ReturnType<typeof startExecutor> =>
        startExecutor({
          config,
          executor: settings,
          onFenced: () => {
            if (closing) return;
            process.stderr.write(`e2e: executor ${settings.nodeName} fenced itself (its lease lapsed); started again, as its supervisor would\n`);
            void services[at]
              .close()
              .catch(() => undefined)
              .then(async () => {
                if (closing) return;
                const next = await launch();
                // closed meanwhile: the cluster's close has passed this slot, so this one stops here
                if (closing) await next.close();
                else services[at] = next;
              })
              .catch((err: Error) => process.stderr.write(`e2e: executor ${settings.nodeName} did not start again: ${err.message}\n`));
          },
        });
      services.push(await launch());
    }
    const admission = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config, historyUrl: o.historyUrl, clock: o.clock, traceUrl: o.traceUrl });
    services.push(admission);
    const file = (name: string, lines: string[]) => {
      const path = join(dir, name);
      writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
      return path;
    };
    return { store, services, scheduler, base: admission.url, dir, file, close, ...(o.historyUrl ? { historyUrl: o.historyUrl } : {}) };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Registers `beforeAll`/`afterAll` that start an etcd and a cluster on it, and stop both; the result is filled in `beforeAll`. */
export function useCluster(o: ClusterOptions): Cluster & { etcd: LocalEtcd } {
  const c = {} as Cluster & { etcd: LocalEtcd };
  let pg: LocalPostgres | undefined;
  let pgDir: string | undefined;
  beforeAll(async () => {
    if (o.withHistory) {
      pgDir = mkdtempSync(join(tmpdir(), 'e2e-history-'));
      [c.etcd, pg] = await Promise.all([startEtcd(), startPostgres({ dataDir: pgDir, ephemeral: true })]);
      const historyUrl = await createDatabase(pg.url, 'history');
      Object.assign(c, await startCluster(c.etcd, { ...o, historyUrl, archive: o.withHistory }));
    } else {
      c.etcd = await startEtcd();
      Object.assign(c, await startCluster(c.etcd, o));
    }
  });
  afterAll(async () => {
    await c.close?.();
    await c.etcd?.stop();
    await pg?.stop().catch(() => undefined);
    if (pgDir) rmSync(pgDir, { recursive: true, force: true });
  });
  return c;
}

/**
 * What a workflow controller that crashed mid-step leaves: step 0 (`only`) of workflow `wfId`
 * created as a job by a replica elected `workflows` under a 2 s lease of its own — fenced like the
 * real controller — and the lease revoked, so the next controller finds the job and must adopt it.
 * The job runs `sh -c script`. Returns the job.
 */
export async function crashedControllerStepJob(store: EtcdStore, wfId: string, script: string): Promise<JobRecord> {
  const lease = await store.grantLease(2);
  const crashed = await campaign(store, 'workflows', 'crashed-controller', lease);
  const job: JobRecord = {
    id: stepJobId(wfId, 0),
    tenant: 'default',
    queue: 'default',
    phase: 'Submitted',
    createdAt: Date.now(),
    pending: [{ start: 0, end: 1, attempt: 1 }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
    spec: {
      name: 'only',
      command: ['sh', '-c', script],
      env: {},
      resources: { cpu: 100, memory: 16 * 2 ** 20 },
      tasks: 1,
      priority: 0,
      labels: { 'batch.workflow': wfId, 'batch.step': 'only' },
    },
  };
  if ((await createStepJob(store, crashed.fence(), job)) !== 'created') throw new Error(`the crashed controller's job ${job.id} was not created`);
  await lease.revoke();
  return job;
}
