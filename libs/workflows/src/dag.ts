/**
 * Pure workflow DAG logic: validation of the steps (unique names, known dependencies, no
 * cycle), critical paths, and `advance` — the plan of what a workflow does next given the
 * phases of its step jobs and the time. No I/O, no clock: the controller applies the plan.
 */
import {
  ApiError,
  ErrorCode,
  type JobPhase,
  type StepPhase,
  type StepWhen,
  TERMINAL_STEP_PHASES,
  type WorkflowPhase,
  type WorkflowRecord,
} from '@batchapi/api';

/** The shape of a step the DAG functions need. */
export interface DagStep {
  name: string;
  dependsOn: readonly string[];
  when?: StepWhen;
  map?: { items: unknown[] } | { fromStep: string };
}

/**
 * Checks the DAG and returns the steps in a topological order (indices into `steps`).
 * Throws `invalid_argument` naming `steps[i].name` (duplicate), `steps[i].dependsOn`
 * (unknown step) or `steps[i].map.fromStep` (not a dependency), and `workflow_cycle`
 * naming the cycle, e.g. "a → b → a".
 */
export function validateDag(steps: readonly DagStep[]): number[] {
  const index = new Map<string, number>();
  steps.forEach((s, i) => {
    if (index.has(s.name))
      throw new ApiError(
        ErrorCode.InvalidArgument,
        `steps[${i}].name: "${s.name}" is already the name of steps[${index.get(s.name)}]; step names must be unique`,
        { field: `steps[${i}].name` },
      );
    index.set(s.name, i);
  });
  steps.forEach((s, i) => {
    for (const d of s.dependsOn) {
      if (!index.has(d)) throw new ApiError(ErrorCode.InvalidArgument, `steps[${i}].dependsOn: no step is named "${d}"`, { field: `steps[${i}].dependsOn` });
    }
    if (s.map && 'fromStep' in s.map && !s.dependsOn.includes(s.map.fromStep)) {
      throw new ApiError(ErrorCode.InvalidArgument, `steps[${i}].map.fromStep: "${s.map.fromStep}" must also be in dependsOn (its results must exist first)`, {
        field: `steps[${i}].map.fromStep`,
      });
    }
  });
  // Depth-first search; a grey node met again closes a cycle, named from its first step.
  const colour = new Array<0 | 1 | 2>(steps.length).fill(0);
  const order: number[] = [];
  const path: number[] = [];
  const visit = (i: number): void => {
    colour[i] = 1;
    path.push(i);
    for (const d of steps[i].dependsOn) {
      const j = index.get(d)!;
      if (colour[j] === 1) {
        const cycle = [...path.slice(path.indexOf(j)), j].reverse().map((k) => steps[k].name);
        throw new ApiError(ErrorCode.WorkflowCycle, `the steps depend on each other in a cycle: ${cycle.join(' → ')}; remove one of these dependencies`, {
          field: `steps[${j}].dependsOn`,
        });
      }
      if (colour[j] === 0) visit(j);
    }
    path.pop();
    colour[i] = 2;
    order.push(i); // after its dependencies
  };
  for (let i = 0; i < steps.length; i++) if (colour[i] === 0) visit(i);
  return order;
}

/**
 * Length of the longest chain of steps from each step to the end of the workflow, the step
 * itself included (a step nothing depends on has 1). Assumes a valid DAG.
 */
export function criticalPaths(steps: readonly DagStep[]): number[] {
  const index = new Map(steps.map((s, i) => [s.name, i]));
  const dependants: number[][] = steps.map(() => []);
  steps.forEach((s, i) => {
    for (const d of s.dependsOn) dependants[index.get(d)!].push(i);
  });
  const out = new Array<number>(steps.length).fill(0);
  // Reverse topological order: every dependant is computed before its dependency.
  for (const i of validateDag(steps).reverse()) out[i] = 1 + Math.max(0, ...dependants[i].map((j) => out[j]));
  return out;
}

/** What a step's job phase means for the step (`undefined`: the job is not known yet). */
export function stepPhaseOfJob(phase: JobPhase | undefined): StepPhase {
  switch (phase) {
    case 'Succeeded':
      return 'Succeeded';
    case 'Failed':
    case 'Rejected':
      return 'Failed';
    case 'Cancelled':
      return 'Cancelled';
    default:
      return 'Running';
  }
}

/** What the controller does next for one workflow. */
export interface WorkflowPlan {
  /** Steps to submit now as jobs, longest remaining chain first (ties: declaration order). */
  submit: string[];
  /** Ready steps kept `Pending` by the workflow's `maxRunning`, in definition order. @default [] */
  held?: string[];
  /** Steps whose condition can no longer hold. */
  skip: string[];
  /** Steps whose running jobs must be cancelled (a cancel or the deadline). */
  cancel: string[];
  /** Every step's phase after this plan (submitted steps read `Running`). */
  phases: Record<string, StepPhase>;
  phase: WorkflowPhase;
  /** Set when the workflow ends with this plan. */
  finishedAt?: number;
  /** True when the plan changes the record (or submits). */
  changed: boolean;
}

/**
 * Decides a workflow's next step, purely. `jobs` holds the phase of each step's job by
 * job id (absent while the job is not seen yet: the step stays `Running`).
 *
 * - `success` steps run once every dependency Succeeded, and are Skipped once one did not;
 * - `failure` steps run once a dependency Failed or was Cancelled, and are Skipped when all
 *   ended without one;
 * - `always` steps run once every dependency is terminal (Skipped included);
 * - a cancel or a passed deadline cancels running steps and pending ones end `Cancelled`;
 * - with `maxRunning`, at most that many steps are `Running` at once: of the ready steps, the
 *   first in definition order take the free slots, the others stay `Pending` (`held`) until a
 *   running step ends (the count comes from the record and the jobs, never from memory).
 *
 * The workflow is `Running` until every step is terminal; then `Cancelled` if cancelled,
 * `Failed` if the deadline passed or a `success` step Failed or was Cancelled, else
 * `Succeeded`.
 */
export function advance(wf: WorkflowRecord, jobs: ReadonlyMap<string, JobPhase>, now: number): WorkflowPlan {
  const phases: Record<string, StepPhase> = {};
  for (const s of wf.steps) phases[s.name] = s.jobId && s.phase === 'Running' ? stepPhaseOfJob(jobs.get(s.jobId)) : s.phase;
  const plan: WorkflowPlan = { submit: [], skip: [], cancel: [], phases, phase: wf.phase, changed: false };
  if (wf.phase !== 'Running') return plan;
  const expired = wf.deadlineAt !== undefined && now >= wf.deadlineAt;
  const stopping = wf.cancelRequestedAt !== undefined || expired;
  if (stopping) {
    for (const s of wf.steps) {
      if (phases[s.name] === 'Pending') phases[s.name] = 'Cancelled';
      else if (phases[s.name] === 'Running' && s.jobId) plan.cancel.push(s.name);
    }
  } else {
    const ready: Array<{ name: string; cp: number; i: number }> = [];
    // Topological order, so a skip reaches the steps after it in the same pass.
    for (const i of validateDag(wf.steps)) {
      const s = wf.steps[i];
      if (phases[s.name] !== 'Pending') continue;
      const deps = s.dependsOn.map((d) => phases[d]);
      const allDone = deps.every((p) => TERMINAL_STEP_PHASES.has(p));
      const anyFailed = deps.some((p) => p === 'Failed' || p === 'Cancelled');
      let decision: 'run' | 'skip' | 'wait';
      switch (s.when) {
        case 'failure':
          decision = anyFailed ? 'run' : allDone ? 'skip' : 'wait';
          break;
        case 'always':
          decision = allDone ? 'run' : 'wait';
          break;
        default:
          decision = deps.every((p) => p === 'Succeeded') ? 'run' : deps.some((p) => TERMINAL_STEP_PHASES.has(p) && p !== 'Succeeded') ? 'skip' : 'wait';
      }
      if (decision === 'skip') {
        phases[s.name] = 'Skipped';
        plan.skip.push(s.name);
      }
      if (decision === 'run') ready.push({ name: s.name, cp: s.criticalPath, i });
    }
    // The workflow's limit: slots = maxRunning − steps running now; waiting steps go in definition order.
    let start = ready;
    if (wf.maxRunning !== undefined) {
      const running = wf.steps.filter((s) => phases[s.name] === 'Running').length;
      const slots = Math.max(0, wf.maxRunning - running);
      const byDefinition = [...ready].sort((a, b) => a.i - b.i);
      start = byDefinition.slice(0, slots);
      const held = byDefinition.slice(slots).map((r) => r.name);
      if (held.length) plan.held = held;
    }
    start.sort((a, b) => b.cp - a.cp || a.i - b.i);
    plan.submit = start.map((r) => r.name);
    for (const r of start) phases[r.name] = 'Running';
  }
  if (wf.steps.every((s) => TERMINAL_STEP_PHASES.has(phases[s.name]))) {
    plan.phase =
      wf.cancelRequestedAt !== undefined
        ? 'Cancelled'
        : expired || wf.steps.some((s) => (s.when ?? 'success') === 'success' && (phases[s.name] === 'Failed' || phases[s.name] === 'Cancelled'))
          ? 'Failed'
          : 'Succeeded';
    plan.finishedAt = now;
  }
  plan.changed = plan.phase !== wf.phase || plan.submit.length > 0 || plan.cancel.length > 0 || wf.steps.some((s) => phases[s.name] !== s.phase);
  return plan;
}

/**
 * The items a `map.fromStep` step fans out over, from the source step's task results in
 * index order: the results themselves, or — when the source is a single task (not a map) whose
 * result is an array — that array's elements. A map source's results are always one item per
 * task, so a map over one item that returned an array fans out over a list of one array.
 * @param sourceIsMap - the source step is itself a map (`map.items` or `map.fromStep`). @default false
 */
export function fanOutItems(sourceTasks: number, results: ReadonlyArray<{ index: number; value?: unknown }>, sourceIsMap = false): unknown[] {
  const sorted = [...results].sort((a, b) => a.index - b.index).map((r) => r.value);
  if (!sourceIsMap && sourceTasks === 1 && sorted.length === 1 && Array.isArray(sorted[0])) return sorted[0];
  return sorted;
}

/** The id of a step's job: fixed by the workflow id and the step's position, so a step is never submitted twice. */
export function stepJobId(workflowId: string, stepIndex: number): string {
  return `${stepJobPrefix(workflowId)}${stepIndex}`;
}

/** What every step job id of a workflow starts with (one watch covers all of them). */
export function stepJobPrefix(workflowId: string): string {
  return `${workflowId.replace(/^wf-/, '')}-s`;
}
