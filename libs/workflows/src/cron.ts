/**
 * Pure schedule logic (cron jobs and cron workflows): parsing a five-field cron expression in
 * an IANA time zone (with `croner`, not a parser of our own), the ticks between two times, the
 * decision of what a schedule does at `now` — fire a tick, count ticks missed, or wait on its
 * concurrency policy — and the settling of finished instances into bounded history. Time is
 * always passed in; the elected controller (quota service) applies the decision in one fenced
 * transaction.
 *
 * Daylight-saving time, as croner evaluates it (the table tests pin it):
 * - spring forward: a wall time that does not exist that day (02:30 in America/New_York on
 *   the second Sunday of March) fires once, an hour later on the wall (03:30 EDT);
 * - fall back: a wall time that happens twice (01:30 on the first Sunday of November) fires
 *   once, at its first occurrence (EDT); the repeated hour fires nothing.
 */
import { ApiError, type ConcurrencyPolicy, ErrorCode, isTimeZone, MAX_ACTIVE_INSTANCES, type ScheduleInstance, type ScheduleRecord } from '@batchapi/api';
import { Cron } from 'croner';

/** Most ticks one decision enumerates; older ones beyond it are counted missed a pass at a time. */
export const MAX_TICKS_PER_DECISION = 100;

/** A compiled cron expression in its time zone. */
export interface CronSchedule {
  readonly expression: string;
  readonly timeZone: string;
  /** The first tick strictly after `after` (epoch ms), or undefined when there is none (e.g. 30 February). */
  next(after: number): number | undefined;
}

const NICKNAMES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

/**
 * Compiles `expression` (five fields: minute hour day-of-month month day-of-week, or one of
 * `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`) in `timeZone`. Day-of-month and
 * day-of-week combine as in Vixie cron (either matches when both are restricted).
 * @throws ApiError `invalid_argument` naming `field` (`schedule`, or `timeZone` for an unknown zone)
 */
export function parseCron(expression: string, timeZone = 'UTC', field = 'schedule'): CronSchedule {
  if (!isTimeZone(timeZone)) {
    throw new ApiError(ErrorCode.InvalidArgument, `timeZone: "${timeZone}" is not an IANA time zone; write e.g. "Europe/Berlin" or "UTC"`, {
      field: 'timeZone',
    });
  }
  const trimmed = expression.trim();
  const fields = trimmed.split(/\s+/);
  if (!(fields.length === 5 || (fields.length === 1 && NICKNAMES.has(trimmed.toLowerCase())))) {
    throw new ApiError(
      ErrorCode.InvalidArgument,
      `${field}: "${expression}" has ${fields.length} fields; write five (minute hour day-of-month month day-of-week), e.g. "0 2 * * *", or @daily, @hourly…`,
      { field },
    );
  }
  let cron: Cron;
  try {
    cron = new Cron(trimmed, { timezone: timeZone, paused: true, legacyMode: true });
  } catch (err) {
    const message = (err as Error).message.replace(/^CronPattern: /, '');
    throw new ApiError(ErrorCode.InvalidArgument, `${field}: ${message} in "${expression}"; write five cron fields, e.g. "0 2 * * *"`, { field });
  }
  return {
    expression: trimmed,
    timeZone,
    next(after: number): number | undefined {
      return cron.nextRun(new Date(after))?.getTime();
    },
  };
}

/** The ticks `t` with `after < t <= until`, oldest first, at most `max` of them. */
export function ticksBetween(cron: CronSchedule, after: number, until: number, max = MAX_TICKS_PER_DECISION): number[] {
  const out: number[] = [];
  let t = cron.next(after);
  while (t !== undefined && t <= until && out.length < max) {
    out.push(t);
    t = cron.next(t);
  }
  return out;
}

/** What the decision needs of a schedule. */
export interface TickInput {
  cron: CronSchedule;
  /** The last tick decided (fired or missed), epoch ms; the creation time before the first. */
  lastScheduleTime: number;
  /** The decision's time, epoch ms. */
  now: number;
  /** A tick more than this many seconds late is missed. @default none: only a later tick supersedes it */
  startingDeadlineSeconds?: number;
  concurrencyPolicy: ConcurrencyPolicy;
  /** Instances of earlier ticks still running. */
  running: number;
  /** Most instances running at once. @default MAX_ACTIVE_INSTANCES (50) */
  maxActive?: number;
  suspend?: boolean;
}

/** Ticks counted missed by a decision: how many, and the latest (the new `lastScheduleTime` when nothing fires). */
export interface Missed {
  count: number;
  /** Epoch ms of the latest missed tick; undefined when `count` is 0. */
  last?: number;
}

/**
 * What a schedule does now:
 * - `idle`: no tick is due; `next` is the next one (epoch ms), if any;
 * - `miss`: the due ticks are all missed: record them, start nothing;
 * - `fire`: start an instance for `tick` (cancelling the running ones first when `replace`),
 *   recording `missed` ticks before it in the same write;
 * - `wait`: `tick` is due but `Forbid` (an instance runs) or the most active instances hold it
 *   back; `missed` earlier ticks are recorded. It fires once they end, unless it is missed first.
 */
export type TickDecision =
  | { action: 'idle'; next?: number }
  | { action: 'miss'; missed: Missed }
  | { action: 'fire'; tick: number; missed: Missed; replace: boolean }
  | { action: 'wait'; tick: number; missed: Missed; reason: 'forbid' | 'maxActive' };

/**
 * Decides what a schedule does at `now`, as Kubernetes CronJob does: of the ticks since the
 * last decided one, only the latest may fire; earlier ones are superseded (missed), and the
 * latest too when it is more than `startingDeadlineSeconds` late (`now - tick > deadline`;
 * exactly the deadline is still on time). Suspended: nothing (resume moves `lastScheduleTime`
 * to the resume, so ticks of the pause never fire).
 */
export function decideTick(i: TickInput): TickDecision {
  if (i.suspend) return { action: 'idle' };
  const ticks = ticksBetween(i.cron, i.lastScheduleTime, i.now, MAX_TICKS_PER_DECISION + 1);
  if (ticks.length === 0) return { action: 'idle', next: i.cron.next(i.now) };
  if (ticks.length > MAX_TICKS_PER_DECISION) {
    // A long outage: the first MAX are certainly superseded by a later one; the next pass goes on from them.
    return { action: 'miss', missed: { count: MAX_TICKS_PER_DECISION, last: ticks[MAX_TICKS_PER_DECISION - 1] } };
  }
  const tick = ticks[ticks.length - 1];
  const superseded: Missed = ticks.length > 1 ? { count: ticks.length - 1, last: ticks[ticks.length - 2] } : { count: 0 };
  if (i.startingDeadlineSeconds !== undefined && i.now - tick > i.startingDeadlineSeconds * 1000) {
    return { action: 'miss', missed: { count: ticks.length, last: tick } };
  }
  if (i.running > 0 && i.concurrencyPolicy === 'Forbid') return { action: 'wait', tick, missed: superseded, reason: 'forbid' };
  const replace = i.running > 0 && i.concurrencyPolicy === 'Replace';
  if (!replace && i.running >= (i.maxActive ?? MAX_ACTIVE_INSTANCES)) return { action: 'wait', tick, missed: superseded, reason: 'maxActive' };
  return { action: 'fire', tick, missed: superseded, replace };
}

/** Where a finished instance goes: `succeeded` or `failed` (a cancelled or rejected one is a failure). */
export function outcomeOf(phase: string): 'succeeded' | 'failed' {
  return phase === 'Succeeded' || phase === 'Unknown' ? 'succeeded' : 'failed';
}

/**
 * Moves the instances that finished into the history, most recent first, each list trimmed to
 * its limit (only the references: the jobs and workflows themselves stay until retention).
 * `phases` holds each finished instance's terminal phase by id (`Unknown` when its record is
 * gone: archived or deleted, so it ended). Unchanged when nothing finished.
 */
export function settleInstances(
  s: Pick<ScheduleRecord, 'active' | 'succeeded' | 'failed' | 'successfulHistoryLimit' | 'failedHistoryLimit'>,
  phases: ReadonlyMap<string, string>,
  now: number,
): Pick<ScheduleRecord, 'active' | 'succeeded' | 'failed'> {
  const active: ScheduleInstance[] = [];
  const ended: ScheduleInstance[] = [];
  for (const inst of s.active) {
    const phase = phases.get(inst.id);
    if (phase === undefined) active.push(inst);
    else ended.push({ ...inst, phase, finishedAt: now });
  }
  // Newest first: a later tick's instance before an earlier one's.
  const newest = (xs: ScheduleInstance[]) => xs.sort((a, b) => b.scheduledAt - a.scheduledAt);
  const succeeded = newest([...ended.filter((e) => outcomeOf(e.phase!) === 'succeeded'), ...s.succeeded]).slice(0, s.successfulHistoryLimit);
  const failed = newest([...ended.filter((e) => outcomeOf(e.phase!) === 'failed'), ...s.failed]).slice(0, s.failedHistoryLimit);
  return { active, succeeded, failed };
}
