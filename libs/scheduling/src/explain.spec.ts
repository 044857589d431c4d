import { nodeSnapshot, pendingWork } from '../test/fixtures';
import { explainPending, MAX_COUNTERFACTUALS_PER_KIND, type PendingWork } from './index';

const node = nodeSnapshot;
const work = (res: Record<string, string | number>, extra: Partial<PendingWork> = {}): PendingWork => pendingWork('j', 4, res, extra);
const busy = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, d) => [d, 1000]));

describe('explainPending', () => {
  it('counts the nodes lacking free GPUs of the model, the tainted ones, and proposes fewer GPUs', () => {
    // 3 A100 nodes with 7 of 8 GPUs busy (1 free) → lack 2 GPUs; 1 tainted A100 node; 1 H100 node
    const nodes = [
      ...[1, 2, 3].map((i) => node(`a${i}`, { cpu: '64', gpu: 8 }, { labels: { 'gpu.model': 'A100' }, devices: busy(7), used: { gpu: 7000 } })),
      node('ml', { cpu: '64', gpu: 8 }, { labels: { 'gpu.model': 'A100' }, taints: [{ key: 'dedicated', value: 'ml', effect: 'NoSchedule' }] }),
      node('h', { cpu: '64', gpu: 8 }, { labels: { 'gpu.model': 'H100' } }),
    ];
    const e = explainPending(work({ cpu: '4', gpu: 2 }, { selector: { 'gpu.model': 'A100' } }), nodes, undefined, 0);
    expect(e.placeableNow).toBe(0);
    expect(e.messages).toEqual(['3 nodes: lack 2 GPUs free of model A100', '1 node: label gpu.model=A100 missing', '1 node: taint dedicated=ml:NoSchedule']);
    expect(e.counterfactuals).toEqual([
      // 1 GPU instead of 2: each of the 3 A100 nodes has 1 free → 3 tasks
      'with 1 GPU instead of 2 GPUs: 3 tasks would fit now',
      // without the selector the H100 node's 8 GPUs take 4 tasks of 2
      'without the selector gpu.model=A100: 4 tasks would fit now',
      'with the toleration dedicated=ml:NoSchedule: 4 tasks would fit now',
    ]);
  });

  it('names the quota when the queue has nothing left, and the work ahead', () => {
    // queue headroom 1 core; tasks of 2 cores
    const e = explainPending(work({ cpu: '2' }), [node('n', { cpu: '64' })], { cpu: 1000 }, 12);
    expect(e.quota).toBe('quota of queue q has 1 cpu left');
    expect(e.messages).toEqual(['12 tasks of other jobs come first in queue q (priority, then age)', 'quota of queue q has 1 cpu left']);
    // 1-core tasks within the 1 core left: 1 task; another queue: all 4 on the 64-core node
    expect(e.counterfactuals).toEqual(['with 1 cpu instead of 2 cpu: 1 task would fit now', 'in a queue with free quota: 4 tasks would fit now']);
  });

  it('says when tasks fit and only wait for the next cycle', () => {
    const e = explainPending(work({ cpu: '1' }), [node('n', { cpu: '2' })], undefined, 0);
    expect(e.placeableNow).toBe(2);
    // 2 cores, 1-core tasks: 2 of the 4 fit now; the node is then full
    expect(e.messages).toEqual(['2 of 4 pending tasks fit now and will be placed by the next cycle']);
  });

  it('bounds the work of its counterfactuals by the selector entries times the nodes, not their square', () => {
    // K selector entries; node i has every label but k{K-1-i}: each node reads ~K labels before
    // it misses, and each of the last N entries alone keeps one node out.
    const K = 400;
    const N = 20;
    let lookups = 0;
    const counted = (labels: Record<string, string>) =>
      new Proxy(labels, {
        get: (t, k) => {
          lookups++;
          return t[k as string];
        },
      });
    const selector = Object.fromEntries(Array.from({ length: K }, (_, k) => [`k${k}`, 'v']));
    const nodes = Array.from({ length: N }, (_, i) => {
      const { [`k${K - 1 - i}`]: _missing, ...labels } = selector;
      return node(`n${String(i).padStart(2, '0')}`, { cpu: '4' }, { labels: counted(labels) });
    });
    const e = explainPending(work({ cpu: '1' }, { selector }), nodes, undefined, 0);
    expect(e.placeableNow).toBe(0);
    // Dropping k399 lets n00 in (4 tasks of 1 core), k398 n01, …: one node each, so ties, by key name.
    expect(e.counterfactuals).toEqual(['k380', 'k381', 'k382', 'k383'].map((k) => `without the selector ${k}=v: 4 tasks would fit now`));
    expect(e.counterfactuals).toHaveLength(MAX_COUNTERFACTUALS_PER_KIND);
    // One pass costs at most K·N label reads; the explanation makes a bounded number of passes
    // (placement, shortages, the sole-miss scan, ≤ 4 selector tries): ≤ 8·K·N = 64,000 reads.
    // Trying every entry read ~K²·N = 3,200,000.
    expect(lookups).toBeLessThanOrEqual(8 * K * N);
  });
});
