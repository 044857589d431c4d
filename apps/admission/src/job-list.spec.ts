import { ApiError, type JobRecord, type JobSort, parseLabelSelector } from '@batchapi/api';
import { decodeJobPageToken, encodeJobPageToken, jobMatcher, mergeJobPages } from './job-list';

const job = (id: string, phase: JobRecord['phase'] = 'Succeeded'): JobRecord =>
  ({ id, tenant: 't', queue: 'q', phase, pending: [], counts: { succeeded: 0, failed: 0, cancelled: 0 }, createdAt: 0, spec: {} }) as unknown as JobRecord;
const ids = (js: readonly JobRecord[]) => js.map((j) => j.id);

describe('mergeJobPages', () => {
  const table: Array<{
    name: string;
    live: [string[], boolean];
    archived: [string[], boolean];
    limit: number;
    expected: { ids: string[]; nextAfter?: string };
  }> = [
    { name: 'both empty: an empty last page', live: [[], false], archived: [[], false], limit: 3, expected: { ids: [] } },
    // a c e ∪ b d = a b c d e; 5 > 3 → next after c
    {
      name: 'interleaves by id and cuts at the limit',
      live: [['a', 'c', 'e'], false],
      archived: [['b', 'd'], false],
      limit: 3,
      expected: { ids: ['a', 'b', 'c'], nextAfter: 'c' },
    },
    { name: 'all fit and no source has more: the last page', live: [['a'], false], archived: [['b'], false], limit: 3, expected: { ids: ['a', 'b'] } },
    // live stopped at its limit at b: anything after b in etcd comes next
    {
      name: 'a source at its limit means more may follow',
      live: [['a', 'b'], true],
      archived: [[], false],
      limit: 2,
      expected: { ids: ['a', 'b'], nextAfter: 'b' },
    },
    { name: 'history at its limit too', live: [[], false], archived: [['x', 'y'], true], limit: 2, expected: { ids: ['x', 'y'], nextAfter: 'y' } },
    // j2 in both (archived, not yet removed from etcd): once
    {
      name: 'a job in both stores is listed once',
      live: [['j1', 'j2'], false],
      archived: [['j2', 'j3'], false],
      limit: 5,
      expected: { ids: ['j1', 'j2', 'j3'] },
    },
    // byte order: '-' (0x2d) < '0' (0x30) < 'A' (0x41) < 'a' (0x61)
    {
      name: 'ids compare as bytes, as etcd orders keys',
      live: [['a', 'A'], false],
      archived: [['0', '-'], false],
      limit: 4,
      expected: { ids: ['-', '0', 'A', 'a'] },
    },
  ];
  it.each(table)('$name', ({ live, archived, limit, expected }) => {
    const out = mergeJobPages({ jobs: live[0].map((i) => job(i)), more: live[1] }, { jobs: archived[0].map((i) => job(i)), more: archived[1] }, limit);
    expect({ ids: ids(out.jobs), ...(out.next ? { nextAfter: out.next.id } : {}) }).toEqual(expected);
  });

  it('keeps the live copy of a job in both stores (etcd is the newer)', () => {
    const out = mergeJobPages({ jobs: [job('j', 'Running')], more: false }, { jobs: [job('j', 'Succeeded')], more: false }, 5);
    expect(out.jobs[0].phase).toBe('Running');
  });
});

describe('mergeJobPages in the other orders', () => {
  const ended = (id: string, finishedAt: number) => ({ ...job(id), finishedAt });
  it('-submitted: highest id first, continuing after the last', () => {
    // c a ∪ d b = d c b a; 4 > 3 → next after b
    const out = mergeJobPages({ jobs: [job('c'), job('a')], more: false }, { jobs: [job('d'), job('b')], more: false }, 3, '-submitted');
    expect(ids(out.jobs)).toEqual(['d', 'c', 'b']);
    expect(out.next).toEqual({ id: 'b' });
  });

  it('finished and -finished: by end time, ties by id, the position holding the end time', () => {
    const live = { jobs: [ended('x', 300), ended('b', 100)], more: false };
    const archived = { jobs: [ended('a', 100), ended('y', 200)], more: true };
    // ends 100 (a, b), 200 (y), 300 (x)
    expect(ids(mergeJobPages(live, archived, 10, 'finished').jobs)).toEqual(['a', 'b', 'y', 'x']);
    const desc = mergeJobPages(live, archived, 3, '-finished');
    expect(ids(desc.jobs)).toEqual(['x', 'y', 'b']);
    expect(desc.next).toEqual({ id: 'b', finishedAt: 100 });
  });
});

describe('jobMatcher', () => {
  const base = {
    ...job('j1', 'Running'),
    createdAt: 1000,
    spec: { name: 'train-bert', labels: { team: 'nlp', 'batch.workflow': 'wf-1' } },
  } as unknown as JobRecord;
  const done = { ...base, phase: 'Succeeded', finishedAt: 5000 } as JobRecord;
  it.each<[string, Parameters<typeof jobMatcher>[0], JobRecord, boolean]>([
    ['no criteria', {}, base, true],
    ['selector that holds', { selector: parseLabelSelector('team=nlp') }, base, true],
    ['selector that fails', { selector: parseLabelSelector('team!=nlp') }, base, false],
    ['name prefix', { namePrefix: 'train-' }, base, true],
    ['another name prefix', { namePrefix: 'eval' }, base, false],
    ['workflow', { workflowId: 'wf-1' }, base, true],
    ['another workflow', { workflowId: 'wf-2' }, base, false],
    // submitted at 1000: [1000, 2000) holds, [0, 1000) does not (the bound is exclusive)
    ['submitted window including it', { submittedFrom: 1000, submittedBefore: 2000 }, base, true],
    ['submitted window ending at it', { submittedFrom: 0, submittedBefore: 1000 }, base, false],
    ['a finished window rules out a running job', { finishedFrom: 0 }, base, false],
    ['finished only rules out a running job', { finishedOnly: true }, base, false],
    // finished at 5000: [5000, 6000) holds, [4000, 5000) does not
    ['finished window including it', { finishedFrom: 5000, finishedBefore: 6000 }, done, true],
    ['finished window ending at it', { finishedFrom: 4000, finishedBefore: 5000 }, done, false],
  ])('%s', (_, criteria, j, want) => {
    expect(jobMatcher(criteria)(j)).toBe(want);
  });
});

describe('page tokens', () => {
  it.each<[JobSort, { id: string; finishedAt?: number }]>([
    ['submitted', { id: '0mfz1a2b3-4c5d6e7f8a9b' }],
    ['-finished', { id: 'j-1', finishedAt: 1_796_000_000_000 }],
  ])('round-trips a %s position', (sort, position) => {
    expect(decodeJobPageToken(encodeJobPageToken(sort, position), sort)).toEqual(position);
  });

  it.each([
    ['garbage', 'not a token'],
    ['another order', encodeJobPageToken('-submitted', { id: 'a' })],
    ['an id with other characters', Buffer.from(JSON.stringify(['submitted', 'a/b'])).toString('base64url')],
  ])('refuses %s, naming pageToken', (_, token) => {
    const err = (() => {
      try {
        decodeJobPageToken(token, 'submitted');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ details: { field: 'pageToken' } });
  });
});
