import type { NodeSnapshot, PassContext, PendingWork, PreFilterResult, Status } from '../../index';
import { placeTasks, QuotaLedger } from '../../index';
import { GangPermit, GangPreFilter } from './index';

const work = (tasks: number, gang: boolean, jobId = 'j', createdAt = 0): PendingWork => ({
  jobId,
  queue: 'q',
  priority: 0,
  createdAt,
  resources: { cpu: 1000 },
  tasks,
  gang,
});

const ctx = (budget: number): PassContext => ({ ledger: new QuotaLedger([], new Map()), budget });

const blocked = (tasks: number): Status => ({
  code: 'GangBlocked',
  plugin: 'Gang',
  reason: `gang: all ${tasks} tasks must start together`,
  detail: { kind: 'gang', tasks },
});

/** Permit's refusal names how many tasks did fit. */
const refused = (tasks: number, placed: number): Status => ({
  code: 'GangBlocked',
  plugin: 'Gang',
  reason: `gang: only ${placed} of ${tasks} tasks fit at once`,
  detail: { kind: 'gang', tasks },
});

describe('GangPreFilter: a gang is tried only when all of its tasks may be', () => {
  const table: Array<{ name: string; gang: boolean; tasks: number; allowed: number; budget: number; want: PreFilterResult }> = [
    {
      // not a gang: the allowance (3 of 8) passes through, even above the budget (2); the engine caps it
      name: 'plain work passes through',
      gang: false,
      tasks: 8,
      allowed: 3,
      budget: 2,
      want: { allowed: 3 },
    },
    {
      // allowed 4 ≥ tasks 4 and tasks 4 ≤ budget 10
      name: 'a gang allowed every task within the budget is tried whole',
      gang: true,
      tasks: 4,
      allowed: 4,
      budget: 10,
      want: { allowed: 4 },
    },
    {
      // tasks 4 = budget 4: still fits the pass
      name: 'a gang exactly the size of the budget is tried',
      gang: true,
      tasks: 4,
      allowed: 4,
      budget: 4,
      want: { allowed: 4 },
    },
    {
      // quota allowed 3 < tasks 4: not tried at all (allowed 0), it never holds 3 tasks' room
      name: 'a gang its quota allows only in part is not tried',
      gang: true,
      tasks: 4,
      allowed: 3,
      budget: 10,
      want: { allowed: 0, status: blocked(4) },
    },
    {
      // tasks 4 > budget 3: the pass could not place it whole
      name: 'a gang larger than the budget left is not tried',
      gang: true,
      tasks: 4,
      allowed: 4,
      budget: 3,
      want: { allowed: 0, status: blocked(4) },
    },
    {
      // allowed 0 < 1
      name: 'a one-task gang with no room is not tried',
      gang: true,
      tasks: 1,
      allowed: 0,
      budget: 10,
      want: { allowed: 0, status: blocked(1) },
    },
  ];
  it.each(table)('$name', ({ gang, tasks, allowed, budget, want }) => {
    expect(GangPreFilter.preFilter(work(tasks, gang), allowed, ctx(budget))).toEqual(want);
  });
});

describe('GangPermit: a gang keeps what it reserved only when it reserved every task', () => {
  const table: Array<{ name: string; gang: boolean; tasks: number; placed: number; want: Status | undefined }> = [
    // 4 of 4 placed: accepted
    { name: 'a gang placed whole is accepted', gang: true, tasks: 4, placed: 4, want: undefined },
    // 3 < 4: refused, the engine gives back the 3
    { name: 'a gang placed in part is refused', gang: true, tasks: 4, placed: 3, want: refused(4, 3) },
    // 0 < 4: refused
    { name: 'a gang placed nowhere is refused', gang: true, tasks: 4, placed: 0, want: refused(4, 0) },
    // plain work keeps 1 of 4
    { name: 'plain work placed in part is accepted', gang: false, tasks: 4, placed: 1, want: undefined },
  ];
  it.each(table)('$name', ({ gang, tasks, placed, want }) => {
    expect(GangPermit.permit(work(tasks, gang), placed)).toEqual(want);
  });
});

describe('gangs through placeTasks', () => {
  it('places the first of two gangs that cannot both fit whole, none of the second, and leaves its room to later plain work', () => {
    // two nodes of 4 cores: 8 cores. Gang a: 6 one-core tasks → 4 + 2, leaving 2 cores.
    // Gang b: 6 tasks > 2 cores → it would reserve 2 and be refused, giving them back.
    // Plain c (2 tasks, submitted last) then takes the 2 cores b gave back: 6 + 0 + 2 = 8.
    // b's reason: Permit saw 2 of 6 placed; n1 (full after a) counted once as without room.
    const node = (name: string): NodeSnapshot => ({ name, capacity: { cpu: 4000 }, used: {}, devices: {}, gpuCount: 0, labels: {}, taints: [] });
    const { placements, unplaced } = placeTasks([work(6, true, 'a', 0), work(6, true, 'b', 1), work(2, false, 'c', 2)], [node('n1'), node('n2')]);
    const of = (j: string) => placements.filter((p) => p.jobId === j).reduce((s, p) => s + p.count, 0);
    expect({ a: of('a'), b: of('b'), c: of('c') }).toEqual({ a: 6, b: 0, c: 2 });
    expect(unplaced).toEqual([expect.objectContaining({ jobId: 'b', tasks: 6, gangBlocked: true, full: 1, statuses: [refused(6, 2)] })]);
  });
});
