/**
 * Schemas (zod) of every answer body of the HTTP API. The code builds its answers from the
 * interfaces in `views.ts`, `workflow.ts` and `model.ts`; each schema here is proved at compile
 * time to describe exactly that interface (`Exact` below), so the OpenAPI document generated
 * from them (`openapi.ts`) cannot drift from what the handlers return.
 */
import { z } from 'zod';
import { ErrorCode, type ErrorBody } from './errors';
import { ISOLATION_KINDS, JobPhase, type Tenant } from './model';
import { type JobView, type NodeView, type QueueView, TASK_LIST_STATES, type TaskCounts, type TaskView, type UsageView, type WhyView } from './views';
import { StepReuseSchema, StepWhenSchema, type WorkflowView } from './workflow';

/** A quantity as answers show it: `"500m"`, `"2Gi"`, or a number (GPUs, `domain/name` resources). */
const Quantity = z.union([z.string(), z.number()]);
const Resources = z.record(z.string(), Quantity);
const StringMap = z.record(z.string(), z.string());
/** An instant in an answer: ISO-8601 in UTC. */
const Instant = z.iso.datetime();

export const ErrorBodySchema = z.strictObject({
  code: z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]),
  message: z.string(),
  /** Dotted path of the offending request field, when one field is at fault. */
  field: z.string().optional(),
  /** The id (job, tenant, queue...) the error concerns. */
  id: z.string().optional(),
  /** Seconds after which a retry may succeed (429, 503). */
  retryAfterSeconds: z.number().optional(),
});
/** Every error answer: `{"error": {...}}`. */
export const ErrorAnswerSchema = z.strictObject({ error: ErrorBodySchema });

export const TaskCountsSchema = z.strictObject({
  pending: z.number().int(),
  bound: z.number().int(),
  running: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
});

export const JobViewSchema = z.strictObject({
  id: z.string(),
  name: z.string(),
  tenant: z.string(),
  queue: z.string(),
  phase: z.enum(JobPhase),
  reason: z.strictObject({ code: z.string(), message: z.string() }).optional(),
  command: z.array(z.string()),
  /** The task environment; values of secret-looking names show as `***`. */
  env: StringMap,
  resources: Resources,
  tasks: z.number().int(),
  /** Most tasks bound or running at once, when the job sets it. */
  maxRunning: z.number().int().optional(),
  /** The mutexes each running task holds. */
  locks: z.array(z.string()).optional(),
  /** The semaphore units each running task holds, by name. */
  limits: z.record(z.string(), z.number().int()).optional(),
  priority: z.number().int(),
  labels: StringMap,
  /** The working dir package each task runs in (`workingDir` of the submit). */
  workingDir: z.strictObject({ digest: z.string() }).optional(),
  /** The Python environment each task runs in (`python` of the submit): its requirements in normal form (sorted, without repeats) and their digest. */
  python: z.strictObject({ requirements: z.array(z.string()), digest: z.string() }).optional(),
  taskCounts: TaskCountsSchema,
  traceId: z.string().optional(),
  createdAt: Instant,
  queuedAt: Instant.optional(),
  startedAt: Instant.optional(),
  finishedAt: Instant.optional(),
});

export const JobListSchema = z.strictObject({
  jobs: z.array(JobViewSchema),
  /** Pass as `pageToken` for the next page; absent on the last page. */
  nextPageToken: z.string().optional(),
});

/**
 * `GET /v1/jobs/events`: how many of the caller's jobs (every tenant's for operators) etcd holds
 * in each phase — live jobs and finished ones not yet archived. A phase with none is absent.
 */
export const JobCountsSchema = z.strictObject({
  counts: z.record(z.string(), z.number().int()),
  /** Sum of `counts`. */
  total: z.number().int(),
});
export type JobCountsView = z.infer<typeof JobCountsSchema>;

/** `POST /v1/jobs:batch`: one answer per submitted job, in order. */
export const BulkSubmitAnswerSchema = z.strictObject({
  results: z.array(z.strictObject({ status: z.number().int(), job: JobViewSchema.optional(), error: ErrorBodySchema.optional() })),
});

/** A result kept in the blob store (over `MAX_RESULT_BYTES`): its size and digest; `GET /v1/jobs/{id}/results/{index}` answers it. */
export const ResultRefSchema = z.strictObject({
  sizeBytes: z.number().int().min(0),
  /** SHA-256 of the result's JSON, hex. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const JobResultsSchema = z.strictObject({
  /** Only tasks that wrote a result, by index: `value` inline, or `ref` for one kept in the blob store. */
  results: z.array(z.strictObject({ index: z.number().int(), value: z.unknown().optional(), ref: ResultRefSchema.optional() })),
});

export const TaskViewSchema = z.strictObject({
  index: z.number().int(),
  attempt: z.number().int(),
  state: z.enum(TASK_LIST_STATES),
  node: z.string().optional(),
  exitCode: z.number().int().optional(),
  reason: z.string().optional(),
  signal: z.string().optional(),
  boundAt: Instant.optional(),
  startedAt: Instant.optional(),
  endedAt: Instant.optional(),
});
export const TaskListSchema = z.strictObject({
  /** By task index, then attempt. */
  tasks: z.array(TaskViewSchema),
  /** Pass as `pageToken` for the next page; absent on the last page. */
  nextPageToken: z.string().optional(),
});

export const WhyViewSchema = z.strictObject({
  jobId: z.string(),
  phase: z.enum(JobPhase),
  position: z.number().int(),
  tasksAhead: z.number().int(),
  pendingTasks: z.number().int(),
  placeableNow: z.number().int(),
  blockers: z.array(z.strictObject({ reason: z.string(), nodes: z.number().int() })),
  quota: z.string().optional(),
  messages: z.array(z.string()),
  counterfactuals: z.array(z.string()),
  explainedBy: z.enum(['scheduler', 'admission']),
});

export const RunningCapViewSchema = z.strictObject({
  runningTasks: z.number().int(),
  maxRunningTasks: z.number().int().optional(),
  gpuHoursUsed: z.number(),
  gpuHoursPerDay: z.number().optional(),
  gpuBudgetFreesAt: Instant.optional(),
});

export const QueueViewSchema = z.strictObject({
  name: z.string(),
  tenant: z.string(),
  weight: z.number(),
  nominal: Resources,
  cohort: z.string().optional(),
  borrowingLimit: Resources.optional(),
  lendingLimit: Resources.optional(),
  maxPendingTasks: z.number().int().optional(),
  priorityAgingPerHour: z.number().optional(),
  priorityAgingMax: z.number().int().optional(),
  prices: z.record(z.string(), z.number()).optional(),
  used: Resources,
  borrowed: Resources,
  positions: z.array(z.strictObject({ jobId: z.string(), position: z.number().int(), pendingTasks: z.number().int() })).optional(),
  fairShare: z.number(),
  pendingTasks: z.number().int(),
  pendingJobs: z.number().int(),
  runningTasks: z.number().int(),
  caps: z.strictObject({ queue: RunningCapViewSchema, tenant: RunningCapViewSchema }).optional(),
});
export const QueueListSchema = z.strictObject({ queues: z.array(QueueViewSchema) });
export const QueueDeletedSchema = z.strictObject({ deleted: z.string() });

export const TenantSchema = z.strictObject({
  name: z.string(),
  weight: z.number(),
  limits: z
    .strictObject({
      submitsPerSecond: z.number().optional(),
      submitBurst: z.number().optional(),
      tasksPerSecond: z.number().optional(),
      taskBurst: z.number().optional(),
    })
    .optional(),
  maxRunningTasks: z.number().int().optional(),
  gpuHoursPerDay: z.number().optional(),
});

export const NodeViewSchema = z.strictObject({
  name: z.string(),
  capacity: Resources,
  allocated: Resources,
  labels: StringMap,
  taints: z.array(z.strictObject({ key: z.string(), value: z.string().optional(), effect: z.string() })),
  gpus: z.number().int(),
  gpuDevices: z.array(z.strictObject({ index: z.number().int(), model: z.string(), milliUsed: z.number().int() })),
  cordon: z
    .strictObject({
      reason: z.string(),
      by: z.string(),
      at: Instant,
      drainDeadline: Instant.optional(),
      quarantine: z.strictObject({ cause: z.enum(['node_error', 'node_lost']), failures: z.number().int() }).optional(),
    })
    .optional(),
  isolation: z.strictObject({ kind: z.enum(ISOLATION_KINDS), controllers: z.array(z.string()).optional() }).optional(),
  draining: z.strictObject({ since: Instant, deadline: Instant }).optional(),
});
export const NodeListSchema = z.strictObject({ nodes: z.array(NodeViewSchema) });

export const WorkflowViewSchema = z.strictObject({
  id: z.string(),
  name: z.string(),
  tenant: z.string(),
  queue: z.string(),
  labels: StringMap,
  phase: z.enum(['Running', 'Succeeded', 'Failed', 'Cancelled']),
  /** Epoch milliseconds. */
  createdAt: z.number(),
  finishedAt: z.number().nullable(),
  deadlineAt: z.number().nullable(),
  /** Most steps running at once, when set. */
  maxRunning: z.number().int().optional(),
  traceId: z.string().optional(),
  /** The run this one retries. */
  retryOf: z.string().optional(),
  template: z.strictObject({ name: z.string(), version: z.number().int(), params: z.record(z.string(), z.string()) }).optional(),
  steps: z.array(
    z.strictObject({
      name: z.string(),
      phase: z.enum(['Pending', 'Running', 'Succeeded', 'Failed', 'Skipped', 'Cancelled']),
      jobId: z.string().nullable(),
      /** Steps whose results the step reads (`inputs`). @default absent: none */
      inputs: z.array(z.string()).optional(),
      /** Memoized (`cache: true`). */
      cache: z.boolean().optional(),
      /** The step did not run: its results and `jobId` are those of an earlier run's step (`reason`: `retry` or `cache`). */
      cached: z.strictObject({ reason: StepReuseSchema, workflowId: z.string(), jobId: z.string().nullable() }).optional(),
      dependsOn: z.array(z.string()),
      when: StepWhenSchema,
      criticalPath: z.number().int(),
      /** A fan-out step: how many items it was given, or the step whose results it maps over. */
      map: z.union([z.strictObject({ items: z.number().int() }), z.strictObject({ fromStep: z.string() })]).optional(),
    }),
  ),
});
export const WorkflowListSchema = z.strictObject({ workflows: z.array(WorkflowViewSchema) });

/** `GET /v1/blobs/working-dirs/{digest}` and its `PUT`: a working dir package the caller's tenant uploaded. */
export const WorkingDirViewSchema = z.strictObject({
  digest: z.string(),
  /** Bytes stored (the gzip-compressed tar). */
  sizeBytes: z.number().int().min(0),
  /** When it was uploaded, epoch ms. */
  createdAt: z.number().int(),
});
export type WorkingDirView = z.infer<typeof WorkingDirViewSchema>;

/** `GET /healthz`. */
export const HealthSchema = z.strictObject({ status: z.literal('ok'), service: z.string(), instance: z.string() });
/** `GET /readyz` (200 when ready, 503 when not). */
export const ReadinessSchema = z.strictObject({
  status: z.enum(['ready', 'not ready']),
  checks: z.record(z.string(), z.boolean()),
  reason: z.string().optional(),
});

export const UsageGroupViewSchema = z.strictObject({
  key: z.string().nullable(),
  cpuCoreHours: z.number(),
  memoryGiBHours: z.number(),
  gpuHours: z.number(),
  attempts: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  preempted: z.number().int(),
  queueWaitP50Seconds: z.number().optional(),
  queueWaitP99Seconds: z.number().optional(),
  series: z
    .array(
      z.strictObject({
        start: Instant,
        cpuCoreHours: z.number(),
        memoryGiBHours: z.number(),
        gpuHours: z.number(),
        attempts: z.number().int(),
      }),
    )
    .optional(),
});
export const UsageViewSchema = z.strictObject({
  from: Instant,
  to: Instant,
  groupBy: z.string(),
  step: z.enum(['hour', 'day']).optional(),
  groups: z.array(UsageGroupViewSchema),
  truncated: z.boolean(),
});

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Holds only when `S` parses to exactly `T`: each assignable to the other, and the same keys (an optional field missing from one is caught). */
type Exact<S extends z.ZodType, T> = Same<z.infer<S>, T> extends true ? Same<keyof z.infer<S>, keyof T> : false;
// Compile-time: a view interface that gains, loses or retypes a field fails the build here.
const proofs: [
  Exact<typeof ErrorBodySchema, ErrorBody>,
  Exact<typeof TaskCountsSchema, TaskCounts>,
  Exact<typeof JobViewSchema, JobView>,
  Exact<typeof WhyViewSchema, WhyView>,
  Exact<typeof QueueViewSchema, QueueView>,
  Exact<typeof NodeViewSchema, NodeView>,
  Exact<typeof WorkflowViewSchema, WorkflowView>,
  Exact<typeof TenantSchema, Tenant>,
  Exact<typeof TaskViewSchema, TaskView>,
  Exact<typeof UsageViewSchema, UsageView>,
] = [true, true, true, true, true, true, true, true, true, true];
void proofs;
