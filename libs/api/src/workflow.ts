/**
 * The workflow vocabulary: a DAG of steps, each a job (single or array), with conditions,
 * fan-out (`map`) and a deadline. The request schema, the record at `workflows/{id}` and
 * the view the API returns. The DAG logic itself is pure and lives in `@batchapi/workflows`.
 */
import { z } from 'zod';
import { Ended } from './model';
import { dottedName, NameSchema } from './schemas';
import type { WorkflowTemplateRef } from './workflow-template';

/** Most steps of one workflow running at once: a whole number from 1 to `MAX_WORKFLOW_STEPS`. */
export const WorkflowMaxRunningSchema = z.number().int().min(1).max(1000);

/** Most steps in one workflow. */
export const MAX_WORKFLOW_STEPS = 1000;
/** Most `inputs` of one step. */
export const MAX_STEP_INPUTS = 100;
/** Label every step job carries: the id of its workflow. */
export const WORKFLOW_LABEL = 'batch.workflow';
/** Label every step job carries: its step's name. */
export const STEP_LABEL = 'batch.step';

/** When a step runs, given the outcome of the steps it depends on. */
export const StepWhen = {
  /** Every dependency Succeeded (the default). */
  Success: 'success',
  /** At least one dependency Failed: a cleanup / on_failure step. */
  Failure: 'failure',
  /** Every dependency is terminal, whatever its outcome. */
  Always: 'always',
} as const;
/** A step's `when`, as a request gives it and an answer returns it. */
export const StepWhenSchema = z.enum(StepWhen);
export type StepWhen = z.infer<typeof StepWhenSchema>;

/** How a step can end: a terminal phase never changes again. */
const StepEnd = {
  ...Ended,
  /** Its condition can no longer hold; it never ran. */
  Skipped: 'Skipped',
} as const;
export const StepPhase = { Pending: 'Pending', Running: 'Running', ...StepEnd } as const;
export type StepPhase = (typeof StepPhase)[keyof typeof StepPhase];
export const TERMINAL_STEP_PHASES: ReadonlySet<StepPhase> = new Set(Object.values(StepEnd));

export const WorkflowPhase = { Running: 'Running', ...Ended } as const;
export type WorkflowPhase = (typeof WorkflowPhase)[keyof typeof WorkflowPhase];
export const TERMINAL_WORKFLOW_PHASES: ReadonlySet<WorkflowPhase> = new Set(Object.values(Ended));

/** A step name: letters, digits, "-", "_", "." (it becomes a job label value). */
export const StepNameSchema = dottedName(63);

/** Longest `cacheVersion` of a step, in characters. */
export const MAX_CACHE_VERSION_CHARS = 64;

/** Why a step did not run: its results are those of an earlier job. */
export const StepReuse = {
  /** A retry of a run (`POST /v1/workflows/{id}/retry`) kept the step the earlier run succeeded. */
  Retry: 'retry',
  /** A `cache: true` step whose cache key matched an earlier successful step of the tenant. */
  Cache: 'cache',
} as const;
export const StepReuseSchema = z.enum(StepReuse);
export type StepReuse = z.infer<typeof StepReuseSchema>;

/** Where a reused step's results come from. */
export interface StepCached {
  /** Why the step was not run. */
  reason: StepReuse;
  /** The run whose step produced the results. */
  workflowId: string;
  /** The job that produced them; null when that step succeeded without a job (a fan-out over nothing). */
  jobId: string | null;
}

/** One step of a `POST /v1/workflows` body. */
export const WorkflowStepSchema = z.strictObject({
  name: StepNameSchema,
  /** The job, as the body of `POST /v1/jobs` without `tenant` (validated as one). */
  job: z.record(z.string(), z.unknown()),
  /** Names of steps that must end first. @default [] */
  dependsOn: z.array(StepNameSchema).max(MAX_WORKFLOW_STEPS).optional(),
  /** @default "success" */
  when: StepWhenSchema.optional(),
  /**
   * Steps whose results this step reads (passing data between steps): each is a dependency too
   * (added to `dependsOn` if absent). The controller gives the step's job `BATCH_INPUTS` (JSON
   * `[{step, jobId, map, phase}]`, `jobId` the job that holds the results, a reused step's included)
   * and `BATCH_INPUTS_TOKEN`, a credential that only reads those jobs and their results, until the
   * workflow ended plus an hour. At most 100 distinct names. @default []
   */
  inputs: z.array(StepNameSchema).max(MAX_STEP_INPUTS).optional(),
  /** Fan-out: an array job with one task per item, or over the results of a dependency. @default none */
  map: z.union([z.strictObject({ items: z.array(z.unknown()).min(1).max(100_000) }), z.strictObject({ fromStep: StepNameSchema })]).optional(),
  /**
   * Memoization: when the step's cache key (its command, environment, image, working dir, Python
   * requirements, tasks and items, its dependencies' results and `cacheVersion`) matches a step of the
   * same tenant that succeeded within the cache's lifetime, the step is not run and reuses that
   * step's job and results. Needs the history store. @default false
   */
  cache: z.boolean().optional(),
  /** Part of the cache key: change it to make a `cache: true` step run again with unchanged inputs. At most 64 characters. @default "" */
  cacheVersion: z.string().max(MAX_CACHE_VERSION_CHARS).optional(),
});
export type WorkflowStepRequest = z.infer<typeof WorkflowStepSchema>;

/** `POST /v1/workflows` body. */
export const SubmitWorkflowSchema = z.strictObject({
  /** @default "workflow" */
  name: dottedName(128).optional(),
  /** Queue of steps that name none. @default "default" */
  queue: NameSchema.optional(),
  /** Only operators may name a tenant other than their own. @default the token's tenant */
  tenant: NameSchema.optional(),
  /** @default {} */
  labels: z.record(z.string().max(253), z.string().max(63)).optional(),
  /** The whole workflow fails (running steps are cancelled) this many seconds after submit. @default none */
  deadlineSeconds: z
    .number()
    .int()
    .min(1)
    .max(30 * 24 * 3600)
    .optional(),
  /**
   * Most steps running at once (Argo's `parallelism`): a ready step beyond it stays `Pending`
   * until one ends; waiting steps start in definition order. A map step's own limit on its tasks
   * is its job's `maxRunning`. @default unlimited
   */
  maxRunning: WorkflowMaxRunningSchema.optional(),
  steps: z.array(WorkflowStepSchema).min(1).max(MAX_WORKFLOW_STEPS),
});
export type SubmitWorkflowRequest = z.infer<typeof SubmitWorkflowSchema>;

/** `POST /v1/workflows/{id}/retry` body: empty or `{}` (nothing to change: the retry runs the run's own steps). */
export const RetryWorkflowSchema = z.strictObject({});

/** One step as stored in the workflow record. */
export interface WorkflowStep {
  name: string;
  dependsOn: string[];
  when: StepWhen;
  /** The validated `POST /v1/jobs` body of the step (without map items). */
  job: Record<string, unknown>;
  /** Steps whose results the step reads (each also in `dependsOn`), in the request's order. @default [] */
  inputs?: string[];
  map?: { items: unknown[] } | { fromStep: string };
  /** Steps in the longest chain from this one to the end, itself included. */
  criticalPath: number;
  phase: StepPhase;
  /** Set in the same transaction that creates the step's job (or, for a reused step, the job it reuses). */
  jobId?: string;
  /** Memoized (`cache: true`). @default false */
  cache?: boolean;
  /** Part of the cache key. @default "" */
  cacheVersion?: string;
  /** The cache key of a `cache: true` step, set when the controller submits it (recorded in the cache once the step succeeds). @default none */
  cacheKey?: string;
  /** Set when the step did not run and reuses an earlier job's results (a retry, a cache hit). @default none */
  cached?: StepCached;
}

/** The record at `workflows/{id}`. Every write compares its mod revision; the controller's writes carry its fence. */
export interface WorkflowRecord {
  id: string;
  name: string;
  tenant: string;
  queue: string;
  labels: Record<string, string>;
  phase: WorkflowPhase;
  steps: WorkflowStep[];
  createdAt: number;
  /** Epoch ms after which the workflow fails. @default none */
  deadlineAt?: number;
  /** Most steps running at once. @default unlimited */
  maxRunning?: number;
  finishedAt?: number;
  /** Set by a cancel; the controller cascades it to every running step. */
  cancelRequestedAt?: number;
  traceparent?: string;
  /** The run this one retries (`POST /v1/workflows/{id}/retry`). @default none */
  retryOf?: string;
  /** The template (name, version, parameter values) this run was made from (`POST /v1/workflow-templates/{name}/runs`). @default none */
  template?: WorkflowTemplateRef;
  /**
   * `submitSchemaDigest()` of the code that validated every step's job as this run was made (a
   * submit, a template's run). @default none: a retry's or a schedule's copy of steps validated
   * earlier, read against the whole schema when submitted
   */
  stepsValidatedBy?: string;
}

/** A workflow as the API returns it (times in epoch milliseconds). */
export interface WorkflowView extends Pick<WorkflowRecord, 'id' | 'name' | 'tenant' | 'queue' | 'labels' | 'phase' | 'createdAt'> {
  finishedAt: number | null;
  deadlineAt: number | null;
  /** Most steps running at once, when set. @default absent: unlimited */
  maxRunning?: number;
  traceId?: string;
  /** The run this one retries. @default absent: not a retry */
  retryOf?: string;
  /** The template run: its name, version and every parameter's value. @default absent: not a template's run */
  template?: WorkflowTemplateRef;
  steps: Array<
    Pick<WorkflowStep, 'name' | 'phase' | 'dependsOn' | 'when' | 'criticalPath'> & {
      jobId: string | null;
      /** Steps whose results the step reads. @default absent: none */
      inputs?: string[];
      /** Memoized (`cache: true`). @default absent: false */
      cache?: boolean;
      /** The step did not run: its results (and `jobId`) are an earlier job's. @default absent: it ran (or will) */
      cached?: StepCached;
      /** A fan-out step (one array job, a task per item): how many items it was given, or the step whose results it maps over. @default absent: not a fan-out */
      map?: { items: number } | { fromStep: string };
    }
  >;
}

export function workflowView(w: WorkflowRecord): WorkflowView {
  return {
    id: w.id,
    name: w.name,
    tenant: w.tenant,
    queue: w.queue,
    labels: w.labels,
    phase: w.phase,
    createdAt: w.createdAt,
    finishedAt: w.finishedAt ?? null,
    deadlineAt: w.deadlineAt ?? null,
    ...(w.maxRunning !== undefined ? { maxRunning: w.maxRunning } : {}),
    traceId: w.traceparent?.split('-')[1],
    ...(w.retryOf !== undefined ? { retryOf: w.retryOf } : {}),
    ...(w.template !== undefined ? { template: w.template } : {}),
    steps: w.steps.map((s) => ({
      name: s.name,
      phase: s.phase,
      jobId: s.jobId ?? null,
      dependsOn: s.dependsOn,
      when: s.when,
      criticalPath: s.criticalPath,
      ...(s.inputs?.length ? { inputs: s.inputs } : {}),
      ...(s.cache ? { cache: true } : {}),
      ...(s.cached ? { cached: s.cached } : {}),
      ...(s.map ? { map: 'items' in s.map ? { items: s.map.items.length } : { fromStep: s.map.fromStep } } : {}),
    })),
  };
}
