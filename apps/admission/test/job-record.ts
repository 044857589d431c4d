import { type JobRecord, TERMINAL_PHASES } from '@batchapi/api';

/**
 * A one-task job record as the admission suites put it in etcd: `Queued` (one pending task) by
 * default; a finished phase gets `finishedAt` and no pending task.
 */
export function jobRecord(id: string, tenant: string, phase: JobRecord['phase'] = 'Queued'): JobRecord {
  const finished = TERMINAL_PHASES.has(phase);
  return {
    id,
    tenant,
    queue: 'default',
    phase,
    createdAt: Date.now(),
    ...(finished ? { finishedAt: Date.now() } : {}),
    spec: { name: id, command: ['true'], env: {}, resources: { cpu: 100 }, tasks: 1, priority: 0, labels: {} },
    pending: finished ? [] : [{ start: 0, end: 1, attempt: 1 }],
    counts: { succeeded: phase === 'Succeeded' ? 1 : 0, failed: 0, cancelled: 0 },
  };
}
