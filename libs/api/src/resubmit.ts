/**
 * Resubmit: a new job with the spec of an earlier one (live or archived), as `POST /v1/jobs`
 * would take it — every field the first submit set, the environment as stored (not the masked
 * view), the same tenant and queue. The labels the system gave it are dropped — a workflow
 * step's, a schedule's run's (the new job is no step of that workflow and no run of that
 * schedule: a schedule counts its running jobs by that label) — and the new job is labelled
 * with the job it came from. A resubmit may change what people change when they run a job again
 * (`ResubmitSchema`): its queue and priority, some of its resources, labels and environment
 * variables; the rest is the first job's.
 */
import { z } from 'zod';
import { MAX_LABELS } from './limits';
import type { JobRecord } from './model';
import { formatResources } from './quantity';
import { SCHEDULE_LABEL } from './schedule';
import { SubmitJobSchema } from './schemas';
import { STEP_LABEL, WORKFLOW_LABEL } from './workflow';

/** Label of a resubmitted job: the id of the job it was made from (absent when the job already had `MAX_LABELS` labels of its own). */
export const RESUBMITTED_FROM_LABEL = 'batch.resubmitted-from';

/**
 * `POST /v1/jobs/{id}/resubmit` body: empty, `{}`, or changes, each checked as `POST /v1/jobs`
 * checks that field. `queue` and `priority` replace the first job's; `resources`, `labels` and
 * `env` are merged over its (a resource, label or variable named here replaces its own, the
 * others stay).
 */
export const ResubmitSchema = SubmitJobSchema.pick({ queue: true, priority: true, resources: true, labels: true, env: true });
/** The changes of a resubmit. */
export type ResubmitChanges = z.infer<typeof ResubmitSchema>;

/** The `POST /v1/jobs` body that makes `job` again, with `changes`. Pure. */
export function resubmitBody(job: Pick<JobRecord, 'id' | 'tenant' | 'queue' | 'spec'>, changes: ResubmitChanges = {}): Record<string, unknown> {
  const merged = { ...job.spec.labels, ...changes.labels };
  const { [WORKFLOW_LABEL]: _workflow, [STEP_LABEL]: _step, [SCHEDULE_LABEL]: _schedule, [RESUBMITTED_FROM_LABEL]: _from, ...labels } = merged;
  if (Object.keys(labels).length < MAX_LABELS) labels[RESUBMITTED_FROM_LABEL] = job.id;
  return {
    ...job.spec,
    resources: { ...formatResources(job.spec.resources), ...changes.resources },
    env: { ...job.spec.env, ...changes.env },
    labels,
    tenant: job.tenant,
    queue: changes.queue ?? job.queue,
    priority: changes.priority ?? job.spec.priority,
  };
}
