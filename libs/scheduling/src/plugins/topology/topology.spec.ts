import type { JobTopology } from '@batchapi/api';
import type { NodeSnapshot, PendingWork, Placement, Unplaced } from '../../index';
import { explainPending, packingScores, placeTasks, requestShapes } from '../../index';
import { planReservation } from '../backfill';
import { DEFAULT_TOPOLOGY_LEVELS, domainScore, parseTopologyLevels, tasksOnNode, TopologyLevelsError } from './index';

const BLOCK = 'topology.batchapi.io/block';
const RACK = 'topology.batchapi.io/rack';

/** A node of 8 GPUs and 64 cores; its first `usedGpus` devices are taken (one core each). */
function gpuNode(name: string, labels: Record<string, string>, usedGpus = 0): NodeSnapshot {
  const devices: Record<string, number> = {};
  for (let d = 0; d < usedGpus; d++) devices[d] = 1000;
  return {
    name,
    capacity: { cpu: 64_000, gpu: 8000 },
    used: usedGpus ? { cpu: usedGpus * 1000, gpu: usedGpus * 1000 } : {},
    devices,
    gpuCount: 8,
    labels,
    taints: [],
  };
}

/**
 * 2 racks × 4 nodes × 8 GPUs = 64 GPUs: rack `a` (nodes a-1..a-4) in block `x`, rack `b`
 * (b-1..b-4) in block `y`. `used` gives GPUs taken per node by name.
 */
function cluster(used: Record<string, number> = {}): NodeSnapshot[] {
  const out: NodeSnapshot[] = [];
  for (const [rack, block] of [
    ['a', 'x'],
    ['b', 'y'],
  ])
    for (let i = 1; i <= 4; i++) out.push(gpuNode(`${rack}-${i}`, { [BLOCK]: block, [RACK]: rack }, used[`${rack}-${i}`] ?? 0));
  return out;
}

const gang = (jobId: string, tasks: number, gpusEach: number, topology?: JobTopology, createdAt = 0): PendingWork => ({
  jobId,
  queue: 'q',
  priority: 0,
  createdAt,
  resources: { cpu: 1000, gpu: gpusEach * 1000 },
  tasks,
  gang: true,
  ...(topology ? { topology } : {}),
});

/** Tasks placed per rack (the node name's prefix), for one job. */
function perRack(placements: readonly Placement[], jobId: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of placements) if (p.jobId === jobId) out[p.node[0]] = (out[p.node[0]] ?? 0) + p.count;
  return out;
}

const half = { 'a-1': 4, 'a-2': 4, 'a-3': 4, 'a-4': 4 };
const aTwoFull = { 'a-1': 8, 'a-2': 8 };

describe('topology placement: a gang in one domain of the level it names, best fit', () => {
  const table: Array<{
    name: string;
    used?: Record<string, number>;
    work: PendingWork[];
    /** Tasks per rack, per job. */
    want: Record<string, Record<string, number>>;
    /** Topology reasons of the jobs left waiting. */
    reasons?: Record<string, string>;
  }> = [
    {
      // 16 GPUs = 2 tasks × 8 GPUs. Each rack holds 4 such tasks: leftover 4 − 2 = 2 in both;
      // the tie goes to the rack of the best-ranked node (a-1), so both tasks land in rack a.
      name: 'a 16-GPU gang with required=rack lands on one rack',
      work: [gang('g', 2, 8, { required: 'rack' })],
      want: { g: { a: 2 } },
    },
    {
      // Rack a half used: 4 of 8 GPUs taken on each node, 16 GPUs free but no node with 8 whole
      // GPUs, so rack a holds 0 tasks of 8 GPUs; rack b holds 4 ≥ 2 → rack b.
      name: 'with rack a half used, the 16-GPU gang goes to rack b',
      used: half,
      work: [gang('g', 2, 8, { required: 'rack' })],
      want: { g: { b: 2 } },
    },
    {
      // a-1, a-2 full: rack a holds 2 tasks of 8 GPUs, rack b 4. Best fit for 2 tasks: rack a
      // (leftover 2 − 2 = 0) over rack b (4 − 2 = 2), keeping rack b whole.
      name: 'best fit: the gang takes the rack it fills exactly, not the empty one',
      used: aTwoFull,
      work: [gang('g', 2, 8, { required: 'rack' })],
      want: { g: { a: 2 } },
    },
    {
      // a-1 full: rack a holds 3, rack b 4. g3 (3 tasks) fits rack a exactly (leftover 0) and
      // g4 (4 tasks, next in queue) then has rack b whole: 3 + 4 = 7 tasks = 56 GPUs placed.
      // Taking the roomiest rack for g3 would have left no rack for g4.
      name: 'big gangs do not fragment racks: a 24-GPU gang fills the partly used rack, a 32-GPU gang gets the whole one',
      used: { 'a-1': 8 },
      work: [gang('g3', 3, 8, { required: 'rack' }, 0), gang('g4', 4, 8, { required: 'rack' }, 1)],
      want: { g3: { a: 3 }, g4: { b: 4 } },
    },
    {
      // 40 GPUs = 5 tasks × 8; each rack holds 4 < 5 → waits (without topology it would span both racks).
      name: 'a gang larger than any rack waits with the level and the roomiest rack',
      work: [gang('g', 5, 8, { required: 'rack' })],
      want: { g: {} },
      reasons: { g: 'topology: no rack has room for all 5 tasks now; the roomiest rack (x/a) has room for 4' },
    },
    {
      // required=block: block x holds rack a (4 tasks), block y rack b (4); 5 > 4 → no block fits → waits.
      name: 'required=block when no block fits: the gang waits with the reason',
      work: [gang('g', 5, 8, { required: 'block' })],
      want: { g: {} },
      reasons: { g: 'topology: no block has room for all 5 tasks now; the roomiest block (x) has room for 4' },
    },
    {
      // Same gang without topology: 5 tasks on 8 free nodes, across both racks (4 + 1).
      name: 'without topology the same gang spans racks (default behaviour unchanged)',
      work: [gang('g', 5, 8)],
      want: { g: { a: 4, b: 1 } },
    },
    {
      // preferred=rack, rack a half used: rack a holds 0 tasks of 8 GPUs, rack b 4 ≥ 2 → rack b.
      name: 'preferred=rack takes one rack when one fits',
      used: half,
      work: [gang('g', 2, 8, { preferred: 'rack' })],
      want: { g: { b: 2 } },
    },
    {
      // preferred=rack, 6 tasks: no rack (4 each) and no block (4 each) fits; across the cluster the
      // roomiest rack first (4 tasks), then the best fit for the 2 left: 4 + 2, two racks, no third.
      name: 'preferred=rack falls back up the tree and packs into as few racks as fit',
      work: [gang('g', 6, 8, { preferred: 'rack' })],
      want: { g: { a: 4, b: 2 } },
    },
    {
      // 12 one-GPU tasks, preferred=rack: a-1..a-3 hold 6 GPUs each → rack a has 2+2+2+8 = 14 free,
      // rack b 32. Best fit: rack a (14 − 12 = 2 left) over rack b (32 − 12 = 20).
      name: 'preferred=rack with 1-GPU tasks fills the partly used rack',
      used: { 'a-1': 6, 'a-2': 6, 'a-3': 6 },
      work: [gang('g', 12, 1, { preferred: 'rack' })],
      want: { g: { a: 12 } },
    },
    {
      // A level the cluster does not have: waits, and the reason lists the levels.
      name: 'an unknown level waits with the levels the cluster has',
      work: [gang('g', 1, 8, { required: 'row' })],
      want: { g: {} },
      reasons: { g: 'topology: level "row" is not one of the cluster\'s levels (block, rack, host)' },
    },
    {
      // Plain work (not a gang), 5 tasks × 8 GPUs, required=rack: no rack takes 5; the roomiest
      // (rack a, 4) takes 4 now, 1 waits for a later pass.
      name: 'plain work with required=rack places what the roomiest rack holds now',
      work: [{ ...gang('p', 5, 8, { required: 'rack' }), gang: false }],
      want: { p: { a: 4 } },
    },
    {
      // required=host: one node; 8 one-GPU tasks fit a node whole (leftover 0) → one node.
      name: 'required=host keeps the tasks on one node (an NVLink domain)',
      used: { 'a-1': 1 },
      work: [gang('g', 8, 1, { required: 'host' })],
      want: { g: { a: 8 } },
    },
  ];

  it.each(table)('$name', ({ used, work, want, reasons }) => {
    const { placements, unplaced } = placeTasks(work, cluster(used));
    const got: Record<string, Record<string, number>> = {};
    for (const w of work) got[w.jobId] = perRack(placements, w.jobId);
    expect(got).toEqual(want);
    const byJob = new Map<string, Unplaced>(unplaced.map((u) => [u.jobId, u]));
    for (const [jobId, reason] of Object.entries(reasons ?? {})) {
      expect(byJob.get(jobId)?.statuses.map((s) => s.reason)).toContain(reason);
      expect(byJob.get(jobId)?.gangBlocked).toBe(true);
    }
  });

  it('a gang with required=host lands on a single node', () => {
    // a-1 has 7 free GPUs (< 8): best fit among nodes with 8 free is any empty one → a-2 (first ranked of equal leftover).
    const { placements } = placeTasks([gang('g', 8, 1, { required: 'host' })], cluster({ 'a-1': 1 }));
    expect(new Set(placements.map((p) => p.node)).size).toBe(1);
  });

  it('nodes without the level label: required=rack waits and says how a node joins a rack', () => {
    const nodes = [gpuNode('n-1', {}), gpuNode('n-2', {})];
    const { placements, unplaced } = placeTasks([gang('g', 1, 8, { required: 'rack' })], nodes);
    expect(placements).toEqual([]);
    expect(unplaced[0].statuses.map((s) => s.reason)).toEqual([
      'topology: no rack has room for the task now; none has room for one task (a node is in a rack by its label topology.batchapi.io/rack)',
    ]);
  });
});

describe('why pending for a gang no rack can hold', () => {
  it('names the level and the roomiest rack, and says how many tasks would fit without the constraint', () => {
    // 5 × 8 GPUs, required=rack: racks hold 4 each; without topology all 5 fit on the 8 free nodes.
    const e = explainPending(gang('g', 5, 8, { required: 'rack' }), cluster(), undefined, 0);
    expect(e.placeableNow).toBe(0);
    expect(e.messages).toContain('topology: no rack has room for all 5 tasks now; the roomiest rack (x/a) has room for 4');
    expect(e.counterfactuals).toContain('without topology required=rack: 5 tasks would fit now');
  });
});

describe('topology and backfill: planReservation holds one domain', () => {
  // Every node full (8 of 8 GPUs). Rack a = a-1..a-4 (block x), rack b = b-1..b-4 (block y). A
  // release frees a node's 8 GPUs at +t s; the gang asks 2 tasks of 8 GPUs (one whole node each).
  const full = Object.fromEntries(cluster().map((n) => [n.name, 8]));
  const rooms = () => cluster(full).map((node) => ({ node, free: { cpu: 64_000 - 8000, gpu: 0 } }));
  const frees = (node: string, t: number) => ({ node, at: t * 1000, resources: { cpu: 1000, gpu: 1000 }, count: 8 });
  const table: Array<{
    name: string;
    topology?: JobTopology;
    releases: Array<[string, number]>;
    /** Expected start (s), held nodes and domain; undefined: no reservation. */
    want?: { start: number; nodes: string[]; domain?: string };
  }> = [
    {
      // Without topology: a-1 at +100 s, b-1 at +200 s → 2 nodes at +200 s, one in each rack.
      name: 'without topology the soonest start may span racks',
      releases: [
        ['a-1', 100],
        ['b-1', 200],
        ['b-2', 300],
        ['a-2', 400],
      ],
      want: { start: 200, nodes: ['a-1', 'b-1'] },
    },
    {
      // required=rack: rack a fits 2 at max(100, 400) = +400 s; rack b at max(200, 300) = +300 s → rack b, +300 s.
      name: 'required=rack: the rack where the gang starts soonest (b at +300 s, not a at +400 s)',
      topology: { required: 'rack' },
      releases: [
        ['a-1', 100],
        ['b-1', 200],
        ['b-2', 300],
        ['a-2', 400],
      ],
      want: { start: 300, nodes: ['b-1', 'b-2'], domain: 'y/b' },
    },
    {
      // Both racks start at +300 s. Rack a frees 3 nodes then (room 3, 3 − 2 = 1 over), rack b 2 (2 − 2 = 0 over) → best fit: b,
      // though a comes first by name. Every release of +300 s counts before the room is measured.
      name: 'required=rack, a tie on the start: the best fit (b frees exactly 2 nodes, a 3)',
      topology: { required: 'rack' },
      releases: [
        ['a-1', 300],
        ['a-2', 300],
        ['a-3', 300],
        ['b-1', 300],
        ['b-2', 300],
      ],
      want: { start: 300, nodes: ['b-1', 'b-2'], domain: 'y/b' },
    },
    {
      // Each rack frees one node (1 task < 2): no rack ever holds the gang → no reservation (a 2-rack one would hold for nothing).
      name: 'required=rack when no rack frees enough: no reservation',
      topology: { required: 'rack' },
      releases: [
        ['a-1', 100],
        ['b-1', 200],
      ],
    },
    {
      // Overall soonest: a-1 +100, b-1 +200 → +200 s. Rack b also starts at +200 (b-1, b-2) → tie: one rack, b.
      name: 'preferred=rack: the soonest start overall, in one rack when one starts it as soon',
      topology: { preferred: 'rack' },
      releases: [
        ['a-1', 100],
        ['b-1', 200],
        ['b-2', 200],
        ['a-2', 400],
      ],
      want: { start: 200, nodes: ['b-1', 'b-2'], domain: 'y/b' },
    },
    {
      // Overall +200 s (a-1, b-1); rack a +400, rack b +500, and each block is one rack here → no domain
      // starts it at +200 s: the soonest start wins, across racks.
      name: 'preferred=rack: when no rack (nor block) starts it as soon, the soonest start across racks',
      topology: { preferred: 'rack' },
      releases: [
        ['a-1', 100],
        ['b-1', 200],
        ['a-2', 400],
        ['b-2', 500],
      ],
      want: { start: 200, nodes: ['a-1', 'b-1'] },
    },
    {
      // A level the cluster lacks: the gang never places (Domain refuses it), so nothing is held.
      name: 'required on an unknown level: no reservation',
      topology: { required: 'row' },
      releases: [
        ['a-1', 100],
        ['a-2', 100],
      ],
    },
  ];
  it.each(table)('$name', ({ topology, releases, want }) => {
    const r = planReservation(
      gang('g', 2, 8, topology),
      2,
      rooms(),
      releases.map(([n, t]) => frees(n, t)),
      0,
    );
    if (!want) return expect(r).toBeUndefined();
    expect(r?.start).toBe(want.start * 1000);
    expect(r?.nodes.map((n) => n.node).sort()).toEqual(want.nodes);
    expect(r?.domain).toEqual(want.domain ? { level: topology?.required ?? topology?.preferred, name: want.domain } : undefined);
  });

  it('in a placement pass a gang with required=rack is reserved for within one rack, and a second rack gang is placed around it', () => {
    // All full but rack b's b-3, b-4 (16 GPUs free now). g (first, 4 × 8 GPUs, required=rack) fits no rack now; its releases:
    // rack a's four nodes at +1000 s → reservation on rack a from +1000 s. h (2 × 8 GPUs, required=rack, no timeout) then takes
    // b-3, b-4 — rack a looks no better (no room now), and even if it had room, held room would not count for h.
    const used = { ...full, 'b-3': 0, 'b-4': 0 };
    const backfill = {
      now: 0,
      maxReservations: 1,
      runtimeSeconds: () => 3600,
      releases: ['a-1', 'a-2', 'a-3', 'a-4'].map((n) => frees(n, 1000)),
    };
    const r = placeTasks([gang('g', 4, 8, { required: 'rack' }, 0), gang('h', 2, 8, { required: 'rack' }, 1)], cluster(used), { backfill });
    expect(r.reservations).toEqual([expect.objectContaining({ jobId: 'g', start: 1_000_000, domain: { level: 'rack', name: 'x/a' } })]);
    expect(r.reservations?.[0].nodes.map((n) => n.node)).toEqual(['a-1', 'a-2', 'a-3', 'a-4']);
    expect(perRack(r.placements, 'h')).toEqual({ b: 2 });
  });

  it('a rack gang is not steered into a rack whose free room is held for a reservation', () => {
    // Rack a: a-1..a-3 full, a-4 empty; rack b: b-1..b-3 full, b-4 empty. Releases: a-1..a-3 at +100 s, b-1 at +900 s.
    // r (3 × 8 GPUs, required=rack, first) → rack a at +100 s (a-4 now + a-1, a-2 at +100; rack b only at +900 s).
    // Then s (1 × 8 GPUs, required=rack, no timeout): a-4 is held (spare 0 GPUs), so its room counts 0 and the Domain
    // point takes rack b's b-4 (room 1, best fit) — counting a-4's raw room it would pick rack a and be refused there.
    const used = { 'a-1': 8, 'a-2': 8, 'a-3': 8, 'b-1': 8, 'b-2': 8, 'b-3': 8 };
    const backfill = {
      now: 0,
      maxReservations: 1,
      runtimeSeconds: () => 3600,
      releases: [frees('a-1', 100), frees('a-2', 100), frees('a-3', 100), frees('b-1', 900)],
    };
    const r = placeTasks([gang('r', 3, 8, { required: 'rack' }, 0), gang('s', 1, 8, { required: 'rack' }, 1)], cluster(used), { backfill });
    expect(r.reservations?.[0]).toMatchObject({ jobId: 'r', start: 100_000, domain: { level: 'rack', name: 'x/a' } });
    expect(r.placements.filter((p) => p.jobId === 's').map((p) => p.node)).toEqual(['b-4']);
  });
});

describe('domainScore: work without topology goes to the fullest rack it fits', () => {
  const one = (more: Partial<PendingWork> = {}): PendingWork => ({ ...gang('p', 1, 1), gang: false, ...more });
  // Rack a: 4 nodes × 8 GPUs, 64 cores = 32 GPUs, 256 cores. a-1 has 4 GPUs and 4 cores in use (gpuNode: a core per GPU).
  const nodes = [...cluster({ 'a-1': 4 }), gpuNode('loose', {})];
  const table: Array<{ name: string; work: PendingWork; node: string; want: number }> = [
    // u = max(gpu 4 / 32 = 0.125, cpu 4 / 256 = 0.016) = 0.125 (the same for every node of rack a)
    { name: 'a rack in use: its used share in the dominant resource asked (4 of 32 GPUs)', work: one(), node: 'a-4', want: 0.125 },
    // rack b: nothing in use → 0
    { name: 'a whole rack: 0', work: one(), node: 'b-1', want: 0 },
    // no rack label: no gang can require it → 1, the first choice
    { name: 'a node in no rack: 1', work: one(), node: 'loose', want: 1 },
    // CPU-only work: u = cpu 4 / 256 = 0.015625
    { name: 'CPU-only work counts the cores in use', work: one({ resources: { cpu: 1000 } }), node: 'a-1', want: 0.015625 },
    // work that names a topology is placed by the Domain point; spreading work wants empty nodes
    { name: 'work with topology: 0', work: one({ topology: { preferred: 'rack' } }), node: 'a-1', want: 0 },
    { name: 'spreading work: 0', work: one({ spread: true }), node: 'a-1', want: 0 },
  ];
  it.each(table)('$name', ({ work, node, want }) => {
    const n = nodes.find((x) => x.name === node)!;
    expect(domainScore(nodes)!.score(work, n, {}, 0)).toBeCloseTo(want, 10);
  });

  it('is absent with weight 0 or when no node has a rack label (other scores decide alone)', () => {
    expect(domainScore(nodes, DEFAULT_TOPOLOGY_LEVELS, 0)).toBeUndefined();
    expect(domainScore([gpuNode('n-1', {}), gpuNode('n-2', {})])).toBeUndefined();
    expect(domainScore(nodes)!.weight).toBe(4);
  });

  it('a 1-GPU job goes to the rack already in use instead of breaking a whole one', () => {
    // Rack a whole; b-1 full (8 of 32 GPUs of rack b: u = 0.25). Packing scores tie every node with a free GPU (a whole GPU
    // fragments nothing) and name order would take a-1, breaking rack a; with the domain score (4 × 0.25 = 1 for rack b)
    // the job takes b-2 (b-1 has no room).
    const racks = cluster({ 'b-1': 8 });
    const w = one();
    const packing = packingScores(requestShapes([{ resources: w.resources, count: 1 }]));
    expect(placeTasks([w], racks, { scores: packing }).placements.map((p) => p.node)).toEqual(['a-1']);
    expect(placeTasks([w], racks, { scores: [...packing, domainScore(racks)!] }).placements.map((p) => p.node)).toEqual(['b-2']);
  });
});

describe('tasksOnNode: room for tasks by free resources and GPU devices', () => {
  const table: Array<{ name: string; gpu: number; devices: Record<string, number>; want: number }> = [
    // 8 devices free, 8 GPUs a task → 8 / 8 = 1
    { name: 'whole GPUs: free devices / GPUs per task', gpu: 8000, devices: {}, want: 1 },
    // devices 0..3 taken: 4 free < 8 → 0 (16 GPUs free in a half-used rack hold no 8-GPU task)
    { name: 'a half-used node holds no 8-GPU task', gpu: 8000, devices: { 0: 1000, 1: 1000, 2: 1000, 3: 1000 }, want: 0 },
    // 0.5 GPU a task: device 0 has 500 left → 1, devices 1..7 → 2 each = 14; 1 + 14 = 15
    { name: 'fractions: per device, what is left over the share', gpu: 500, devices: { 0: 500 }, want: 15 },
  ];
  it.each(table)('$name', ({ gpu, devices, want }) => {
    expect(tasksOnNode({ cpu: 1000, gpu }, { cpu: 64_000, gpu: 8000 }, devices, 8)).toBe(want);
  });
});

describe('parseTopologyLevels: the level order setting', () => {
  it('reads name=label entries, the last bare name being the node itself (the default)', () => {
    expect(parseTopologyLevels('block=topology.batchapi.io/block, rack=topology.batchapi.io/rack,host')).toEqual(DEFAULT_TOPOLOGY_LEVELS);
  });
  const bad: Array<{ text: string; message: string }> = [
    { text: '', message: 'BATCH_TOPOLOGY_LEVELS names no level; e.g. "rack=topology.batchapi.io/rack,host"' },
    { text: 'host,rack=r', message: 'BATCH_TOPOLOGY_LEVELS gives level "host" no label, but only the last level may be the node itself' },
    { text: 'rack=r,rack=s', message: 'BATCH_TOPOLOGY_LEVELS names level "rack" twice' },
    { text: 'Rack=r', message: 'BATCH_TOPOLOGY_LEVELS names "Rack", which is not a level name (lower-case letters, digits and "-", at most 63)' },
    { text: 'rack=bad label', message: 'BATCH_TOPOLOGY_LEVELS gives level "rack" the label "bad label", which is not a label key' },
    { text: 'rack=a=b', message: 'BATCH_TOPOLOGY_LEVELS has "rack=a=b", with more than one "="' },
  ];
  it.each(bad)('refuses "$text" naming the setting', ({ text, message }) => {
    expect(() => parseTopologyLevels(text)).toThrow(TopologyLevelsError);
    expect(() => parseTopologyLevels(text)).toThrow(message);
  });
});
