/**
 * The nemesis checker's rules, as tables: what counts as lost, failed, stuck, a duplicate run,
 * an over-capacity or over-quota instant, a double leader and a key mismatch; and that a seed
 * always gives the same fault schedule.
 */
import type { NodeAllocation, Queue } from '@batchapi/api';
import {
  capacityViolations,
  type EtcdView,
  failures,
  type NemesisRow,
  nemesisTable,
  overlappingRuns,
  quotaViolations,
  type Samples,
  type SubmitRecord,
  summarize,
} from '../faults/checker';
import { FAULTS, faultSchedule } from '../faults/nemesis';

const facts = { seed: 7, minutes: 1, submitRate: 200, faults: 3 };
const noSamples: Samples = { capacity: [], quota: [], leaders: [] };
const view = (work: Record<string, { phase: string; key?: string; reason?: string }>, succeededTwice: EtcdView['succeededTwice'] = []): EtcdView => ({
  work: new Map(Object.entries(work)),
  succeededTwice,
});
/** A row's columns that counted something (the run's facts aside): what a case names; every other column is 0. */
const counted = (row: NemesisRow) => Object.fromEntries(Object.entries(row).filter(([column, n]) => !(column in facts) && n !== 0));
const sub = (key: string, ids: string[], extra: Partial<SubmitRecord> = {}): SubmitRecord => ({ kind: 'single', key, ids, tasks: 1, ...extra });

describe('overlappingRuns', () => {
  it.each([
    ['one run', 's j 0 1 10.000\nh j 0 1 10.050\ne j 0 1 10.300', 0],
    // attempt 1 ended (end line) at 10.3 s, attempt 2 started after: sequential, fine
    ['a retry after the end', 's j 0 1 10.000\ne j 0 1 10.300\ns j 0 2 10.400\ne j 0 2 10.700', 0],
    // attempt 1 killed: its last heartbeat at 10.1 s + 150 ms slack = 10.25 s; attempt 2 at 10.3 s
    ['a rerun after a killed run', 's j 0 1 10.000\nh j 0 1 10.100\ns j 0 2 10.300\ne j 0 2 10.600', 0],
    // the same rerun 100 ms earlier: within the slack of the killed run's last heartbeat
    ['a rerun within the slack of the last heartbeat', 's j 0 1 10.000\nh j 0 1 10.100\ns j 0 2 10.200\ne j 0 2 10.500', 1],
    // attempt 2 started at 10.15 s while attempt 1 still heartbeat until 10.3 s
    ['two runs at once', 's j 0 1 10.000\nh j 0 1 10.300\ne j 0 1 10.310\ns j 0 2 10.150\ne j 0 2 10.450', 1],
    ['same index of two jobs', 's a 0 1 10.000\ne a 0 1 10.300\ns b 0 1 10.000\ne b 0 1 10.300', 0],
    ['two indices of one job', 's a 0 1 10.000\ne a 0 1 10.300\ns a 1 1 10.000\ne a 1 1 10.300', 0],
    ['torn and blank lines', 's a 0 1 10.000\n\ns a 0\ne a 0 1 10.300', 0],
  ])('%s', (_name, log, n) => {
    expect(overlappingRuns(log)).toHaveLength(n);
  });
});

describe('capacityViolations', () => {
  const nodes = new Map<string, Record<string, number>>([
    ['n1', { cpu: 4000, memory: 100 }],
    ['n2', { cpu: 4000 }],
  ]);
  const alloc = (used: Record<string, number>): NodeAllocation => ({ used, devices: {} });
  it.each([
    ['at capacity', { n1: alloc({ cpu: 4000, memory: 100 }) }, []],
    ['one millicore over', { n1: alloc({ cpu: 4001 }) }, ['n1 cpu 4001 > 4000']],
    // a resource the node does not have at all is over as soon as anything holds it
    ['a resource the node lacks', { n2: alloc({ memory: 1 }) }, ['n2 memory 1 > 0']],
    // the node record is gone (executor dead): its allocation waits for the reaper, not a violation
    ['allocation of a vanished node', { n9: alloc({ cpu: 99999 }) }, []],
  ])('%s', (_name, allocs, expected) => {
    expect(capacityViolations(nodes, new Map(Object.entries(allocs)))).toEqual(expected);
  });
});

describe('quotaViolations', () => {
  const q = (name: string, nominal: number, extra: Partial<Queue> = {}): Queue => ({ name, tenant: 't', nominal: { cpu: nominal }, ...extra });
  const held = (queues: Record<string, number>): NodeAllocation => ({
    used: {},
    devices: {},
    queues: Object.fromEntries(Object.entries(queues).map(([k, v]) => [k, { cpu: v }])),
  });
  it.each([
    ['no cohort: at nominal', [q('a', 1000)], [held({ a: 600 }), held({ a: 400 })], []],
    ['no cohort: over nominal (summed over nodes)', [q('a', 1000)], [held({ a: 600 }), held({ a: 401 })], ['queue a cpu 1001 > 1000']],
    // cohort: a may borrow up to 400 beyond its 1000, while the cohort stays within 1000 + 600
    [
      'cohort: borrowing within the limit',
      [q('a', 1000, { cohort: 'c', borrowingLimit: { cpu: 400 } }), q('b', 600, { cohort: 'c', borrowingLimit: { cpu: 400 } })],
      [held({ a: 1400, b: 200 })],
      [],
    ],
    [
      'cohort: over the borrowing limit',
      [q('a', 1000, { cohort: 'c', borrowingLimit: { cpu: 400 } }), q('b', 600, { cohort: 'c' })],
      [held({ a: 1401 })],
      ['queue a cpu 1401 > 1400'],
    ],
    // each queue within nominal + borrowing (1400 and 1000) but together 1700 > 1600
    [
      'cohort: over the sum of nominal',
      [q('a', 1000, { cohort: 'c', borrowingLimit: { cpu: 400 } }), q('b', 600, { cohort: 'c', borrowingLimit: { cpu: 400 } })],
      [held({ a: 1300, b: 400 })],
      ['cohort c cpu 1700 > 1600'],
    ],
    ['a resource without nominal is unlimited', [q('a', 1000)], [{ used: {}, devices: {}, queues: { a: { memory: 1e12 } } }], []],
  ])('%s', (_name, queues, allocs, expected) => {
    expect(quotaViolations(queues, allocs)).toEqual(expected);
  });
});

describe('summarize', () => {
  it.each([
    // [name, submits, jobs in etcd, the columns that count something (every other column is 0)]
    ['succeeded', [sub('k1', ['j1'])], { j1: { phase: 'Succeeded' } }, { accepted: 1, completed: 1 }],
    ['refused: not accepted', [sub('k1', [], { refused: '400' })], {}, { notAccepted: 1 }],
    ['given up after 60 s of retries: not accepted', [sub('k1', [], { refused: 'gave up' })], {}, { notAccepted: 1 }],
    ['missing from etcd: lost', [sub('k1', ['j1'])], {}, { accepted: 1, lost: 1 }],
    ['Cancelled without a cancel: lost', [sub('k1', ['j1'])], { j1: { phase: 'Cancelled' } }, { accepted: 1, lost: 1 }],
    ['Rejected: lost', [sub('k1', ['j1'])], { j1: { phase: 'Rejected' } }, { accepted: 1, lost: 1 }],
    ['Cancelled after a cancel: completed', [sub('k1', ['j1'], { cancelled: true })], { j1: { phase: 'Cancelled' } }, { accepted: 1, completed: 1 }],
    [
      'Succeeded although cancelled (it finished first): completed',
      [sub('k1', ['j1'], { cancelled: true })],
      { j1: { phase: 'Succeeded' } },
      { accepted: 1, completed: 1 },
    ],
    ['Failed: failed, not lost', [sub('k1', ['j1'])], { j1: { phase: 'Failed' } }, { accepted: 1, failed: 1 }],
    ['Running at the check: stuck', [sub('k1', ['j1'])], { j1: { phase: 'Running' } }, { accepted: 1, stuck: 1 }],
    ['resubmit answered the same id', [sub('k1', ['j1', 'j1'])], { j1: { phase: 'Succeeded', key: 'k1' } }, { accepted: 1, completed: 1 }],
    [
      'resubmit answered another id',
      [sub('k1', ['j1', 'j2'])],
      { j1: { phase: 'Succeeded' }, j2: { phase: 'Succeeded' } },
      { accepted: 1, completed: 1, keyMismatches: 1 },
    ],
    ['resubmit refused', [sub('k1', ['j1'], { resubmitRefused: '409 {}' })], { j1: { phase: 'Succeeded' } }, { accepted: 1, completed: 1, keyMismatches: 1 }],
    // the load saw one id, but etcd holds a second job with its key (an answer it never got)
    [
      'two jobs of one key in etcd',
      [sub('k1', ['j1'])],
      { j1: { phase: 'Succeeded', key: 'k1' }, j2: { phase: 'Succeeded', key: 'k1' } },
      { accepted: 1, completed: 1, keyMismatches: 1 },
    ],
  ])('%s', (_name, submits, work, counts) => {
    const { row } = summarize(facts, submits, view(work), '', noSamples);
    expect(row).toMatchObject(facts);
    expect(counted(row)).toEqual(counts);
  });

  it('counts duplicate runs from the run log (accepted jobs only) and from etcd', () => {
    const log = 's j1 0 1 1.0\ne j1 0 1 1.3\ns j1 0 2 1.1\ne j1 0 2 1.4\ns other 0 1 1.0\ns other 0 2 1.0';
    const { row, problems, suspects } = summarize(
      facts,
      [sub('k1', ['j1']), sub('k2', ['j2'])],
      view({ j1: { phase: 'Succeeded' }, j2: { phase: 'Succeeded' } }, [{ job: 'j2', index: 5, groups: ['j2/5/1', 'j2/5/2'] }]),
      log,
      noSamples,
    );
    expect(row.dupRuns).toBe(2);
    expect(problems).toEqual([
      'dup runs: job j1 task 0: runs of attempts 1 and 2 overlapped in the run log',
      'dup runs: job j2 task 5 Succeeded in 2 groups: j2/5/1, j2/5/2',
    ]);
    expect(suspects).toEqual(['j1', 'j2']);
  });

  it('counts instants: over capacity, over quota, and two leaders (one leader is fine)', () => {
    const samples: Samples = {
      capacity: [[], ['n1 cpu 5 > 4'], []],
      quota: [['queue a cpu 2 > 1'], ['queue a cpu 2 > 1']],
      leaders: [['scheduler-0'], ['scheduler-0', 'scheduler-1'], [], ['scheduler-1']],
    };
    const { row } = summarize(facts, [], view({}), '', samples);
    expect([row.overCapacity, row.overQuota, row.doubleLeaders]).toEqual([1, 2, 1]);
    expect(failures(row)).toEqual(['overCapacity 1', 'overQuota 2', 'doubleLeaders 1']);
  });

  it('prints one table row with the seed', () => {
    const { row } = summarize(facts, [sub('k1', ['j1'])], view({ j1: { phase: 'Succeeded' } }), '', noSamples);
    const [head, , line] = nemesisTable([row]).split('\n');
    expect(head).toMatch(
      /^\| seed \| min \| submits\/s \| faults \| accepted \| completed \| lost \| failed \| dup runs \| stuck \| over cap \| over quota \| 2 leaders \| key mismatch \| not accepted \|$/,
    );
    expect(
      line
        .split('|')
        .map((c) => c.trim())
        .filter(Boolean),
    ).toEqual(['7', '1', '200', '3', '1', '1', '0', '0', '0', '0', '0', '0', '0', '0', '0']);
  });
});

describe('faultSchedule', () => {
  it('is the same for the same seed, different for another, and uses every fault over a long run', () => {
    expect(faultSchedule(42, 600_000)).toEqual(faultSchedule(42, 600_000));
    expect(faultSchedule(43, 600_000)).not.toEqual(faultSchedule(42, 600_000));
    const seen = new Set(faultSchedule(42, 3_600_000).map((p) => p.fault));
    expect([...FAULTS].filter((f) => !seen.has(f))).toEqual([]);
  });
});
