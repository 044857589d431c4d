import {
  cpuTicksOfStat,
  criticalPathSeconds,
  formatPipelinesSummary,
  lowerBounds,
  type PipelinesFigures,
  type PipelinesOptions,
  type PipelinesOptionsInput,
  pipelineDag,
  pipelinesRows,
  etcdFigures,
  resolvePipelinesOptions,
  spread,
  stepLatencies,
  taskSecondsOf,
  verdictLines,
} from '../src/pipelines-report';

describe('pipelines options', () => {
  it.each<[PipelinesOptionsInput, Partial<PipelinesOptions>, string]>([
    // [given, expected subset, why]
    [{}, { runs: 1000, steps: 20, fanout: 100, nodes: 313, taskSeconds: [1, 3], history: false }, '1,000 × 100 map tasks / 320 slots a node = 312.5 → 313'],
    [{ runs: 50 }, { nodes: 16 }, '50 × 100 / 320 = 15.6 → 16'],
    [{ runs: 5 }, { nodes: 10 }, '5 × 100 / 320 = 1.6 → 2, but at least 10'],
    [{ runs: 50, nodes: 4 }, { nodes: 4 }, 'given: kept'],
    [{ taskSeconds: '2' }, { taskSeconds: [2, 2] }, 'one duration'],
    [{ taskSeconds: '0.5-1.5' }, { taskSeconds: [0.5, 1.5] }, 'a range'],
  ])('%j gives %j (%s)', (given, expected, _why) => {
    expect(resolvePipelinesOptions(given)).toMatchObject(expected);
  });

  it('names the option that is wrong', () => {
    expect(() => resolvePipelinesOptions({ steps: 1 })).toThrow('--steps must be a whole number from 2');
    expect(() => resolvePipelinesOptions({ runs: 0 })).toThrow('--runs must be a whole number');
    expect(() => resolvePipelinesOptions({ taskSeconds: '3-1' })).toThrow('--task-seconds must be seconds');
    expect(() => resolvePipelinesOptions({ taskSeconds: 'x' })).toThrow('--task-seconds must be seconds');
    expect(() => resolvePipelinesOptions({ nodes: 0 })).toThrow('--nodes must be a whole number');
  });
});

describe('the DAG of a run', () => {
  it.each([
    // [seed, steps, fanout, range]
    [17, 20, 100, [1, 3]],
    [1, 20, 100, [1, 3]],
    [2, 2, 5, [2, 2]],
    [3, 3, 7, [0.5, 4]],
    [4, 50, 1000, [1, 1]],
  ] as const)('seed %d, %d steps, fan-out %d: a layered DAG with one map and its fan-in', (seed, steps, fanout, range) => {
    const dag = pipelineDag(seed, steps, fanout, range);
    expect(dag).toHaveLength(steps);
    // names in layer order, every dependency earlier, one of them in the layer just before
    const at = new Map(dag.map((s, i) => [s.name, i]));
    dag.forEach((s, i) => {
      expect(s.name).toBe(`s${String(i).padStart(2, '0')}`);
      for (const d of s.dependsOn) expect(at.get(d)!).toBeLessThan(i);
      if (s.layer > 0) expect(s.dependsOn.some((d) => dag[at.get(d)!].layer === s.layer - 1)).toBe(true);
      else expect(s.dependsOn).toEqual([]);
      expect(s.seconds).toBeGreaterThanOrEqual(range[0]);
      expect(s.seconds).toBeLessThanOrEqual(range[1]);
    });
    const maps = dag.filter((s) => s.kind === 'map');
    const fanins = dag.filter((s) => s.kind === 'fanin');
    expect(maps).toHaveLength(1);
    expect(fanins).toHaveLength(1);
    expect(maps[0].tasks).toBe(fanout);
    expect(fanins[0].dependsOn).toContain(maps[0].name);
    expect(fanins[0].layer).toBe(maps[0].layer + 1);
    expect(dag.filter((s) => s.kind !== 'map').every((s) => s.tasks === 1)).toBe(true);
    // the same seed gives the same run
    expect(pipelineDag(seed, steps, fanout, range)).toEqual(dag);
  });

  it.each([
    // [seed, the run as [name, layer, kind, tasks, seconds, dependsOn], critical path, task-seconds]
    [
      2,
      [
        ['s00', 0, 'map', 10, 1.3, ''],
        ['s01', 1, 'fanin', 1, 1.3, 's00'],
        ['s02', 2, 'single', 1, 1.5, 's01'],
        ['s03', 3, 'single', 1, 1.9, 's02'],
        ['s04', 4, 'single', 1, 1.6, 's03'],
        ['s05', 5, 'single', 1, 1.5, 's00,s04'],
      ],
      9.1, // the chain s00 … s05: 1.3 + 1.3 + 1.5 + 1.9 + 1.6 + 1.5
      20.8, // 10 × 1.3 + 1.3 + 1.5 + 1.9 + 1.6 + 1.5 = 13 + 7.8
    ],
    [
      3,
      [
        ['s00', 0, 'single', 1, 1, ''],
        ['s01', 1, 'single', 1, 1.5, 's00'],
        ['s02', 2, 'single', 1, 1.1, 's01'],
        ['s03', 3, 'map', 10, 1.8, 's01,s02'],
        ['s04', 4, 'fanin', 1, 1.5, 's03'],
        ['s05', 5, 'single', 1, 1.5, 's04'],
      ],
      8.4, // 1 + 1.5 + 1.1 + 1.8 + 1.5 + 1.5
      24.6, // 1 + 1.5 + 1.1 + 10 × 1.8 + 1.5 + 1.5 = 6.6 + 18
    ],
  ] as const)('seed %d, 6 steps, fan-out 10, 1–2 s: %j', (seed, expected, critical, work) => {
    const dag = pipelineDag(seed, 6, 10, [1, 2]);
    expect(dag.map((s) => [s.name, s.layer, s.kind, s.tasks, s.seconds, s.dependsOn.join(',')])).toEqual(expected);
    expect(criticalPathSeconds(dag)).toBeCloseTo(critical, 6);
    expect(taskSecondsOf(dag)).toBeCloseTo(work, 6);
  });

  it('differs from seed to seed', () => {
    expect(pipelineDag(5, 20, 100, [1, 3])).not.toEqual(pipelineDag(6, 20, 100, [1, 3]));
  });
});

describe('lower bounds', () => {
  // a (2 s) → b (3 s) → d (1 s); a → c (10 tasks × 0.5 s) → d
  const steps = [
    { name: 'a', dependsOn: [], seconds: 2, tasks: 1 },
    { name: 'b', dependsOn: ['a'], seconds: 3, tasks: 1 },
    { name: 'c', dependsOn: ['a'], seconds: 0.5, tasks: 10 },
    { name: 'd', dependsOn: ['b', 'c'], seconds: 1, tasks: 1 },
  ];

  it('takes the longest chain of durations and adds up task-seconds', () => {
    // a → b → d = 2 + 3 + 1 = 6 (a → c → d = 3.5)
    expect(criticalPathSeconds(steps)).toBe(6);
    // 2 + 3 + 10 × 0.5 + 1 = 11
    expect(taskSecondsOf(steps)).toBe(11);
  });

  it.each([
    // [runs, slots, expected, why]
    [
      [{ submittedAfterS: 0, criticalPathS: 6, taskSeconds: 11 }],
      100,
      { criticalPathS: 6, resourceS: 0.11, binds: 'critical path', boundS: 6 },
      '11 / 100 = 0.11 < 6',
    ],
    [
      [
        { submittedAfterS: 0, criticalPathS: 6, taskSeconds: 11 },
        { submittedAfterS: 1.5, criticalPathS: 6, taskSeconds: 11 },
      ],
      2,
      { criticalPathS: 7.5, resourceS: 11, binds: 'resources', boundS: 11 },
      'the later run ends at 1.5 + 6 = 7.5 at best; 22 task-seconds / 2 slots = 11',
    ],
  ] as const)('%j on %d slots gives %j (%s)', (runs, slots, expected, _why) => {
    const b = lowerBounds(runs, slots);
    expect(b.criticalPathS).toBeCloseTo(expected.criticalPathS, 6);
    expect(b.resourceS).toBeCloseTo(expected.resourceS, 6);
    expect(b.binds).toBe(expected.binds);
    expect(b.boundS).toBeCloseTo(expected.boundS, 6);
  });
});

describe('step-start latency from the records', () => {
  it('measures from the last dependency end to the first task start, roots from the creation', () => {
    const lat = stepLatencies([
      {
        createdAt: 1000,
        steps: [
          { name: 'a', dependsOn: [], endedAt: 3000, firstTaskStartedAt: 1200 }, // root: 1200 − 1000 = 200
          { name: 'b', dependsOn: [], endedAt: 2500, firstTaskStartedAt: 1300 }, // root: 300
          // last input 3000 → 150: created +40, queued +30, bound +50, started +30
          { name: 'c', dependsOn: ['a', 'b'], endedAt: 5000, createdAt: 3040, queuedAt: 3070, boundAt: 3120, firstTaskStartedAt: 3150 },
          { name: 'd', dependsOn: ['b'], endedAt: 4000, firstTaskStartedAt: 2900 }, // 2900 − 2500 = 400
          { name: 'e', dependsOn: ['c'] }, // never started: unmeasured
        ],
      },
      {
        createdAt: 0,
        steps: [
          { name: 'x', dependsOn: ['y'], firstTaskStartedAt: 10 },
          { name: 'y', dependsOn: [] },
        ],
      }, // y has no end: both unmeasured
    ]);
    // d records no stage times: only c's stages count
    expect(lat).toEqual({
      afterInputsMs: [150, 400],
      rootsMs: [200, 300],
      unmeasured: 3,
      stagesMs: { controller: [40], admission: [30], scheduler: [50], executor: [30] },
    });
  });

  it('spreads: p50, p99 and max as the other benches rank them', () => {
    // 100 values 1…100: p50 → index 50 → 51; p99 → index 99 → 100
    expect(spread(Array.from({ length: 100 }, (_, i) => 100 - i))).toEqual({ p50: 51, p99: 100, max: 100, n: 100 });
    expect(spread([]).p99).toBeNaN();
  });
});

describe('pipelines summary', () => {
  const figures: PipelinesFigures = {
    runs: 10,
    succeeded: 10,
    failed: 0,
    lost: 0,
    makespanS: 30,
    bounds: { criticalPathS: 20, resourceS: 5, binds: 'critical path', boundS: 20 },
    runStretch: { p50: 1.2, p99: 1.5, max: 1.5, n: 10 },
    cpuSeconds: { quota: 6, scheduler: 3 },
    wallS: 30,
    latency: {
      afterInputs: { p50: 150, p99: 900, max: 1200, n: 100 },
      roots: { p50: 800, p99: 1100, max: 1100, n: 20 },
      unmeasured: 0,
      stages: {
        controller: { p50: 50, p99: 700, max: 900, n: 100 },
        admission: { p50: 30, p99: 100, max: 150, n: 100 },
        scheduler: { p50: 40, p99: 90, max: 100, n: 100 },
        executor: { p50: 20, p99: 60, max: 80, n: 100 },
      },
    },
    load: [1.5, 2.25],
  };

  it('prints the bound that binds, CPU as a share of a core, and a verdict per target', () => {
    const rows = pipelinesRows(figures);
    const text = formatPipelinesSummary(rows);
    // 30 / 20 = 1.5 × the bound
    expect(text).toContain('| makespan (first submit → last run ended) | ≥ 20.0 s (bound) | 30.0 s = 1.5 × the bound |  |');
    expect(text).toContain('| lower bound: critical path | — | 20.0 s (binds) |  |');
    // 6 CPU s over 30 s = 20% of a core
    expect(text).toContain('| CPU quota (workflow controller) | — | 6.0 s (20% of a core over 30.0 s) |  |');
    expect(text).toContain('| … of which inputs ready → job created (workflow controller) | — | p50 50 p99 700 max 900 ms |  |');
    expect(verdictLines(rows)).toEqual([
      'PASS: step start after its inputs are ready: p50 150 p99 900 max 1200 ms (100 steps) (target p99 < 1000 ms)',
      'PASS: runs Succeeded / failed / lost: 10 / 0 / 0 (target 10 / 0 / 0)',
    ]);
  });

  it("reads etcd's work over the run from two scrapes, and prints it per step", () => {
    const scrape = (
      txn: number,
      put: number,
      del: number,
      rev: number,
      sent: number,
      fsync: [number, number, number],
      commit: [number, number],
      slow: number,
    ) =>
      [
        '# HELP etcd_mvcc_txn_total Total number of txns seen by this member.',
        '# TYPE etcd_mvcc_txn_total counter',
        `etcd_mvcc_txn_total ${txn}`,
        `etcd_mvcc_put_total ${put}`,
        `etcd_mvcc_delete_total ${del}`,
        `etcd_debugging_mvcc_current_revision ${rev}`,
        `etcd_network_client_grpc_sent_bytes_total ${sent}`,
        `etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} ${fsync[0]}`,
        `etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} ${fsync[1]}`,
        `etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} ${fsync[2]}`,
        `etcd_disk_backend_commit_duration_seconds_bucket{le="0.01"} ${commit[0]}`,
        `etcd_disk_backend_commit_duration_seconds_bucket{le="+Inf"} ${commit[1]}`,
        `etcd_debugging_mvcc_slow_watcher_total ${slow}`,
      ].join('\n');
    // over the run: 500 txns, 800 puts, 100 deletes, 900 revisions, 1 MiB sent; fsyncs: 100 more, all ≤ 2 ms, 50 of them ≤ 1 ms
    const e = etcdFigures(scrape(100, 200, 0, 1000, 0, [10, 10, 10], [5, 5], 3), scrape(600, 1000, 100, 1900, 1_048_576, [60, 110, 110], [105, 105], 0));
    expect(e).toMatchObject({ txns: 500, puts: 800, deletes: 100, revisions: 900, sentBytes: 1_048_576, slowWatchers: 0 });
    expect(e.walFsyncP50Ms).toBeCloseTo(1); // the 50th of 100 falls at the top of the ≤ 1 ms bucket
    expect(e.walFsyncP99Ms).toBeCloseTo(1.98); // 1 + (2 − 1) × (99 − 50) / 50
    expect(e.backendCommitP99Ms).toBeCloseTo(9.9); // 10 × 99 / 100
    // 100 + 20 steps: 900 / 120 = 7.5 revisions, 1,048,576 / 120 / 1024 = 8.5 KiB each
    const text = formatPipelinesSummary(pipelinesRows({ ...figures, etcd: e }));
    expect(text).toContain(
      '| etcd: writes per step | — | 7.5 revisions (writes; 6.7 puts, 0.8 deletes; 4.2 multi-op requests, reads included) over 120 steps; 8.5 KiB sent to clients per step |  |',
    );
    expect(text).toContain('| etcd: disk | — | WAL fsync p50 1.0 p99 2.0 ms; backend commit p99 9.9 ms; slow watchers at the end 0 |  |');
  });

  it('misses the latency target at p99 ≥ 1 s, and the runs target with one lost', () => {
    const rows = pipelinesRows({ ...figures, lost: 1, succeeded: 9, latency: { ...figures.latency, afterInputs: { p50: 150, p99: 1000, max: 1200, n: 100 } } });
    expect(verdictLines(rows).map((l) => l.split(':')[0])).toEqual(['MISS', 'MISS']);
  });
});

describe('CPU from /proc', () => {
  it('reads utime + stime after the command, whatever its name holds', () => {
    // fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
    const stat = '4242 (node (quota) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 1234 56 0 0 20 0 11 0';
    expect(cpuTicksOfStat(stat)).toBe(1290); // 1234 + 56
  });
});
