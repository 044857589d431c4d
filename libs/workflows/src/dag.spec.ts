import type { JobPhase, StepPhase, WorkflowRecord, WorkflowStep } from '@batchapi/api';
import { advance, criticalPaths, type DagStep, fanOutItems, stepJobId, validateDag } from './dag';

type TestStep = DagStep & { phase?: StepPhase; jobId?: string };
const step = (name: string, dependsOn: string[] = [], extra: Partial<TestStep> = {}): TestStep => ({ name, dependsOn, ...extra });

describe('validateDag', () => {
  it.each([
    ['a duplicate name', [step('a'), step('a')], 'invalid_argument', 'steps[1].name', /already the name of steps\[0\]/],
    ['an unknown dependency', [step('a'), step('b', ['x'])], 'invalid_argument', 'steps[1].dependsOn', /"x"/],
    [
      'a map over a step that is not a dependency',
      [step('a'), step('b', [], { map: { fromStep: 'a' } })],
      'invalid_argument',
      'steps[1].map.fromStep',
      /dependsOn/,
    ],
    ['a self-dependency', [step('a', ['a'])], 'workflow_cycle', 'steps[0].dependsOn', /a → a/],
    [
      'a three-step cycle, named in dependency order',
      [step('a', ['c']), step('b', ['a']), step('c', ['b']), step('d')],
      'workflow_cycle',
      'steps[0].dependsOn',
      /a → b → c → a/,
    ],
  ])('refuses %s', (_n, steps, code, field, message) => {
    expect(() => validateDag(steps)).toThrow(
      expect.objectContaining({ code, details: expect.objectContaining({ field }), message: expect.stringMatching(message) }),
    );
  });

  it('orders every step after its dependencies', () => {
    const steps = [step('d', ['b', 'c']), step('b', ['a']), step('c', ['a']), step('a')];
    const order = validateDag(steps).map((i) => steps[i].name);
    for (const s of steps) for (const d of s.dependsOn) expect(order.indexOf(d)).toBeLessThan(order.indexOf(s.name));
  });
});

describe('criticalPaths', () => {
  it.each([
    // a → b → c: c=1, b=1+1=2, a=1+2=3
    ['a chain', [step('a'), step('b', ['a']), step('c', ['b'])], [3, 2, 1]],
    // a → {b → c → d, e}: d=1, c=2, b=3, e=1, a=1+max(3,1)=4
    ['a long and a short branch', [step('a'), step('b', ['a']), step('c', ['b']), step('d', ['c']), step('e', ['a'])], [4, 3, 2, 1, 1]],
    // two independent steps: 1 each
    ['independent steps', [step('x'), step('y')], [1, 1]],
  ])('%s', (_n, steps, expected) => {
    expect(criticalPaths(steps)).toEqual(expected);
  });
});

/** A workflow record with the given steps (phase, when, job) and their critical paths. */
function wf(steps: Array<DagStep & { phase?: StepPhase; jobId?: string }>, extra: Partial<WorkflowRecord> = {}): WorkflowRecord {
  const cps = criticalPaths(steps);
  const full: WorkflowStep[] = steps.map((s, i) => ({
    name: s.name,
    dependsOn: [...s.dependsOn],
    when: s.when ?? 'success',
    job: {},
    criticalPath: cps[i],
    phase: s.phase ?? 'Pending',
    ...(s.jobId ? { jobId: s.jobId } : {}),
  }));
  return { id: 'wf-1', name: 'w', tenant: 't', queue: 'q', labels: {}, phase: 'Running', steps: full, createdAt: 0, ...extra };
}
const jobs = (o: Record<string, JobPhase>) => new Map(Object.entries(o));

describe('advance', () => {
  it('submits the steps without dependencies, longest remaining chain first', () => {
    // short(1) and long → mid → end: long has 3 steps to go, so it goes first although declared second.
    const plan = advance(wf([step('short'), step('long'), step('mid', ['long']), step('end', ['mid'])]), jobs({}), 10);
    expect(plan.submit).toEqual(['long', 'short']);
    expect(plan.phases).toMatchObject({ long: 'Running', short: 'Running', mid: 'Pending' });
    expect(plan.phase).toBe('Running');
  });

  it('waits for every task of a fan-out before its fan-in step', () => {
    const w = wf([step('map', [], { phase: 'Running', jobId: 'j-map' }), step('reduce', ['map'])]);
    expect(advance(w, jobs({ 'j-map': 'Running' }), 10).submit).toEqual([]);
    expect(advance(w, jobs({ 'j-map': 'Succeeded' }), 10).submit).toEqual(['reduce']);
  });

  it('on a failure runs the failure step, skips the dependants of the failed step, and fails the workflow at the end', () => {
    const w = wf([
      step('prep', [], { phase: 'Running', jobId: 'j1' }),
      step('train', ['prep']),
      step('eval', ['train']),
      step('cleanup', ['prep'], { when: 'failure' }),
      step('report', ['eval'], { when: 'always' }),
    ]);
    const plan = advance(w, jobs({ j1: 'Failed' }), 10);
    // train skipped (prep Failed) → eval skipped → report (always) runs, since all of its deps are terminal.
    expect(plan.skip).toEqual(['train', 'eval']);
    expect(plan.submit.sort()).toEqual(['cleanup', 'report']);
    expect(plan.phase).toBe('Running');
    const after = wf([
      step('prep', [], { phase: 'Failed', jobId: 'j1' }),
      step('train', ['prep'], { phase: 'Skipped' }),
      step('eval', ['train'], { phase: 'Skipped' }),
      step('cleanup', ['prep'], { when: 'failure', phase: 'Running', jobId: 'j2' }),
      step('report', ['eval'], { when: 'always', phase: 'Running', jobId: 'j3' }),
    ]);
    const end = advance(after, jobs({ j2: 'Succeeded', j3: 'Succeeded' }), 20);
    expect(end).toMatchObject({ phase: 'Failed', finishedAt: 20 });
  });

  it('skips a failure step when every dependency succeeded, and the workflow succeeds', () => {
    const w = wf([step('a', [], { phase: 'Running', jobId: 'ja' }), step('cleanup', ['a'], { when: 'failure' })]);
    const plan = advance(w, jobs({ ja: 'Succeeded' }), 30);
    expect(plan).toMatchObject({ skip: ['cleanup'], submit: [], phase: 'Succeeded', finishedAt: 30 });
  });

  it('counts a rejected step job as Failed', () => {
    const plan = advance(wf([step('a', [], { phase: 'Running', jobId: 'ja' })]), jobs({ ja: 'Rejected' }), 5);
    expect(plan).toMatchObject({ phase: 'Failed', phases: { a: 'Failed' } });
  });

  it('on a cancel cancels running steps, ends pending ones Cancelled, and ends Cancelled once the jobs ended', () => {
    const w = wf([step('a', [], { phase: 'Running', jobId: 'ja' }), step('b', ['a'])], { cancelRequestedAt: 5 });
    const plan = advance(w, jobs({ ja: 'Running' }), 6);
    expect(plan).toMatchObject({ cancel: ['a'], submit: [], phases: { a: 'Running', b: 'Cancelled' }, phase: 'Running' });
    expect(advance(w, jobs({ ja: 'Cancelled' }), 7)).toMatchObject({ phase: 'Cancelled', finishedAt: 7 });
  });

  it('at the deadline cancels running steps and fails the workflow', () => {
    // deadlineAt 1000: at 999 nothing changes, at 1000 the running step is cancelled.
    const w = wf([step('a', [], { phase: 'Running', jobId: 'ja' })], { deadlineAt: 1000 });
    expect(advance(w, jobs({ ja: 'Running' }), 999)).toMatchObject({ cancel: [], changed: false });
    expect(advance(w, jobs({ ja: 'Running' }), 1000)).toMatchObject({ cancel: ['a'], phase: 'Running' });
    expect(advance(w, jobs({ ja: 'Cancelled' }), 1001)).toMatchObject({ phase: 'Failed' });
  });

  it('changes nothing for a finished workflow or while step jobs are unknown', () => {
    expect(advance(wf([step('a', [], { phase: 'Succeeded' })], { phase: 'Succeeded' }), jobs({}), 1).changed).toBe(false);
    expect(advance(wf([step('a', [], { phase: 'Running', jobId: 'ja' })]), jobs({}), 1).changed).toBe(false);
  });
});

describe("advance with the workflow's maxRunning", () => {
  // Five independent steps a..e (e has the longest chain: e → f), plus f after e.
  const five = (phases: Partial<Record<string, StepPhase>> = {}) =>
    ['a', 'b', 'c', 'd', 'e'].map((n, i) => step(n, [], phases[n] ? { phase: phases[n], jobId: `j${i}` } : {}));
  it.each([
    // slots = maxRunning − running; the ready steps in definition order take them, the rest are held
    { name: 'no limit: all five ready start', maxRunning: undefined, phases: {}, jobPhases: {}, submit: ['e', 'a', 'b', 'c', 'd'], held: undefined },
    {
      name: 'limit 2, none running: 2 − 0 = 2 slots → a, b; c, d, e held',
      maxRunning: 2,
      phases: {},
      jobPhases: {},
      submit: ['a', 'b'],
      held: ['c', 'd', 'e'],
    },
    {
      name: 'limit 2, a and b running: 2 − 2 = 0 slots → all held',
      maxRunning: 2,
      phases: { a: 'Running', b: 'Running' },
      jobPhases: { j0: 'Running', j1: 'Running' },
      submit: [],
      held: ['c', 'd', 'e'],
    },
    {
      name: 'limit 2, a ended, b running: 2 − 1 = 1 slot → c (definition order, though e has the longer chain)',
      maxRunning: 2,
      phases: { a: 'Running', b: 'Running' },
      jobPhases: { j0: 'Succeeded', j1: 'Running' },
      submit: ['c'],
      held: ['d', 'e'],
    },
    {
      name: 'limit 3, a and b ended: 3 − 0 = 3 slots → c, d, e; submitted longest chain first',
      maxRunning: 3,
      phases: { a: 'Running', b: 'Running' },
      jobPhases: { j0: 'Succeeded', j1: 'Failed' },
      submit: ['e', 'c', 'd'],
      held: undefined,
    },
    {
      name: 'a step whose job is not seen yet still holds its slot: 1 − 1 = 0',
      maxRunning: 1,
      phases: { a: 'Running' },
      jobPhases: {},
      submit: [],
      held: ['b', 'c', 'd', 'e'],
    },
  ])('$name', ({ maxRunning, phases, jobPhases, submit, held }) => {
    const w = wf([...five(phases as Record<string, StepPhase>), step('f', ['e'])], maxRunning ? { maxRunning } : {});
    const plan = advance(w, jobs(jobPhases as Record<string, JobPhase>), 10);
    expect(plan.submit).toEqual(submit);
    expect(plan.held).toEqual(held);
    for (const n of held ?? []) expect(plan.phases[n]).toBe('Pending');
    // f waits for e in every case: never more Running than the limit
    if (maxRunning) expect(Object.values(plan.phases).filter((p) => p === 'Running').length).toBeLessThanOrEqual(maxRunning);
  });

  it('a skip or a cancel is never held by the limit', () => {
    // limit 1, a running and failed: b (after a) is skipped at once, cleanup (failure) takes the free slot
    const w = wf([step('a', [], { phase: 'Running', jobId: 'ja' }), step('b', ['a']), step('cleanup', ['a'], { when: 'failure' })], { maxRunning: 1 });
    expect(advance(w, jobs({ ja: 'Failed' }), 10)).toMatchObject({ skip: ['b'], submit: ['cleanup'] });
  });
});

describe('fanOutItems', () => {
  it.each([
    [
      'the results in index order',
      3,
      [
        { index: 2, value: 'c' },
        { index: 0, value: 'a' },
      ],
      ['a', 'c'],
    ],
    ["the elements of the one task's array result", 1, [{ index: 0, value: [1, 2, 3] }], [1, 2, 3]],
    ['an array result of one of several tasks as one item', 2, [{ index: 0, value: [1, 2] }], [[1, 2]]],
  ])('%s', (_n, tasks, results, expected) => {
    expect(fanOutItems(tasks, results)).toEqual(expected);
  });

  it("fans out over a map source's results one item per task, even a map of one whose result is an array", () => {
    expect(fanOutItems(1, [{ index: 0, value: [1, 2, 3] }], true)).toEqual([[1, 2, 3]]);
    expect(
      fanOutItems(
        2,
        [
          { index: 1, value: 'b' },
          { index: 0, value: [1] },
        ],
        true,
      ),
    ).toEqual([[1], 'b']);
  });

  it('gives fixed step job ids', () => {
    expect(stepJobId('wf-abc-123', 4)).toBe('abc-123-s4');
  });
});
