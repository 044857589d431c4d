import type { StepPhase, StepWhen, WorkflowPhase, WorkflowRecord, WorkflowStep } from '@batchapi/api';
import { decideRetry, retrySteps } from './retry';

/** A step of a finished run: `name:phase` with its dependencies; a Succeeded step has job `j-<name>`. */
const s = (name: string, phase: StepPhase, dependsOn: string[] = [], when: StepWhen = 'success'): WorkflowStep => ({
  name,
  phase,
  dependsOn,
  when,
  job: {},
  criticalPath: 1,
  ...(phase === 'Succeeded' || phase === 'Failed' ? { jobId: `j-${name}` } : {}),
});
const run = (phase: WorkflowPhase, steps: WorkflowStep[]): Pick<WorkflowRecord, 'id' | 'phase' | 'steps'> => ({ id: 'wf-old', phase, steps });

describe('decideRetry', () => {
  it.each([
    // extract failed: load (after extract) and report (after load) run again; prep before it is reused.
    [
      'a failed step and everything after it',
      run('Failed', [s('prep', 'Succeeded'), s('extract', 'Failed', ['prep']), s('load', 'Skipped', ['extract']), s('report', 'Skipped', ['load'])]),
      { rerun: ['extract', 'load', 'report'], reuse: ['prep'] },
    ],
    // b failed; c does not depend on b and succeeded: reused. d depends on b and c: re-run (one re-run dependency is enough).
    [
      'an independent branch that succeeded is reused',
      run('Failed', [s('a', 'Succeeded'), s('b', 'Failed', ['a']), s('c', 'Succeeded', ['a']), s('d', 'Skipped', ['b', 'c'])]),
      { rerun: ['b', 'd'], reuse: ['a', 'c'] },
    ],
    // The cleanup ran (Succeeded) because extract failed; extract runs again, so the cleanup is re-decided too.
    [
      'a failure cleanup that ran, after a failed step, is re-run (the new run decides whether it runs)',
      run('Failed', [s('extract', 'Failed'), s('cleanup', 'Succeeded', ['extract'], 'failure'), s('notify', 'Succeeded', ['cleanup'], 'always')]),
      { rerun: ['extract', 'cleanup', 'notify'], reuse: [] },
    ],
    // A cancelled run: the running step ended Cancelled, the pending one too; the first step is kept.
    [
      'a cancelled run: cancelled and never-started steps',
      run('Cancelled', [s('a', 'Succeeded'), s('b', 'Cancelled', ['a']), s('c', 'Cancelled', ['b'])]),
      { rerun: ['b', 'c'], reuse: ['a'] },
    ],
    // A deadline passed with b still Pending (it never started): Pending counts as not succeeded.
    ['a step left Pending by the deadline', run('Failed', [s('a', 'Succeeded'), s('b', 'Pending')]), { rerun: ['b'], reuse: ['a'] }],
    // Definition order is kept in the answer even when the DAG's order differs (c is defined first, runs last).
    [
      'answers in definition order',
      run('Failed', [s('c', 'Skipped', ['b']), s('a', 'Succeeded'), s('b', 'Failed', ['a'])]),
      { rerun: ['c', 'b'], reuse: ['a'] },
    ],
  ])('%s', (_name, wf, expected) => {
    expect(decideRetry(wf)).toEqual(expected);
  });

  it('re-runs a succeeded step whose job is gone (retention), and every step after it', () => {
    // a ✓ → b ✓ → c ✗, and d ✓ on its own; b's job j-b was deleted: b, then c, run again; a and d are reused.
    const wf = run('Failed', [s('a', 'Succeeded'), s('b', 'Succeeded', ['a']), s('c', 'Failed', ['b']), s('d', 'Succeeded')]);
    expect(decideRetry(wf, new Set(['j-b']))).toEqual({ rerun: ['b', 'c'], reuse: ['a', 'd'] });
  });

  it.each([
    ['Running', /still running/],
    ['Succeeded', /succeeded: there is nothing to re-run/],
  ] as const)('refuses a %s run with workflow_not_retryable naming it', (phase, message) => {
    expect(() => decideRetry(run(phase, [s('a', phase === 'Running' ? 'Running' : 'Succeeded')]))).toThrow(
      expect.objectContaining({ code: 'workflow_not_retryable', status: 409, details: { id: 'wf-old' }, message: expect.stringMatching(message) }),
    );
  });
});

describe('retrySteps', () => {
  it('makes re-run steps Pending without a job and reused ones Succeeded with the job they reuse', () => {
    const steps = retrySteps(run('Failed', [s('prep', 'Succeeded'), s('train', 'Failed', ['prep'])]));
    expect(steps).toEqual([
      { ...s('prep', 'Succeeded'), cached: { reason: 'retry', workflowId: 'wf-old', jobId: 'j-prep' } },
      { name: 'train', phase: 'Pending', dependsOn: ['prep'], when: 'success', job: {}, criticalPath: 1 },
    ]);
  });

  it('names the original run and job when retrying a retry, and forgets cache keys', () => {
    const prep: WorkflowStep = { ...s('prep', 'Succeeded'), cached: { reason: 'cache', workflowId: 'wf-first', jobId: 'j-prep' }, cacheKey: 'k1' };
    const train: WorkflowStep = { ...s('train', 'Failed', ['prep']), cacheKey: 'k2' };
    const [p, t] = retrySteps(run('Failed', [prep, train]));
    expect(p.cached).toEqual({ reason: 'retry', workflowId: 'wf-first', jobId: 'j-prep' });
    expect(p.cacheKey).toBeUndefined();
    expect(t).toEqual({ name: 'train', phase: 'Pending', dependsOn: ['prep'], when: 'success', job: {}, criticalPath: 1 });
  });

  it('reuses a fan-out over nothing (Succeeded without a job) as such', () => {
    const { jobId: _none, ...m } = s('m', 'Succeeded');
    const [empty] = retrySteps(run('Failed', [m, s('x', 'Failed', ['m'])]));
    expect(empty).toMatchObject({ name: 'm', phase: 'Succeeded', cached: { reason: 'retry', workflowId: 'wf-old', jobId: null } });
    expect(empty.jobId).toBeUndefined();
  });
});
