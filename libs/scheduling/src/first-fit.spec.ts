import { parseResources } from '@batchapi/api';
import { type NodeSnapshot, type PendingWork, pickDevices, placeFirstFit, tasksThatFit } from './index';

const node = (name: string, cap: Record<string, string | number>, extra: Partial<NodeSnapshot> = {}): NodeSnapshot => ({
  name, capacity: parseResources(cap), used: {}, devices: {}, gpuCount: Number(cap.gpu ?? 0), labels: {}, taints: [], ...extra,
});
const work = (jobId: string, tasks: number, res: Record<string, string | number>, extra: Partial<PendingWork> = {}): PendingWork => ({
  jobId, queue: 'q', priority: 0, createdAt: 0, resources: parseResources(res), tasks, ...extra,
});

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
    expect(out.map((p) => [p.node, p.count])).toEqual([['a', 4], ['b', 2]]);
  });

  it('orders by priority, then age, then id', () => {
    // one node of 2 cores, three one-core-per-task jobs of 1 task each wanting 1 core: the two first in order win
    const out = placeFirstFit(
      [work('old-low', 1, { cpu: '1' }, { createdAt: 1 }), work('new-high', 1, { cpu: '1' }, { priority: 5, createdAt: 9 }), work('old-low-2', 1, { cpu: '1' }, { createdAt: 1 })],
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
    const out = placeFirstFit([work('j', 8, { cpu: '1', memory: '256Mi' })], [node('n', { cpu: '16', memory: '64Gi' })], { queueHeadroom: new Map([['q', { memory: 2 ** 30 }]]) });
    expect(out[0].count).toBe(4);
  });

  it('counts resources already used on the node', () => {
    // 8 cores, 6 used → 2 free → 2 tasks
    const out = placeFirstFit([work('j', 5, { cpu: '1' })], [node('n', { cpu: '8' }, { used: { cpu: 6000 } })]);
    expect(out[0].count).toBe(2);
  });
});
