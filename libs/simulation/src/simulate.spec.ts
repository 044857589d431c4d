import { InputError, parseNodes, parseQueues, parseWorkload, simulate } from './index';

const nodes = (...lines: object[]) => parseNodes(lines.map((l) => JSON.stringify(l)).join('\n'));
const workload = (...lines: object[]) => parseWorkload(lines.map((l) => JSON.stringify(l)).join('\n'));

describe('simulate', () => {
  it.each([
    {
      name: 'an array job in two waves on one node',
      // 4 cores, 8 one-core tasks of 10 s: two waves → makespan 20 s; cpu fully used for 20 s → 1.0
      nodes: [{ name: 'n', capacity: { cpu: '4', memory: '16Gi' } }],
      work: [{ name: 'a', tasks: 8, resources: { cpu: '1' }, duration: 10 }],
      expected: { placed: 8, pending: 0, completed: 8, rejected: 0, nodesUsed: 1, makespan: 20, placedByQueue: { default: 8 } },
      cpu: 1,
    },
    {
      name: 'a late submission on a half-used node',
      // 2 tasks at t=0 for 10 s and 2 at t=10 for 10 s, on 4 cores: half used for 20 s → 0.5
      nodes: [{ name: 'n', capacity: { cpu: '4' } }],
      work: [
        { name: 'a', tasks: 2, resources: { cpu: '1' }, duration: 10 },
        { name: 'b', submitAt: 10, tasks: 2, resources: { cpu: '1' }, duration: 10 },
      ],
      expected: { placed: 4, completed: 4, makespan: 20 },
      cpu: 0.5,
    },
    {
      name: 'tasks that never end and tasks that never fit',
      // 2 cores: 2 run forever; the third waits; nothing finishes → makespan null, allocation at the end = 2/2
      nodes: [{ name: 'n', capacity: { cpu: '2' } }],
      work: [{ name: 'a', tasks: 3, resources: { cpu: '1' } }],
      expected: { placed: 2, pending: 1, completed: 0, makespan: null },
      cpu: 1,
    },
    {
      name: 'a task stopped at its timeoutSeconds, as the executor does',
      // 1 core: a runs 100 s but its timeout is 30 s → ends at 30 s; b (10 s) then runs 30–40 s → makespan 40, cpu busy 40/40 → 1.0
      nodes: [{ name: 'n', capacity: { cpu: '1' } }],
      work: [
        { name: 'a', resources: { cpu: '1' }, duration: 100, timeoutSeconds: 30 },
        { name: 'b', resources: { cpu: '1' }, duration: 10 },
      ],
      expected: { placed: 2, completed: 2, makespan: 40 },
      cpu: 1,
    },
    {
      name: 'an array job held to its maxRunning: the rest of the node goes to another job',
      // 8 cores; a: 12 × 1 core × 10 s with maxRunning 3 → ⌈12 / 3⌉ = 4 waves → ends at 40 s; b: 10 × 1 core × 20 s takes
      // the other 5 cores → 2 waves → 40 s. cpu: (12 × 10 + 10 × 20) / (8 × 40) = 320 / 320 = 1.0
      nodes: [{ name: 'n', capacity: { cpu: '8' } }],
      work: [
        { name: 'a', tasks: 12, resources: { cpu: '1' }, duration: 10, maxRunning: 3 },
        { name: 'b', submitAt: 0, tasks: 10, resources: { cpu: '1' }, duration: 20 },
      ],
      expected: { placed: 22, completed: 22, makespan: 40 },
      cpu: 1,
    },
  ])('$name', ({ nodes: n, work, expected, cpu }) => {
    const res = simulate(nodes(...n), workload(...work));
    expect(res).toMatchObject(expected);
    expect(res.allocation.cpu).toBeCloseTo(cpu, 3);
  });

  it('never runs more of a job than its maxRunning', () => {
    // 16 cores, 40 × 1 core × 10 s with maxRunning 5: every task runs 10 s, so the tasks running at a start time t are
    // those started in (t − 10, t]; that never passes 5, and 40 / 5 = 8 waves → makespan 80 s
    const starts: Array<[number, number]> = [];
    const res = simulate(
      nodes({ name: 'n', capacity: { cpu: '16' } }),
      workload({ name: 'a', tasks: 40, resources: { cpu: '1' }, duration: 10, maxRunning: 5 }),
      {
        onStart: (t, _job, tasks) => starts.push([t, tasks]),
      },
    );
    expect(res).toMatchObject({ placed: 40, completed: 40, makespan: 80 });
    const runningAt = (t: number) => starts.filter(([s]) => s > t - 10 && s <= t).reduce((n, [, k]) => n + k, 0);
    expect(Math.max(...starts.map(([t]) => runningAt(t)))).toBe(5);
  });

  it("holds a queue to its maxRunningTasks across jobs, and leaves another queue's work alone", () => {
    // 16 cores. Queue ml (maxRunningTasks 4): a (12 × 1 core × 10 s, priority 5) and b (4 × 1 core × 10 s) share 4 slots,
    // a first (higher priority): a runs 4, 4, 4 over 0–30 s, then b's 4 at 30–40 s → ml's makespan 40 s.
    // Queue etl (no cap): c (8 × 1 core × 10 s) takes 8 of the other 12 cores at once → done at 10 s.
    const starts: Array<[number, string, number]> = [];
    const res = simulate(
      nodes({ name: 'n', capacity: { cpu: '16' } }),
      workload(
        { name: 'a', queue: 'ml', tasks: 12, resources: { cpu: '1' }, duration: 10, priority: 5 },
        { name: 'b', queue: 'ml', tasks: 4, resources: { cpu: '1' }, duration: 10 },
        { name: 'c', queue: 'etl', tasks: 8, resources: { cpu: '1' }, duration: 10 },
      ),
      {
        queues: parseQueues(JSON.stringify({ queues: [{ name: 'ml', maxRunningTasks: 4 }, { name: 'etl' }] })),
        // Job ids are `<line>:<name>`.
        onStart: (t, job, tasks) => starts.push([t, job.split(':')[1], tasks]),
      },
    );
    expect(res).toMatchObject({ placed: 24, completed: 24, makespan: 40, placedByQueue: { ml: 16, etl: 8 } });
    const ml = (t: number) => starts.filter(([s, j]) => j !== 'c' && s > t - 10 && s <= t).reduce((n, [, , k]) => n + k, 0);
    expect(Math.max(...starts.map(([t]) => ml(t)))).toBe(4);
    expect(starts.filter(([, j]) => j === 'b').map(([t]) => t)).toEqual([30]);
    expect(starts.filter(([, j]) => j === 'c')).toEqual([[0, 'c', 8]]);
  });

  it('with a batching window, work arriving within it is placed together at its end', () => {
    // Arrivals at 0, 0.3 and 0.6 s. No window: each starts as it arrives. A 1 s window: the first
    // starts at once (no cycle before it), the other two wait for the cycle owed at 0 + 1 = 1 s.
    const n = nodes({ name: 'n', capacity: { cpu: '4' } });
    const w = workload(...[0, 0.3, 0.6].map((submitAt, i) => ({ name: `j${i}`, submitAt, resources: { cpu: '1' } })));
    const startsWith = (batchWindowSeconds: number) => {
      const starts: number[] = [];
      simulate(n, w, { batchWindowSeconds, onStart: (t) => starts.push(t) });
      return starts;
    };
    expect(startsWith(0)).toEqual([0, 0.3, 0.6]);
    expect(startsWith(1)).toEqual([0, 1, 1]);
  });

  it('packs arrivals over time into fewer nodes with a batching window', () => {
    // Bins of 10 cores; tasks of 4, 4, 6, 6 cores arrive 0.1 s apart and never end. One at a time, the
    // second 4 joins the first (8 of 10), and each 6 needs a node of its own: 3 nodes. With a 1 s
    // window the first 4 starts alone; the cycle at 1 s sees 4, 6 and 6 together: 6 fills the first
    // node (4 + 6 = 10), 4 + 6 the second: 2 nodes, the optimum.
    const n = nodes(...['a', 'b', 'c', 'd'].map((name) => ({ name, capacity: { cpu: '10' } })));
    const w = workload(...[4, 4, 6, 6].map((cpu, i) => ({ name: `t${i}`, submitAt: i / 10, resources: { cpu: String(cpu) } })));
    expect(simulate(n, w).nodesUsed).toBe(3);
    expect(simulate(n, w, { batchWindowSeconds: 1 }).nodesUsed).toBe(2);
  });

  it('shares one GPU between fractional tasks and never past one device', () => {
    // 1 node, 2 GPUs; tasks of 0.5 GPU: 4 fit at once; 6 tasks of 10 s → makespan 20
    const res = simulate(
      nodes({ name: 'g', capacity: { cpu: '64', gpu: 2 } }),
      workload({ name: 'f', tasks: 6, resources: { cpu: '1', gpu: 0.5 }, duration: 10 }),
    );
    expect(res).toMatchObject({ placed: 6, completed: 6, makespan: 20 });
  });

  it('holds a queue to its nominal quota plus borrowing, and rejects a task that can never fit it', () => {
    // b lends its idle 4 cores to the cohort; a may borrow 1 of them beyond its nominal 2
    const queues = parseQueues(
      JSON.stringify({
        queues: [
          { name: 'a', nominal: { cpu: '2' }, borrowingLimit: { cpu: '1' } },
          { name: 'b', nominal: { cpu: '4' } },
        ],
      }),
    );
    const rejected: string[] = [];
    // 2 + 1 = 3 cores may be held at once: 6 one-core tasks of 10 s → waves of 3 → makespan 20; a 4-core task is rejected
    const res = simulate(
      nodes({ name: 'n', capacity: { cpu: '16' } }),
      workload({ name: 'x', queue: 'a', tasks: 6, resources: { cpu: '1' }, duration: 10 }, { name: 'big', queue: 'a', resources: { cpu: '4' }, duration: 1 }),
      { queues, onReject: (s, why) => rejected.push(`${s.name}: ${why}`) },
    );
    expect(res).toMatchObject({ placed: 6, rejected: 1, makespan: 20 });
    expect(rejected[0]).toMatch(/^big: /);
  });
});

describe('fair share', () => {
  it('splits the textbook cluster by dominant resource fairness: A 3, B 2', () => {
    // 9 CPU / 18 GiB; A's tasks ⟨1 CPU, 4 GiB⟩ (dominant: memory 4/18), B's ⟨3 CPU, 1 GiB⟩ (dominant: cpu 3/9)
    const res = simulate(
      nodes({ name: 'n', capacity: { cpu: '9', memory: '18Gi' } }),
      workload(
        { name: 'a', queue: 'a', tenant: 'a', tasks: 10, resources: { cpu: '1', memory: '4Gi' } },
        { name: 'b', queue: 'b', tenant: 'b', tasks: 10, resources: { cpu: '3', memory: '1Gi' } },
      ),
    );
    expect(res).toMatchObject({ placed: 5, pending: 15, placedByQueue: { a: 3, b: 2 } });
    // cpu 3·1 + 2·3 = 9 of 9; memory 3·4 + 2·1 = 14 of 18
    expect(res.allocation.cpu).toBe(1);
    expect(res.allocation.memory).toBeCloseTo(14 / 18, 3);
  });
});

describe('input errors name the file, line and field', () => {
  it.each([
    ['not JSON', () => parseNodes('{"name": "a", "capacity": {}}\n{oops', 'nodes.jsonl'), 'nodes.jsonl:2: (line): not JSON'],
    ['unknown field', () => parseWorkload('{"name": "a", "resources": {}, "colour": 1}', 'w.jsonl'), 'w.jsonl:1: colour: '],
    ['bad quantity', () => parseNodes('{"name": "a", "capacity": {"cpu": "lots"}}', 'n.jsonl'), 'n.jsonl:1: capacity.cpu'],
    ['bad type', () => parseWorkload('{"name": "a", "resources": {}, "tasks": "many"}', 'w.jsonl'), 'w.jsonl:1: tasks'],
  ])('%s', (_n, run, prefix) => {
    expect(run).toThrow(InputError);
    expect(run).toThrow(prefix);
  });

  it('with backfill, a job whose timeout ends it before the reserved start runs; one without waits', () => {
    // 2 cores. At 0: r (1 core, timeout 100 s) runs; at 0.5 s big (2 cores) cannot start: reserved from 100 s.
    // At 1: long (1 core, 500 s, no timeout) would run past 100 s → waits; short (1 core, timeout 50 s) ends by 51 s → runs.
    const n = nodes({ name: 'n', capacity: { cpu: '2' } });
    const w = workload(
      { name: 'r', resources: { cpu: '1' }, duration: 100, timeoutSeconds: 100 },
      { name: 'big', submitAt: 0.5, resources: { cpu: '2' }, duration: 10 },
      { name: 'long', submitAt: 1, resources: { cpu: '1' }, duration: 500 },
      { name: 'short', submitAt: 1, resources: { cpu: '1' }, duration: 50, timeoutSeconds: 50 },
    );
    const starts = (backfill: boolean) => {
      const at: Record<string, number> = {};
      simulate(n, w, { ...(backfill ? { backfill: {} } : {}), onStart: (t, jobId) => (at[jobId.split(':')[1]] ??= t) });
      return at;
    };
    // Without: long takes the free core at 1 s; at 100 s r's core goes to short (big needs 2); big waits for long (501 s).
    expect(starts(false)).toEqual({ r: 0, long: 1, short: 100, big: 501 });
    // With: short backfills at 1 s (ends 51 s ≤ 100 s), big starts at 100 s, long after big (110 s).
    expect(starts(true)).toEqual({ r: 0, short: 1, big: 100, long: 110 });
  });
});

describe('consolidation in the simulation', () => {
  // a and b of 8 cores. x (2 cores, no selector) arrives first → a (the tie goes by name); y (4
  // cores) must run on b (selector host=b). Once the events are over: a 2/8, b 4/8 → a first; x's 2
  // cores fit b's 4 free → a is emptied: 2 nodes in use → 1, one task moved. Without it, 2 nodes.
  // Node-seconds until the events are over (t = 1): a alone in use from 0 to 1 → 1.
  const cluster = nodes({ name: 'a', capacity: { cpu: '8' }, labels: { host: 'a' } }, { name: 'b', capacity: { cpu: '8' }, labels: { host: 'b' } });
  const work = workload({ name: 'x', resources: { cpu: '2' } }, { name: 'y', submitAt: 1, resources: { cpu: '4' }, selector: { host: 'b' } });

  it('empties the less-used node into the other once the events are over', () => {
    const r = simulate(cluster, work, { consolidation: {} });
    expect(r.consolidation).toEqual({ passes: 1, moved: 1, nodesInUseBefore: 2, nodesInUse: 1, nodeSeconds: 1 });
    expect([r.placed, r.pending]).toEqual([2, 0]);
  });

  it('moves nothing where the tasks would not fit, and is off by default', () => {
    expect(simulate(cluster, work).consolidation).toBeUndefined();
    // y of 7 cores: a 2/8 → x's 2 cores do not fit b's 1 free; b: y is tied to b. Nothing moves.
    const tight = workload({ name: 'x', resources: { cpu: '2' } }, { name: 'y', submitAt: 1, resources: { cpu: '7' }, selector: { host: 'b' } });
    expect(simulate(cluster, tight, { consolidation: {} }).consolidation).toEqual({ passes: 0, moved: 0, nodesInUseBefore: 2, nodesInUse: 2, nodeSeconds: 1 });
  });
});
