import type { ResourceVector } from '@batchapi/api';
import { parseResources } from '@batchapi/api';
import { type NodeSnapshot, type PendingWork, placeTasks } from '../../index';
import { fairShareOf, PRICED_RESOURCE, pricedCharge, type ResourcePrices } from './index';

const GiB = 2 ** 30;

describe('pricedCharge', () => {
  const table: Array<{ name: string; v: ResourceVector; prices?: ResourcePrices; want: ResourceVector }> = [
    { name: 'no prices: unchanged', v: { cpu: 2000, gpu: 1000 }, want: { cpu: 2000, gpu: 1000 } },
    // 2 H100 at 4 = 8; cpu and memory stay DRF dimensions of their own
    {
      name: 'GPUs of a priced model count as their cost',
      v: { cpu: 8000, memory: 64 * GiB, gpu: 2000, 'gpu:H100': 2000 },
      prices: { 'gpu:H100': 4 },
      want: { cpu: 8000, memory: 64 * GiB, [PRICED_RESOURCE]: 8 },
    },
    // 3 GPUs: 1 T4 at 0.5, 2 without a model label at the gpu price 2 → 0.5 + 4 = 4.5
    {
      name: 'GPUs of no priced model at the gpu price',
      v: { gpu: 3000, 'gpu:T4': 1000 },
      prices: { 'gpu:H100': 4, 'gpu:T4': 0.5, gpu: 2 },
      want: { [PRICED_RESOURCE]: 4.5 },
    },
    // models priced, gpu not: the rest at 1 → A100 (unpriced model) 1 GPU × 1 = 1
    { name: 'the gpu price is 1 when only models are priced', v: { gpu: 1000, 'gpu:A100': 1000 }, prices: { 'gpu:H100': 4 }, want: { [PRICED_RESOURCE]: 1 } },
    // 4 cores at 0.25 + 16 GiB at 0.01 = 1 + 0.16 = 1.16
    {
      name: 'cores and GiB by the unit people read',
      v: { cpu: 4000, memory: 16 * GiB },
      prices: { cpu: 0.25, memory: 0.01 },
      want: { [PRICED_RESOURCE]: 1.16 },
    },
    // only cpu priced: GPU model keys stay as DRF dimensions
    {
      name: 'no GPU price: GPU dimensions stay',
      v: { cpu: 1000, gpu: 1000, 'gpu:T4': 1000 },
      prices: { cpu: 1 },
      want: { gpu: 1000, 'gpu:T4': 1000, [PRICED_RESOURCE]: 1 },
    },
  ];
  it.each(table)('$name', ({ v, prices, want }) => {
    const got = pricedCharge(v, prices);
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    for (const [k, x] of Object.entries(want)) expect(got[k]).toBeCloseTo(x, 9);
  });
});

describe('fairShareOf', () => {
  // Capacity: 4 H100 + 16 T4 (20 GPUs). Plain DRF: 4 GPUs of either = 4/20 = 0.2.
  // Priced (H100 4, T4 0.5): capacity = 4×4 + 16×0.5 = 24; 4 H100 = 16/24 = 0.667, 4 T4 = 2/24 = 0.083.
  const capacity = { gpu: 20_000, 'gpu:H100': 4000, 'gpu:T4': 16_000 };
  const h100 = { gpu: 4000, 'gpu:H100': 4000 };
  const t4 = { gpu: 4000, 'gpu:T4': 4000 };
  it('plain DRF shares each GPU model pool apart: 4 H100 is the whole H100 pool, 4 T4 a quarter of the T4s', () => {
    const fair = { capacity, usage: new Map() };
    // max(4000/20000, 4000/4000) = 1 for H100 (the whole H100 pool); max(0.2, 4000/16000 = 0.25) = 0.25 for T4
    expect(fairShareOf('a', h100, fair)).toBeCloseTo(1, 9);
    expect(fairShareOf('b', t4, fair)).toBeCloseTo(0.25, 9);
  });
  it('…priced DRF counts each as what it costs', () => {
    const fair = { capacity, usage: new Map(), prices: { 'gpu:H100': 4, 'gpu:T4': 0.5 } };
    expect(fairShareOf('a', h100, fair)).toBeCloseTo(16 / 24, 9);
    expect(fairShareOf('b', t4, fair)).toBeCloseTo(2 / 24, 9);
  });
  it("a queue's own prices go over the cluster-wide ones for its usage (capacity at the cluster's)", () => {
    // b pays 1 per T4: 4 / 24
    const fair = { capacity, usage: new Map(), prices: { 'gpu:H100': 4, 'gpu:T4': 0.5 }, queuePrices: new Map([['b', { 'gpu:T4': 1 }]]) };
    expect(fairShareOf('b', t4, fair)).toBeCloseTo(4 / 24, 9);
  });
});

describe('placement with priced fair share', () => {
  const node = (name: string, cap: Record<string, string | number>, labels: Record<string, string> = {}): NodeSnapshot => ({
    name,
    capacity: parseResources(cap),
    used: {},
    devices: {},
    gpuCount: Number(cap.gpu ?? 0),
    labels,
    taints: [],
  });
  const work = (jobId: string, queue: string, tasks: number, res: Record<string, string | number>): PendingWork => ({
    jobId,
    queue,
    priority: 0,
    createdAt: 0,
    resources: parseResources(res),
    tasks,
  });

  it('gives the contested pool to the queue whose usage costs less, not the one with the smaller share of its GPU pool', () => {
    // Queue a holds 1 of 4 H100; queue b holds 6 of 16 T4. Both want the cores of a 4-core CPU node.
    // Plain DRF (the model pools are dimensions of their own): a = max(1/20, 1/4) = 0.25, b = max(6/20, 6/16) = 0.375
    // → a first, and a core (1/132) never lifts a past b: a takes all 4.
    // Priced (H100 4, T4 0.5; capacity 4×4 + 16×0.5 = 24): a = 4/24 = 0.167, b = 3/24 = 0.125 → b first, and b's
    // cores (k/132 ≤ 4/132 = 0.03) keep it below a: b takes all 4.
    const nodes = [
      node('h', { cpu: '64', gpu: 4 }, { 'gpu.model': 'H100' }),
      node('t', { cpu: '64', gpu: 16 }, { 'gpu.model': 'T4' }),
      node('c', { cpu: '4' }),
    ];
    // The GPU nodes are full of GPUs already (used); only node c's cores are free for this pass.
    for (const n of nodes.slice(0, 2)) n.used = { cpu: n.capacity.cpu, gpu: n.capacity.gpu };
    const capacity = { cpu: 132_000, gpu: 20_000, 'gpu:H100': 4000, 'gpu:T4': 16_000 };
    const usage = () =>
      new Map<string, ResourceVector>([
        ['a', { gpu: 1000, 'gpu:H100': 1000 }],
        ['b', { gpu: 6000, 'gpu:T4': 6000 }],
      ]);
    const pending = () => [work('ja', 'a', 4, { cpu: '1' }), work('jb', 'b', 4, { cpu: '1' })];
    const byQueue = (ps: ReturnType<typeof placeTasks>['placements']) => ps.map((p) => `${p.jobId}×${p.count}`);
    expect(byQueue(placeTasks(pending(), nodes, { fairShare: { capacity, usage: usage() }, batchFill: false }).placements)).toEqual(['ja×4']);
    const priced = placeTasks(pending(), nodes, { fairShare: { capacity, usage: usage(), prices: { 'gpu:H100': 4, 'gpu:T4': 0.5 } }, batchFill: false });
    expect(byQueue(priced.placements)).toEqual(['jb×4']);
  });
});
