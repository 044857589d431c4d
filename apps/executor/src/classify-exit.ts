/**
 * How an ended attempt is reported: its state and, when it failed, why. Pure: every input is a
 * plain value the agent read when the attempt ended (its exit, the group's marks, the fence's).
 */
import { type FailureReason, type TaskStatus } from '@batchapi/api';
import { NODE_LOST } from '@batchapi/lifecycle';

/** What is known of an attempt once it ended. */
export interface EndedAttempt {
  /** Exit code of its process or container; absent when a signal killed it. */
  exitCode?: number;
  /** The signal that killed it (`SIGTERM`, `SIGKILL`…); absent when it exited. */
  signal?: string;
  /** Set when the node, not the command, kept it from starting (what went wrong). @default none */
  nodeError?: string;
  /** Its group is being cancelled. */
  cancelling: boolean;
  /** The scheduler preempted this task. */
  preempting: boolean;
  /** It wrote a result over `MAX_RESULT_BYTES` (only read when neither cancelled nor preempted). */
  resultTooLarge: boolean;
  /** Set when its result was to be kept in the blob store and was not (why): the node's failure, not the task's. @default none */
  resultNotKept?: string;
  /** This executor's graceful stop asked it to stop. */
  stoppedForShutdown: boolean;
  /**
   * The fence may have killed it: this executor's lease is not held now, or the watchdog killed
   * tasks at or after the attempt started (it stalled, even if its lease was renewed since).
   */
  fenceKilled: boolean;
  /** It ran past its `timeoutSeconds`: the agent's deadline stopped it, or its backend did. */
  deadlineHit: boolean;
  /** It was killed at its memory limit (its container, or the kernel in its cgroup). */
  oomKilled: boolean;
}

/**
 * What is known of an attempt that ended with no mark of the executor's on it: not cancelled,
 * preempted, stopped for shutdown, fenced, past its deadline or out of memory, and no result
 * over the cap; only its exit counts.
 */
export function unmarkedEnd(exit: Pick<EndedAttempt, 'exitCode' | 'signal' | 'nodeError'>): EndedAttempt {
  // Each field named, not `...exit` then the marks: on Node 20 a literal that starts with a spread
  // and adds new keys takes V8's slow path (~5 µs here, once per simulated task end: 7% of the
  // simulated fleet's CPU in `bench pipelines`); named, ~0.1 µs.
  return {
    exitCode: exit.exitCode,
    signal: exit.signal,
    nodeError: exit.nodeError,
    cancelling: false,
    preempting: false,
    resultTooLarge: false,
    stoppedForShutdown: false,
    fenceKilled: false,
    deadlineHit: false,
    oomKilled: false,
  };
}

/** The state an ended attempt is reported with; `reason` only with `Failed`. */
export interface AttemptOutcome {
  state: Extract<TaskStatus['state'], 'Succeeded' | 'Failed' | 'Cancelled' | 'Preempted'>;
  reason?: FailureReason;
}

/**
 * The state and reason of an ended attempt. A cancel or preemption decides the state whatever
 * the exit; otherwise exit code 0 succeeds unless its result was too large. The first reason that
 * applies wins: the result, the node, the executor's own stop, the fence, the deadline, memory.
 */
export function classifyExit(a: EndedAttempt): AttemptOutcome {
  if (a.cancelling) return { state: 'Cancelled' };
  if (a.preempting) return { state: 'Preempted' };
  if (a.exitCode === 0 && !a.resultTooLarge && !a.resultNotKept) return { state: 'Succeeded' };
  return { state: 'Failed', reason: failureReason(a) };
}

function failureReason(a: EndedAttempt): FailureReason {
  if (a.resultTooLarge && a.exitCode === 0) return 'ResultTooLarge';
  // ran to its end, but this node could not keep what it returned: run again (a NodeError charges no retry)
  if (a.resultNotKept && a.exitCode === 0) return 'NodeError';
  if (a.nodeError) return 'NodeError';
  // Killed by this executor's graceful stop (SIGTERM to the executor): the node left, not the task's fault.
  if (a.stoppedForShutdown && diedOfStop(a)) return NODE_LOST;
  // Killed by the fence (the watchdog or the self-fence): the node's fault, run again.
  if (a.signal && a.fenceKilled) return NODE_LOST;
  if (a.deadlineHit) return 'DeadlineExceeded';
  if (a.oomKilled) return 'OOMKilled';
  return 'Error';
}

/**
 * Whether an attempt asked to stop died of it: killed by the stop's SIGTERM or SIGKILL, or
 * exited with the code a shell gives for them (128 + 15, 128 + 9). An attempt that outlived the
 * SIGTERM and exited with a code of its own (a crash during the grace) ended on its own.
 */
export function diedOfStop(exit: { exitCode?: number; signal?: string }): boolean {
  return exit.signal === 'SIGTERM' || exit.signal === 'SIGKILL' || exit.exitCode === 143 || exit.exitCode === 137;
}
