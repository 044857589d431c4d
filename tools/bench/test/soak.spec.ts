import { benchSoak } from '../src/soak';
import {
  Accounting,
  formatSummary,
  histogramQuantile,
  promBuckets,
  promValue,
  resolveSoakOptions,
  type SoakFigures,
  type SoakOptions,
  type SoakOptionsInput,
  revisionsPerJob,
  summaryRows,
} from '../src/soak-report';

describe('soak options', () => {
  it.each<[SoakOptionsInput, Partial<SoakOptions>, string]>([
    // [given, expected subset, why]
    [{}, { jobs: 200_000, rate: 500, chunk: 125, minutes: 13, drainSeconds: 120 }, '200,000 / 500 = 400 s × 1.5 + 180 s = 780 s → 13 min; chunk 500 / 4'],
    [{ jobs: 1_000_000 }, { minutes: 53 }, '2,000 s × 1.5 + 180 s = 3,180 s = 53 min'],
    [{ jobs: 1_000_000, rate: 100 }, { minutes: 60 }, '10,000 s of submits: the default is capped at 60 min'],
    [{ jobs: 300, rate: 100 }, { chunk: 25, minutes: 4, drainSeconds: 60 }, '3 s × 1.5 + 180 s → 4 min; drain a quarter of it'],
    [{ rate: 8000 }, { chunk: 1000 }, 'never over 1,000 a request'],
  ])('%j gives %j (%s)', (given, expected, _why) => {
    expect(resolveSoakOptions(given)).toMatchObject(expected);
  });

  it('names the option that is wrong', () => {
    expect(() => resolveSoakOptions({ minutes: 61 })).toThrow('--minutes must be > 0 and at most 60');
    expect(() => resolveSoakOptions({ chunk: 1001 })).toThrow('--chunk must be a whole number from 1 to 1000');
    expect(() => resolveSoakOptions({ rate: 0 })).toThrow('--rate must be > 0');
    expect(() => resolveSoakOptions({ jobs: 0.5 })).toThrow('--jobs must be a whole number');
  });
});

describe('soak figures from Prometheus text', () => {
  const text = [
    '# HELP batch_archive_lag_seconds lag',
    'batch_archive_lag_seconds_bucket{le="1"} 0',
    'batch_archive_lag_seconds_bucket{le="5"} 10',
    'batch_archive_lag_seconds_bucket{le="10"} 110',
    'batch_archive_lag_seconds_bucket{le="+Inf"} 110',
    'batch_archive_lag_seconds_count 110',
    'etcd_mvcc_db_total_size_in_bytes 1.2582912e+07',
    'x_total{reason="a"} 2',
    'x_total{reason="b"} 3',
  ].join('\n');

  it('reads a gauge and sums or picks labelled samples', () => {
    expect(promValue(text, 'etcd_mvcc_db_total_size_in_bytes')).toBe(12 * 2 ** 20);
    expect(promValue(text, 'x_total')).toBe(5);
    expect(promValue(text, 'x_total', { reason: 'b' })).toBe(3);
    expect(promValue(text, 'missing')).toBeUndefined();
  });

  it('estimates a quantile linearly within its bucket, as histogram_quantile does', () => {
    const b = promBuckets(text, 'batch_archive_lag_seconds');
    // rank 0.99 × 110 = 108.9: in (5, 10], 98.9 of its 100 → 5 + 5 × 0.989 = 9.945
    expect(histogramQuantile(b, 0.99)).toBeCloseTo(9.945, 3);
    // rank 5: in (1, 5], 5 of its 10 → 3
    expect(histogramQuantile(b, 5 / 110)).toBeCloseTo(3, 6);
    expect(histogramQuantile([{ le: Infinity, count: 0 }], 0.99)).toBeNaN();
  });
});

describe('soak accounting', () => {
  it('finds each accepted job in history or etcd, once, and counts what is missing', () => {
    // a: archived twice; b: archived Failed; c: still live and Succeeded; d: nowhere; s: a workflow step
    const acc = new Accounting(['a', 'b', 'c', 'd'], new Map([['c', 'Succeeded']]));
    for (const [id, phase] of [
      ['a', 'Succeeded'],
      ['a', 'Succeeded'],
      ['b', 'Failed'],
      ['s', 'Succeeded'],
    ])
      acc.row(id, phase);
    acc.finish();
    expect({ lost: acc.lost, succeeded: acc.succeeded, notSucceeded: acc.notSucceeded, live: acc.stillLive, dup: acc.duplicates, others: acc.others }).toEqual({
      lost: 1,
      succeeded: 2,
      notSucceeded: 1,
      live: 1,
      dup: 1,
      others: 1,
    });
  });
});

describe('soak summary', () => {
  const figures: SoakFigures = {
    etcdDbPeakBytes: 40 * 2 ** 20,
    etcdDbFinalBytes: 38 * 2 ** 20,
    serviceRssPeakBytes: { quota: 150 * 2 ** 20, admission: 310 * 2 ** 20 },
    archiveLagP99S: 6.5,
    archiveLagSource: 'exact',
    readP99Ms: { jobs: 42, tasks: 7, queues: 120 },
    readCounts: { jobs: 10, tasks: 10, queues: 10 },
    lost: 0,
    accepted: 1000,
    notSucceeded: 0,
    workflows: 2,
    workflowsNotSucceeded: 0,
    verified: true,
  };

  it('puts each target beside its figure, PASS or MISS, and no verdict without a target', () => {
    const rows = summaryRows(figures);
    const verdicts = Object.fromEntries(rows.map((r) => [r.figure, r.verdict]));
    expect(verdicts).toEqual({
      'etcd DB size, peak': 'PASS',
      'etcd revisions per job': '',
      'RSS quota, peak': 'PASS',
      'RSS admission, peak': 'MISS', // 310 > 300 MiB
      'archive lag p99': 'PASS',
      'GET /v1/jobs?limit=50 p99': 'PASS',
      'GET /v1/jobs/:id/tasks p99': '',
      'GET /v1/queues p99': '', // 120 ms: measured, no target in the issue
      'lost jobs': 'PASS',
      'jobs not Succeeded': 'PASS',
      'workflows not Succeeded': 'PASS',
    });
    expect(formatSummary(rows)).toContain('| lost jobs | 0 | 0 of 1,000 accepted | PASS |');
  });

  it('counts etcd revisions per accepted job from the first and last revision seen', () => {
    // (16,000 − 1,000) / 1,000 jobs = 15 revisions a job; a sample without a revision is skipped
    expect(revisionsPerJob([{ etcdRevision: 1_000 }, {}, { etcdRevision: 9_000 }, { etcdRevision: 16_000 }], 1_000)).toBe(15);
    expect(revisionsPerJob([{ etcdRevision: 1_000 }], 1_000)).toBeUndefined();
    expect(revisionsPerJob([{ etcdRevision: 1_000 }, { etcdRevision: 2_000 }], 0)).toBeUndefined();
  });

  it('calls a run cut short before the accounting a MISS on lost jobs', () => {
    const rows = summaryRows({ ...figures, verified: false, lost: NaN });
    expect(rows.find((r) => r.figure === 'lost jobs')).toMatchObject({ measured: 'not verified (run cut short)', verdict: 'MISS' });
  });
});

describe('bench soak against the local cluster', () => {
  it('prints its periodic line and a summary with no job lost (300 jobs at 100/s)', async () => {
    const lines: string[] = [];
    const result = await benchSoak({
      jobs: 300,
      rate: 100,
      arrays: 1,
      arrayTasks: 50,
      workflows: 1,
      nodes: 4,
      archiveAfter: 2,
      every: 5,
      print: (l) => lines.push(l),
    });
    const out = lines.join('\n');
    expect(out).toMatch(/^soak \d+s: submitted \d+ accepted \d+ .*\| etcd db [\d.]+ MiB .*\| rss MiB .*quota \d+ .*\| archive lag p99 /m);
    expect(out).toMatch(/^\| lost jobs \| 0 \| 0 of 301 accepted \| PASS \|$/m);
    expect(result).toMatchObject({
      accepted: 300,
      arrays: 1,
      drained: true,
      accounting: { lost: 0, succeeded: 301, duplicates: 0 },
      workflows: { Succeeded: 1 },
    });
  }, 120_000);
});
