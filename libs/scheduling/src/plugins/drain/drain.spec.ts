import type { Binding, Cordon } from '@batchapi/api';
import { drainDue, drainStops, type StopRequest } from './index';

/** A one-core binding of tasks [start, end) of a job on a node. */
function binding(over: Partial<Binding> & Pick<Binding, 'node' | 'jobId' | 'start' | 'end'>): Binding {
  return {
    tenant: 't',
    queue: 'q',
    attempt: 1,
    resources: { cpu: 1000 },
    devices: [],
    boundAt: 0,
    command: ['run'],
    env: {},
    ...over,
  };
}

function cordon(node: string, drainDeadline?: number): Cordon {
  return { node, reason: 'maintenance', by: 'ops', at: 0, ...(drainDeadline !== undefined ? { drainDeadline } : {}) };
}

const stop = (node: string, jobId: string, start: number, index: number, attempt = 1): StopRequest => ({ node, jobId, start, attempt, index });

describe('drainStops', () => {
  const table: Array<{ name: string; bindings: Binding[]; cordons: Cordon[]; now: number; stops: StopRequest[] }> = [
    {
      // deadline 1000 ≤ now 2000: tasks 0, 1, 2 of [0, 3)
      name: 'past the deadline every task of the binding stops',
      bindings: [binding({ node: 'n1', jobId: 'j', start: 0, end: 3 })],
      cordons: [cordon('n1', 1000)],
      now: 2000,
      stops: [stop('n1', 'j', 0, 0), stop('n1', 'j', 0, 1), stop('n1', 'j', 0, 2)],
    },
    {
      // deadline 2000 ≤ now 2000: at the deadline counts; the binding's own start and attempt are kept
      name: 'at the deadline the tasks stop, named by group and attempt',
      bindings: [binding({ node: 'n1', jobId: 'j', start: 5, end: 7, attempt: 3 })],
      cordons: [cordon('n1', 2000)],
      now: 2000,
      stops: [stop('n1', 'j', 5, 5, 3), stop('n1', 'j', 5, 6, 3)],
    },
    {
      // [4, 8) minus preempt {5, 7} = 4, 6
      name: 'tasks already asked to stop are not asked again',
      bindings: [binding({ node: 'n1', jobId: 'j', start: 4, end: 8, preempt: [5, 7] })],
      cordons: [cordon('n1', 1000)],
      now: 2000,
      stops: [stop('n1', 'j', 4, 4), stop('n1', 'j', 4, 6)],
    },
    {
      // cancelRequested: the cancel stops them already
      name: 'a binding being cancelled is left to the cancel',
      bindings: [binding({ node: 'n1', jobId: 'j', start: 0, end: 3, cancelRequested: true })],
      cordons: [cordon('n1', 1000)],
      now: 2000,
      stops: [],
    },
    {
      // deadline 3000 > now 2000
      name: 'before the deadline nothing stops',
      bindings: [binding({ node: 'n1', jobId: 'j', start: 0, end: 3 })],
      cordons: [cordon('n1', 3000)],
      now: 2000,
      stops: [],
    },
    {
      // cordoned without a drain: running tasks finish on their own
      name: 'a cordon without a deadline stops nothing',
      bindings: [binding({ node: 'n1', jobId: 'j', start: 0, end: 3 })],
      cordons: [cordon('n1')],
      now: 2000,
      stops: [],
    },
    {
      // only n1 is past its deadline: j on n1 [0, 2) → 0, 1 and k on n1 [10, 11) → 10; n2 (not cordoned) and n3 (deadline 5000 > 2000) untouched
      name: 'only bindings on drained nodes stop',
      bindings: [
        binding({ node: 'n1', jobId: 'j', start: 0, end: 2 }),
        binding({ node: 'n2', jobId: 'j', start: 2, end: 4 }),
        binding({ node: 'n3', jobId: 'j', start: 4, end: 6 }),
        binding({ node: 'n1', jobId: 'k', start: 10, end: 11 }),
      ],
      cordons: [cordon('n1', 1000), cordon('n3', 5000)],
      now: 2000,
      stops: [stop('n1', 'j', 0, 0), stop('n1', 'j', 0, 1), stop('n1', 'k', 10, 10)],
    },
  ];
  it.each(table)('$name', ({ bindings, cordons, now, stops }) => {
    expect(drainStops(bindings, new Map(cordons.map((c) => [c.node, c])), now)).toEqual(stops);
  });
});

describe('drainDue', () => {
  const table: Array<{ name: string; cordons: Cordon[]; now: number; due: boolean }> = [
    // nothing cordoned
    { name: 'no cordons', cordons: [], now: 2000, due: false },
    // no deadline on any cordon
    { name: 'cordons without a deadline', cordons: [cordon('n1'), cordon('n2')], now: 2000, due: false },
    // 3000 > 2000
    { name: 'a deadline still ahead', cordons: [cordon('n1', 3000)], now: 2000, due: false },
    // 2000 ≤ 2000
    { name: 'a deadline reached now', cordons: [cordon('n1', 2000)], now: 2000, due: true },
    // n2: 1000 ≤ 2000, though n1 has none and n3's is ahead
    { name: 'one passed deadline among others', cordons: [cordon('n1'), cordon('n2', 1000), cordon('n3', 3000)], now: 2000, due: true },
  ];
  it.each(table)('$name', ({ cordons, now, due }) => {
    expect(drainDue(cordons, now)).toBe(due);
  });
});
