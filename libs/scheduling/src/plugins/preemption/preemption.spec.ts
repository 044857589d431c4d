import { parseResources } from '@batchapi/api';
import { type NodeSnapshot, type PendingWork, planPreemption, preemptionPass, type RunningTask } from '../../index';

const NOW = 1_000_000;
const node = (name: string, cap: Record<string, string | number>, used: Record<string, string | number> = {}): NodeSnapshot => ({
  name,
  capacity: parseResources(cap),
  used: parseResources(used),
  devices: {},
  gpuCount: Number(cap.gpu ?? 0),
  labels: {},
  taints: [],
});
const work = (jobId: string, priority: number, res: Record<string, string | number>, tasks = 1, extra: Partial<PendingWork> = {}): PendingWork => ({
  jobId,
  queue: 'hi',
  priority,
  createdAt: 0,
  resources: parseResources(res),
  tasks,
  ...extra,
});
let n = 0;
const task = (node: string, priority: number, cpu: string, ageMs: number, extra: Partial<RunningTask> = {}): RunningTask => ({
  jobId: `low-${n}`,
  queue: 'lo',
  node,
  groupStart: 0,
  attempt: 1,
  index: n++,
  priority,
  resources: parseResources({ cpu }),
  devices: [],
  boundAt: NOW - ageMs,
  stopping: false,
  ...extra,
});

describe('planPreemption', () => {
  it('takes the fewest victims, lowest priority first, least lost work first', () => {
    // a: 4 cores full with two 2-core tasks (prio 0); b: 4 cores full with four 1-core tasks (prio 0).
    // A 2-core task of prio 10: one victim on a, two on b → a. On a, the more recent task loses less work.
    const nodes = [node('a', { cpu: '4' }, { cpu: '4' }), node('b', { cpu: '4' }, { cpu: '4' })];
    const old = task('a', 0, '2', 600_000);
    const recent = task('a', 0, '2', 120_000);
    const running = [old, recent, ...[1, 2, 3, 4].map(() => task('b', 0, '1', 120_000))];
    const v = planPreemption([work('hi', 10, { cpu: '2' })], nodes, running, { now: NOW });
    expect(v.map((x) => x.task)).toEqual([recent]);
  });

  it('never preempts equal or higher priority, young tasks, or past the queue budget', () => {
    const nodes = [node('a', { cpu: '2' }, { cpu: '2' })];
    const equal = task('a', 10, '1', 600_000);
    const young = task('a', 0, '1', 1_000); // bound 1 s ago: protected for 60 s
    expect(planPreemption([work('hi', 10, { cpu: '1' })], nodes, [equal, young], { now: NOW })).toEqual([]);
    const eligible = task('a', 0, '1', 600_000);
    expect(planPreemption([work('hi', 10, { cpu: '1' })], nodes, [equal, eligible], { now: NOW, budget: new Map([['lo', 0]]) })).toEqual([]);
  });

  it('does not preempt again for room that is already being freed', () => {
    // one 2-core task already stopping frees room for the 2-core preemptor
    const nodes = [node('a', { cpu: '2' }, { cpu: '2' })];
    const v = planPreemption([work('hi', 10, { cpu: '2' })], nodes, [task('a', 0, '2', 600_000, { stopping: true }), task('a', 0, '2', 600_000)], { now: NOW });
    expect(v).toEqual([]);
  });

  it('frees a whole GPU device for a whole-GPU task', () => {
    // 2 GPUs: device 0 holds two 0.5 shares (prio 0), device 1 one whole GPU (prio 0, older).
    // A 1-GPU task: preempting the whole-GPU task frees a device with 1 victim; the shares need 2.
    const g = { ...node('g', { cpu: '16', gpu: 2 }, { cpu: '3', gpu: 2 }), devices: { 0: 1000, 1: 1000 } };
    const share = (i: number) => task('g', 0, '1', 120_000 + i, { resources: parseResources({ cpu: '1', gpu: 0.5 }), devices: [0] });
    const whole = task('g', 0, '1', 900_000, { resources: parseResources({ cpu: '1', gpu: 1 }), devices: [1] });
    const v = planPreemption([work('hi', 5, { cpu: '1', gpu: 1 })], [g], [share(1), share(2), whole], { now: NOW });
    expect(v.map((x) => x.task)).toEqual([whole]);
  });

  it.each([
    // [case, gang tasks, nodes' running prio-0 tasks, victims expected]
    // Two nodes of 4 cores, each full with two 2-core tasks; the gang asks 4 cores a task.
    ['room for every task: one node each, both tasks there stop', 2, 2, 4],
    // Three tasks of 4 cores cannot fit two 4-core nodes even if everything stops: nobody is stopped.
    ['no room for the third task: nothing stops', 3, 2, 0],
  ])('a gang gets victims only with room for all its tasks at once (%s)', (_case, tasks, perNode, expected) => {
    const nodes = [node('a', { cpu: '4' }, { cpu: '4' }), node('b', { cpu: '4' }, { cpu: '4' })];
    const running = ['a', 'b'].flatMap((nd) => Array.from({ length: perNode }, () => task(nd, 0, '2', 600_000)));
    const v = planPreemption([work('gang', 10, { cpu: '4' }, tasks, { gang: true })], nodes, running, { now: NOW });
    expect(v).toHaveLength(expected);
    expect(v.every((x) => x.forJob === 'gang')).toBe(true);
  });

  it('a gang that cannot be served leaves budget and room to the work after it', () => {
    // The gang (prio 10, 3 × 4 cores) cannot fit 2 nodes; the single task after it (prio 5, 2 cores) takes one victim.
    const nodes = [node('a', { cpu: '4' }, { cpu: '4' }), node('b', { cpu: '4' }, { cpu: '4' })];
    const running = ['a', 'b'].flatMap((nd) => [task(nd, 0, '2', 600_000), task(nd, 0, '2', 600_000)]);
    const v = planPreemption([work('gang', 10, { cpu: '4' }, 3, { gang: true }), work('single', 5, { cpu: '2' })], nodes, running, {
      now: NOW,
      budget: new Map([['lo', 1]]),
    });
    expect(v.map((x) => x.forJob)).toEqual(['single']);
  });
});

describe('preemptionPass: thrash damping', () => {
  const full = () => [node('a', { cpu: '2' }, { cpu: '2' })];

  it.each([
    // a: 2 cores full with two 1-core tasks of prio 0; a 2-core task of prio 10 needs both.
    { name: 'both tasks old enough: both are victims', ages: [120_000, 120_000], exempt: [], victims: 2, held: [] },
    // one started 30 s ago < protectMs 60 s: no room can be made; it is reported as held by the exempt time
    { name: 'one started 30 s ago (< 60 s): none, held by exempt-time', ages: [120_000, 30_000], exempt: [], victims: 0, held: ['exempt-time'] },
    // one belongs to a job at its repeat limit: none, held by repeat-limit
    { name: 'one of a job at its repeat limit: none, held by repeat-limit', ages: [120_000, 120_000], exempt: [1], victims: 0, held: ['repeat-limit'] },
  ])('$name', ({ ages, exempt, victims, held }) => {
    const running = ages.map((age, i) => task('a', 0, '1', age, { jobId: `j${i}` }));
    const out = preemptionPass([work('hi', 10, { cpu: '2' })], full(), running, {
      now: NOW,
      protectMs: 60_000,
      exemptJobs: new Set(exempt.map((i) => `j${i}`)),
    });
    expect(out.victims).toHaveLength(victims);
    expect(out.held.flatMap((h) => h.protectedTasks.map((t) => t.reason))).toEqual(held);
  });

  it('compares the submitted priority, not the aged one: aging gives no power to preempt', () => {
    // waiting work aged from 0 to 10 does not preempt a prio-5 task
    const running = [task('a', 5, '2', 120_000)];
    const aged = work('aged', 10, { cpu: '2' }, 1, { basePriority: 0 });
    expect(preemptionPass([aged], full(), running, { now: NOW }).victims).toEqual([]);
    expect(preemptionPass([{ ...aged, basePriority: undefined }], full(), running, { now: NOW }).victims).toHaveLength(1);
  });

  it('a budget, not protection, that stops it is not reported as held', () => {
    const running = [task('a', 0, '2', 120_000)];
    const out = preemptionPass([work('hi', 10, { cpu: '2' })], full(), running, { now: NOW, budget: new Map([['lo', 0]]) });
    expect(out).toEqual({ victims: [], held: [] });
  });
});
