/**
 * Resubmit: a new job with the spec of an earlier one (live or archived), as `POST /v1/jobs`
 * would take it — every field the first submit set, the environment as stored (not the masked
 * view), the same tenant and queue. The labels the system gave it are dropped — a workflow
 * step's, a schedule's run's (the new job is no step of that workflow and no run of that
 * schedule: a schedule counts its running jobs by that label) — and the new job is labelled
 * with the job it came from.
 */
import { z } from 'zod';
import { MAX_LABELS } from './limits';
import type { JobRecord } from './model';
import { formatResources } from './quantity';
import { SCHEDULE_LABEL } from './schedule';
import { STEP_LABEL, WORKFLOW_LABEL } from './workflow';

/** Label of a resubmitted job: the id of the job it was made from (absent when the job already had `MAX_LABELS` labels of its own). */
export const RESUBMITTED_FROM_LABEL = 'batch.resubmitted-from';

/** `POST /v1/jobs/{id}/resubmit` body: empty, or `{}` (nothing can be changed yet). */
export const ResubmitSchema = z.strictObject({});

/** The `POST /v1/jobs` body that makes `job` again. Pure. */
export function resubmitBody(job: Pick<JobRecord, 'id' | 'tenant' | 'queue' | 'spec'>): Record<string, unknown> {
  const { [WORKFLOW_LABEL]: _workflow, [STEP_LABEL]: _step, [SCHEDULE_LABEL]: _schedule, [RESUBMITTED_FROM_LABEL]: _from, ...labels } = job.spec.labels;
  if (Object.keys(labels).length < MAX_LABELS) labels[RESUBMITTED_FROM_LABEL] = job.id;
  return { ...job.spec, resources: formatResources(job.spec.resources), labels, tenant: job.tenant, queue: job.queue };
}
