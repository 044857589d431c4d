/**
 * The stored defragmentation nominations (`defragmenting`): what the leader writes from its maps,
 * within the bounds, and what a standby or admission reads back — nothing from a lapsed, malformed
 * or oversized record.
 */
import { DEFRAGMENT_RECORD_BOUNDS } from '@batchapi/api';
import { defragmentRecordOf, type Defragmenting, storedDefragmentation } from '@batchapi/scheduling';

const T = 1_800_000_000_000;
const stop = (jobId: string, index = 0) => ({ jobId, groupStart: 0, attempt: 1, index });

describe('defragmentRecordOf', () => {
  it('writes each job with its nominations, their start and its stops, in id order', () => {
    const defragmenting = new Map<string, Defragmenting>([
      ['gang', { nodes: ['gc', 'gb'], stops: [stop('c1'), stop('b1')] }],
      ['big', { nodes: ['gb'], stops: [stop('b1')] }],
    ]);
    const nominated = new Map([
      ['gang', ['gc', 'gb']],
      ['big', ['gb']],
      ['b1', ['ga']],
    ]);
    const since = new Map([
      ['gang', T - 5],
      ['big', T - 9],
      ['b1', T - 9],
    ]);
    const r = defragmentRecordOf(defragmenting, nominated, since, '42', T, T + 600_000);
    expect(r).toEqual({
      term: '42',
      at: T,
      until: T + 600_000,
      jobs: [
        { jobId: 'big', nominated: ['gb'], since: T - 9, freed: ['gb'], stops: [stop('b1')] },
        { jobId: 'gang', nominated: ['gc', 'gb'], since: T - 5, freed: ['gc', 'gb'], stops: [stop('c1'), stop('b1')] },
      ],
    });
  });

  it('leaves out what exceeds the bounds: a job with too many stops, jobs past the most', () => {
    // 40 jobs j00…j39 with one stop each, and "wide" with 65 stops (> 64): the first 32 by id of the 40.
    const defragmenting = new Map<string, Defragmenting>();
    const nominated = new Map<string, string[]>();
    const since = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const id = `j${String(i).padStart(2, '0')}`;
      defragmenting.set(id, { nodes: ['n'], stops: [stop('x')] });
      nominated.set(id, ['n']);
      since.set(id, T);
    }
    defragmenting.set('wide', { nodes: ['n'], stops: Array.from({ length: DEFRAGMENT_RECORD_BOUNDS.stops + 1 }, (_, i) => stop('y', i)) });
    nominated.set('wide', ['n']);
    since.set('wide', T);
    const r = defragmentRecordOf(defragmenting, nominated, since, '1', T, T + 1);
    expect(r.jobs.map((j) => j.jobId)).toEqual(Array.from({ length: DEFRAGMENT_RECORD_BOUNDS.jobs }, (_, i) => `j${String(i).padStart(2, '0')}`));
  });
});

describe('storedDefragmentation', () => {
  const record = { term: '7', at: T, until: T + 1000, jobs: [{ jobId: 'big', nominated: ['gb'], since: T - 1, freed: ['gb'], stops: [stop('b1')] }] };
  it.each([
    // read back while in force: the nominations, their start, what the job waits for
    { name: 'in force', raw: record, now: T + 999, jobs: ['big'] },
    // until = now: lapsed, no claim
    { name: 'lapsed', raw: record, now: T + 1000, jobs: undefined },
    // another term's (a deposed leader's, until the new one deletes it), or no leader in etcd at all: held by no one
    { name: "another term's", raw: record, now: T, leader: '8', jobs: undefined },
    { name: 'no leader', raw: record, now: T, leader: null, jobs: undefined },
    { name: 'none stored', raw: undefined, now: T, jobs: undefined },
    { name: 'not a record', raw: 'defragmenting', now: T, jobs: undefined },
    // a job without nominations or with a malformed stop is left out; the others stay
    {
      name: 'malformed jobs left out',
      raw: {
        ...record,
        jobs: [...record.jobs, { jobId: 'x', nominated: [], since: T, freed: [], stops: [] }, { ...record.jobs[0], jobId: 'y', stops: [{ jobId: 'b1' }] }],
      },
      now: T,
      jobs: ['big'],
    },
    // more jobs than the bound: none trusted
    {
      name: 'too many jobs',
      raw: { ...record, jobs: Array.from({ length: DEFRAGMENT_RECORD_BOUNDS.jobs + 1 }, () => record.jobs[0]) },
      now: T,
      jobs: undefined,
    },
  ])('$name', ({ raw, now, jobs, ...c }: { raw: unknown; now: number; jobs: string[] | undefined; leader?: string | null }) => {
    // The leader now in etcd: the record's term ('7') unless the row names another, or none (null).
    const s = storedDefragmentation(raw, now, c.leader === null ? undefined : (c.leader ?? '7'));
    expect(s ? [...s.defragmenting.keys()] : undefined).toEqual(jobs);
    if (jobs?.includes('big')) {
      expect(s!.nominated.get('big')).toEqual(['gb']);
      expect(s!.nominatedSince.get('big')).toBe(T - 1);
      expect(s!.defragmenting.get('big')).toEqual({ nodes: ['gb'], stops: [stop('b1')] });
    }
  });
});
