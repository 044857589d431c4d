/**
 * Request schemas (zod). The same schemas validate requests and generate the OpenAPI
 * document, so the two never disagree.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ApiError, ErrorCode } from './errors';
import type { JobSpec } from './model';
import { parseQuota, parseResources } from './quantity';
import type { Queue, Tenant, TenantLimits } from './model';
import { TASK_LIST_STATES } from './views';
import { PythonEnvSchema, pythonEnvOf } from './python-env';
import { LimitsSchema, LocksSchema } from './semaphore';
import { LabelSelectorError, MAX_LABEL_SELECTOR_CHARS, parseLabelSelector } from './label-selector';
import {
  checkJobRecordSize,
  jsonBytes,
  MAX_COMMAND_ARGS,
  MAX_ENV_ENTRIES,
  MAX_ENV_VALUE_BYTES,
  MAX_ITEMS,
  MAX_ITEMS_BYTES,
  MAX_LABELS,
  MAX_SELECTOR_ENTRIES,
  MAX_TOLERATIONS,
  utf8Bytes,
} from './limits';

/** A name of a tenant, queue or node: lower-case DNS label style. */
export const NameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be lower-case letters, digits and "-"');
const Quantity = z.union([z.string().max(64), z.number().nonnegative()]);
const EnvName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');
const LabelKey = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/, 'must be a label key');
/**
 * A name of a job, workflow or workflow step, at most `max` characters: letters, digits, "-",
 * "_" and ".", starting and ending with a letter or digit.
 */
export const dottedName = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'must be letters, digits, "-", "_" or "."');

/** Most tasks in one array job. */
export const MAX_TASKS = 10_000_000;

/** A map of at most `n` entries (a job's env, labels, selector): each is copied into records etcd must hold. */
const atMostEntries = (n: number, what: string) => [(r: Record<string, string>) => Object.keys(r).length <= n, `at most ${n} ${what}`] as const;

/** A job's node selector (also checked on `scheduler.why` calls): at most `MAX_SELECTOR_ENTRIES` pairs. */
/** Deadline of an attempt, in whole seconds: 1 s to 30 days. */
export const TimeoutSecondsSchema = z
  .number()
  .int()
  .min(1)
  .max(30 * 24 * 3600);

export const SelectorSchema = z.record(LabelKey, z.string().max(63)).refine(...atMostEntries(MAX_SELECTOR_ENTRIES, 'selector entries'));
/** A job's tolerations (also checked on `scheduler.why` calls): at most `MAX_TOLERATIONS`. */
export const TolerationsSchema = z
  .array(
    z.strictObject({
      key: LabelKey,
      operator: z.enum(['Equal', 'Exists']).optional(),
      value: z.string().max(63).optional(),
      effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
    }),
  )
  .max(MAX_TOLERATIONS);

/** A topology level a job names, e.g. `rack`: lower-case DNS label style (the scheduler's `BATCH_TOPOLOGY_LEVELS` says which exist). */
export const TopologyLevelSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a topology level name such as "rack": lower-case letters, digits and "-"');

/**
 * Where a job's tasks may go in the node topology (blocks, racks, hosts): `required` keeps every
 * task of a placement in one domain of that level (a gang waits otherwise); `preferred` packs
 * them into as few domains of that level as fit, falling back up the tree. One of the two.
 */
export const TopologySchema = z
  .strictObject({
    /** Every task in one domain of this level, or wait. @default none */
    required: TopologyLevelSchema.optional(),
    /** As few domains of this level as fit; then the level above. @default none */
    preferred: TopologyLevelSchema.optional(),
  })
  .refine((t) => (t.required === undefined) !== (t.preferred === undefined), 'set exactly one of required or preferred');

/**
 * Most tasks of an array job bound or running at once (Slurm's `%N`, Kubernetes' `parallelism`):
 * a whole number from 1 to `MAX_TASKS`. A gang's must be at least its task count.
 */
export const MaxRunningSchema = z.number().int().min(1).max(MAX_TASKS);

/** A container image reference. */
export const ImageSchema = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/, 'must be an image reference such as "python:3.12" or "registry/x@sha256:…"');

/** The digest of a `working_dir` package: `sha256:` and 64 lowercase hex digits (of its tar, see libs/blobs' working-dir.ts). */
export const WorkingDirDigestSchema = z
  .string()
  .regex(/^sha256:[0-9a-f]{64}$/, 'must be "sha256:" and 64 lowercase hex digits, as `batch submit --working-dir` or the SDK computes it');

/** A job's working dir: a package uploaded to `PUT /v1/blobs/working-dirs/{digest}` by the same tenant. */
export const WorkingDirSchema = z.strictObject({ digest: WorkingDirDigestSchema });

/** `POST /v1/jobs` body. */
export const SubmitJobSchema = z.strictObject({
  /** Human name. @default "job" */
  name: dottedName(128).optional(),
  /** argv: program then arguments; no shell. */
  command: z
    .array(z.string().max(4096))
    .min(1)
    .max(MAX_COMMAND_ARGS)
    .refine((c) => (c[0] ?? '').length > 0, 'command[0] must name a program'),
  /** Environment variables for every task: at most `MAX_ENV_ENTRIES` (512), each value at most 32 KiB of UTF-8. @default {} */
  env: z
    .record(
      EnvName,
      z
        .string()
        .max(MAX_ENV_VALUE_BYTES, `must be at most ${MAX_ENV_VALUE_BYTES} bytes (UTF-8); pass larger values through a file`)
        .refine((v) => utf8Bytes(v) <= MAX_ENV_VALUE_BYTES, `must be at most ${MAX_ENV_VALUE_BYTES} bytes (UTF-8); pass larger values through a file`),
    )
    .refine(...atMostEntries(MAX_ENV_ENTRIES, 'variables; pass more through a file the task reads'))
    .optional(),
  /** Per-task resources. @default {"cpu": "1", "memory": "256Mi"} */
  resources: z.record(z.string(), Quantity).optional(),
  /** Number of tasks (array job). @default 1 */
  tasks: z.number().int().min(1).max(MAX_TASKS).optional(),
  /** Higher runs first. @default 0 */
  priority: z.number().int().min(-1000).max(1000).optional(),
  /** Queue name. @default "default" */
  queue: NameSchema.optional(),
  /** Tenant; only operators may name a tenant other than their own. @default the token's tenant */
  tenant: NameSchema.optional(),
  /** At most `MAX_LABELS` (64). @default {} */
  labels: z
    .record(LabelKey, z.string().max(63))
    .refine(...atMostEntries(MAX_LABELS, 'labels'))
    .optional(),
  /** Node labels that must match, e.g. `{"gpu.model": "A100"}`; at most `MAX_SELECTOR_ENTRIES` (32). @default {} */
  selector: SelectorSchema.optional(),
  /** Taints tolerated. @default [] */
  tolerations: TolerationsSchema.optional(),
  /** All tasks start together or none do. @default false */
  gang: z.boolean().optional(),
  /** Seconds a gang may wait to start before it fails with the reason. @default 600 */
  gangTimeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 3600)
    .optional(),
  /** Prefer the emptiest nodes instead of packing. @default false */
  spread: z.boolean().optional(),
  /** Most tasks bound or running at once (see `MaxRunningSchema`). @default unlimited */
  maxRunning: MaxRunningSchema.optional(),
  /** Topology-aware placement: `{"required": "rack"}` or `{"preferred": "rack"}` (see `TopologySchema`). @default none */
  topology: TopologySchema.optional(),
  /** Mutexes each running task holds alone (see `LocksSchema`; `global/…` for operators' shared ones). @default none */
  locks: LocksSchema.optional(),
  /** Units of named semaphores each running task holds, e.g. `{"db/warehouse-conn": 1}` (see `LimitsSchema`). @default none */
  limits: LimitsSchema.optional(),
  /** Deadline of each attempt in seconds. @default none */
  timeoutSeconds: TimeoutSecondsSchema.optional(),
  /**
   * Container image each task runs in. Only nodes that run images take such a job (the Kubernetes
   * backend's: `CONTAINER_RUNTIME_LABEL`); with none live the submit is refused
   * (`no_container_runtime`), never run on a process node without it. @default none: on the
   * Kubernetes backend, the executor's BATCH_TASK_IMAGE; elsewhere the node's own machine
   */
  image: ImageSchema.optional(),
  /**
   * User code each task runs in: the package (uploaded before by this tenant) is unpacked,
   * read-only, as the task's working directory (its cwd). Unknown to the tenant's blob store →
   * 422 `unknown_working_dir`. Process backend only. @default none: an empty directory
   */
  workingDir: WorkingDirSchema.optional(),
  /**
   * A Python environment each task runs in: the node builds a virtual environment with these
   * requirements once per their digest and its interpreter (`pip install` from the index its
   * operator configured) and puts its `bin` first on the task's `PATH` (`python3` is then the
   * environment's). A build that fails ends the attempt `NodeError` with pip's output in the task's
   * stderr. Process backend only. @default none: the node's own `python3`
   */
  python: PythonEnvSchema.optional(),
  /**
   * Per-task inputs: task `i` sees `BATCH_MAP_ITEM` = the JSON of `items[i]`. Its length must
   * equal `tasks` (or sets `tasks` when that is absent); at most `MAX_ITEMS` (100,000) entries and
   * 256 KiB of JSON (UTF-8). @default none
   */
  items: z.array(z.unknown()).max(MAX_ITEMS).optional(),
  /** Retries of failed tasks (see `RetryPolicy`). @default no retry */
  retry: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(100),
      backoffSeconds: z.number().min(0).max(86_400).optional(),
      maxBackoffSeconds: z
        .number()
        .min(0)
        .max(7 * 86_400)
        .optional(),
      retryOnExitCodes: z.array(z.number().int().min(1).max(255)).max(255).optional(),
      failFastOnExitCodes: z.array(z.number().int().min(1).max(255)).max(255).optional(),
      retryOnReasons: z
        .array(z.enum(['Error', 'OOMKilled', 'DeadlineExceeded']))
        .max(3)
        .optional(),
    })
    .optional(),
});
export type SubmitJobRequest = z.infer<typeof SubmitJobSchema>;

/** Per-task resources when a request names none. */
export const DEFAULT_RESOURCES = { cpu: '1', memory: '256Mi' } as const;

/** Turns a zod failure into `invalid_argument` naming the first bad field. */
export function schemaError(error: z.ZodError, root = ''): ApiError {
  const issue = error.issues[0];
  // An unknown key is named itself, not its parent object.
  const extra = issue.code === 'unrecognized_keys' ? [issue.keys[0]] : [];
  const path = [root, ...issue.path.map(String), ...extra].filter(Boolean).join('.');
  const field = path || '(body)';
  return new ApiError(ErrorCode.InvalidArgument, `${field}: ${issue.message}`, { field });
}

/** Parses any value with a schema or throws `invalid_argument` naming the field. */
export function parseWith<T>(schema: z.ZodType<T>, value: unknown, root = ''): T {
  const r = schema.safeParse(value);
  if (!r.success) throw schemaError(r.error, root);
  return r.data;
}

/**
 * Validates a submit body and normalizes it. Throws `ApiError(invalid_argument)` naming the
 * field, or `payload_too_large` when the job's stored record would be over `MAX_JOB_RECORD_BYTES`.
 */
export function parseSubmit(body: unknown): { spec: JobSpec; queue: string; tenant?: string } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(ErrorCode.InvalidArgument, 'the body must be a JSON object', { field: '(body)' });
  }
  return normalizeSubmit(parseWith(SubmitJobSchema, body));
}

let submitSchemaDigestMemo: string | undefined;

/**
 * Identity of the job schema (`SubmitJobSchema`): a digest of it as JSON Schema, computed once per
 * process. A workflow run made from a body this code validated records it
 * (`WorkflowRecord.stepsValidatedBy`); the controller skips the schema for a step's job (and runs
 * `normalizeSubmit` only) when the record's equals this one's — so a schedule saved, or a run
 * retried, under an older and looser schema is read against the whole schema again. Checks the
 * JSON Schema cannot show (refinements) are the cross-field and size checks `normalizeSubmit`
 * runs anyway.
 */
export function submitSchemaDigest(): string {
  submitSchemaDigestMemo ??= `sha256:${createHash('sha256')
    .update(JSON.stringify(z.toJSONSchema(SubmitJobSchema, { io: 'input', unrepresentable: 'any' })))
    .digest('hex')}`;
  return submitSchemaDigestMemo;
}

/**
 * `parseSubmit` after its schema check: normalizes a body that already passed `SubmitJobSchema`
 * (defaults filled in, resources parsed) and runs the checks across fields and of size (items
 * against `tasks` and `MAX_ITEMS_BYTES`, `maxRunning` against a gang, `MAX_JOB_RECORD_BYTES`). For
 * a body made only of parts validated before, e.g. a workflow step's job checked at the workflow's
 * submit (`readWorkflowBody`) as the controller submits it: the schema is most of
 * `parseSubmit`'s time (zod). Throws as `parseSubmit` does.
 */
export function normalizeSubmit(req: SubmitJobRequest): { spec: JobSpec; queue: string; tenant?: string } {
  if (req.items) {
    if (req.tasks !== undefined && req.tasks !== req.items.length) {
      throw new ApiError(ErrorCode.InvalidArgument, `items: has ${req.items.length} entries but tasks is ${req.tasks}; they must be equal (or omit tasks)`, {
        field: 'items',
      });
    }
    if (req.items.length === 0) throw new ApiError(ErrorCode.InvalidArgument, 'items: must not be empty', { field: 'items' });
    if (jsonBytes(req.items) > MAX_ITEMS_BYTES)
      throw new ApiError(ErrorCode.InvalidArgument, `items: over ${MAX_ITEMS_BYTES} bytes of JSON; pass references (URIs) to large data instead`, {
        field: 'items',
      });
  }
  const spec: JobSpec = {
    name: req.name ?? 'job',
    command: req.command,
    env: req.env ?? {},
    resources: parseResources(req.resources ?? DEFAULT_RESOURCES),
    tasks: req.tasks ?? req.items?.length ?? 1,
    priority: req.priority ?? 0,
    labels: req.labels ?? {},
    ...(req.selector ? { selector: req.selector } : {}),
    ...(req.tolerations ? { tolerations: req.tolerations } : {}),
    ...(req.gang ? { gang: true } : {}),
    ...(req.gangTimeoutSeconds ? { gangTimeoutSeconds: req.gangTimeoutSeconds } : {}),
    ...(req.maxRunning !== undefined ? { maxRunning: req.maxRunning } : {}),
    ...(req.locks ? { locks: req.locks } : {}),
    ...(req.limits ? { limits: req.limits } : {}),
    ...(req.spread ? { spread: true } : {}),
    ...(req.topology ? { topology: req.topology } : {}),
    ...(req.timeoutSeconds ? { timeoutSeconds: req.timeoutSeconds } : {}),
    ...(req.image ? { image: req.image } : {}),
    ...(req.workingDir ? { workingDir: { digest: req.workingDir.digest } } : {}),
    ...(req.python ? { python: pythonEnvOf(req.python) } : {}),
    ...(req.retry ? { retry: req.retry } : {}),
    ...(req.items ? { items: req.items } : {}),
  };
  checkMaxRunning(spec);
  checkJobRecordSize(spec);
  return { spec, queue: req.queue ?? 'default', tenant: req.tenant };
}

/**
 * A gang starts all its tasks at once: a `maxRunning` below its task count would hold it forever.
 * @throws ApiError max_running_below_gang (422) naming `maxRunning`
 */
function checkMaxRunning(spec: JobSpec): void {
  if (spec.gang && spec.maxRunning !== undefined && spec.maxRunning < spec.tasks) {
    throw new ApiError(
      ErrorCode.MaxRunningBelowGang,
      `maxRunning: ${spec.maxRunning} is below the gang's ${spec.tasks} tasks, which must all start together; raise it to at least ${spec.tasks} or drop gang`,
      { field: 'maxRunning' },
    );
  }
}

/** One entry of the tokens file: a token is stored only as its SHA-256 hex digest. */
export const TokenEntrySchema = z.strictObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  tenant: NameSchema,
  role: z.enum(['tenant', 'operator']),
  /** When the token stops being accepted (RFC 3339 with an offset, e.g. `2027-03-01T00:00:00Z`): from then on it is refused with 401 `unauthenticated`. @default never */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  /** A name for people and metrics (who holds it, what it is for), never the token; unique in the file: it labels the token's expiry gauge. @default the digest's first 12 hex digits */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/)
    .optional(),
});
/** Most tokens a tokens file holds (each request compares its digest with every one). */
export const MAX_TOKENS = 10_000;
export const TokensFileSchema = z.strictObject({
  tokens: z
    .array(TokenEntrySchema)
    .max(MAX_TOKENS)
    .superRefine((tokens, ctx) => {
      // A digest twice would make which entry speaks for it depend on the order of the lines; a name
      // twice would fold two tokens' expiries into one series, hiding the earlier one.
      const seen = { sha256: new Set<string>(), name: new Set<string>() };
      tokens.forEach((t, i) => {
        for (const field of ['sha256', 'name'] as const) {
          const v = t[field];
          if (v === undefined) continue;
          if (seen[field].has(v))
            ctx.addIssue({
              code: 'custom',
              path: [i, field],
              message: `${field} ${field === 'name' ? v : 'of this token'} is already given by an earlier entry`,
            });
          seen[field].add(v);
        }
      });
    }),
});
export type TokensFile = z.infer<typeof TokensFileSchema>;

/** Per-tenant submit throttles (token buckets shared by every admission replica). */
export const TenantLimitsSchema = z.strictObject({
  /** Submit requests per second, sustained. @default unlimited */
  submitsPerSecond: z.number().positive().max(1e6).optional(),
  /** Submit requests allowed in a burst. @default max(1, submitsPerSecond) */
  submitBurst: z.number().int().positive().max(1e7).optional(),
  /** Tasks submitted per second, sustained (an array job of n tasks counts n). @default unlimited */
  tasksPerSecond: z.number().positive().max(1e9).optional(),
  /** Tasks allowed in a burst. @default max(1, tasksPerSecond) */
  taskBurst: z.number().int().positive().max(1e10).optional(),
});

/** Most a `maxRunningTasks` may be: 10^9 tasks. */
export const MAX_RUNNING_TASKS_CAP = 1e9;
/** Most a `gpuHoursPerDay` may be: 10^7 GPU-hours (over 400,000 GPUs all day). */
export const MAX_GPU_HOURS_PER_DAY = 1e7;

/** The running caps a queue and a tenant share (see `plugins/running-caps` of libs/scheduling). */
const CapFields = {
  /** Most tasks bound or running at once (the scheduler's running caps; 0 starts none). @default unlimited */
  maxRunningTasks: z.number().int().nonnegative().max(MAX_RUNNING_TASKS_CAP).optional(),
  /** Rolling 24-hour budget of GPU-hours (GPUs × hours; milli-GPU shares by their fraction); work asking for GPUs waits while it is used up. @default unlimited */
  gpuHoursPerDay: z.number().nonnegative().max(MAX_GPU_HOURS_PER_DAY).optional(),
};

/** `PUT /v1/tenants/:name` body. */
export const PutTenantSchema = z.strictObject({
  /** Fair-share weight. @default 1 */
  weight: z.number().positive().max(1e6).optional(),
  limits: TenantLimitsSchema.optional(),
  ...CapFields,
});

/** A resource a price may be set for: `cpu`, `memory`, `gpu`, `gpu:<model>`, or an extended `domain/name`. */
export const ResourcePriceName = /^(cpu|memory|gpu|gpu:[A-Za-z0-9._-]{1,63}|[a-z0-9.-]+\/[A-Za-z0-9._-]+)$/;

const QueueFields = {
  tenant: NameSchema,
  /** Guaranteed resources of the queue's running tasks (and `gpu:<model>`); an absent resource is unlimited. @default {} */
  nominal: z.record(z.string(), Quantity).optional(),
  /** Queues of one cohort lend and borrow unused quota. @default none */
  cohort: NameSchema.optional(),
  /** Most the queue may hold beyond its nominal, borrowed from its cohort. @default unlimited within the cohort */
  borrowingLimit: z.record(z.string(), Quantity).optional(),
  /** Most of its nominal the queue lends to its cohort. @default all of it */
  lendingLimit: z.record(z.string(), Quantity).optional(),
  /** Most tasks waiting in the queue; a submit beyond it gets 429 `queue_full`. @default unlimited */
  maxPendingTasks: z.number().int().positive().max(1e10).optional(),
  /** How long work may wait before BatchQueuePendingTooLong fires, in seconds. @default 3600 */
  pendingAgeSloSeconds: z.number().int().positive().max(31_536_000).optional(),
  /** Fair-share weight. @default 1 */
  weight: z.number().positive().max(1e6).optional(),
  /** Priority aging: points added to the effective priority of waiting work per hour it waits. @default the scheduler's BATCH_PRIORITY_AGING_PER_HOUR (0: off) */
  priorityAgingPerHour: z.number().nonnegative().max(1e6).optional(),
  /** Priority aging: most points aging adds to a job's priority. @default the scheduler's BATCH_PRIORITY_AGING_MAX */
  priorityAgingMax: z.number().int().nonnegative().max(2000).optional(),
  /**
   * Prices fair share charges this queue's usage at, over the scheduler's BATCH_FAIR_SHARE_PRICES: per core (`cpu`), GiB
   * (`memory`), GPU (`gpu`) or GPU of a model (`gpu:H100`). At most 64 entries. @default the cluster-wide prices
   */
  prices: z
    .record(z.string().max(128), z.number().nonnegative().max(1e6))
    .superRefine((p, ctx) => {
      const keys = Object.keys(p);
      if (keys.length > 64) ctx.addIssue({ code: 'custom', message: 'at most 64 prices' });
      for (const k of keys.slice(0, 64))
        if (!ResourcePriceName.test(k))
          ctx.addIssue({ code: 'custom', path: [k], message: 'unknown resource; price cpu, memory, gpu, gpu:<model> or a domain/name resource' });
    })
    .optional(),
  ...CapFields,
};

/** `PUT /v1/queues/:name` body. */
export const PutQueueSchema = z.strictObject(QueueFields);
export type PutQueue = z.infer<typeof PutQueueSchema>;

/** The quota service's seed file: tenants and queues that must exist. */
export const ClusterConfigSchema = z.strictObject({
  tenants: z.array(z.strictObject({ name: NameSchema, ...PutTenantSchema.shape })),
  queues: z.array(z.strictObject({ name: NameSchema, ...QueueFields })),
});
export type ClusterConfig = z.infer<typeof ClusterConfigSchema>;

/** A queue record from its validated description; quantities are normalized (`field` names the body path in errors). */
export function toQueue(name: string, b: PutQueue, field = ''): Queue {
  const at = (k: string) => (field ? `${field}.${k}` : k);
  return {
    name,
    tenant: b.tenant,
    nominal: parseQuota(b.nominal ?? {}, at('nominal')),
    ...(b.cohort ? { cohort: b.cohort } : {}),
    ...(b.borrowingLimit ? { borrowingLimit: parseQuota(b.borrowingLimit, at('borrowingLimit')) } : {}),
    ...(b.lendingLimit ? { lendingLimit: parseQuota(b.lendingLimit, at('lendingLimit')) } : {}),
    ...(b.maxPendingTasks ? { maxPendingTasks: b.maxPendingTasks } : {}),
    ...(b.pendingAgeSloSeconds ? { pendingAgeSloSeconds: b.pendingAgeSloSeconds } : {}),
    ...(b.weight ? { weight: b.weight } : {}),
    ...(b.priorityAgingPerHour !== undefined ? { priorityAgingPerHour: b.priorityAgingPerHour } : {}),
    ...(b.priorityAgingMax !== undefined ? { priorityAgingMax: b.priorityAgingMax } : {}),
    ...(b.prices && Object.keys(b.prices).length ? { prices: b.prices } : {}),
    ...(b.maxRunningTasks !== undefined ? { maxRunningTasks: b.maxRunningTasks } : {}),
    ...(b.gpuHoursPerDay !== undefined ? { gpuHoursPerDay: b.gpuHoursPerDay } : {}),
  };
}

/** A tenant record from its validated description. */
export function toTenant(name: string, b: { weight?: number; limits?: TenantLimits; maxRunningTasks?: number; gpuHoursPerDay?: number }): Tenant {
  return {
    name,
    weight: b.weight ?? 1,
    ...(b.limits && Object.keys(b.limits).length ? { limits: b.limits } : {}),
    ...(b.maxRunningTasks !== undefined ? { maxRunningTasks: b.maxRunningTasks } : {}),
    ...(b.gpuHoursPerDay !== undefined ? { gpuHoursPerDay: b.gpuHoursPerDay } : {}),
  };
}

/** A time in a query: RFC 3339 with a zone (`2026-12-01T00:00:00Z`). */
const QueryTime = z.iso.datetime({ offset: true });

/**
 * The orders of `GET /v1/jobs`: by submission (job ids begin with their submit time, so this is
 * id order; a workflow's step jobs sort by their workflow's) or by end (finished jobs only); a
 * leading `-` is newest first.
 */
export const JOB_SORTS = ['submitted', '-submitted', 'finished', '-finished'] as const;
export type JobSort = (typeof JOB_SORTS)[number];

/** `GET /v1/jobs` query. */
export const ListJobsQuerySchema = z.strictObject({
  state: z.enum(['Submitted', 'Queued', 'Running', 'Succeeded', 'Failed', 'Cancelled', 'Rejected']).optional(),
  queue: NameSchema.optional(),
  /** Only this tenant's jobs (operators; a tenant may name only itself). @default every tenant the caller may see */
  tenant: NameSchema.optional(),
  /** Kubernetes label selector: `team=ml,env!=dev,tier in (a,b),gpu,!spot`; at most 1024 characters and 20 requirements. @default none */
  labelSelector: z
    .string()
    .max(MAX_LABEL_SELECTOR_CHARS)
    .superRefine((text, ctx) => {
      try {
        parseLabelSelector(text);
      } catch (err) {
        if (!(err instanceof LabelSelectorError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.message });
      }
    })
    .optional(),
  /** Only jobs whose name starts with this (case-sensitive). @default none */
  namePrefix: z.string().min(1).max(253).optional(),
  /** Only the step jobs of this workflow. @default none */
  workflow: z.string().min(1).max(128).optional(),
  /** Submitted at or after this time. @default no bound */
  submittedSince: QueryTime.optional(),
  /** Submitted before this time. @default no bound */
  submittedBefore: QueryTime.optional(),
  /** Finished at or after this time (unfinished jobs are left out). @default no bound */
  finishedSince: QueryTime.optional(),
  /** Finished before this time (unfinished jobs are left out). @default no bound */
  finishedBefore: QueryTime.optional(),
  /** `submitted` (id order: submission), `finished` (finished jobs only, by end), `-` for newest first. @default submitted */
  sort: z.enum(JOB_SORTS).optional(),
  /** @default 50 */
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** Opaque cursor from the previous page's `nextPageToken` (of the same `sort`). */
  pageToken: z.string().max(256).optional(),
});
export type ListJobsQuery = z.infer<typeof ListJobsQuerySchema>;

/** What `GET /v1/usage` sums by: `tenant`, `queue`, `gpuModel` (the node's `gpu.model`), or `label:<key>` (a job label). */
export const USAGE_GROUP_BY = /^(tenant|queue|gpuModel|label:[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?)$/;

/** The steps `GET /v1/usage` can split a window into. */
export const USAGE_STEPS = ['hour', 'day'] as const;
/** A step of `GET /v1/usage`. */
export type UsageStep = (typeof USAGE_STEPS)[number];
/** Each step's length, in milliseconds. */
export const USAGE_STEP_MS: Record<UsageStep, number> = { hour: 3_600_000, day: 86_400_000 };
/** Most steps one usage window may be split into (31 days by the hour, a year and a month by the day). */
export const MAX_USAGE_STEPS = 800;

/** `GET /v1/usage` query. */
export const UsageQuerySchema = z.strictObject({
  /** Attempts that ended at or after this time. @default 7 days before `to` */
  from: QueryTime.optional(),
  /** Attempts that ended before this time; at most 400 days after `from`. @default now */
  to: QueryTime.optional(),
  /** `tenant`, `queue`, `gpuModel` or `label:<key>`. @default tenant */
  groupBy: z.string().max(260).regex(USAGE_GROUP_BY, 'must be tenant, queue, gpuModel or label:<key>').optional(),
  /** Only this tenant's jobs (operators; a tenant may name only itself). @default every tenant the caller may see */
  tenant: NameSchema.optional(),
  /** Only this queue's jobs. @default every queue */
  queue: NameSchema.optional(),
  /**
   * Also split each group's hours into steps of an hour or a day from `from` (a stacked chart's
   * columns); the window may hold at most `MAX_USAGE_STEPS` steps. @default no split
   */
  step: z.enum(USAGE_STEPS).optional(),
});
export type UsageQuery = z.infer<typeof UsageQuerySchema>;

/** Query of `GET /v1/jobs/:id/tasks`. */
export const ListTasksQuerySchema = z.strictObject({
  /** Only attempts in this state (`Failed`: which tasks failed, and why). @default any */
  state: z.enum(TASK_LIST_STATES).optional(),
  /** @default 100 */
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** Opaque cursor from the previous page's `nextPageToken`. */
  pageToken: z.string().max(256).optional(),
});
export type ListTasksQuery = z.infer<typeof ListTasksQuerySchema>;

/** The `Idempotency-Key` header of `POST /v1/jobs` and `POST /v1/workflows` (and `idempotencyKey` of a bulk entry). */
export const IdempotencyKeySchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** Most jobs in one `POST /v1/jobs:batch`. */
export const MAX_BULK_JOBS = 1000;
/**
 * `POST /v1/jobs:batch` body. Each entry is a `POST /v1/jobs` body plus an optional
 * `idempotencyKey`, validated on its own so that each gets its own answer (a bad entry is a
 * 400 in its slot of the results, not a refusal of the whole request).
 */
export const BulkSubmitSchema = z.strictObject({ jobs: z.array(z.record(z.string(), z.unknown())).min(1).max(MAX_BULK_JOBS) });

/** `GET /v1/jobs/:id/tasks/:index/logs` query. */
export const LogsQuerySchema = z.strictObject({
  /** @default "stdout" */
  stream: z.enum(['stdout', 'stderr']).optional(),
  /** @default the latest attempt */
  attempt: z.coerce.number().int().min(1).max(1_000_000).optional(),
  /** Keep the answer open and send what the task writes next, until the attempt ends. @default false */
  follow: z.enum(['true', 'false', '1', '0']).optional(),
});

/** `GET /v1/workflows` query. */
export const ListWorkflowsQuerySchema = z.strictObject({
  /** @default 100 */
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** Only the runs of this workflow template (those labelled `batch.template=<name>`). @default every workflow */
  template: NameSchema.optional(),
});

/** `POST /v1/nodes/:name/cordon` body. */
export const CordonSchema = z.strictObject({ reason: z.string().min(1).max(512) });
/** `POST /v1/nodes/:name/drain` body. */
export const DrainSchema = z.strictObject({
  reason: z.string().min(1).max(512),
  /** Seconds running tasks get to finish before they are preempted and requeued. @default 300 */
  deadlineSeconds: z
    .number()
    .int()
    .min(0)
    .max(7 * 86_400)
    .optional(),
});
