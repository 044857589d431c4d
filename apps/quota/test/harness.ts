/** What the quota suites share: one etcd member and a store client per suite, a finished job record and a running workflow record. */
import type { JobRecord, WorkflowRecord, WorkflowStep } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';

/** A suite's etcd member, its client, and the quota service a test started (closed after the suite). */
export interface QuotaSuite {
  etcd: LocalEtcd;
  store: EtcdStore;
  quota?: RunningService;
}

/** Starts etcd before the suite's tests and stops everything after them. Read the fields inside tests. */
export function quotaSuite(): QuotaSuite {
  const suite = {} as QuotaSuite;
  beforeAll(async () => {
    suite.etcd = await startEtcd();
    suite.store = new EtcdStore({ endpoints: suite.etcd.endpoints });
  });
  afterAll(async () => {
    await suite.quota?.close();
    await suite.store?.close();
    await suite.etcd?.stop();
  });
  return suite;
}

/** A one-task job that succeeded at `finishedAt` (epoch ms), created a second before. */
export function finishedJob(id: string, finishedAt: number): JobRecord {
  return {
    id,
    tenant: 'default',
    queue: 'default',
    phase: 'Succeeded',
    createdAt: finishedAt - 1_000,
    spec: { name: id, command: ['true'], env: {}, resources: { cpu: 100 }, tasks: 1, priority: 0, labels: {} },
    pending: [],
    counts: { succeeded: 1, failed: 0, cancelled: 0 },
    finishedAt,
  };
}

/** A running workflow of tenant and queue `default` with `steps`, created now. */
export function runningWorkflow(id: string, steps: WorkflowStep[]): WorkflowRecord {
  return { id, name: id, tenant: 'default', queue: 'default', labels: {}, phase: 'Running', createdAt: Date.now(), steps };
}
