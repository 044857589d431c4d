/**
 * Re-run from failure, decided purely: which steps of a finished run a retry runs again and which
 * it reuses. A retry is a new run (its own id and step jobs); the steps it reuses start
 * `Succeeded` with the earlier run's job, so the steps after them read the same results they
 * would have read had that step run again (fan-out items, the Python SDK's inputs).
 */
import { ApiError, ErrorCode, type WorkflowRecord, type WorkflowStep } from '@batchapi/api';
import { validateDag } from './dag';

/** What a retry of a run does with each of its steps. */
export interface RetryDecision {
  /** Steps run again, in definition order: those that did not succeed and every step after one of them. */
  rerun: string[];
  /** Steps that succeeded with nothing re-run before them, in definition order: their results are reused. */
  reuse: string[];
}

/**
 * Which steps a retry of `wf` runs again: a step that did not succeed (`Failed`, `Cancelled`,
 * `Skipped`, or left `Pending` by a deadline or cancel), and every step that depends on one of
 * them, directly or not — whatever its `when` (a `failure` cleanup that ran is run again, since
 * what it cleaned up after runs again; whether it runs then is decided by the new run). The
 * others succeeded on results that stay the same, and are reused — unless their job is in `gone`
 * (deleted by retention: its results cannot be read), then they run again like a failed step.
 *
 * @param gone - ids of step jobs that no longer exist anywhere. @default none
 * @throws ApiError `workflow_not_retryable` (409) when the run is still `Running` or `Succeeded`
 */
export function decideRetry(wf: Pick<WorkflowRecord, 'id' | 'phase' | 'steps'>, gone: ReadonlySet<string> = new Set()): RetryDecision {
  if (wf.phase === 'Running') {
    throw new ApiError(ErrorCode.WorkflowNotRetryable, `workflow ${wf.id} is still running; wait for its end (or cancel it), then retry it`, { id: wf.id });
  }
  if (wf.phase === 'Succeeded') {
    throw new ApiError(ErrorCode.WorkflowNotRetryable, `workflow ${wf.id} succeeded: there is nothing to re-run; submit it again to run every step`, {
      id: wf.id,
    });
  }
  const again = new Set<string>();
  // Topological order: a step's dependencies are decided before it.
  for (const i of validateDag(wf.steps)) {
    const s = wf.steps[i];
    const lost = s.jobId !== undefined && gone.has(s.jobId);
    if (s.phase !== 'Succeeded' || lost || s.dependsOn.some((d) => again.has(d))) again.add(s.name);
  }
  return {
    rerun: wf.steps.filter((s) => again.has(s.name)).map((s) => s.name),
    reuse: wf.steps.filter((s) => !again.has(s.name)).map((s) => s.name),
  };
}

/**
 * The steps of the retry of `wf`: re-run steps `Pending` with no job, reused steps `Succeeded`
 * with the job they reuse and `cached` naming where it came from — the run that first produced it,
 * when the reused step was itself reused (by a retry or the cache), so a retry of a retry still
 * names the original job.
 * @param gone - as `decideRetry`. @default none
 * @throws ApiError `workflow_not_retryable` as `decideRetry`
 */
export function retrySteps(wf: Pick<WorkflowRecord, 'id' | 'phase' | 'steps'>, gone: ReadonlySet<string> = new Set()): WorkflowStep[] {
  const { reuse } = decideRetry(wf, gone);
  const kept = new Set(reuse);
  return wf.steps.map((s): WorkflowStep => {
    // a re-run step forgets its job, its origin and its cache key (the new run computes its own)
    const { jobId, cached, cacheKey: _key, ...rest } = s;
    if (!kept.has(s.name)) return { ...rest, phase: 'Pending' };
    return {
      ...rest,
      phase: 'Succeeded',
      ...(jobId !== undefined ? { jobId } : {}),
      cached: { reason: 'retry', workflowId: cached?.workflowId ?? wf.id, jobId: jobId ?? null },
    };
  });
}
