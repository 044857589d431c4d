import type { JobRecord } from '@batchapi/api';
import { mergeJobPages } from './job-list';

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
    expect({ ids: ids(out.jobs), ...(out.nextAfter ? { nextAfter: out.nextAfter } : {}) }).toEqual(expected);
  });

  it('keeps the live copy of a job in both stores (etcd is the newer)', () => {
    const out = mergeJobPages({ jobs: [job('j', 'Running')], more: false }, { jobs: [job('j', 'Succeeded')], more: false }, 5);
    expect(out.jobs[0].phase).toBe('Running');
  });
});
