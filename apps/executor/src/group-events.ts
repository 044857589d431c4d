/**
 * What a bound group's tasks become on each event: the group is bound (how it begins), a task is
 * cancelled or preempted before an attempt of it runs, an attempt ended, the group was started by
 * a previous incarnation of its node. Pure: time and every mark are passed in; `GroupRunner`
 * (and the simulated fleet, for the shared parts) applies the answers.
 */
import { type Binding, type TaskStatus, TERMINAL_TASK_STATES } from '@batchapi/api';
import { NODE_LOST } from '@batchapi/lifecycle';
import type { AttemptOutcome } from './classify-exit';
import type { ProcessExit } from './task-process';

/** A group as it is bound to this executor, with what is known of its past. */
export interface BoundGroup {
  binding: Pick<Binding, 'start' | 'end' | 'cancelRequested' | 'cancel' | 'preempt'>;
  /** Its tasks as its status (read from etcd) holds them. */
  tasks: TaskStatus[];
  /** It came in this executor's first listing of its bindings (not from a later event or relisting). */
  atStart: boolean;
  /** A previous incarnation of this executor ran tasks here and this binding was in the first listing. */
  leftOver: boolean;
}

/** How a newly bound group begins. */
export type GroupStart =
  /** A previous incarnation started it; its attempts died with it: every task not ended is lost (`lostTasks`). */
  | { kind: 'lost' }
  /** Its job was cancelled before it started: no attempt starts, its tasks end `Cancelled`. */
  | { kind: 'cancel' }
  /** Its `cancel` indices end `Cancelled` and its `preempt` ones `Preempted` without running; an attempt starts for each index of `start`, in order. */
  | { kind: 'run'; cancel: number[]; preempt: number[]; start: number[] };

/**
 * How a newly bound group begins. Only a group of the first listing can have been started by a
 * previous incarnation: its status shows a task past `Bound`, or the process-group ledger said a
 * previous incarnation ran tasks here. A cancel (of the group, or of a task) decides before a preemption.
 */
export function planGroupStart(g: BoundGroup): GroupStart {
  const ranBefore = g.tasks.some((t) => t.state !== 'Bound') || g.leftOver;
  if (g.atStart && ranBefore) return { kind: 'lost' };
  if (g.binding.cancelRequested) return { kind: 'cancel' };
  const cancel = g.binding.cancel ?? [];
  const preempt = (g.binding.preempt ?? []).filter((i) => !cancel.includes(i));
  const skip = new Set([...cancel, ...preempt]);
  const start: number[] = [];
  for (let i = g.binding.start; i < g.binding.end; i++) if (!skip.has(i)) start.push(i);
  return { kind: 'run', cancel, preempt, start };
}

/** Every task not ended is `Failed`/`NodeLost` at `now` (epoch ms): lost with the incarnation that ran it, requeued at the next attempt. */
export function lostTasks(tasks: TaskStatus[], now: number): TaskStatus[] {
  return tasks.map((t) => (TERMINAL_TASK_STATES.has(t.state) ? t : { ...t, state: 'Failed' as const, reason: NODE_LOST, finishedAt: now }));
}

/**
 * A task with no attempt running, when its group is cancelled or the task is preempted: it ends
 * at `now` (epoch ms); `undefined` when it already ended (or is absent). A cancelled task keeps
 * nothing of its status; a preempted one keeps its start.
 */
export function endWithoutAttempt(t: TaskStatus | undefined, event: 'cancel' | 'preempt', now: number): TaskStatus | undefined {
  if (!t || TERMINAL_TASK_STATES.has(t.state)) return undefined;
  return event === 'cancel' ? { state: 'Cancelled', finishedAt: now } : { ...t, state: 'Preempted', finishedAt: now };
}

/** A task whose attempt ended with `exit`, classified as `outcome` (`classifyExit`), at `now` (epoch ms). */
export function endedTask(t: TaskStatus, outcome: AttemptOutcome, exit: ProcessExit, now: number): TaskStatus {
  return { ...t, state: outcome.state, ...(outcome.reason ? { reason: outcome.reason } : {}), ...exitFields(exit), finishedAt: now };
}

function exitFields(exit: ProcessExit): Partial<TaskStatus> {
  return { ...(exit.exitCode !== undefined ? { exitCode: exit.exitCode } : {}), ...(exit.signal ? { signal: exit.signal } : {}) };
}
