/**
 * Named semaphores and mutexes (issue 17's "distributed locks and limits, as user features"):
 * what a job asks for (`locks`, `limits`), the semaphore records operators and tenants create
 * (`PUT /v1/semaphores/{name}`), and how a name resolves to the one semaphore it means.
 *
 * A **semaphore** has a capacity of units; each running task of a job with `limits: {name: n}`
 * holds `n` of them from its bind until its attempt ends (or its node is declared lost). A
 * **mutex** (`locks: [name]`) is a semaphore of capacity 1 that needs no record: each running
 * task of the job holds it alone. Names are a tenant's own; a name starting `global/` is one an
 * operator created for every tenant.
 */
import { z } from 'zod';

/** Most entries of a job's `locks`, and of its `limits`. */
export const MAX_JOB_SEMAPHORES = 8;
/** Most units of one semaphore a task may ask for, and the most capacity a semaphore may have. */
export const MAX_SEMAPHORE_UNITS = 100_000;
/** The name prefix of the semaphores and mutexes every tenant shares (operators create them). */
export const GLOBAL_SEMAPHORE_PREFIX = 'global/';

/**
 * A semaphore or mutex name: 1 to 128 characters, one or more `/`-separated segments of
 * lower-case letters, digits, `.`, `_` and `-`, each starting and ending with a letter or digit
 * (`db/warehouse-conn`, `dataset/lidar-2026-11`). `global/…` names the shared ones.
 */
export const SemaphoreNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(
    /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(\/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$/,
    'must be "/"-separated segments of lower-case letters, digits, ".", "_" and "-" (e.g. "db/warehouse-conn")',
  );

/** A job's mutexes: at most `MAX_JOB_SEMAPHORES` distinct names; each running task holds each alone. */
export const LocksSchema = z
  .array(SemaphoreNameSchema)
  .min(1)
  .max(MAX_JOB_SEMAPHORES)
  .refine((l) => new Set(l).size === l.length, 'must not name a lock twice');

/** A job's semaphore units per running task, by semaphore name: at most `MAX_JOB_SEMAPHORES` entries of 1 to `MAX_SEMAPHORE_UNITS`. */
export const LimitsSchema = z
  .record(SemaphoreNameSchema, z.number().int().min(1).max(MAX_SEMAPHORE_UNITS))
  .refine((l) => Object.keys(l).length >= 1 && Object.keys(l).length <= MAX_JOB_SEMAPHORES, `must have 1 to ${MAX_JOB_SEMAPHORES} entries`);

/** `PUT /v1/semaphores/{name}` body. */
export const PutSemaphoreSchema = z.strictObject({
  /** Units the semaphore hands out at once: 1 to `MAX_SEMAPHORE_UNITS`. Lowering it below what is held stops new grants until enough are given back; nothing running is stopped. */
  capacity: z.number().int().min(1).max(MAX_SEMAPHORE_UNITS),
  /** Whose semaphore it is; only operators may name another tenant. Ignored for `global/…` names. @default the token's tenant */
  tenant: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be lower-case letters, digits and "-"')
    .optional(),
  /** What it guards, for people. @default none */
  description: z.string().max(512).optional(),
});
export type PutSemaphoreRequest = z.infer<typeof PutSemaphoreSchema>;

/** A semaphore record at `semaphores/{scope}/{name}` (scope: the tenant, or `global`). */
export interface SemaphoreRecord {
  /** Its name as jobs write it (`global/…` for a shared one). */
  name: string;
  /** The tenant it belongs to; absent for a `global/…` semaphore. */
  tenant?: string;
  /** Units handed out at once. */
  capacity: number;
  /** What it guards. @default none */
  description?: string;
  /** When it was created and last changed, epoch ms. */
  createdAt: number;
  updatedAt: number;
}

/** What a job's tasks ask for, per semaphore or mutex, resolved to the ids the scheduler counts by. */
export interface SemaphoreDemand {
  /** The resolved id (see `semaphoreId`). */
  id: string;
  /** The name as the job wrote it. */
  name: string;
  /** Units each running task holds. */
  units: number;
  /** True for a `locks` entry: capacity 1, no record needed. */
  mutex: boolean;
}

/**
 * The id a name resolves to for a job of `tenant`: `global/<rest>` for shared names, else
 * `<tenant>/<name>`; mutexes are `mutex:`-prefixed, so a mutex and a semaphore of the same name
 * are different things.
 */
export function semaphoreId(tenant: string, name: string, mutex = false): string {
  const scoped = name.startsWith(GLOBAL_SEMAPHORE_PREFIX) ? name : `${tenant}/${name}`;
  return mutex ? `mutex:${scoped}` : scoped;
}

/** The id of a semaphore record (what `semaphoreId` gives for the jobs that name it). */
export function semaphoreRecordId(s: Pick<SemaphoreRecord, 'name' | 'tenant'>): string {
  return s.tenant === undefined || s.name.startsWith(GLOBAL_SEMAPHORE_PREFIX) ? s.name : `${s.tenant}/${s.name}`;
}

/** True when a job names any lock or semaphore: the check of the scheduler's hot paths, without building `semaphoreDemands`. */
export function namesSemaphores(spec: { locks?: readonly string[]; limits?: Readonly<Record<string, number>> }): boolean {
  return (spec.locks?.length ?? 0) > 0 || spec.limits !== undefined;
}

/** The semaphores and mutexes a job's tasks hold while they run: none for a job without `locks` or `limits`. */
export function semaphoreDemands(job: { tenant: string; spec: { locks?: readonly string[]; limits?: Readonly<Record<string, number>> } }): SemaphoreDemand[] {
  const out: SemaphoreDemand[] = [];
  for (const name of job.spec.locks ?? []) out.push({ id: semaphoreId(job.tenant, name, true), name, units: 1, mutex: true });
  for (const [name, units] of Object.entries(job.spec.limits ?? {})) out.push({ id: semaphoreId(job.tenant, name), name, units, mutex: false });
  return out;
}

/** A semaphore or mutex as `GET /v1/semaphores` shows it. */
export interface SemaphoreView {
  name: string;
  /** Absent for a `global/…` one. */
  tenant?: string;
  /** True for a mutex (`locks`), which has no record. */
  mutex: boolean;
  capacity: number;
  /** Units held by running (or bound) tasks now. */
  held: number;
  /** The jobs holding units, most first: id and units. At most 20. */
  holders: Array<{ jobId: string; units: number }>;
  /** Tasks waiting for units. */
  waitingTasks: number;
  description?: string;
}

/** `SemaphoreView` as the OpenAPI document describes it. */
export const SemaphoreViewSchema = z.strictObject({
  name: z.string(),
  tenant: z.string().optional(),
  mutex: z.boolean(),
  capacity: z.number().int(),
  held: z.number().int(),
  holders: z.array(z.strictObject({ jobId: z.string(), units: z.number().int() })),
  waitingTasks: z.number().int(),
  description: z.string().optional(),
});

/** `GET /v1/semaphores` answer. */
export const SemaphoreListSchema = z.strictObject({ semaphores: z.array(SemaphoreViewSchema) });

/** Query of `GET`/`DELETE /v1/semaphores/{semaphore}`. */
export const SemaphoreQuerySchema = z.strictObject({
  /** Operators: another tenant's semaphore. @default the token's tenant */
  tenant: z.string().max(63).optional(),
  /** `true`: the mutex of that name (`locks`), not the semaphore. @default false */
  mutex: z.enum(['true', 'false']).optional(),
});
