/**
 * A `POST /v1/workflows` body read into the steps a workflow record holds (pure): the schema, the
 * DAG, every step's job validated as the controller will submit it (with the labels naming the
 * workflow and step), and the critical paths. What needs the store — the tenant, its queues, the
 * uploaded working dirs — the caller checks with what this returns.
 */
import {
  ApiError,
  ErrorCode,
  parseSubmit,
  parseWith,
  STEP_LABEL,
  SubmitWorkflowSchema,
  type SubmitWorkflowRequest,
  WORKFLOW_LABEL,
  type WorkflowStep,
} from '@batchapi/api';
import { criticalPaths, validateDag } from './dag';
import { dependenciesWithInputs } from './inputs';

/** A workflow body read by `readWorkflowBody`. */
export interface WorkflowBody {
  req: SubmitWorkflowRequest;
  /** Queue of the steps that name none. */
  queue: string;
  /** Every queue a step uses (the workflow's included). */
  queues: string[];
  /** The working dirs the steps name, each with its field. */
  workingDirs: Array<{ digest: string; field: string }>;
  /** The steps as a record holds them, each `Pending`. */
  steps: WorkflowStep[];
}

/**
 * Reads and validates a workflow body.
 * @param workflowId - the id its steps' jobs are labelled with (counted in their label and size limits)
 * @param root - prefix of the fields named in errors, e.g. `workflow.` for a schedule's. @default ""
 * @throws ApiError `invalid_argument`, `workflow_cycle`, `payload_too_large`, `max_running_below_gang`… naming the field
 */
export function readWorkflowBody(body: unknown, workflowId: string, root = ''): WorkflowBody {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(ErrorCode.InvalidArgument, `${root || 'the body'} must be a JSON object`, { field: root.replace(/\.$/, '') || '(body)' });
  }
  let req: SubmitWorkflowRequest;
  let deps: string[][];
  try {
    req = parseWith(SubmitWorkflowSchema, body);
    // a step's inputs are dependencies too
    deps = dependenciesWithInputs(req.steps);
    validateDag(req.steps.map((s, i) => ({ name: s.name, dependsOn: deps[i], when: s.when ?? 'success', map: s.map })));
  } catch (err) {
    if (!(err instanceof ApiError) || !root) throw err;
    throw new ApiError(err.code, `${root}${err.message}`, { ...err.details, ...(err.details.field ? { field: `${root}${err.details.field}` } : {}) });
  }
  const queue = req.queue ?? 'default';
  const dag = req.steps.map((s, i) => ({ name: s.name, dependsOn: deps[i], when: s.when ?? 'success', map: s.map }));
  const queues = new Set([queue]);
  const workingDirs: Array<{ digest: string; field: string }> = [];
  req.steps.forEach((s, i) => {
    if ('tenant' in s.job)
      throw new ApiError(ErrorCode.InvalidArgument, `${root}steps[${i}].job.tenant: a step runs as its workflow's tenant; remove it`, {
        field: `${root}steps[${i}].job.tenant`,
      });
    // Validated as the controller will submit it: with the labels naming the workflow and step (counted in the label and size limits).
    const labels = s.job.labels;
    const job = {
      ...s.job,
      queue: s.job.queue ?? queue,
      ...(s.map && 'items' in s.map ? { items: s.map.items } : {}),
      ...(labels === undefined || (typeof labels === 'object' && labels !== null && !Array.isArray(labels))
        ? { labels: { ...labels, [WORKFLOW_LABEL]: workflowId, [STEP_LABEL]: s.name } }
        : {}),
    };
    if (s.map) delete (job as Record<string, unknown>).tasks;
    if (s.cacheVersion !== undefined && s.cache !== true) {
      throw new ApiError(ErrorCode.InvalidArgument, `${root}steps[${i}].cacheVersion: it versions the step's cache; set cache: true too, or remove it`, {
        field: `${root}steps[${i}].cacheVersion`,
      });
    }
    try {
      const parsed = parseSubmit(job);
      queues.add(parsed.queue);
      if (parsed.spec.workingDir) workingDirs.push({ digest: parsed.spec.workingDir.digest, field: `${root}steps[${i}].job.workingDir.digest` });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const field = `${root}steps[${i}].job.${err.details.field ?? ''}`.replace(/\.$/, '');
      throw new ApiError(err.code, `${root}steps[${i}].job.${err.message}`, { ...err.details, field });
    }
  });
  const cps = criticalPaths(dag);
  const steps: WorkflowStep[] = req.steps.map((s, i) => ({
    name: s.name,
    dependsOn: dag[i].dependsOn,
    when: dag[i].when,
    job: s.job,
    ...(s.inputs?.length ? { inputs: s.inputs } : {}),
    ...(s.map ? { map: s.map } : {}),
    ...(s.cache ? { cache: true } : {}),
    ...(s.cache && s.cacheVersion ? { cacheVersion: s.cacheVersion } : {}),
    criticalPath: cps[i],
    phase: 'Pending',
  }));
  return { req, queue, queues: [...queues], workingDirs, steps };
}
