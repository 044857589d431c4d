import { nodeSnapshot, pendingWork } from '../test/fixtures';
import { CONTAINER_RUNTIME_LABEL, parseResources } from '@batchapi/api';
import { type NodeSnapshot, type PendingWork, packingScores, pickDevices, placeFirstFit, placeTasks, type RequestShape, tasksThatFit } from './index';

const node = nodeSnapshot;
const work = pendingWork;

describe('tasksThatFit', () => {
  it.each([
    // 8 cores / 1.5 cores = 5.33 → 5; 16Gi / 4Gi = 4 → memory binds: 4
    [{ cpu: '1500m', memory: '4Gi' }, { cpu: '8', memory: '16Gi' }, 4],
    // 2 cores / 500m = 4; no memory asked
    [{ cpu: '500m' }, { cpu: '2' }, 4],
    // asks a resource the node lacks: 0
    [{ cpu: '1', 'example.com/nvme': 1 }, { cpu: '8' }, 0],
  ])('%j on %j fits %i', (need, free, expected) => {
    expect(tasksThatFit(parseResources(need), parseResources(free))).toBe(expected);
  });
});

describe('pickDevices', () => {
  it.each([
    // whole GPUs take fully free devices, lowest index first
    ['2 whole of 4 free', {}, 4, 2000, [0, 1]],
    ['1 whole when device 0 is partly used', { 0: 500 }, 2, 1000, [1]],
    // a fraction goes to the fullest device it still fits on: device 1 has 700 used, 700+300 ≤ 1000
    ['0.3 onto the fullest device', { 0: 200, 1: 700 }, 2, 300, [1]],
    // 0.5 fits nowhere: 600+500 > 1000 and 1000 is full
    ['0.5 when none has room', { 0: 600, 1: 1000 }, 2, 500, undefined],
  ])('%s', (_name, devices, count, share, expected) => {
    expect(pickDevices(devices as Record<string, number>, count as number, share as number)).toEqual(expected);
  });
});

describe('placeFirstFit', () => {
  it('fills nodes in name order and splits an array job across them', () => {
    // a: 4 cores → 4 one-core tasks; b: 2 cores → 2; 7 asked → 6 placed, 1 left
    const out = placeFirstFit([work('j', 7, { cpu: '1' })], [node('b', { cpu: '2' }), node('a', { cpu: '4' })]);
    expect(out.map((p) => [p.node, p.count])).toEqual([
      ['a', 4],
      ['b', 2],
    ]);
  });

  it('orders by priority, then age, then id', () => {
    // one node of 2 cores, three one-core-per-task jobs of 1 task each wanting 1 core: the two first in order win
    const out = placeFirstFit(
      [
        work('old-low', 1, { cpu: '1' }, { createdAt: 1 }),
        work('new-high', 1, { cpu: '1' }, { priority: 5, createdAt: 9 }),
        work('old-low-2', 1, { cpu: '1' }, { createdAt: 1 }),
      ],
      [node('n', { cpu: '2' })],
    );
    expect(out.map((p) => p.jobId)).toEqual(['new-high', 'old-low']);
  });

  it('gives each GPU task its own devices and never oversubscribes one', () => {
    // 4 devices, tasks of 0.5 GPU: 2 per device → 8 tasks; 10 asked → 8
    const out = placeFirstFit([work('g', 10, { cpu: '1', gpu: 0.5 })], [node('gpu', { cpu: '64', gpu: 4 })]);
    expect(out).toHaveLength(1);
    expect(out[0].count).toBe(8);
    const perDevice = new Map<number, number>();
    for (const d of out[0].devices.flat()) perDevice.set(d, (perDevice.get(d) ?? 0) + 1);
    expect([...perDevice.values()]).toEqual([2, 2, 2, 2]);
  });

  it('respects a queue headroom', () => {
    // queue may take 3 more cores; node has 8: 3 tasks
    const out = placeFirstFit([work('j', 8, { cpu: '1' })], [node('n', { cpu: '8' })], { queueHeadroom: new Map([['q', { cpu: 3000 }]]) });
    expect(out[0].count).toBe(3);
  });

  it('treats a dimension absent from the headroom as unlimited', () => {
    // headroom limits memory only (1Gi / 256Mi = 4); cpu is unlimited → 4 tasks of the 8 asked
    const out = placeFirstFit([work('j', 8, { cpu: '1', memory: '256Mi' })], [node('n', { cpu: '16', memory: '64Gi' })], {
      queueHeadroom: new Map([['q', { memory: 2 ** 30 }]]),
    });
    expect(out[0].count).toBe(4);
  });

  it('counts resources already used on the node', () => {
    // 8 cores, 6 used → 2 free → 2 tasks
    const out = placeFirstFit([work('j', 5, { cpu: '1' })], [node('n', { cpu: '8' }, { used: { cpu: 6000 } })]);
    expect(out[0].count).toBe(2);
  });
});

describe('placeTasks (bin-pack)', () => {
  it('packs onto the fullest node that fits instead of the first by name', () => {
    // a: 8 cores free of 8; b: 2 free of 8 (6 used). One-core task scores
    //   a: (0+1)/8 = 0.125, b: (6+1)/8 = 0.875 → b first; b takes 2, then a takes the 3rd
    const res = placeTasks([work('j', 3, { cpu: '1' })], [node('a', { cpu: '8' }), node('b', { cpu: '8' }, { used: { cpu: 6000 } })]);
    expect(res.placements.map((p) => [p.node, p.count])).toEqual([
      ['b', 2],
      ['a', 1],
    ]);
  });

  it.each([true, false])('sends work with an image only to nodes that run images, after plain work of the same shape (node index %s)', (nodeIndex) => {
    // a-process runs no images; b-k8s does (its executor's label). Plain work first packs onto a-process
    // (first by name, both empty); the image job of the same shape must not reuse that ranking.
    const nodes = [node('a-process', { cpu: '8' }), node('b-k8s', { cpu: '8' }, { labels: { [CONTAINER_RUNTIME_LABEL]: 'kubernetes' } })];
    const res = placeTasks([work('plain', 2, { cpu: '1' }, { createdAt: 0 }), work('img', 2, { cpu: '1' }, { createdAt: 1, image: 'python:3.12' })], nodes, {
      nodeIndex,
    });
    expect(res.placements.filter((p) => p.jobId === 'img').map((p) => [p.node, p.count])).toEqual([['b-k8s', 2]]);
  });

  it('spreads when asked: one task per node per round, the emptiest first', () => {
    // a empty (score −0.125) before b 6/8 used (−0.875); rounds: a, b, a → a 2, b 1
    const res = placeTasks([work('j', 3, { cpu: '1' }, { spread: true })], [node('a', { cpu: '8' }), node('b', { cpu: '8' }, { used: { cpu: 6000 } })]);
    expect(res.placements.map((p) => [p.node, p.count])).toEqual([
      ['a', 2],
      ['b', 1],
    ]);
  });

  it('keeps GPU nodes for GPU work and does not break a free GPU node when a used one fits', () => {
    // cpu task: gpu node scores −0.5 → goes to the cpu node.
    // 1-GPU task: full-free 8-GPU node gets −0.25; the node with 4 of 8 in use does not → the used one.
    const nodes = [
      node('cpu', { cpu: '32', memory: '64Gi' }),
      node('gpu-free', { cpu: '32', memory: '64Gi', gpu: 8 }),
      node('gpu-used', { cpu: '32', memory: '64Gi', gpu: 8 }, { devices: { 0: 1000, 1: 1000, 2: 1000, 3: 1000 }, used: { gpu: 4000 } }),
    ];
    const res = placeTasks([work('c', 1, { cpu: '1' }), work('g', 1, { cpu: '1', gpu: 1 })], nodes);
    expect(Object.fromEntries(res.placements.map((p) => [p.jobId, p.node]))).toEqual({ c: 'cpu', g: 'gpu-used' });
  });

  it('filters by selector and taints and counts the reasons of what stays pending', () => {
    const nodes = [
      node('a100', { cpu: '8', gpu: 1 }, { labels: { 'gpu.model': 'A100' } }),
      node('h100', { cpu: '8', gpu: 1 }, { labels: { 'gpu.model': 'H100' } }),
      node('ml', { cpu: '8', gpu: 1 }, { labels: { 'gpu.model': 'A100' }, taints: [{ key: 'dedicated', value: 'ml', effect: 'NoSchedule' }] }),
    ];
    // 3 tasks of 1 A100: only a100 passes (h100 wrong label, ml tainted) → 1 placed, 2 pending
    const res = placeTasks([work('j', 3, { cpu: '1', gpu: 1 }, { selector: { 'gpu.model': 'A100' } })], nodes);
    expect(res.placements.map((p) => [p.node, p.count])).toEqual([['a100', 1]]);
    expect(res.unplaced).toEqual([
      {
        jobId: 'j',
        tasks: 2,
        filtered: [
          {
            nodes: 1,
            status: {
              code: 'Unschedulable',
              plugin: 'NodeSelector',
              reason: 'label gpu.model=A100 missing',
              detail: { kind: 'label', key: 'gpu.model', value: 'A100' },
            },
          },
          {
            nodes: 1,
            status: {
              code: 'Unschedulable',
              plugin: 'TaintToleration',
              reason: 'taint dedicated=ml:NoSchedule',
              detail: { kind: 'taint', key: 'dedicated', value: 'ml', effect: 'NoSchedule' },
            },
          },
        ],
        full: 0,
        quotaLimited: false,
        gangBlocked: false,
        statuses: [],
      },
    ]);
    // with the toleration the tainted node is used too
    const tol = placeTasks(
      [work('j', 3, { cpu: '1', gpu: 1 }, { selector: { 'gpu.model': 'A100' }, tolerations: [{ key: 'dedicated', value: 'ml' }] })],
      nodes,
    );
    expect(tol.placements.reduce((n, p) => n + p.count, 0)).toBe(2);
  });

  it('places a gang all together or not at all, leaving room to the next job', () => {
    // 2 nodes × 4 cores. gang of 10 one-core tasks cannot fit (8) → none placed;
    // the 6-task job behind it then fits.
    const nodes = [node('a', { cpu: '4' }), node('b', { cpu: '4' })];
    const res = placeTasks([work('gang', 10, { cpu: '1' }, { gang: true, createdAt: 0 }), work('after', 6, { cpu: '1' }, { createdAt: 1 })], nodes);
    expect(res.placements.every((p) => p.jobId === 'after')).toBe(true);
    expect(res.placements.reduce((n, p) => n + p.count, 0)).toBe(6);
    expect(res.unplaced.find((u) => u.jobId === 'gang')?.gangBlocked).toBe(true);
    // a gang of 8 fits exactly
    expect(placeTasks([work('g8', 8, { cpu: '1' }, { gang: true })], nodes).placements.reduce((n, p) => n + p.count, 0)).toBe(8);
  });
});

describe('placeTasks: a ranking kept for a shape re-scores the nodes whose room changed', () => {
  // one-GPU nodes (8 cores, 16 GiB); used = milli-GPU held on device 0
  const gpu1 = (name: string, used = 0): NodeSnapshot => ({
    name,
    capacity: { cpu: 8000, memory: 2 ** 34, gpu: 1000 },
    used: { gpu: used },
    devices: used ? { 0: used } : {},
    gpuCount: 1,
    labels: {},
    taints: [],
  });
  const share = (jobId: string, gpu: number): PendingWork => ({ jobId, queue: 'q', priority: 0, createdAt: 0, resources: { cpu: 1000, gpu }, tasks: 1 });
  it.each([
    {
      // mix 0.3 : 0.6 shares, 1:1. j1 (0.3) on a or b: 1000 → 700 free, both still fit a 0.6 → gradient 0, a by name.
      // j2 (0.3) again: on a 700 → 400 free, a 0.6 can no longer use it: −(½·400)/1000 = −0.2; on b 1000 → 700: 0 → b.
      // (a ranking of the empty nodes kept for the shape put j2 on a as well, leaving no device for a 0.6)
      name: 'the second task of a shape goes where the first left room for the mix',
      nodes: [gpu1('a'), gpu1('b')],
      shapes: [
        { resources: { cpu: 1000, gpu: 300 }, weight: 1 },
        { resources: { cpu: 1000, gpu: 600 }, weight: 1 },
      ],
      jobs: [share('j1', 300), share('j2', 300)],
      want: [
        ['j1', 'a'],
        ['j2', 'b'],
      ],
    },
    {
      // mix 0.6 only. j1 (0.6) on a or b: 1000 → 400 free, which a 0.6 cannot use: −0.4 on both, a by name;
      // then a has 400 free < 600: it leaves the ranking when re-scored, j2 goes to b.
      name: 'a node that no longer takes one task of the shape leaves its ranking',
      nodes: [gpu1('a'), gpu1('b')],
      shapes: [{ resources: { cpu: 1000, gpu: 600 }, weight: 1 }],
      jobs: [share('j1', 600), share('j2', 600)],
      want: [
        ['j1', 'a'],
        ['j2', 'b'],
      ],
    },
  ])('$name', ({ nodes, shapes, jobs, want }) => {
    const res = placeTasks(jobs, nodes, { scores: packingScores(shapes as RequestShape[]) });
    expect(res.placements.map((p) => [p.jobId, p.node])).toEqual(want);
  });
});

describe('placeTasks with dominant resource fairness', () => {
  const fair = (capacity: Record<string, string>, weights?: Record<string, number>) => ({
    capacity: parseResources(capacity),
    usage: new Map<string, Record<string, number>>(),
    weights: weights ? new Map(Object.entries(weights)) : undefined,
  });

  it('gives the textbook split: 9 CPU / 18 GiB, A ⟨1 CPU, 4 GiB⟩, B ⟨3 CPU, 1 GiB⟩ → A 3, B 2', () => {
    // Per task, A's dominant share is memory 4/18 = 0.222, B's is cpu 3/9 = 0.333.
    // Progressive filling: A .222, B .333, A .444, B .667, A .667 → cpu 3·1 + 2·3 = 9 full.
    const nodes = [node('n', { cpu: '9', memory: '18Gi' })];
    const work = [work_('a', 'qa', 10, { cpu: '1', memory: '4Gi' }), work_('b', 'qb', 10, { cpu: '3', memory: '1Gi' })];
    const res = placeTasks(work, nodes, { fairShare: fair({ cpu: '9', memory: '18Gi' }), batchFill: false });
    const byJob = Object.fromEntries(['a', 'b'].map((j) => [j, res.placements.filter((p) => p.jobId === j).reduce((n, p) => n + p.count, 0)]));
    expect(byJob).toEqual({ a: 3, b: 2 });
  });

  it('weights shares: a queue of weight 2 gets twice the dominant share', () => {
    // 12 one-core tasks each from two queues on 12 cores; weight 2 : 1 → 8 : 4
    const nodes = [node('n', { cpu: '12' })];
    const res = placeTasks([work_('h', 'heavy', 12, { cpu: '1' }), work_('l', 'light', 12, { cpu: '1' })], nodes, {
      fairShare: fair({ cpu: '12' }, { heavy: 2 }),
      batchFill: false,
    });
    const count = (j: string) => res.placements.filter((p) => p.jobId === j).reduce((n, p) => n + p.count, 0);
    expect([count('h'), count('l')]).toEqual([8, 4]);
  });

  it('starts from current usage: a queue already holding much waits behind one holding little', () => {
    // qa already holds 6 of 8 cores (share .75); qb none. 2 cores are free: qb (share 0, .125 a task)
    // may take up to (.75 − 0) / .125 = 6 before passing qa, so it takes both at once; qa gets none.
    const nodes = [node('n', { cpu: '8' }, { used: { cpu: 6000 } })];
    const f = fair({ cpu: '8' });
    f.usage.set('qa', { cpu: 6000 });
    const res = placeTasks([work_('a', 'qa', 4, { cpu: '1' }, 0), work_('b', 'qb', 2, { cpu: '1' }, 5)], nodes, { fairShare: f, batchFill: false });
    expect(res.placements.map((p) => [p.jobId, p.count])).toEqual([['b', 2]]);
  });
});

function work_(jobId: string, queue: string, tasks: number, res: Record<string, string | number>, createdAt = 0): PendingWork {
  return { jobId, queue, priority: 0, createdAt, resources: parseResources(res), tasks };
}
