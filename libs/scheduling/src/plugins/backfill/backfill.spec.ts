import { type NodeSnapshot, type PendingWork, placeTasks } from '../../index';
import { BackfillReserve, expectedEnd, planReservation, type Release, releasesOf } from './index';

const S = 1000;
const NOW = 1_000_000;
const G = 1000; // milli-GPU per GPU

/** A node of 8 GPUs, 64 cores, with `busy` GPUs (and a core each) in use. */
function gpuNode(name: string, busy: number): NodeSnapshot {
  const devices = Object.fromEntries(Array.from({ length: busy }, (_, d) => [String(d), G]));
  return { name, capacity: { cpu: 64, memory: 512, gpu: 8 * G }, used: { cpu: busy, gpu: busy * G }, devices, gpuCount: 8, labels: {}, taints: [] };
}
/** `count` one-GPU tasks of `node` expected to end `seconds` from now. */
const ends = (node: string, seconds: number, count: number): Release => ({ node, at: NOW + seconds * S, resources: { cpu: 1, gpu: G }, count });
const work = (jobId: string, gpus: number, tasks: number, more: Partial<PendingWork> = {}): PendingWork => ({
  jobId,
  queue: 'q',
  priority: 0,
  createdAt: 0,
  resources: { cpu: gpus, gpu: gpus * G },
  tasks,
  ...more,
});
const rooms = (nodes: NodeSnapshot[]) =>
  nodes.map((node) => ({ node, free: Object.fromEntries(Object.entries(node.capacity).map(([k, v]) => [k, v - (node.used[k] ?? 0)])) }));

describe('expectedEnd', () => {
  it.each([
    // end = max(now, boundAt + (timeout ?? estimate) × 1000)
    { name: 'its timeout bounds it: 100 s after binding', boundAt: NOW - 40 * S, timeout: 100, estimate: 3600, end: NOW + 60 * S },
    { name: 'no timeout: the queue estimate', boundAt: NOW - 600 * S, timeout: undefined, estimate: 3600, end: NOW + 3000 * S },
    { name: 'past its estimate (it overran): ends now, not in the past', boundAt: NOW - 7200 * S, timeout: undefined, estimate: 3600, end: NOW },
  ])('$name', ({ boundAt, timeout, estimate, end }) => {
    expect(expectedEnd(boundAt, timeout, estimate, NOW)).toBe(end);
  });
});

describe('planReservation (PostFilter)', () => {
  // Four full 8-GPU nodes. a: 8 tasks end at +100 s. b: 4 at +50 s, 4 at +300 s. c: 8 at +200 s. d: 8 at +400 s.
  const nodes = ['a', 'b', 'c', 'd'].map((n) => gpuNode(n, 8));
  const releases = [ends('a', 100, 8), ends('b', 50, 4), ends('b', 300, 4), ends('c', 200, 8), ends('d', 400, 8)];
  it.each([
    // A gang of 2 × 8 GPUs: after +50 s b has 4 free (0 whole tasks), after +100 s a fits 1 (total 1), after +200 s c fits 1 (total 2): start +200 s on a and c.
    { name: 'gang of two 8-GPU tasks: a at +100 s, c at +200 s → start +200 s', w: work('g', 8, 2, { gang: true }), need: 2, start: 200, held: ['a', 'c'] },
    // One task of 4 GPUs: b frees 4 GPUs at +50 s → fits 1 there at once.
    { name: 'one 4-GPU task: b frees 4 at +50 s', w: work('x', 4, 1), need: 1, start: 50, held: ['b'] },
    // 32 one-GPU tasks: the last 8 free at +400 s on d.
    { name: 'gang of 32 one-GPU tasks: the whole cluster, at +400 s', w: work('g', 1, 32, { gang: true }), need: 32, start: 400, held: ['a', 'b', 'c', 'd'] },
    // 5 × 8 GPUs > 4 nodes: never within the known ends.
    { name: 'more than the cluster: no reservation', w: work('g', 8, 5, { gang: true }), need: 5, start: undefined, held: [] },
  ])('$name', ({ w, need, start, held }) => {
    const r = planReservation(w, need, rooms(nodes), releases, NOW);
    expect(r?.start).toBe(start === undefined ? undefined : NOW + start * S);
    expect((r?.nodes ?? []).map((n) => n.node).sort()).toEqual(held);
  });

  it('work that fits now gets no reservation (something else holds it back)', () => {
    expect(planReservation(work('x', 1, 1), 1, rooms([gpuNode('a', 7)]), [], NOW)).toBeUndefined();
  });

  it('spare = free at the start − what is held: a 16-GPU node holding 8 keeps 0 GPUs and 48 cores for long work', () => {
    // Node e: 16 GPUs, 64 cores, 12 GPUs + 12 cores busy; 4 one-GPU tasks end at +10 s.
    const e: NodeSnapshot = { ...gpuNode('e', 0), capacity: { cpu: 64, memory: 512, gpu: 16 * G }, used: { cpu: 12, gpu: 12 * G }, gpuCount: 16 };
    const r = planReservation(work('big', 8, 1), 1, rooms([e]), [ends('e', 10, 4)], NOW)!;
    // At +10 s: free gpu = 16 − 12 + 4 = 8, cpu = 64 − 12 + 4 = 56. Held 8 GPUs, 8 cores → spare gpu 0, cpu 48, memory 512.
    expect(r).toMatchObject({ start: NOW + 10 * S, nodes: [{ node: 'e', tasks: 1, spare: { cpu: 48, gpu: 0, memory: 512 } }] });
  });
});

describe('BackfillReserve.admit (Reserve)', () => {
  // Node a (full) is held for big from +200 s with no spare GPU; node d is not held.
  const setup = () => {
    const bf = new BackfillReserve({ now: NOW, maxReservations: 1, runtimeSeconds: () => 3600, releases: [ends('a', 200, 8)] });
    const a = gpuNode('a', 8);
    bf.consider(work('big', 8, 1), rooms([a]));
    return { bf, a, d: gpuNode('d', 0) };
  };
  it.each([
    // A task placed now with timeout T ends by now + T: it may use held room when now + T ≤ start (+200 s).
    { name: 'ends before the start (timeout 150 s ≤ 200 s): all 3 admitted', w: work('s', 1, 3, { timeoutSeconds: 150 }), node: 'a', admitted: 3 },
    { name: 'ends exactly at the start (200 s): admitted', w: work('s', 1, 3, { timeoutSeconds: 200 }), node: 'a', admitted: 3 },
    { name: 'may outlast the start (300 s): only spare room, 0 GPUs → 0', w: work('s', 1, 3, { timeoutSeconds: 300 }), node: 'a', admitted: 0 },
    { name: 'no timeout (unbounded): never into reserved room → 0', w: work('s', 1, 3), node: 'a', admitted: 0 },
    { name: 'a node no reservation holds: as asked', w: work('s', 1, 3), node: 'd', admitted: 3 },
    { name: 'the reserved work itself: as asked', w: work('big', 8, 1), node: 'a', admitted: 3 },
  ])('$name', ({ w, node, admitted }) => {
    const { bf, a, d } = setup();
    expect(bf.admit(w, node === 'a' ? a : d, 3)).toBe(admitted);
  });

  it('holds at most maxReservations: the second blocked work gets none', () => {
    const { bf } = setup();
    expect(bf.consider(work('next', 8, 1), rooms([gpuNode('b', 8)]))).toBeUndefined();
    expect(bf.reservations.map((r) => r.jobId)).toEqual(['big']);
  });
});

describe('releasesOf', () => {
  it('a binding of 3 tasks, one being preempted: 1 ends now, 2 at boundAt + timeout', () => {
    const b = { node: 'a', queue: 'q', start: 0, end: 3, boundAt: NOW - 10 * S, timeoutSeconds: 60, resources: { cpu: 1 }, preempt: [1] };
    // 2 tasks end at (NOW − 10 s) + 60 s = NOW + 50 s.
    expect(releasesOf([b as never], NOW, () => 3600)).toEqual([
      { node: 'a', at: NOW, resources: { cpu: 1 }, count: 1 },
      { node: 'a', at: NOW + 50 * S, resources: { cpu: 1 }, count: 2 },
    ]);
  });
});

describe('placeTasks with backfill', () => {
  // Nodes a and b (8 GPUs) each run 4 one-GPU tasks: a's end at +600 s, b's at +1200 s. An 8-GPU job
  // (first in queue) cannot start now; it reserves a, whose 8 GPUs are free at +600 s (b's only at +1200 s).
  const nodes = [gpuNode('a', 4), gpuNode('b', 4)];
  const releases = [ends('a', 600, 4), ends('b', 1200, 4)];
  const big = work('big', 8, 1, { createdAt: 0 });
  const smalls = Array.from({ length: 6 }, (_, i) => work(`long-${i}`, 1, 1, { createdAt: 1 + i }));
  const run = (ws: PendingWork[], backfill: boolean) =>
    placeTasks(ws, nodes, { ...(backfill ? { backfill: { now: NOW, releases, maxReservations: 1, runtimeSeconds: () => 3600 } } : {}) });

  it('without reservations, unbounded 1-GPU work takes the free GPUs of both nodes (6 of 8 placed)', () => {
    const r = run([big, ...smalls], false);
    expect(r.placements.reduce((n, p) => n + p.count, 0)).toBe(6);
    expect(r.placements.some((p) => p.node === 'a')).toBe(true);
  });

  it('with reservations, unbounded work stays off a (held from +600 s): 4 placed on b, 2 wait; big is told its start', () => {
    const r = run([big, ...smalls], true);
    expect(r.placements.map((p) => p.node)).toEqual(['b', 'b', 'b', 'b']);
    expect(r.reservations).toEqual([
      expect.objectContaining({ jobId: 'big', start: NOW + 600 * S, nodes: [expect.objectContaining({ node: 'a', tasks: 1 })] }),
    ]);
    expect(r.unplaced.find((u) => u.jobId === 'big')?.reservation?.start).toBe(NOW + 600 * S);
  });

  it('with reservations, work bounded to end before +600 s backfills into a', () => {
    const short = smalls.map((w) => ({ ...w, timeoutSeconds: 300 }));
    const r = run([big, ...short], true);
    // 6 tasks: 4 free GPUs on each node, all may be used (each ends by +300 s ≤ +600 s).
    expect(r.placements.reduce((n, p) => n + p.count, 0)).toBe(6);
    expect(r.placements.some((p) => p.node === 'a')).toBe(true);
  });
});
