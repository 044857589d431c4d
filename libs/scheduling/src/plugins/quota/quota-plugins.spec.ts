import type { ResourceVector } from '@batchapi/api';
import type { NodeSnapshot, PassContext, PendingWork, PreFilterResult } from '../../index';
import { QuotaPreFilter, QuotaReserve } from './index';
import { QuotaLedger, type QuotaQueue } from './ledger';

const cpu = (n: number): ResourceVector => ({ cpu: n * 1000 });
const gpus = (n: number): ResourceVector => ({ cpu: n * 1000, gpu: n * 1000 });

const work = (queue: string, tasks: number, resources: ResourceVector): PendingWork => ({ jobId: 'j', queue, priority: 0, createdAt: 0, resources, tasks });

const ctx = (queues: QuotaQueue[], used: Record<string, ResourceVector> = {}): PassContext => ({
  ledger: new QuotaLedger(queues, new Map(Object.entries(used))),
  budget: 1000,
});

const gpuNode = (model?: string): NodeSnapshot => ({
  name: model ?? 'plain',
  capacity: { cpu: 64_000, gpu: 8000 },
  used: {},
  devices: {},
  gpuCount: 8,
  labels: model ? { 'gpu.model': model } : {},
  taints: [],
});

const limited = (queue: string, allowed: number): PreFilterResult => ({
  allowed,
  status: { code: 'QuotaLimited', plugin: 'Quota', reason: `quota of queue ${queue}`, detail: { kind: 'quota', queue } },
});

describe('QuotaPreFilter: tasks a queue may try with the room its quota leaves', () => {
  const table: Array<{
    name: string;
    queues: QuotaQueue[];
    used?: Record<string, ResourceVector>;
    work: PendingWork;
    allowed: number;
    want: PreFilterResult;
  }> = [
    {
      // the queue is not in the ledger: nothing to check, the earlier allowance (7) passes through
      name: 'a queue without a quota is not limited',
      queues: [],
      work: work('free', 10, cpu(1)),
      allowed: 7,
      want: { allowed: 7 },
    },
    {
      // nominal {} limits nothing: the allowance passes through
      name: 'a queue with an empty nominal is not limited',
      queues: [{ name: 'q', nominal: {} }],
      work: work('q', 10, cpu(1)),
      allowed: 10,
      want: { allowed: 10 },
    },
    {
      // room = 10 − 2 = 8 cores → 8 tasks; min(4, 8) = 4 = tasks: no status
      name: 'room for every task allows them all',
      queues: [{ name: 'q', nominal: cpu(10) }],
      used: { q: cpu(2) },
      work: work('q', 4, cpu(1)),
      allowed: 4,
      want: { allowed: 4 },
    },
    {
      // room = 10 − 4 = 6 cores → 6 tasks; min(8, 6) = 6 < 8 tasks: QuotaLimited
      name: 'room for fewer tasks than pending limits the work',
      queues: [{ name: 'q', nominal: cpu(10) }],
      used: { q: cpu(4) },
      work: work('q', 8, cpu(1)),
      allowed: 8,
      want: limited('q', 6),
    },
    {
      // room = 10 − 10 = 0 → 0 tasks
      name: 'a queue at its nominal may try nothing',
      queues: [{ name: 'q', nominal: cpu(10) }],
      used: { q: cpu(10) },
      work: work('q', 3, cpu(1)),
      allowed: 3,
      want: limited('q', 0),
    },
    {
      // pool = 10 + 10 = 20, poolUsed = 4 → room(a) = 0 + 20 − 4 = 16 cores → ⌊16 / 2⌋ = 8 two-core tasks of 20
      name: 'a cohort lends idle nominal, counted in whole tasks',
      queues: [
        { name: 'a', cohort: 'c', nominal: cpu(10) },
        { name: 'b', cohort: 'c', nominal: cpu(10) },
      ],
      used: { a: cpu(4) },
      work: work('a', 20, cpu(2)),
      allowed: 20,
      want: limited('a', 8),
    },
    {
      // only gpu is limited: room 2000 → ⌊2000 / 1000⌋ = 2 tasks; cpu has no nominal, so unlimited
      name: 'only the resources with a nominal count',
      queues: [{ name: 'q', nominal: { gpu: 2000 } }],
      work: work('q', 5, gpus(1)),
      allowed: 5,
      want: limited('q', 2),
    },
  ];
  it.each(table)('$name', ({ queues, used, work: w, allowed, want }) => {
    expect(QuotaPreFilter.preFilter(w, allowed, ctx(queues, used))).toEqual(want);
  });
});

describe('QuotaReserve.admit: tasks a node may take, charging gpu:<model> on labelled nodes', () => {
  // 8 GPUs in all, of which at most 2 H100
  const modelQuota: QuotaQueue[] = [{ name: 'q', nominal: { gpu: 8000, 'gpu:H100': 2000 } }];
  const table: Array<{
    name: string;
    queues: QuotaQueue[];
    used?: Record<string, ResourceVector>;
    node: NodeSnapshot;
    work: PendingWork;
    want: number;
    admitted: number;
  }> = [
    {
      // no quota: want passes through
      name: 'a queue without a quota takes all it wants',
      queues: [],
      node: gpuNode('H100'),
      work: work('free', 6, gpus(1)),
      want: 6,
      admitted: 6,
    },
    {
      // charge {gpu 1000, gpu:H100 1000}: gpu ⌊8000/1000⌋ = 8, H100 ⌊2000/1000⌋ = 2 → min(4, 8, 2) = 2
      name: 'an H100 node takes only what the H100 quota allows',
      queues: modelQuota,
      node: gpuNode('H100'),
      work: work('q', 4, gpus(1)),
      want: 4,
      admitted: 2,
    },
    {
      // charge {gpu 1000, gpu:A100 1000}: gpu:A100 has no nominal → only gpu, 8 → min(4, 8) = 4
      name: 'a node of a model without a quota counts only the gpu total',
      queues: modelQuota,
      node: gpuNode('A100'),
      work: work('q', 4, gpus(1)),
      want: 4,
      admitted: 4,
    },
    {
      // no gpu.model label: charge = resources {gpu 1000} → 8 → min(4, 8) = 4
      name: 'a node without a model label charges no model',
      queues: modelQuota,
      node: gpuNode(),
      work: work('q', 4, gpus(1)),
      want: 4,
      admitted: 4,
    },
    {
      // CPU-only work charges no GPU, so neither gpu nor gpu:H100 limits it: 4
      name: 'work without GPUs is not charged a model on a GPU node',
      queues: modelQuota,
      node: gpuNode('H100'),
      work: work('q', 4, cpu(1)),
      want: 4,
      admitted: 4,
    },
    {
      // room: gpu 8000 − 6000 = 2000 → 2; H100 2000 − 1000 = 1000 → 1; min(4, 2, 1) = 1
      name: 'what the queue already holds of the model counts',
      queues: modelQuota,
      used: { q: { gpu: 6000, 'gpu:H100': 1000 } },
      node: gpuNode('H100'),
      work: work('q', 4, gpus(1)),
      want: 4,
      admitted: 1,
    },
    {
      // room: gpu 8000 − 7000 = 1000 → 1 on an A100 node (its model is unlimited but the total is not)
      name: 'the plain gpu total still limits nodes of other models',
      queues: modelQuota,
      used: { q: { gpu: 7000 } },
      node: gpuNode('A100'),
      work: work('q', 4, gpus(1)),
      want: 4,
      admitted: 1,
    },
  ];
  it.each(table)('$name', ({ queues, used, node, work: w, want, admitted }) => {
    expect(QuotaReserve.admit(w, node, want, ctx(queues, used))).toBe(admitted);
  });
});

describe('QuotaReserve.reserve and unreserve: take the charge per node and give it back', () => {
  const queues: QuotaQueue[] = [{ name: 'q', nominal: { gpu: 8000, 'gpu:H100': 2000 } }];
  const table: Array<{ name: string; node: NodeSnapshot; count: number; usage: ResourceVector; after: { H100: number; A100: number } }> = [
    {
      // 2 tasks × {gpu 1000, gpu:H100 1000} (cpu has no nominal, so it is not kept);
      // then H100: min(8, (8000 − 2000)/1000 = 6, (2000 − 2000)/1000 = 0) = 0; A100: 6
      name: 'on an H100 node the model quota is charged too',
      node: gpuNode('H100'),
      count: 2,
      usage: { gpu: 2000, 'gpu:H100': 2000 },
      after: { H100: 0, A100: 6 },
    },
    {
      // 3 tasks × {gpu 1000} (gpu:A100 has no nominal); then H100: min(8, 5, 2) = 2; A100: 5
      name: 'on a node of another model only the gpu total is charged',
      node: gpuNode('A100'),
      count: 3,
      usage: { gpu: 3000 },
      after: { H100: 2, A100: 5 },
    },
    {
      // 1 task × {gpu 1000}; then H100: min(8, 7, 2) = 2; A100: 7
      name: 'on an unlabelled node only the gpu total is charged',
      node: gpuNode(),
      count: 1,
      usage: { gpu: 1000 },
      after: { H100: 2, A100: 7 },
    },
  ];
  it.each(table)('$name', ({ node, count, usage, after }) => {
    const c = ctx(queues);
    const w = work('q', 8, gpus(1));
    QuotaReserve.reserve(w, node, count, c);
    expect(c.ledger.usage('q')).toEqual(usage);
    expect(QuotaReserve.admit(w, gpuNode('H100'), 8, c)).toBe(after.H100);
    expect(QuotaReserve.admit(w, gpuNode('A100'), 8, c)).toBe(after.A100);
    // unreserve gives back exactly what reserve took: every charged resource back to 0, room as new
    QuotaReserve.unreserve(w, node, count, c);
    expect(Object.values(c.ledger.usage('q')).every((v) => v === 0)).toBe(true);
    expect(QuotaReserve.admit(w, gpuNode('H100'), 8, c)).toBe(2);
    expect(QuotaReserve.admit(w, gpuNode('A100'), 8, c)).toBe(8);
  });

  it('keeps no books for a queue without a quota', () => {
    const c = ctx(queues);
    QuotaReserve.reserve(work('free', 4, gpus(1)), gpuNode('H100'), 4, c);
    expect(c.ledger.usage('free')).toEqual({});
    expect(c.ledger.usage('q')).toEqual({});
  });
});
