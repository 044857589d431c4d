import type { PendingWork } from '../../snapshot';
import { PriorityAge, queueOrder } from './index';

const work = (jobId: string, over: Partial<PendingWork> = {}): PendingWork => ({
  jobId,
  queue: 'default',
  priority: 0,
  createdAt: 1000,
  resources: { cpu: 1000 },
  tasks: 1,
  ...over,
});

const Gi = 2 ** 30;
const sign = { a: -1, b: 1, neither: 0 } as const;

describe('queueOrder', () => {
  const table: Array<{ name: string; a: PendingWork; b: PendingWork; first: keyof typeof sign }> = [
    { name: 'higher priority first', a: work('j2', { priority: 10 }), b: work('j1', { priority: 0 }), first: 'a' },
    { name: 'a negative priority goes after zero', a: work('j1', { priority: -1 }), b: work('j2', { priority: 0 }), first: 'b' },
    { name: 'priority beats age', a: work('j1', { priority: 1, createdAt: 9000 }), b: work('j2', { priority: 0, createdAt: 1 }), first: 'a' },
    {
      name: 'priority beats size',
      a: work('j1', { priority: 1, resources: { cpu: 100 } }),
      b: work('j2', { resources: { cpu: 64_000, gpu: 8000 } }),
      first: 'a',
    },
    { name: 'equal priority: older first', a: work('j2', { createdAt: 1000 }), b: work('j1', { createdAt: 2000 }), first: 'a' },
    {
      name: 'age beats size',
      a: work('j1', { createdAt: 2000, resources: { gpu: 8000 } }),
      b: work('j2', { createdAt: 1000, resources: { cpu: 100 } }),
      first: 'b',
    },
    // same instant: gpu 1000 > 500, though b asks for more cpu
    {
      name: 'same instant: more GPU first',
      a: work('j2', { resources: { cpu: 1000, gpu: 1000 } }),
      b: work('j1', { resources: { cpu: 8000, gpu: 500 } }),
      first: 'a',
    },
    // gpu absent reads as 0 < 250
    { name: 'same instant: any GPU beats none', a: work('j1', { resources: { cpu: 64_000 } }), b: work('j2', { resources: { gpu: 250 } }), first: 'b' },
    // gpu equal: cpu 4000 > 2000, though a asks for more memory
    {
      name: 'same GPU: more cpu first',
      a: work('j1', { resources: { cpu: 2000, memory: 64 * Gi, gpu: 1000 } }),
      b: work('j2', { resources: { cpu: 4000, memory: Gi, gpu: 1000 } }),
      first: 'b',
    },
    // gpu and cpu equal: memory 8 Gi > 4 Gi
    {
      name: 'same GPU and cpu: more memory first',
      a: work('j2', { resources: { cpu: 1000, memory: 8 * Gi } }),
      b: work('j1', { resources: { cpu: 1000, memory: 4 * Gi } }),
      first: 'a',
    },
    // other resources are not compared: falls through to the job id
    {
      name: 'extended resources do not order',
      a: work('j1', { resources: { cpu: 1000 } }),
      b: work('j2', { resources: { cpu: 1000, 'example.com/fpga': 4 } }),
      first: 'a',
    },
    {
      name: 'an absent resource equals a zero one',
      a: work('j2', { resources: { cpu: 1000, gpu: 0 } }),
      b: work('j1', { resources: { cpu: 1000 } }),
      first: 'b',
    },
    { name: 'a full tie goes to the lower job id', a: work('job-b'), b: work('job-a'), first: 'b' },
    // code-unit order, not numeric: '1' < '9'
    { name: 'job ids compare as strings', a: work('job-10'), b: work('job-9'), first: 'a' },
    // 'Z' (0x5A) < 'a' (0x61)
    { name: 'job ids compare by code unit, not locale', a: work('job-a'), b: work('job-Z'), first: 'b' },
    { name: 'queue and task count do not order', a: work('j2', { queue: 'a', tasks: 100 }), b: work('j1', { queue: 'z', tasks: 1 }), first: 'b' },
    { name: 'the same work is neither first', a: work('j1'), b: work('j1'), first: 'neither' },
  ];

  it.each(table)('$name', ({ a, b, first }) => {
    expect(Math.sign(queueOrder(a, b))).toBe(sign[first]);
    // antisymmetric: swapping the pair flips the answer
    expect(Math.sign(queueOrder(b, a))).toBe(-sign[first] || 0);
    expect(PriorityAge.compare(a, b)).toBe(queueOrder(a, b));
  });

  it('sorts a mixed queue into one total order', () => {
    const queue = [
      work('late', { createdAt: 3000 }),
      work('small', { resources: { cpu: 500 } }),
      work('urgent', { priority: 5, createdAt: 9000 }),
      work('gpu', { resources: { cpu: 1000, gpu: 1000 } }),
      work('big-cpu', { resources: { cpu: 4000 } }),
      work('b-tie'),
      work('a-tie'),
    ];
    expect([...queue].sort(queueOrder).map((w) => w.jobId)).toStrictEqual(['urgent', 'gpu', 'big-cpu', 'a-tie', 'b-tie', 'small', 'late']);
  });
});
