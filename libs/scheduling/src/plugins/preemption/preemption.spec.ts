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

describe('preemption for work that requires a topology domain: victims in one domain only', () => {
  const RACK = 'topology.batchapi.io/rack';
  const BLOCK = 'topology.batchapi.io/block';
  // Racks a (a-1, a-2; block x) and b (b-1, b-2; block y) of 4-core nodes, all full; the gang asks 2 tasks of 4 cores, priority 10.
  const racked = (name: string, free: readonly string[]): NodeSnapshot => ({
    ...node(name, { cpu: '4' }, free.includes(name) ? {} : { cpu: '4' }),
    labels: { [RACK]: name[0], [BLOCK]: name[0] === 'a' ? 'x' : 'y' },
  });
  const nodes = (free: readonly string[] = []) => ['a-1', 'a-2', 'b-1', 'b-2'].map((n) => racked(n, free));
  /** Tasks of `cpu` cores each filling `node` (4 cores), at `priority`, bound 10 min ago (`young`: 10 s ago). */
  const fill = (nodeName: string, count: number, priority = 0, young = false) =>
    Array.from({ length: count }, () => task(nodeName, priority, String(4 / count), young ? 10_000 : 600_000));
  const gang = (topology?: PendingWork['topology'], tasks = 2) => work('gang', 10, { cpu: '4' }, tasks, { gang: true, ...(topology ? { topology } : {}) });
  const racksOf = (victims: Array<{ task: RunningTask }>) => [...new Set(victims.map((v) => v.task.node[0]))].sort();

  const table: Array<{
    name: string;
    running: () => RunningTask[];
    topology?: PendingWork['topology'];
    tasks?: number;
    budget?: Array<[string, number]>;
    /** Nodes with nothing running. */
    free?: string[];
    /** Victims expected, and the racks they are in. */
    victims: number;
    racks: string[];
  }> = [
    {
      // Without topology, per task the cheapest node: a-1 (1 victim) and b-1 (1 victim) → 2 victims in 2 racks.
      name: 'without topology: the cheapest node per task, across racks',
      running: () => [...fill('a-1', 1), ...fill('a-2', 2), ...fill('b-1', 1), ...fill('b-2', 4)],
      victims: 2,
      racks: ['a', 'b'],
    },
    {
      // required=rack: rack a needs 1 (a-1) + 2 (a-2) = 3 victims, rack b 1 (b-1) + 4 (b-2) = 5 → rack a, 3 victims, none in b.
      name: 'required=rack: the rack needing the fewest victims (a: 1 + 2 = 3, b: 1 + 4 = 5)',
      running: () => [...fill('a-1', 1), ...fill('a-2', 2), ...fill('b-1', 1), ...fill('b-2', 4)],
      topology: { required: 'rack' },
      victims: 3,
      racks: ['a'],
    },
    {
      // Both racks need 2 victims; rack a's top priority is 5 (a-1), rack b's 1 → rack b.
      name: 'required=rack, equal counts: the rack whose victims have the lower top priority (b: 1 < a: 5)',
      running: () => [...fill('a-1', 1, 5), ...fill('a-2', 1, 0), ...fill('b-1', 1, 1), ...fill('b-2', 1, 1)],
      topology: { required: 'rack' },
      victims: 2,
      racks: ['b'],
    },
    {
      // a-1 is free: rack a needs 1 victim (a-2), rack b 2 → rack a with 1 — free room first, never more than needed.
      name: 'required=rack uses free room first: 1 victim in rack a (a-1 free), not 2 in b',
      running: () => [...fill('a-2', 1), ...fill('b-1', 1), ...fill('b-2', 1)],
      free: ['a-1'],
      topology: { required: 'rack' },
      victims: 1,
      racks: ['a'],
    },
    {
      // 3 tasks of 4 cores > the 2 nodes of any rack: nothing stops (without topology 3 victims over both racks would).
      name: 'required=rack when no rack can ever hold the gang: no victim',
      running: () => [...fill('a-1', 1), ...fill('a-2', 1), ...fill('b-1', 1), ...fill('b-2', 1)],
      topology: { required: 'rack' },
      tasks: 3,
      victims: 0,
      racks: [],
    },
    {
      // Rack a's tasks are in queue lo (budget 1 left < 2 needed), rack b's in lo2 (no limit): rack b, though a is cheaper by
      // priority (a: 0, b: 3). The budget is counted as before, per queue.
      name: 'required=rack within the budgets: rack a would need 2 of lo (budget 1) → rack b',
      running: () => [
        ...fill('a-1', 1),
        ...fill('a-2', 1),
        ...fill('b-1', 1, 3).map((t) => ({ ...t, queue: 'lo2' })),
        ...fill('b-2', 1, 3).map((t) => ({ ...t, queue: 'lo2' })),
      ],
      topology: { required: 'rack' },
      budget: [['lo', 1]],
      victims: 2,
      racks: ['b'],
    },
    {
      // required=block: block x is rack a, block y rack b (as racks) → the same choice at the block level: a (3 < 5).
      name: 'required=block: the block needing the fewest victims',
      running: () => [...fill('a-1', 1), ...fill('a-2', 2), ...fill('b-1', 1), ...fill('b-2', 4)],
      topology: { required: 'block' },
      victims: 3,
      racks: ['a'],
    },
  ];
  it.each(table)('$name', ({ running, topology, tasks, budget, free, victims, racks }) => {
    const v = planPreemption([gang(topology, tasks)], nodes(free), running(), { now: NOW, ...(budget ? { budget: new Map(budget) } : {}) });
    expect(v).toHaveLength(victims);
    expect(racksOf(v)).toEqual(racks);
  });

  it('thrash damping is unchanged: young tasks are protected, and the held report names only the chosen rack', () => {
    // Every task young (10 s < 60 s): no victim. Without protection rack a would need 2 (a-1, a-2), rack b 3 (b-1, b-2 × 2) →
    // the report names rack a's 2 tasks, not 5 over both racks.
    const running = [...fill('a-1', 1, 0, true), ...fill('a-2', 1, 0, true), ...fill('b-1', 1, 0, true), ...fill('b-2', 2, 0, true)];
    const out = preemptionPass([gang({ required: 'rack' })], nodes(), running, { now: NOW, protectMs: 60_000 });
    expect(out.victims).toEqual([]);
    expect(out.held).toEqual([
      { jobId: 'gang', protectedTasks: [expect.objectContaining({ reason: 'exempt-time' }), expect.objectContaining({ reason: 'exempt-time' })] },
    ]);
  });

  it('plain (non-gang) work with required=rack takes victims in one rack for as many tasks as that rack can give', () => {
    // 3 tasks of 4 cores, not a gang: rack a gives 2 (2 victims), rack b 2 (2 victims) → the most tasks, then the fewest
    // victims tie, then lowest top priority (a: 0, b: 2) → rack a; the third task waits (no victim in rack b for it).
    const running = [...fill('a-1', 1), ...fill('a-2', 1), ...fill('b-1', 1, 2), ...fill('b-2', 1, 2)];
    const v = planPreemption([work('plain', 10, { cpu: '4' }, 3, { topology: { required: 'rack' } })], nodes(), running, { now: NOW });
    expect(v).toHaveLength(2);
    expect(racksOf(v)).toEqual(['a']);
  });
});
