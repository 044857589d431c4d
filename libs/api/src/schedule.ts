/**
 * The schedule vocabulary (cron jobs and cron workflows): the `POST /v1/schedules` body, the
 * record at `schedules/{tenant}/{name}` with the controller's bookkeeping of ticks and
 * instances, and the view the API returns. Cron evaluation and the tick decision are pure and
 * live in `@batchapi/workflows` (`cron.ts`); the elected controller is hosted by the quota service.
 */
import { z } from 'zod';
import type { JobSpec } from './model';
import { NameSchema } from './schemas';
import type { WorkflowStep } from './workflow';

/** What to do when a tick comes while instances of earlier ticks still run (as Kubernetes CronJob). */
export const ConcurrencyPolicy = {
  /** Start the new instance alongside the running ones (the default). */
  Allow: 'Allow',
  /** Do not start it while one runs: the tick waits, and is missed once past its starting deadline or superseded by the next tick. */
  Forbid: 'Forbid',
  /** Cancel the running instances, then start the new one. */
  Replace: 'Replace',
} as const;
export const ConcurrencyPolicySchema = z.enum(ConcurrencyPolicy);
export type ConcurrencyPolicy = z.infer<typeof ConcurrencyPolicySchema>;

/** Longest cron expression, in characters. */
export const MAX_CRON_CHARS = 128;
/** Most JSON bytes of a schedule's job or workflow template (the record holds it and each tick copies it). */
export const MAX_SCHEDULE_TEMPLATE_BYTES = 256 * 1024;
/** Most instances of one schedule running at once (`Allow`): further ticks wait, so the record stays bounded. */
export const MAX_ACTIVE_INSTANCES = 50;
/** Most finished instances kept per outcome (`successfulHistoryLimit`, `failedHistoryLimit`). */
export const MAX_HISTORY_LIMIT = 100;
/** Most schedules one tenant may have. */
export const MAX_SCHEDULES_PER_TENANT = 1000;
/** Longest starting deadline, in seconds (7 days). */
export const MAX_STARTING_DEADLINE_SECONDS = 7 * 24 * 3600;

/** True when `tz` is an IANA time zone this runtime knows (e.g. `Europe/Berlin`, `UTC`). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

// eslint-disable-next-line no-control-regex
const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f]*$/;

/** What a schedule that runs a workflow template gives: the template, its values, and optionally a version. */
export const ScheduleTemplateRefSchema = z.strictObject({
  /** A workflow template of the schedule's tenant (`PUT /v1/workflow-templates/{name}`). */
  name: NameSchema,
  /**
   * A value for each parameter; `{{schedule.date}}` and `{{schedule.time}}` in a value become the
   * tick's date (`2026-12-01`) and time (ISO 8601 with offset) in the schedule's time zone. @default {}
   */
  params: z
    // as a run's values (`ParamValueSchema`): at most 1,024 characters, no control characters
    .record(z.string().max(63), z.string().max(1024).regex(NO_CONTROL_CHARS, 'must hold no control characters'))
    .refine((p) => Object.keys(p).length <= 50, 'at most 50 parameters')
    .optional(),
  /** The version every tick runs. @default the latest at each tick */
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});

/** `POST /v1/schedules` body: exactly one of `job`, `workflow` and `template`. */
export const CreateScheduleSchema = z.strictObject({
  /** Unique within the tenant; instances are labelled with it. */
  name: NameSchema,
  /** Only operators may name a tenant other than their own. @default the token's tenant */
  tenant: NameSchema.optional(),
  /** Five-field cron (minute hour day-of-month month day-of-week), e.g. `0 2 * * *`; also `@daily`, `@hourly`… */
  schedule: z.string().min(1).max(MAX_CRON_CHARS),
  /** IANA time zone the cron fields are read in. @default "UTC" */
  timeZone: z.string().min(1).max(64).refine(isTimeZone, 'must be an IANA time zone, e.g. "Europe/Berlin"').optional(),
  /** @default "Allow" */
  concurrencyPolicy: ConcurrencyPolicySchema.optional(),
  /** A tick not started within this many seconds of its time is missed (counted, never started). @default none: only a later tick supersedes it */
  startingDeadlineSeconds: z.number().int().min(1).max(MAX_STARTING_DEADLINE_SECONDS).optional(),
  /** References to the most recent successful instances kept on the schedule. @default 3 */
  successfulHistoryLimit: z.number().int().min(0).max(MAX_HISTORY_LIMIT).optional(),
  /** References to the most recent failed (or cancelled) instances kept on the schedule. @default 1 */
  failedHistoryLimit: z.number().int().min(0).max(MAX_HISTORY_LIMIT).optional(),
  /** Created paused: no tick fires until resumed. @default false */
  suspend: z.boolean().optional(),
  /** The job each tick submits: the body of `POST /v1/jobs` without `tenant`. */
  job: z.record(z.string(), z.unknown()).optional(),
  /** The workflow each tick submits: the body of `POST /v1/workflows` without `tenant`. */
  workflow: z.record(z.string(), z.unknown()).optional(),
  /** The workflow template each tick runs, with its parameter values. */
  template: ScheduleTemplateRefSchema.optional(),
});
export type CreateScheduleRequest = z.infer<typeof CreateScheduleSchema>;

/** Query of the routes of one schedule: operators may name another tenant's. */
export const ScheduleTenantQuerySchema = z.strictObject({
  /** Only operators may name a tenant other than their own. @default the token's tenant */
  tenant: NameSchema.optional(),
});

/** `GET /v1/schedules` query. */
export const ListSchedulesQuerySchema = z.strictObject({
  /** @default 100 */
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** One tenant's schedules; only operators may name another tenant. @default the token's tenant (every tenant's for an operator) */
  tenant: NameSchema.optional(),
});

/** Body of pause, resume and trigger-now: an empty object. */
export const ScheduleActionSchema = z.strictObject({});

/** What each tick submits, validated and normalized when the schedule was created. */
export type ScheduleTemplate =
  | { kind: 'job'; queue: string; spec: JobSpec }
  | {
      kind: 'workflow';
      name: string;
      queue: string;
      labels: Record<string, string>;
      /** The workflow's deadline after its start, in seconds. @default none */
      deadlineSeconds?: number;
      /** Most steps running at once. @default unlimited */
      maxRunning?: number;
      steps: WorkflowStep[];
    }
  | {
      /** A run of a workflow template of the schedule's tenant, read at each tick. */
      kind: 'template';
      name: string;
      /** @default the latest at each tick */
      version?: number;
      /** The values, `{{schedule.date}}` and `{{schedule.time}}` unsubstituted. */
      params: Record<string, string>;
    };

/** One instance a schedule started: a job or a workflow. */
export interface ScheduleInstance {
  /** The job or workflow id. */
  id: string;
  kind: 'job' | 'workflow';
  /** The tick it was started for (epoch ms), or the time of the trigger-now request. */
  scheduledAt: number;
  /** Started by trigger-now, not by a tick. @default false */
  manual?: boolean;
  /** Its terminal phase, once finished. */
  phase?: string;
  /** Epoch ms it was seen finished. */
  finishedAt?: number;
}

/** The record at `schedules/{tenant}/{name}`. Every write compares its mod revision; the controller's carry its fence. */
export interface ScheduleRecord {
  name: string;
  tenant: string;
  schedule: string;
  timeZone: string;
  concurrencyPolicy: ConcurrencyPolicy;
  startingDeadlineSeconds?: number;
  successfulHistoryLimit: number;
  failedHistoryLimit: number;
  suspend: boolean;
  template: ScheduleTemplate;
  createdAt: number;
  /**
   * The last tick decided (epoch ms): fired, or missed. Written in the same transaction as the
   * instance it started, so a tick is never fired twice nor lost. @default createdAt (no tick before creation fires)
   */
  lastScheduleTime?: number;
  /** Epoch ms of the last tick that started an instance. */
  lastFiredTick?: number;
  /** Ticks never started: past their starting deadline, superseded by a later tick, or waiting on `Forbid` too long. */
  missedTicks: number;
  /** The latest missed tick (epoch ms). */
  lastMissedTick?: number;
  /** Instances started and not yet seen finished, oldest first. */
  active: ScheduleInstance[];
  /** Finished instances, most recent first, at most `successfulHistoryLimit`. */
  succeeded: ScheduleInstance[];
  /** Failed or cancelled instances, most recent first, at most `failedHistoryLimit`. */
  failed: ScheduleInstance[];
  /** Set by trigger-now (epoch ms); the controller starts one instance and clears it in the same transaction. */
  triggerRequestedAt?: number;
  traceparent?: string;
}

/** A schedule as the API returns it (times in epoch milliseconds). */
export interface ScheduleView {
  name: string;
  tenant: string;
  schedule: string;
  timeZone: string;
  concurrencyPolicy: ConcurrencyPolicy;
  startingDeadlineSeconds: number | null;
  successfulHistoryLimit: number;
  failedHistoryLimit: number;
  suspend: boolean;
  kind: 'job' | 'workflow' | 'template';
  createdAt: number;
  lastScheduleTime: number | null;
  lastFiredTick: number | null;
  missedTicks: number;
  lastMissedTick: number | null;
  triggerRequestedAt: number | null;
  active: ScheduleInstance[];
  succeeded: ScheduleInstance[];
  failed: ScheduleInstance[];
}

export function scheduleView(s: ScheduleRecord): ScheduleView {
  return {
    name: s.name,
    tenant: s.tenant,
    schedule: s.schedule,
    timeZone: s.timeZone,
    concurrencyPolicy: s.concurrencyPolicy,
    startingDeadlineSeconds: s.startingDeadlineSeconds ?? null,
    successfulHistoryLimit: s.successfulHistoryLimit,
    failedHistoryLimit: s.failedHistoryLimit,
    suspend: s.suspend,
    kind: s.template.kind,
    createdAt: s.createdAt,
    lastScheduleTime: s.lastScheduleTime ?? null,
    lastFiredTick: s.lastFiredTick ?? null,
    missedTicks: s.missedTicks,
    lastMissedTick: s.lastMissedTick ?? null,
    triggerRequestedAt: s.triggerRequestedAt ?? null,
    active: s.active,
    succeeded: s.succeeded,
    failed: s.failed,
  };
}

/** Label every instance of a schedule carries: the schedule's name. */
export const SCHEDULE_LABEL = 'batch.schedule';

const ScheduleInstanceSchema = z.strictObject({
  id: z.string(),
  kind: z.enum(['job', 'workflow']),
  /** Epoch milliseconds. */
  scheduledAt: z.number(),
  manual: z.boolean().optional(),
  phase: z.string().optional(),
  finishedAt: z.number().optional(),
});

/** A schedule as `GET /v1/schedules/{name}` answers it (the schema of `ScheduleView`; times in epoch milliseconds). */
export const ScheduleViewSchema = z.strictObject({
  name: z.string(),
  tenant: z.string(),
  schedule: z.string(),
  timeZone: z.string(),
  concurrencyPolicy: ConcurrencyPolicySchema,
  startingDeadlineSeconds: z.number().int().nullable(),
  successfulHistoryLimit: z.number().int(),
  failedHistoryLimit: z.number().int(),
  suspend: z.boolean(),
  kind: z.enum(['job', 'workflow', 'template']),
  createdAt: z.number(),
  lastScheduleTime: z.number().nullable(),
  lastFiredTick: z.number().nullable(),
  missedTicks: z.number().int(),
  lastMissedTick: z.number().nullable(),
  triggerRequestedAt: z.number().nullable(),
  active: z.array(ScheduleInstanceSchema),
  succeeded: z.array(ScheduleInstanceSchema),
  failed: z.array(ScheduleInstanceSchema),
});
/** `GET /v1/schedules`. */
export const ScheduleListSchema = z.strictObject({ schedules: z.array(ScheduleViewSchema) });

// The view and its schema describe the same shape (checked at compile time).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const _sameView: Same<z.infer<typeof ScheduleViewSchema>, ScheduleView> = true;
void _sameView;
