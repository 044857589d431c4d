/**
 * The state and reason an ended attempt is reported with: a cancel or preemption wins over any
 * exit; a failure's reason is the first that applies (result, node, graceful stop, fence,
 * deadline, memory, else the task's own error).
 */
import { type AttemptOutcome, classifyExit, type EndedAttempt, unmarkedEnd } from '../src/classify-exit';

/** An attempt that exited 0 with nothing else known. */
const base: EndedAttempt = unmarkedEnd({ exitCode: 0 });
const killed = (signal: string): Partial<EndedAttempt> => ({ exitCode: undefined, signal });

const cases: Array<[string, Partial<EndedAttempt>, AttemptOutcome]> = [
  // exit 0, nothing else: the task did its work
  ['exit 0', {}, { state: 'Succeeded' }],
  // a non-zero exit with no other cause is the task's own error
  ['exit 3', { exitCode: 3 }, { state: 'Failed', reason: 'Error' }],
  // a signal nobody here sent (e.g. the task killed itself) is the task's error too
  ['killed by SIGSEGV', killed('SIGSEGV'), { state: 'Failed', reason: 'Error' }],
  // the group was cancelled: whatever the exit, the attempt was stopped on purpose
  ['cancelled, exit 0', { cancelling: true }, { state: 'Cancelled' }],
  ['cancelled, SIGTERM', { ...killed('SIGTERM'), cancelling: true }, { state: 'Cancelled' }],
  // cancel beats preemption: both stop it, the job is going away
  ['cancelled and preempted', { cancelling: true, preempting: true }, { state: 'Cancelled' }],
  // the scheduler preempted the task: requeued by the job, not a failure
  ['preempted, SIGKILL', { ...killed('SIGKILL'), preempting: true }, { state: 'Preempted' }],
  // a cancel hides every failure cause (no result is read then)
  ['cancelled with node error', { exitCode: 126, nodeError: 'disk full', cancelling: true }, { state: 'Cancelled' }],
  // exit 0 but a result over the cap: the task fails with ResultTooLarge
  ['exit 0, result too large', { resultTooLarge: true }, { state: 'Failed', reason: 'ResultTooLarge' }],
  // exit 0, its large result not kept by the blob store: the node's failure, run again (NodeError charges no retry)
  ['exit 0, result not kept', { resultNotKept: 'blob store down' }, { state: 'Failed', reason: 'NodeError' }],
  // a cancel still wins (no result is read then)
  ['cancelled, result not kept', { resultNotKept: 'blob store down', cancelling: true }, { state: 'Cancelled' }],
  // a result too large from a task that failed anyway: its exit is what matters (code 2 → Error)
  ['exit 2, result too large', { exitCode: 2, resultTooLarge: true }, { state: 'Failed', reason: 'Error' }],
  // the node could not start it (126 from its files, 127 from spawn): requeued elsewhere
  ['node error', { exitCode: 126, nodeError: 'no space left' }, { state: 'Failed', reason: 'NodeError' }],
  // node error beats the graceful stop and the fence: it never ran
  ['node error while stopping', { exitCode: 127, nodeError: 'EAGAIN', stoppedForShutdown: true, fenceKilled: true }, { state: 'Failed', reason: 'NodeError' }],
  // the executor's graceful stop killed it (SIGTERM): the node left, NodeLost
  ['graceful stop, SIGTERM', { ...killed('SIGTERM'), stoppedForShutdown: true }, { state: 'Failed', reason: 'NodeLost' }],
  // …or SIGKILL after the grace
  ['graceful stop, SIGKILL', { ...killed('SIGKILL'), stoppedForShutdown: true }, { state: 'Failed', reason: 'NodeLost' }],
  // a shell's child dies of the stop: the shell exits 128 + 15 = 143
  ['graceful stop, exit 143', { exitCode: 143, stoppedForShutdown: true }, { state: 'Failed', reason: 'NodeLost' }],
  // 128 + 9 = 137: died of the SIGKILL after the grace, through a shell
  ['graceful stop, exit 137', { exitCode: 137, stoppedForShutdown: true }, { state: 'Failed', reason: 'NodeLost' }],
  // outlived the SIGTERM and crashed with a code of its own during the grace: its own error
  ['graceful stop, exit 1', { exitCode: 1, stoppedForShutdown: true }, { state: 'Failed', reason: 'Error' }],
  // asked to stop but exited 0 in the grace: it finished its work
  ['graceful stop, exit 0', { stoppedForShutdown: true }, { state: 'Succeeded' }],
  // killed by a signal while the fence was down (lease lost, or the watchdog killed since it started): NodeLost
  ['fence, SIGKILL', { ...killed('SIGKILL'), fenceKilled: true }, { state: 'Failed', reason: 'NodeLost' }],
  // the fence counts only for attempts a signal killed: one that exited with a code ended on its own
  ['fence, exit 137', { exitCode: 137, fenceKilled: true }, { state: 'Failed', reason: 'Error' }],
  // the fence beats the deadline: the node's fault comes first, the attempt runs again uncharged
  ['fence and deadline', { ...killed('SIGTERM'), fenceKilled: true, deadlineHit: true }, { state: 'Failed', reason: 'NodeLost' }],
  // stopped at its timeoutSeconds
  ['deadline, SIGTERM', { ...killed('SIGTERM'), deadlineHit: true }, { state: 'Failed', reason: 'DeadlineExceeded' }],
  // a deadline hit by a task that then exited non-zero (it trapped SIGTERM) is still the deadline
  ['deadline, exit 143', { exitCode: 143, deadlineHit: true }, { state: 'Failed', reason: 'DeadlineExceeded' }],
  // a deadline hit by a task that exited 0 in the grace: it finished
  ['deadline, exit 0', { deadlineHit: true }, { state: 'Succeeded' }],
  // the deadline beats memory: it was stopped for time before anything else
  ['deadline and OOM', { exitCode: 137, deadlineHit: true, oomKilled: true }, { state: 'Failed', reason: 'DeadlineExceeded' }],
  // killed at its memory limit (its cgroup's OOM count, or its container's state)
  ['OOM, SIGKILL', { ...killed('SIGKILL'), oomKilled: true }, { state: 'Failed', reason: 'OOMKilled' }],
  // a pod's container killed at its limit exits 137 = 128 + 9
  ['OOM, exit 137', { exitCode: 137, oomKilled: true }, { state: 'Failed', reason: 'OOMKilled' }],
  // an OOM kill elsewhere in the cgroup while the main process exited 0: it succeeded
  ['OOM, exit 0', { oomKilled: true }, { state: 'Succeeded' }],
];

it.each(cases)('%s', (_name, over, want) => {
  expect(classifyExit({ ...base, ...over })).toEqual(want);
});
