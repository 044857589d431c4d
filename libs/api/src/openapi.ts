/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the zod schemas that validate the
 * requests (`schemas.ts`, `workflow.ts`) and describe the answers (`responses.ts`). Owns the
 * table of operations: path, method, who may call it, its parameters, its answers, and the
 * error codes it can answer with (each under its status from `statusOf`). Admission serves it
 * at `GET /openapi.json`; a test compares its paths with the routes the service registers.
 */
import { z } from 'zod';
import { type ErrorCode, statusOf } from './errors';
import {
  BulkSubmitAnswerSchema,
  ErrorBodySchema,
  HealthSchema,
  JobCountsSchema,
  JobListSchema,
  JobResultsSchema,
  TaskListSchema,
  UsageViewSchema,
  JobViewSchema,
  NodeListSchema,
  NodeViewSchema,
  QueueDeletedSchema,
  QueueListSchema,
  QueueViewSchema,
  ReadinessSchema,
  TenantSchema,
  WhyViewSchema,
  WorkflowListSchema,
  WorkflowViewSchema,
  WorkingDirViewSchema,
} from './responses';
import {
  BulkSubmitSchema,
  CordonSchema,
  DrainSchema,
  IdempotencyKeySchema,
  ListJobsQuerySchema,
  ListTasksQuerySchema,
  UsageQuerySchema,
  ListWorkflowsQuerySchema,
  LogsQuerySchema,
  NameSchema,
  PutQueueSchema,
  PutTenantSchema,
  SubmitJobSchema,
  WorkingDirDigestSchema,
} from './schemas';
import { RetryWorkflowSchema, SubmitWorkflowSchema } from './workflow';
import { PutSemaphoreSchema, SemaphoreListSchema, SemaphoreNameSchema, SemaphoreQuerySchema, SemaphoreViewSchema } from './semaphore';
import { ResubmitSchema } from './resubmit';
import {
  CreateScheduleSchema,
  ListSchedulesQuerySchema,
  ScheduleActionSchema,
  ScheduleListSchema,
  ScheduleTenantQuerySchema,
  ScheduleViewSchema,
} from './schedule';
import {
  ListWorkflowTemplatesQuerySchema,
  PutWorkflowTemplateSchema,
  RunWorkflowTemplateSchema,
  WorkflowTemplateListSchema,
  WorkflowTemplateQuerySchema,
  WorkflowTemplateTenantQuerySchema,
  WorkflowTemplateViewSchema,
} from './workflow-template';

/** A JSON Schema or OpenAPI object, as plain JSON. */
type Json = Record<string, unknown>;

/** Who may call an operation. */
export type Caller = 'anyone' | 'tenant' | 'operator';

/** One answer of an operation other than an error. */
interface Answer {
  description: string;
  /** The JSON body; absent for a non-JSON body (see `mediaType`). */
  schema?: z.ZodType;
  /** A `text/event-stream` answer: the event name and the schema of each event's JSON `data`. */
  events?: { name: string; data: z.ZodType };
  /** @default "application/json" */
  mediaType?: string;
  /** Response headers: name → description (all optional). */
  headers?: Record<string, string>;
  /** Operations reachable with values of this answer (stateful testing, clients). */
  links?: Record<string, { operationId: string; parameters: Record<string, string> }>;
}

/** One operation of the API. */
export interface ApiOperation {
  method: 'get' | 'post' | 'put' | 'delete';
  /** OpenAPI path, e.g. `/v1/jobs/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  caller: Caller;
  /** Path parameters by name, in path order. */
  pathParams?: Record<string, z.ZodType>;
  /** The query schema (a strict object: an unknown parameter is a 400). */
  query?: z.ZodObject;
  /** Request headers other than Authorization: name → schema. */
  headers?: Record<string, { schema: z.ZodType; description: string }>;
  body?: z.ZodType;
  /** A body of bytes instead of JSON: the media types it may be sent as, and what it is. */
  binaryBody?: { mediaTypes: string[]; description: string };
  answers: Record<number, Answer>;
  /**
   * Error codes it may answer with; added to them: the common ones of its caller kind,
   * `read_rate_exceeded` for a read by a token, `payload_too_large` for one with a body.
   */
  errors: ErrorCode[];
}

/** A job id or workflow id as submit returned it; any other value is a 404. Fastify refuses a path segment over 1,024 characters (400). */
const IdParam = z.string().min(1).max(1024);
const TaskIndexParam = z.coerce.number().int().min(0).max(999_999_999);
/** The schema of each path parameter, by the name it has in paths (`{id}`, `{index}`, `{name}`). */
const PATH_PARAMS: Record<string, z.ZodType> = {
  id: IdParam,
  index: TaskIndexParam,
  name: NameSchema,
  digest: WorkingDirDigestSchema,
  semaphore: SemaphoreNameSchema,
};
const idempotencyHeader = {
  'Idempotency-Key': {
    schema: IdempotencyKeySchema,
    description: 'A retry with the same key and body gets 200 and the first answer; the same key with another body gets 409 `idempotency_conflict`.',
  },
};
const lastEventIdHeader = {
  'Last-Event-ID': {
    schema: z.string(),
    description: 'Resume after this event id (an etcd revision): only newer events are sent. A value that is not 1 to 20 digits is ignored.',
  },
};
/** Links to operations that each take one parameter, given the same value: `from`, a runtime expression. */
const linksTo = (param: string, from: string, operationIds: Record<string, string>): NonNullable<Answer['links']> =>
  Object.fromEntries(Object.entries(operationIds).map(([link, operationId]) => [link, { operationId, parameters: { [param]: from } }]));
const jobLinks = linksTo('id', '$response.body#/id', { GetJob: 'getJob', WhyJob: 'whyJob', JobResults: 'getJobResults', CancelJob: 'cancelJob' });
const workflowLinks = linksTo('id', '$response.body#/id', { GetWorkflow: 'getWorkflow', CancelWorkflow: 'cancelWorkflow' });
const scheduleLinks = linksTo('name', '$response.body#/name', { GetSchedule: 'getSchedule', DeleteSchedule: 'deleteSchedule' });
const templateLinks = linksTo('name', '$response.body#/name', { GetWorkflowTemplate: 'getWorkflowTemplate', DeleteWorkflowTemplate: 'deleteWorkflowTemplate' });
const queueLinks = linksTo('name', '$request.path.name', { GetQueue: 'getQueue', DeleteQueue: 'deleteQueue' });
const SUBMIT_ERRORS: ErrorCode[] = [
  'permission_denied',
  'unknown_tenant',
  'unknown_queue',
  'no_container_runtime',
  'max_running_below_gang',
  'unknown_working_dir',
  'unknown_semaphore',
  'exceeds_semaphore',
  'idempotency_conflict',
  'conflict',
  'submit_rate_exceeded',
  'task_rate_exceeded',
  'queue_full',
  'overloaded',
];

/**
 * An operation as the table below writes it, under the key `'<METHOD> <path>'`: its tag and
 * caller are its group's, its path parameters are the `{name}`s of its path (see `PATH_PARAMS`).
 */
type Route = Omit<ApiOperation, 'method' | 'path' | 'tag' | 'caller' | 'pathParams' | 'errors'> & {
  /** @default [] */
  errors?: ErrorCode[];
};

/** The operations of one tag that one kind of caller may call, in the order of `routes`. */
function operations(tag: string, caller: Caller, routes: Record<string, Route>): ApiOperation[] {
  return Object.entries(routes).map(([route, op]) => {
    const [method, path] = route.split(' ');
    const names = [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => name);
    return {
      method: method.toLowerCase() as ApiOperation['method'],
      path,
      tag,
      caller,
      ...(names.length ? { pathParams: Object.fromEntries(names.map((name) => [name, PATH_PARAMS[name]])) } : {}),
      errors: [],
      ...op,
    };
  });
}

/** The one answer of most operations: 200 with a JSON body. */
const ok = (description: string, schema: z.ZodType): Route['answers'] => ({ 200: { description, schema } });

/**
 * An idempotent submit: the body, an `Idempotency-Key`, and the created resource (`Location`,
 * links) both as 201 and as the 200 answer to a retry.
 */
function idempotentSubmit(
  body: z.ZodType,
  created: { schema: z.ZodType; location: string; links: Answer['links']; retried: string },
): Pick<Route, 'headers' | 'body' | 'answers'> {
  const { schema, location, links, retried } = created;
  return {
    headers: idempotencyHeader,
    body,
    answers: {
      201: { description: 'Created', schema, headers: { Location: location }, links },
      200: { description: retried, schema, headers: { Location: location }, links },
    },
  };
}

/**
 * Server-sent events of one resource: its view now and at every change. `name` is the event
 * name, `read` the operation that answers the same view.
 */
const eventStream = (name: string, data: z.ZodType, read: string): Pick<Route, 'headers' | 'errors' | 'answers'> => ({
  headers: lastEventIdHeader,
  errors: ['not_found', 'too_many_streams'],
  answers: {
    200: {
      description: `An event stream: \`event: ${name}\`, \`id:\` the revision, \`data:\` the ${name} as \`${read}\` answers it`,
      mediaType: 'text/event-stream',
      events: { name, data },
    },
  },
});

/** Every operation of the API. */
export const API_OPERATIONS: readonly ApiOperation[] = [
  ...operations('jobs', 'tenant', {
    'POST /v1/jobs': {
      operationId: 'submitJob',
      summary: 'Submit a job (an array job when `tasks` > 1); committed before the answer',
      errors: SUBMIT_ERRORS,
      ...idempotentSubmit(SubmitJobSchema, {
        schema: JobViewSchema,
        location: 'The job: /v1/jobs/{id}',
        links: jobLinks,
        retried: 'A retry with the same Idempotency-Key and body: the job the first submit created',
      }),
    },
    'GET /v1/jobs': {
      operationId: 'listJobs',
      summary:
        "The caller's jobs (every tenant's for operators), live and finished, filtered by state, queue, tenant, label selector, name prefix, workflow and submit or end time, in submit or end order, a page at a time",
      query: ListJobsQuerySchema,
      errors: ['permission_denied'],
      answers: ok('A page of jobs', JobListSchema),
    },
    'GET /v1/jobs/events': {
      operationId: 'jobCountEvents',
      summary:
        "Server-sent events: how many of the caller's jobs etcd holds in each phase, now and at every change of them (a change in any of those jobs); a page listing jobs reads GET /v1/jobs again on each",
      headers: lastEventIdHeader,
      errors: ['too_many_streams'],
      answers: {
        200: {
          description: 'An event stream: `event: jobs`, `id:` the revision, `data:` the counts',
          mediaType: 'text/event-stream',
          events: { name: 'jobs', data: JobCountsSchema },
        },
      },
    },
    'POST /v1/jobs:batch': {
      operationId: 'submitJobs',
      summary: 'Up to 1,000 submits, each with its own idempotency key and its own answer',
      body: BulkSubmitSchema,
      errors: ['overloaded'],
      answers: ok('One answer per job, in order: its status and the job, or the error', BulkSubmitAnswerSchema),
    },
    'POST /v1/jobs/{id}/resubmit': {
      operationId: 'resubmitJob',
      summary:
        'A new job with the spec of this one (live or finished): the environment as stored, the same tenant and queue, labelled batch.resubmitted-from; committed before the answer',
      errors: [...SUBMIT_ERRORS, 'not_found'],
      ...idempotentSubmit(ResubmitSchema, {
        schema: JobViewSchema,
        location: 'The new job: /v1/jobs/{id}',
        links: jobLinks,
        retried: 'A retry with the same Idempotency-Key: the job the first resubmit created',
      }),
    },
    'GET /v1/jobs/{id}': { operationId: 'getJob', summary: 'A job with its live task counts', errors: ['not_found'], answers: ok('The job', JobViewSchema) },
    'DELETE /v1/jobs/{id}': {
      operationId: 'cancelJob',
      summary: 'Cancel a job: pending tasks at once, running ones are stopped; the job stays readable',
      errors: ['not_found', 'conflict'],
      answers: { 202: { description: 'Cancel accepted: the job as it is now', schema: JobViewSchema } },
    },
    'DELETE /v1/jobs/{id}/tasks/{index}': {
      operationId: 'cancelTask',
      summary: 'Cancel one task of a job (as `scancel 123_7`): pending, it ends at once; running, it is stopped; it never runs again',
      errors: ['not_found', 'conflict', 'invalid_argument'],
      answers: { 202: { description: 'Cancel accepted: the job as it is now', schema: JobViewSchema } },
    },
    'GET /v1/jobs/{id}/why': {
      operationId: 'whyJob',
      summary: 'Why the job is pending: blockers with node counts and what would let it run',
      errors: ['not_found'],
      answers: ok('The explanation', WhyViewSchema),
    },
    'GET /v1/jobs/{id}/results': {
      operationId: 'getJobResults',
      summary: 'What tasks wrote to $BATCH_RESULT_PATH',
      errors: ['not_found'],
      answers: ok('Results by task index', JobResultsSchema),
    },
    'GET /v1/jobs/{id}/results/{index}': {
      operationId: 'getTaskResult',
      summary: "One task's result, inline or kept in the blob store (as JSON)",
      errors: ['not_found'],
      answers: ok('The JSON the task wrote to $BATCH_RESULT_PATH (any JSON value)', z.unknown()),
    },
    'GET /v1/jobs/{id}/tasks': {
      operationId: 'listJobTasks',
      summary: 'One row per task attempt (state, node, exit code, reason, times), by index; filter with state=Failed',
      query: ListTasksQuerySchema,
      errors: ['not_found'],
      answers: ok('A page of task attempts', TaskListSchema),
    },
    'GET /v1/jobs/{id}/events': {
      operationId: 'jobEvents',
      summary: "Server-sent events: the job's view now and at every change, until it ends",
      ...eventStream('job', JobViewSchema, 'getJob'),
    },
    'GET /v1/jobs/{id}/tasks/{index}/logs': {
      operationId: 'getTaskLogs',
      summary: "A task attempt's stdout or stderr (followed with follow=true)",
      query: LogsQuerySchema,
      errors: ['not_found'],
      answers: { 200: { description: 'The log text', mediaType: 'text/plain' } },
    },
  }),

  ...operations('working-dirs', 'tenant', {
    'GET /v1/blobs/working-dirs/{digest}': {
      operationId: 'getWorkingDir',
      summary:
        "Whether the caller's tenant uploaded the working dir package of this digest (HEAD answers the same status without a body): the CLI and SDKs ask before uploading",
      errors: ['not_found'],
      answers: ok('The package is kept', WorkingDirViewSchema),
    },
    'PUT /v1/blobs/working-dirs/{digest}': {
      operationId: 'putWorkingDir',
      summary:
        'Upload a working dir package: the gzip of the deterministic tar whose SHA-256 is the digest (checked), at most BATCH_WORKING_DIR_MAX_BYTES (104857600) uncompressed; kept once per tenant and digest. Jobs then name it in `workingDir.digest`',
      binaryBody: { mediaTypes: ['application/gzip', 'application/octet-stream'], description: 'The gzip-compressed tar' },
      errors: ['digest_mismatch'],
      answers: {
        201: { description: 'Stored', schema: WorkingDirViewSchema },
        200: { description: 'Already stored: nothing was written', schema: WorkingDirViewSchema },
      },
    },
  }),

  ...operations('workflows', 'tenant', {
    'POST /v1/workflows': {
      operationId: 'submitWorkflow',
      summary: 'Submit a workflow: a DAG of jobs',
      errors: [...SUBMIT_ERRORS, 'workflow_cycle', 'unknown_input_step'],
      ...idempotentSubmit(SubmitWorkflowSchema, {
        schema: WorkflowViewSchema,
        location: 'The workflow: /v1/workflows/{id}',
        links: workflowLinks,
        retried: 'A retry with the same Idempotency-Key and body',
      }),
    },
    'GET /v1/workflows': {
      operationId: 'listWorkflows',
      summary: "The caller's workflows",
      query: ListWorkflowsQuerySchema,
      answers: ok('Workflows', WorkflowListSchema),
    },
    'GET /v1/workflows/{id}': {
      operationId: 'getWorkflow',
      summary: 'A workflow and its steps',
      errors: ['not_found'],
      answers: ok('The workflow', WorkflowViewSchema),
    },
    'POST /v1/workflows/{id}/retry': {
      operationId: 'retryWorkflow',
      summary:
        'Re-run from failure: a new run (retryOf this one) of a finished run that did not succeed, live or archived, running its failed, cancelled and skipped steps and every step after them; the other steps reuse their jobs and results (cached: {reason: retry}). Committed before the answer',
      errors: [...SUBMIT_ERRORS, 'not_found', 'workflow_not_retryable'],
      ...idempotentSubmit(RetryWorkflowSchema, {
        schema: WorkflowViewSchema,
        location: 'The new run: /v1/workflows/{id}',
        links: workflowLinks,
        retried: 'A retry of the request with the same Idempotency-Key: the run the first one created',
      }),
    },
    'DELETE /v1/workflows/{id}': {
      operationId: 'cancelWorkflow',
      summary: 'Cancel a workflow and its running steps; it stays readable',
      errors: ['not_found', 'conflict'],
      answers: ok('The workflow as it is now', WorkflowViewSchema),
    },
    'GET /v1/workflows/{id}/events': {
      operationId: 'workflowEvents',
      summary: "Server-sent events: the workflow's view now and at every change, until it ends",
      ...eventStream('workflow', WorkflowViewSchema, 'getWorkflow'),
    },
  }),

  ...operations('workflow-templates', 'tenant', {
    'PUT /v1/workflow-templates/{name}': {
      operationId: 'putWorkflowTemplate',
      summary:
        "Register a workflow template, or a new version of it: a workflow body whose strings may hold {{params.<name>}}, validated as a submit with each parameter's default (or a sample). A body equal to the latest version answers it unchanged; the record keeps the latest 20 versions",
      body: PutWorkflowTemplateSchema,
      errors: [
        'permission_denied',
        'unknown_tenant',
        'unknown_queue',
        'max_running_below_gang',
        'unknown_working_dir',
        'unknown_parameter',
        'conflict',
        'workflow_cycle',
      ],
      answers: {
        201: {
          description: 'Created (its version 1)',
          schema: WorkflowTemplateViewSchema,
          headers: { Location: 'The template: /v1/workflow-templates/{name}' },
          links: templateLinks,
        },
        200: {
          description: 'A new version, or the latest unchanged',
          schema: WorkflowTemplateViewSchema,
          headers: { Location: 'The template: /v1/workflow-templates/{name}' },
          links: templateLinks,
        },
      },
    },
    'GET /v1/workflow-templates': {
      operationId: 'listWorkflowTemplates',
      summary: "The caller's workflow templates at their latest versions (every tenant's for operators)",
      query: ListWorkflowTemplatesQuerySchema,
      errors: ['permission_denied'],
      answers: ok('Workflow templates', WorkflowTemplateListSchema),
    },
    'GET /v1/workflow-templates/{name}': {
      operationId: 'getWorkflowTemplate',
      summary: 'A workflow template at its latest version, or at ?version=N (one of the versions it keeps)',
      query: WorkflowTemplateQuerySchema,
      errors: ['not_found', 'permission_denied'],
      answers: ok('The template', WorkflowTemplateViewSchema),
    },
    'DELETE /v1/workflow-templates/{name}': {
      operationId: 'deleteWorkflowTemplate',
      summary: 'Delete a workflow template and every version; its runs stay',
      query: WorkflowTemplateTenantQuerySchema,
      errors: ['not_found', 'permission_denied', 'conflict'],
      answers: ok('The deleted template (its latest version)', WorkflowTemplateViewSchema),
    },
    'POST /v1/workflow-templates/{name}/runs': {
      operationId: 'runWorkflowTemplate',
      summary:
        "Run a workflow template: its parameters' values (given, else defaults) are substituted into every string of its workflow, which is then submitted as POST /v1/workflows, labelled batch.template and batch.template-version. Committed before the answer",
      errors: [...SUBMIT_ERRORS, 'not_found', 'workflow_cycle', 'unknown_parameter', 'missing_parameter'],
      ...idempotentSubmit(RunWorkflowTemplateSchema, {
        schema: WorkflowViewSchema,
        location: 'The run: /v1/workflows/{id}',
        links: workflowLinks,
        retried: 'A retry with the same Idempotency-Key and body: the run the first one created',
      }),
    },
  }),

  ...operations('schedules', 'tenant', {
    'POST /v1/schedules': {
      operationId: 'createSchedule',
      summary: 'Create a schedule: a cron job or cron workflow (five-field cron in an IANA time zone)',
      body: CreateScheduleSchema,
      errors: ['permission_denied', 'unknown_tenant', 'unknown_queue', 'max_running_below_gang', 'unknown_working_dir', 'conflict', 'workflow_cycle'],
      answers: {
        201: { description: 'Created', schema: ScheduleViewSchema, headers: { Location: 'The schedule: /v1/schedules/{name}' }, links: scheduleLinks },
      },
    },
    'GET /v1/schedules': {
      operationId: 'listSchedules',
      summary: "The caller's schedules (every tenant's for operators)",
      query: ListSchedulesQuerySchema,
      errors: ['permission_denied'],
      answers: ok('Schedules', ScheduleListSchema),
    },
    'GET /v1/schedules/{name}': {
      operationId: 'getSchedule',
      summary: 'A schedule: its cron, policy, last tick, missed ticks, running and recent instances',
      query: ScheduleTenantQuerySchema,
      errors: ['not_found', 'permission_denied'],
      answers: ok('The schedule', ScheduleViewSchema),
    },
    'DELETE /v1/schedules/{name}': {
      operationId: 'deleteSchedule',
      summary: 'Delete a schedule; the jobs and workflows it started stay',
      query: ScheduleTenantQuerySchema,
      errors: ['not_found', 'permission_denied', 'conflict'],
      answers: ok('The deleted schedule', ScheduleViewSchema),
    },
    'POST /v1/schedules/{name}/pause': {
      operationId: 'pauseSchedule',
      summary: 'Pause: no tick fires until resumed; running instances go on',
      query: ScheduleTenantQuerySchema,
      body: ScheduleActionSchema,
      errors: ['not_found', 'permission_denied', 'conflict'],
      answers: ok('The schedule as it is now', ScheduleViewSchema),
    },
    'POST /v1/schedules/{name}/resume': {
      operationId: 'resumeSchedule',
      summary: 'Resume from now: the ticks of the pause never fire',
      query: ScheduleTenantQuerySchema,
      body: ScheduleActionSchema,
      errors: ['not_found', 'permission_denied', 'conflict'],
      answers: ok('The schedule as it is now', ScheduleViewSchema),
    },
    'POST /v1/schedules/{name}/trigger': {
      operationId: 'triggerSchedule',
      summary: 'Start one instance now, whatever the cron and the concurrency policy (the controller starts it within a second)',
      query: ScheduleTenantQuerySchema,
      body: ScheduleActionSchema,
      errors: ['not_found', 'permission_denied', 'conflict'],
      answers: ok('The schedule, with the trigger pending', ScheduleViewSchema),
    },
  }),

  ...operations('semaphores', 'tenant', {
    'GET /v1/semaphores': {
      operationId: 'listSemaphores',
      summary: "Semaphores and held or awaited mutexes: the caller's tenant's and the global ones (all for operators), with what is held and by which jobs",
      answers: ok('Semaphores', SemaphoreListSchema),
    },
    'GET /v1/semaphores/{semaphore}': {
      operationId: 'getSemaphore',
      summary: 'One semaphore (or mutex, with mutex=true): capacity, units held, holders, waiting tasks',
      query: SemaphoreQuerySchema,
      errors: ['not_found', 'permission_denied'],
      answers: ok('The semaphore', SemaphoreViewSchema),
    },
    'PUT /v1/semaphores/{semaphore}': {
      operationId: 'putSemaphore',
      summary: 'Create a semaphore or change its capacity (global/… ones: operators only); jobs take its units with `limits`',
      body: PutSemaphoreSchema,
      errors: ['permission_denied', 'conflict'],
      answers: ok('The semaphore as it is now', SemaphoreViewSchema),
    },
    'DELETE /v1/semaphores/{semaphore}': {
      operationId: 'deleteSemaphore',
      summary: 'Delete a semaphore: tasks holding units run on, waiting ones wait until it exists again',
      query: SemaphoreQuerySchema,
      errors: ['not_found', 'permission_denied', 'conflict'],
      answers: ok('What was deleted', z.strictObject({ deleted: z.string() })),
    },
  }),

  ...operations('queues', 'tenant', {
    'GET /v1/queues': {
      operationId: 'listQueues',
      summary: "The caller's queues (all for operators): quota, usage, fair share, pending work",
      answers: ok('Queues', QueueListSchema),
    },
    'GET /v1/queues/{name}': {
      operationId: 'getQueue',
      summary: "A queue, with the caller's waiting jobs and their positions",
      errors: ['not_found'],
      answers: ok('The queue', QueueViewSchema),
    },
  }),
  ...operations('usage', 'tenant', {
    'GET /v1/usage': {
      operationId: 'getUsage',
      summary:
        'CPU-, memory- and GPU-hours, attempts (failed, preempted) and queue-wait p50/p99 of the task attempts that ended in [from, to), by tenant, queue, GPU model or job label; from the history store (a tenant sees its own)',
      query: UsageQuerySchema,
      errors: ['permission_denied', 'unavailable'],
      answers: ok('Usage by group, the busiest first', UsageViewSchema),
    },
  }),
  ...operations('queues', 'operator', {
    'PUT /v1/queues/{name}': {
      operationId: 'putQueue',
      summary: 'Create or change a queue',
      body: PutQueueSchema,
      errors: ['unknown_tenant', 'conflict'],
      answers: { 200: { description: 'The queue as it is now', schema: QueueViewSchema, links: queueLinks } },
    },
    'DELETE /v1/queues/{name}': {
      operationId: 'deleteQueue',
      summary: 'Remove a queue with no unfinished work',
      errors: ['not_found', 'conflict'],
      answers: ok('Removed', QueueDeletedSchema),
    },
  }),
  ...operations('tenants', 'operator', {
    'PUT /v1/tenants/{name}': {
      operationId: 'putTenant',
      summary: 'Create or change a tenant',
      body: PutTenantSchema,
      errors: ['conflict'],
      answers: ok('The tenant as it is now', TenantSchema),
    },
  }),

  ...operations('nodes', 'operator', {
    'GET /v1/nodes': { operationId: 'listNodes', summary: 'Nodes: capacity, allocation, cordons', answers: ok('Nodes', NodeListSchema) },
    'GET /v1/nodes/events': {
      operationId: 'nodeEvents',
      summary: 'Server-sent events: the nodes as GET /v1/nodes lists them, now and at every change of a node, its allocation or its cordon',
      headers: lastEventIdHeader,
      answers: {
        200: {
          description: 'An event stream: `event: nodes`, `id:` the revision, `data:` the nodes as `listNodes` answers them',
          mediaType: 'text/event-stream',
          events: { name: 'nodes', data: NodeListSchema },
        },
      },
    },
    'POST /v1/nodes/{name}/cordon': {
      operationId: 'cordonNode',
      summary: 'No new work on the node',
      body: CordonSchema,
      errors: ['not_found'],
      answers: ok('The node', NodeViewSchema),
    },
    'DELETE /v1/nodes/{name}/cordon': {
      operationId: 'uncordonNode',
      summary: "Lift a node's cordon, drain or quarantine",
      errors: ['not_found'],
      answers: ok('The node', NodeViewSchema),
    },
    'POST /v1/nodes/{name}/drain': {
      operationId: 'drainNode',
      summary: 'Cordon, and stop running tasks at a deadline (they are requeued elsewhere)',
      body: DrainSchema,
      errors: ['not_found'],
      answers: ok('The node', NodeViewSchema),
    },
  }),

  ...operations('service', 'anyone', {
    'GET /openapi.json': {
      operationId: 'getOpenApi',
      summary: 'This document',
      answers: ok('The OpenAPI 3.1 document', z.record(z.string(), z.unknown())),
    },
    'GET /healthz': { operationId: 'healthz', summary: 'Liveness: the process answers', answers: ok('Alive', HealthSchema) },
    'GET /readyz': {
      operationId: 'readyz',
      summary: 'Readiness: the lease holds, etcd answers, the caches are synced',
      answers: { 200: { description: 'Ready', schema: ReadinessSchema }, 503: { description: 'Not ready: `checks` says what fails', schema: ReadinessSchema } },
    },
    'GET /metrics': {
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      answers: { 200: { description: 'Prometheus text exposition format', mediaType: 'text/plain' } },
    },
  }),
];

/**
 * Codes every operation of a kind may answer: a malformed path (400), overload or etcd trouble
 * (429, 503), a defect (500); and for authenticated ones a missing or unknown token (401),
 * and for operator ones a tenant's token (403).
 */
const COMMON_ERRORS: Record<Caller, ErrorCode[]> = {
  anyone: ['invalid_argument', 'internal'],
  tenant: ['invalid_argument', 'unauthenticated', 'rate_limited', 'unavailable', 'internal'],
  operator: ['invalid_argument', 'unauthenticated', 'permission_denied', 'rate_limited', 'unavailable', 'internal'],
};

/** Tag of the operations that need an operator's token. */
export const OPERATOR_TAG = 'operator';

const stripDialect = (s: Json): Json => {
  const { $schema: _schema, $id: _id, ...rest } = s;
  return rest;
};

/** A JSON Schema of one value as the API reads it (request side). */
function inputSchema(schema: z.ZodType, refs: Map<z.ZodType, string>): Json {
  const named = refs.get(schema);
  if (named) return { $ref: `#/components/schemas/${named}` };
  return stripDialect(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Json);
}

function parameters(op: ApiOperation, refs: Map<z.ZodType, string>): Json[] {
  const out: Json[] = [];
  for (const [name, schema] of Object.entries(op.pathParams ?? {})) out.push({ name, in: 'path', required: true, schema: inputSchema(schema, refs) });
  for (const [name, schema] of Object.entries(op.query?.shape ?? {}) as Array<[string, z.ZodType]>) {
    out.push({ name, in: 'query', required: !schema.safeParse(undefined).success, schema: inputSchema(schema, refs), ...describe(schema) });
  }
  for (const [name, h] of Object.entries(op.headers ?? {}))
    out.push({ name, in: 'header', required: false, description: h.description, schema: inputSchema(h.schema, refs) });
  return out;
}

function describe(schema: z.ZodType): Json {
  return schema.description ? { description: schema.description } : {};
}

/** A JSON Schema of one value as the API answers it (response side). */
function outputSchema(schema: z.ZodType, refs: Map<z.ZodType, string>): Json {
  const named = refs.get(schema);
  if (named) return { $ref: `#/components/schemas/${named}` };
  return stripDialect(z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as Json);
}

/**
 * One server-sent event (OpenAPI 3.1 reads a `text/event-stream` schema as the schema of each
 * event): its name, its id (the etcd revision it reflects) and its `data`, JSON of `data`.
 */
function sseEvent(name: string, data: Json): Json {
  return {
    type: 'object',
    required: ['event', 'data'],
    properties: {
      event: { const: name },
      id: { type: 'string', pattern: '^[0-9]+$' },
      data: { type: 'string', contentMediaType: 'application/json', contentSchema: data },
    },
  };
}

/** The error answer of one status, its `code` narrowed to the codes the operation may give with that status. */
function errorAnswer(codes: ErrorCode[]): Json {
  const retry = codes.some((c) => statusOf[c] === 429 || statusOf[c] === 503);
  return {
    description: `\`error.code\`: ${codes.map((c) => `\`${c}\``).join(', ')}`,
    ...(retry ? { headers: { 'Retry-After': { description: 'Seconds after which a retry may succeed', schema: { type: 'integer', minimum: 0 } } } } : {}),
    content: {
      'application/json': {
        schema: {
          type: 'object',
          required: ['error'],
          additionalProperties: false,
          properties: { error: { allOf: [{ $ref: '#/components/schemas/ErrorBody' }, { properties: { code: { enum: codes } } }] } },
        },
      },
    },
  };
}

function responses(op: ApiOperation, outputRefs: Map<z.ZodType, string>): Json {
  const out: Json = {};
  for (const [status, a] of Object.entries(op.answers)) {
    const mediaType = a.mediaType ?? 'application/json';
    const schema = a.events
      ? sseEvent(a.events.name, outputSchema(a.events.data, outputRefs))
      : a.schema
        ? outputSchema(a.schema, outputRefs)
        : { type: 'string' };
    out[status] = {
      description: a.description,
      ...(a.headers ? { headers: Object.fromEntries(Object.entries(a.headers).map(([h, d]) => [h, { description: d, schema: { type: 'string' } }])) } : {}),
      content: { [mediaType]: { schema } },
      ...(a.links ? { links: a.links } : {}),
    };
  }
  // Reads by a token are rate-limited per caller; a body can be too large.
  const reads: ErrorCode[] = op.method === 'get' && op.caller !== 'anyone' ? ['read_rate_exceeded'] : [];
  const bodies: ErrorCode[] = op.body || op.binaryBody ? ['payload_too_large'] : [];
  const codes = [...new Set([...COMMON_ERRORS[op.caller], ...reads, ...bodies, ...op.errors])];
  const byStatus = new Map<number, ErrorCode[]>();
  for (const c of codes) byStatus.set(statusOf[c], [...(byStatus.get(statusOf[c]) ?? []), c]);
  for (const [status, cs] of [...byStatus].sort(([a], [b]) => a - b)) out[String(status)] = errorAnswer(cs);
  return out;
}

/** Named request schemas (components, read as input) and answer schemas (read as output). */
const REQUEST_COMPONENTS: Record<string, z.ZodType> = {
  SubmitJob: SubmitJobSchema,
  SubmitJobs: BulkSubmitSchema,
  SubmitWorkflow: SubmitWorkflowSchema,
  PutQueue: PutQueueSchema,
  PutTenant: PutTenantSchema,
  Cordon: CordonSchema,
  Drain: DrainSchema,
  CreateSchedule: CreateScheduleSchema,
  Resubmit: ResubmitSchema,
};
const ANSWER_COMPONENTS: Record<string, z.ZodType> = {
  ErrorBody: ErrorBodySchema,
  Job: JobViewSchema,
  JobList: JobListSchema,
  JobCounts: JobCountsSchema,
  SubmitJobsAnswer: BulkSubmitAnswerSchema,
  JobResults: JobResultsSchema,
  Why: WhyViewSchema,
  Workflow: WorkflowViewSchema,
  WorkflowList: WorkflowListSchema,
  Queue: QueueViewSchema,
  QueueList: QueueListSchema,
  QueueDeleted: QueueDeletedSchema,
  Tenant: TenantSchema,
  Node: NodeViewSchema,
  NodeList: NodeListSchema,
  Schedule: ScheduleViewSchema,
  ScheduleList: ScheduleListSchema,
  WorkingDir: WorkingDirViewSchema,
};

function components(named: Record<string, z.ZodType>, io: 'input' | 'output'): { schemas: Json; refs: Map<z.ZodType, string> } {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(named)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, { io, unrepresentable: 'any', uri: (id) => `#/components/schemas/${id}` }) as { schemas: Record<string, Json> };
  return {
    schemas: Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, stripDialect(s)])),
    refs: new Map(Object.entries(named).map(([id, s]) => [s, id])),
  };
}

/** Builds the OpenAPI 3.1 document of the API. Pure; the same input gives the same document. */
export function openApiDocument(info: { version: string } = { version: '1' }): Json {
  const req = components(REQUEST_COMPONENTS, 'input');
  const ans = components(ANSWER_COMPONENTS, 'output');
  const paths: Record<string, Json> = {};
  for (const op of API_OPERATIONS) {
    const params = parameters(op, req.refs);
    paths[op.path] ??= {};
    paths[op.path][op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      tags: op.caller === 'operator' ? [op.tag, OPERATOR_TAG] : [op.tag],
      ...(op.caller === 'anyone' ? { security: [] } : {}),
      ...(params.length ? { parameters: params } : {}),
      ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: inputSchema(op.body, req.refs) } } } } : {}),
      ...(op.binaryBody
        ? {
            requestBody: {
              required: true,
              description: op.binaryBody.description,
              content: Object.fromEntries(op.binaryBody.mediaTypes.map((m) => [m, { schema: { type: 'string', contentMediaType: m } }])),
            },
          }
        : {}),
      responses: responses(op, ans.refs),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'BatchAPI',
      version: info.version,
      description:
        'Multi-tenant batch compute: jobs, array jobs, workflows, queues and nodes. Every error answer is `{"error": {"code", "message", "field"?, "id"?, "retryAfterSeconds"?}}`; each code has one status (see `x-error-codes`).',
    },
    'x-error-codes': Object.fromEntries(Object.entries(statusOf)),
    tags: [...new Set(API_OPERATIONS.map((o) => o.tag)), OPERATOR_TAG].map((name) => ({
      name,
      ...(name === OPERATOR_TAG ? { description: 'Needs an operator token; a tenant token gets 403 permission_denied' } : {}),
    })),
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A tenant or operator token from the tokens file (`Authorization: Bearer <token>`)' },
      },
      schemas: { ...req.schemas, ...ans.schemas },
    },
  };
}
