/**
 * Service-to-service calls (`@nestjs/microservices` over TCP): their message patterns and
 * payloads, one place for both sides. State still moves through etcd; a call asks a
 * service for something only it can work out cheaply. Every payload is validated by the
 * receiver against its schema here and bounded (entries, numbers), like an API request:
 * a caller holding the service credential is still not trusted with the receiver's time.
 */
import { z } from 'zod';
import { type JobRecord, type JobSpec, JobPhase } from './model';
import { ImageSchema, MAX_TASKS, MaxRunningSchema, NameSchema, SelectorSchema, TimeoutSecondsSchema, TolerationsSchema, TopologySchema } from './schemas';
import { LimitsSchema, LocksSchema, type SemaphoreView } from './semaphore';
import type { QueueView, WhyView } from './views';

/** `scheduler.why`: a scheduler replica explains why a job waits, from its live cache. */
export const SCHEDULER_WHY = 'scheduler.why';

/**
 * The fields of a job a "why" reads: what placement reads and the queue order. Command, env,
 * labels and items are never sent between services (env may hold secrets; none of them
 * changes where a task fits).
 */
export type WhyJob = Pick<JobRecord, 'id' | 'tenant' | 'queue' | 'phase' | 'pending' | 'createdAt' | 'queuedAt' | 'cancelRequestedAt'> & {
  /** Its terminal counters: with `spec.maxRunning`, what tells how many tasks are bound or running. @default none (counted as 0) */
  counts?: JobRecord['counts'];
  spec: Pick<
    JobSpec,
    | 'resources'
    | 'tasks'
    | 'priority'
    | 'selector'
    | 'tolerations'
    | 'gang'
    | 'spread'
    | 'timeoutSeconds'
    | 'topology'
    | 'image'
    | 'maxRunning'
    | 'locks'
    | 'limits'
  >;
};

/** The `WhyJob` of a job record. */
export function whyJobOf(j: JobRecord): WhyJob {
  const { resources, tasks, priority, selector, tolerations, gang, spread, timeoutSeconds, topology, image, maxRunning, locks, limits } = j.spec;
  return {
    id: j.id,
    tenant: j.tenant,
    queue: j.queue,
    phase: j.phase,
    pending: j.pending,
    createdAt: j.createdAt,
    ...(j.queuedAt !== undefined ? { queuedAt: j.queuedAt } : {}),
    ...(j.cancelRequestedAt !== undefined ? { cancelRequestedAt: j.cancelRequestedAt } : {}),
    counts: j.counts,
    spec: {
      resources,
      tasks,
      priority,
      ...(selector ? { selector } : {}),
      ...(tolerations ? { tolerations } : {}),
      ...(gang !== undefined ? { gang } : {}),
      ...(spread !== undefined ? { spread } : {}),
      ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
      ...(topology !== undefined ? { topology } : {}),
      ...(image !== undefined ? { image } : {}),
      ...(maxRunning !== undefined ? { maxRunning } : {}),
      ...(locks !== undefined ? { locks } : {}),
      ...(limits !== undefined ? { limits } : {}),
    },
  };
}

/** Most pending ranges of a job a "why" call carries (retried tasks split ranges; a 1 MiB frame holds ~20,000). */
export const MAX_WHY_PENDING_RANGES = 50_000;
/** Most resource kinds of one task (cpu, memory, gpu and extended resources). */
export const MAX_RESOURCE_KINDS = 32;

/** Epoch milliseconds (a retry's `notBefore` may carry a fraction). */
const Time = z.number().min(0).max(8.64e15);
const Count = z.number().int().min(0).max(MAX_TASKS);

/** `scheduler.why`'s `job`: a `WhyJob`, every field bounded. */
export const WhyJobSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a job id: 1 to 64 letters, digits, "-" or "_"'),
  tenant: NameSchema,
  queue: NameSchema,
  phase: z.enum(Object.values(JobPhase) as [JobPhase, ...JobPhase[]]),
  pending: z
    .array(z.strictObject({ start: Count, end: Count, attempt: z.number().int().min(1).max(1_000_000), notBefore: Time.optional() }))
    .max(MAX_WHY_PENDING_RANGES),
  createdAt: Time,
  queuedAt: Time.optional(),
  cancelRequestedAt: Time.optional(),
  counts: z.strictObject({ succeeded: Count, failed: Count, cancelled: Count }).optional(),
  spec: z.strictObject({
    resources: z
      .record(z.string().min(1).max(64), z.number().finite().min(0))
      .refine((r) => Object.keys(r).length <= MAX_RESOURCE_KINDS, `at most ${MAX_RESOURCE_KINDS} resource kinds`),
    tasks: Count,
    priority: z.number().int().min(-1000).max(1000),
    selector: SelectorSchema.optional(),
    tolerations: TolerationsSchema.optional(),
    gang: z.boolean().optional(),
    spread: z.boolean().optional(),
    timeoutSeconds: TimeoutSecondsSchema.optional(),
    topology: TopologySchema.optional(),
    image: ImageSchema.optional(),
    maxRunning: MaxRunningSchema.optional(),
    locks: LocksSchema.optional(),
    limits: LimitsSchema.optional(),
  }),
});

/** The payload of `scheduler.why`: the job as the caller read it (the caller checked who may see it). */
export const SchedulerWhyRequestSchema = z.strictObject({ job: WhyJobSchema });
export type SchedulerWhyRequest = z.infer<typeof SchedulerWhyRequestSchema>;

/** The answer of `scheduler.why`. */
export type SchedulerWhyResponse = WhyView;

/** `scheduler.queues`: a scheduler replica's queue views, from its live cache (no listing of etcd per request). */
export const SCHEDULER_QUEUES = 'scheduler.queues';

/**
 * The payload of `scheduler.queues`: with `queue`, also the positions of that queue's waiting
 * jobs — only `tenant`'s when given (the caller checked who may see what).
 */
export const SchedulerQueuesRequestSchema = z.strictObject({ queue: NameSchema.optional(), tenant: NameSchema.optional() });
export type SchedulerQueuesRequest = z.infer<typeof SchedulerQueuesRequestSchema>;

/** The answer of `scheduler.queues`: every queue (the caller filters what it may show), and the asked queue's positions. */
export interface SchedulerQueuesResponse {
  queues: QueueView[];
  positions?: NonNullable<QueueView['positions']>;
  /** Every semaphore and held or awaited mutex (the caller filters what it may show). @default none (an older scheduler) */
  semaphores?: SemaphoreView[];
}
