/**
 * Topology through whole cycles (`buildSnapshot` → `schedule` → `MemoryPlanner`): a gang that
 * requires a rack gets its backfill reservation within one rack, "why pending" shows that rack and
 * the start as the ETA, and preemption stops tasks in one rack only.
 */
import { type BackfillSettings, buildSnapshot, explainJob, MemoryPlanner, schedule } from '@batchapi/scheduling';
import { boundTasks, jobRecord, nodeRecord, queue, T0 } from './fixtures';

const S = 1000;
const RACK = 'topology.batchapi.io/rack';
const BLOCK = 'topology.batchapi.io/block';
const backfill: BackfillSettings = { maxReservations: 1, runtimeSeconds: () => 3600 };

/** Racks a (a-1, a-2; block x) and b (b-1, b-2; block y) of 4-GPU nodes; each node runs what `fill` pins there (by a host label). */
async function cluster(fill: Array<{ node: string; id: string; tasks: number; gpus: number; timeoutSeconds?: number }>) {
  const p = new MemoryPlanner({
    nodes: ['a-1', 'a-2', 'b-1', 'b-2'].map((n) =>
      nodeRecord(n, { cpu: 16, gpu: 4 }, { labels: { host: n, [RACK]: n[0], [BLOCK]: n[0] === 'a' ? 'x' : 'y' } }),
    ),
    jobs: fill.map((f, i) =>
      jobRecord(
        f.id,
        f.tasks,
        { cpu: 1, gpu: f.gpus },
        { createdAt: T0 + i, spec: { selector: { host: f.node }, ...(f.timeoutSeconds ? { timeoutSeconds: f.timeoutSeconds } : {}) } },
      ),
    ),
    queues: [queue('q')],
  });
  await p.apply(schedule(buildSnapshot(p.state(), T0)));
  for (const f of fill) expect(boundTasks(p.bindings, f.id)).toBe(f.tasks);
  return p;
}

describe('a gang that requires a rack, with backfill', () => {
  // Every node full until its timeout: a-1 +600 s, a-2 +1,800 s, b-1 +900 s, b-2 +1,200 s. At +60 s 'big' (2 × 4 GPUs)
  // arrives. Without topology its soonest start is +900 s on a-1 and b-1 (two racks). With required=rack: rack a is whole
  // at max(600, 1800) = +1,800 s, rack b at max(900, 1200) = +1,200 s → rack b from +1,200 s, 1,140 s = 19m from now.
  const setup = async (topology?: { required: string }) => {
    const p = await cluster([
      { node: 'a-1', id: 'run-a1', tasks: 1, gpus: 4, timeoutSeconds: 600 },
      { node: 'a-2', id: 'run-a2', tasks: 1, gpus: 4, timeoutSeconds: 1800 },
      { node: 'b-1', id: 'run-b1', tasks: 1, gpus: 4, timeoutSeconds: 900 },
      { node: 'b-2', id: 'run-b2', tasks: 1, gpus: 4, timeoutSeconds: 1200 },
    ]);
    p.jobs.set('big', jobRecord('big', 2, { cpu: 1, gpu: 4 }, { createdAt: T0 + 10 * S, spec: { gang: true, ...(topology ? { topology } : {}) } }));
    return p;
  };

  it.each([
    { name: 'without topology: +900 s on a-1 and b-1, across racks', topology: undefined, start: 900, nodes: ['a-1', 'b-1'], domain: undefined },
    {
      name: 'required=rack: rack b from +1,200 s (rack a only at +1,800 s)',
      topology: { required: 'rack' },
      start: 1200,
      nodes: ['b-1', 'b-2'],
      domain: { level: 'rack', name: 'y/b' },
    },
  ])('$name', async ({ topology, start, nodes, domain }) => {
    const p = await setup(topology);
    const plan = schedule(buildSnapshot(p.state(), T0 + 60 * S), { backfill });
    expect(plan.reservations).toHaveLength(1);
    expect(plan.reservations![0]).toMatchObject({ jobId: 'big', start: T0 + start * S });
    expect(plan.reservations![0].domain).toEqual(domain);
    expect(plan.reservations![0].nodes.map((n) => n.node).sort()).toEqual(nodes);
  });

  it('why pending names the rack, its nodes and the start as the ETA', async () => {
    const p = await setup({ required: 'rack' });
    const why = explainJob(buildSnapshot(p.state(), T0 + 60 * S), p.jobs.get('big')!, 'scheduler', { backfill });
    expect(why.messages).toContain(
      `reserved: room in rack y/b on 2 nodes (b-1, b-2) for all 2 tasks from ${new Date(T0 + 1200 * S).toISOString()}, in 19m (ETA, from running tasks' timeouts and runtime estimates); other work runs there meanwhile only if its timeoutSeconds ends it before then`,
    );
  });

  it('work without a bound keeps off the held rack, and the gang starts there when the rack frees', async () => {
    const p = await setup({ required: 'rack' });
    // run-b1 ends early (+300 s): b-1 is free, but held for big; 'long' (1 GPU, no timeout) may run past +1,200 s → waits.
    p.jobs.set('long', jobRecord('long', 1, { cpu: 1, gpu: 1 }, { createdAt: T0 + 20 * S }));
    const b1 = p.bindings.find((b) => b.jobId === 'run-b1')!;
    p.bindings.splice(p.bindings.indexOf(b1), 1);
    p.allocs.delete('b-1');
    const plan = schedule(buildSnapshot(p.state(), T0 + 300 * S), { backfill });
    await p.apply(plan);
    expect(plan.reservations?.[0]).toMatchObject({ jobId: 'big', domain: { level: 'rack', name: 'y/b' } });
    expect(boundTasks(p.bindings, 'long')).toBe(0);
    // run-b2 ends too: rack b is whole, big starts there (both tasks in rack b).
    const b2 = p.bindings.find((b) => b.jobId === 'run-b2')!;
    p.bindings.splice(p.bindings.indexOf(b2), 1);
    p.allocs.delete('b-2');
    await p.apply(schedule(buildSnapshot(p.state(), T0 + 400 * S), { backfill }));
    expect(
      p.bindings
        .filter((b) => b.jobId === 'big')
        .map((b) => b.node)
        .sort(),
    ).toEqual(['b-1', 'b-2']);
  });
});

describe('preemption for a gang that requires a rack, through a cycle', () => {
  it('stops tasks in one rack only: the rack needing the fewest victims', async () => {
    // Priority-0 work fills every node: a-1 one 4-GPU task, a-2 two 2-GPU tasks, b-1 one 4-GPU task, b-2 four 1-GPU tasks.
    // 'urgent' (priority 10, 2 × 4 GPUs, required=rack): rack a needs 1 + 2 = 3 victims, rack b 1 + 4 = 5 → rack a.
    // Without topology it would stop a-1's and b-1's tasks (2 victims, two racks).
    const p = await cluster([
      { node: 'a-1', id: 'a1', tasks: 1, gpus: 4 },
      { node: 'a-2', id: 'a2', tasks: 2, gpus: 2 },
      { node: 'b-1', id: 'b1', tasks: 1, gpus: 4 },
      { node: 'b-2', id: 'b2', tasks: 4, gpus: 1 },
    ]);
    p.jobs.set('urgent', jobRecord('urgent', 2, { cpu: 1, gpu: 4 }, { createdAt: T0 + S, spec: { gang: true, priority: 10, topology: { required: 'rack' } } }));
    const plan = schedule(buildSnapshot(p.state(), T0 + 600 * S), { preemption: { budget: new Map(), protectMs: 60_000 } });
    await p.apply(plan);
    expect(plan.stops.map((s) => s.node).sort()).toEqual(['a-1', 'a-2', 'a-2']);
    expect(plan.preempted.every((v) => v.forJob === 'urgent')).toBe(true);
  });
});

describe('the domain score in a cycle (BATCH_TOPOLOGY_SCORE_WEIGHT)', () => {
  it.each([
    // b-1 full (4 of rack b's 8 GPUs: u = 0.5, × 4 = 2); every empty node scores the same by packing → rack b's b-2.
    { name: 'by default a 1-GPU job goes to the rack in use (b-2)', weight: undefined, node: 'b-2' },
    // Off: the packing scores tie and name order takes a-1, breaking the whole rack a.
    { name: 'weight 0: name order breaks the whole rack (a-1)', weight: 0, node: 'a-1' },
  ])('$name', async ({ weight, node }) => {
    const p = await cluster([{ node: 'b-1', id: 'run-b1', tasks: 1, gpus: 4 }]);
    p.jobs.set('one', jobRecord('one', 1, { cpu: 1, gpu: 1 }, { createdAt: T0 + S }));
    const plan = schedule(buildSnapshot(p.state(), T0 + 2 * S, weight === undefined ? {} : { domainScoreWeight: weight }));
    expect(plan.placements.map((x) => x.node)).toEqual([node]);
  });
});
