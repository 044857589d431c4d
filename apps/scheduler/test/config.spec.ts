/** The scheduler settings from its environment: defaults, coercion, and refusals that name the variable. */
import { backfillSettings } from '@batchapi/scheduling';
import { schedulerConfigFromEnv } from '../src';

it('defaults every setting when the environment is empty', () => {
  expect(schedulerConfigFromEnv({})).toEqual({
    usageHalfLifeMs: 3_600_000,
    leaseTtlSeconds: 5,
    aging: { perHour: 0, max: 0 },
    protectMs: 60_000,
    reclaimProtectMs: 0,
    repeat: { maxPreemptions: 3, windowMs: 600_000 },
    backfill: { maxReservations: 1, runtimeSeconds: 3600, queueRuntimeSeconds: {} },
    topology: [{ name: 'block', label: 'topology.batchapi.io/block' }, { name: 'rack', label: 'topology.batchapi.io/rack' }, { name: 'host' }],
    domainScoreWeight: 4,
    batchWindowMs: 0,
    consolidation: { maxNodesPerPass: 0, maxNodeFraction: 0.1, consolidateAfterMs: 300_000, maxTaskAgeMs: 600_000, repackMaxMoves: 0, defragmentMaxMoves: 0 },
  });
});

it('reads consolidation (off by default), its budget and idle time, and refuses values out of bounds naming the variable', () => {
  expect(
    schedulerConfigFromEnv({
      BATCH_CONSOLIDATION_NODES_PER_PASS: '2',
      BATCH_CONSOLIDATION_NODE_FRACTION: '0.25',
      BATCH_CONSOLIDATE_AFTER: '60',
      BATCH_CONSOLIDATION_MAX_TASK_AGE: '0',
      BATCH_CONSOLIDATION_REPACK_MAX_MOVES: '50',
      BATCH_DEFRAGMENT_MAX_MOVES: '6',
    }).consolidation,
  ).toEqual({ maxNodesPerPass: 2, maxNodeFraction: 0.25, consolidateAfterMs: 60_000, maxTaskAgeMs: 0, repackMaxMoves: 50, defragmentMaxMoves: 6 });
  expect(() => schedulerConfigFromEnv({ BATCH_DEFRAGMENT_MAX_MOVES: '1001' })).toThrow('BATCH_DEFRAGMENT_MAX_MOVES must be at most 1000');
  expect(() => schedulerConfigFromEnv({ BATCH_CONSOLIDATION_REPACK_MAX_MOVES: '10001' })).toThrow('BATCH_CONSOLIDATION_REPACK_MAX_MOVES must be at most 10000');
  expect(() => schedulerConfigFromEnv({ BATCH_CONSOLIDATION_REPACK_MAX_MOVES: '-1' })).toThrow('BATCH_CONSOLIDATION_REPACK_MAX_MOVES');
  expect(() => schedulerConfigFromEnv({ BATCH_CONSOLIDATION_MAX_TASK_AGE: '604801' })).toThrow('BATCH_CONSOLIDATION_MAX_TASK_AGE must be at most 604800');
  // on, with an age bound no node can meet: newest task ≥ 300 s old and every task ≤ 300 s old (or ≤ the 60 s exempt time)
  const on = { BATCH_CONSOLIDATION_NODES_PER_PASS: '1' };
  expect(() => schedulerConfigFromEnv({ ...on, BATCH_CONSOLIDATION_MAX_TASK_AGE: '300' })).toThrow(
    'BATCH_CONSOLIDATION_MAX_TASK_AGE (300 s) must be 0 (any age) or over BATCH_CONSOLIDATE_AFTER (300 s) and BATCH_PREEMPT_EXEMPT_TIME (60 s)',
  );
  expect(() => schedulerConfigFromEnv({ ...on, BATCH_CONSOLIDATE_AFTER: '30', BATCH_CONSOLIDATION_MAX_TASK_AGE: '60' })).toThrow(
    'BATCH_CONSOLIDATION_MAX_TASK_AGE (60 s)',
  );
  // the defaults (300 s after, 600 s age) and any age (0) are fine; off, nothing is checked
  expect(schedulerConfigFromEnv({ ...on }).consolidation?.maxTaskAgeMs).toBe(600_000);
  expect(schedulerConfigFromEnv({ ...on, BATCH_CONSOLIDATION_MAX_TASK_AGE: '0' }).consolidation?.maxTaskAgeMs).toBe(0);
  expect(schedulerConfigFromEnv({ BATCH_CONSOLIDATION_MAX_TASK_AGE: '300' }).consolidation?.maxNodesPerPass).toBe(0);
  expect(() => schedulerConfigFromEnv({ BATCH_CONSOLIDATION_NODES_PER_PASS: '101' })).toThrow('BATCH_CONSOLIDATION_NODES_PER_PASS must be at most 100');
  expect(() => schedulerConfigFromEnv({ BATCH_CONSOLIDATION_NODES_PER_PASS: '1.5' })).toThrow('BATCH_CONSOLIDATION_NODES_PER_PASS');
  expect(() => schedulerConfigFromEnv({ BATCH_CONSOLIDATION_NODE_FRACTION: '1.5' })).toThrow('BATCH_CONSOLIDATION_NODE_FRACTION must be at most 1');
  expect(() => schedulerConfigFromEnv({ BATCH_CONSOLIDATE_AFTER: '90000' })).toThrow('BATCH_CONSOLIDATE_AFTER must be at most 86400');
  expect(() => schedulerConfigFromEnv({ BATCH_CONSOLIDATE_AFTER: '-1' })).toThrow('BATCH_CONSOLIDATE_AFTER');
});

it('reads the domain score weight, fractions and 0 (off) too, and refuses one over 100 or below 0 naming the variable', () => {
  expect(schedulerConfigFromEnv({ BATCH_TOPOLOGY_SCORE_WEIGHT: '0' }).domainScoreWeight).toBe(0);
  expect(schedulerConfigFromEnv({ BATCH_TOPOLOGY_SCORE_WEIGHT: '2.5' }).domainScoreWeight).toBe(2.5);
  expect(() => schedulerConfigFromEnv({ BATCH_TOPOLOGY_SCORE_WEIGHT: '101' })).toThrow('BATCH_TOPOLOGY_SCORE_WEIGHT must be at most 100');
  expect(() => schedulerConfigFromEnv({ BATCH_TOPOLOGY_SCORE_WEIGHT: '-1' })).toThrow('BATCH_TOPOLOGY_SCORE_WEIGHT');
  expect(() => schedulerConfigFromEnv({ BATCH_TOPOLOGY_SCORE_WEIGHT: 'heavy' })).toThrow('BATCH_TOPOLOGY_SCORE_WEIGHT');
});

it('reads the batching window in seconds, fractions too, and refuses one over 10 s naming the variable', () => {
  expect(schedulerConfigFromEnv({ BATCH_PLACEMENT_WINDOW: '1.5' }).batchWindowMs).toBe(1500);
  expect(() => schedulerConfigFromEnv({ BATCH_PLACEMENT_WINDOW: '11' })).toThrow('BATCH_PLACEMENT_WINDOW must be at most 10');
  expect(() => schedulerConfigFromEnv({ BATCH_PLACEMENT_WINDOW: '-1' })).toThrow('BATCH_PLACEMENT_WINDOW');
});

it('reads the topology levels, top first, and refuses a bad order naming the variable', () => {
  expect(schedulerConfigFromEnv({ BATCH_TOPOLOGY_LEVELS: 'zone=example.com/zone, rack=example.com/rack, gpu-host' }).topology).toEqual([
    { name: 'zone', label: 'example.com/zone' },
    { name: 'rack', label: 'example.com/rack' },
    { name: 'gpu-host' },
  ]);
  expect(schedulerConfigFromEnv({ BATCH_TOPOLOGY_LEVELS: 'rack=example.com/rack' }).topology).toEqual([{ name: 'rack', label: 'example.com/rack' }]);
  expect(() => schedulerConfigFromEnv({ BATCH_TOPOLOGY_LEVELS: 'host,rack=example.com/rack' })).toThrow(
    'BATCH_TOPOLOGY_LEVELS gives level "host" no label, but only the last level may be the node itself',
  );
  const many = Array.from({ length: 9 }, (_, i) => `l${i}=example.com/l${i}`).join(',');
  expect(() => schedulerConfigFromEnv({ BATCH_TOPOLOGY_LEVELS: many })).toThrow('BATCH_TOPOLOGY_LEVELS must have at most 8 levels');
});

it('coerces seconds from their text', () => {
  expect(schedulerConfigFromEnv({ BATCH_USAGE_HALF_LIFE: '0', BATCH_LEASE_TTL: '10' })).toMatchObject({ usageHalfLifeMs: 0, leaseTtlSeconds: 10 });
});

it('reads priority aging and thrash damping, seconds into milliseconds', () => {
  expect(
    schedulerConfigFromEnv({
      BATCH_PRIORITY_AGING_PER_HOUR: '2.5',
      BATCH_PRIORITY_AGING_MAX: '100',
      BATCH_PREEMPT_EXEMPT_TIME: '120',
      BATCH_RECLAIM_EXEMPT_TIME: '30',
      BATCH_PREEMPT_REPEAT_LIMIT: '0',
      BATCH_PREEMPT_REPEAT_WINDOW: '60',
    }),
  ).toMatchObject({
    aging: { perHour: 2.5, max: 100 },
    protectMs: 120_000,
    reclaimProtectMs: 30_000,
    repeat: { maxPreemptions: 0, windowMs: 60_000 },
  });
});

it('refuses aging beyond its bounds, naming the variable', () => {
  expect(() => schedulerConfigFromEnv({ BATCH_PRIORITY_AGING_MAX: '5000' })).toThrow('BATCH_PRIORITY_AGING_MAX must be at most 2000');
  expect(() => schedulerConfigFromEnv({ BATCH_PRIORITY_AGING_MAX: '1.5' })).toThrow('BATCH_PRIORITY_AGING_MAX must be an integer ≥ 0 (got "1.5")');
  expect(() => schedulerConfigFromEnv({ BATCH_PRIORITY_AGING_PER_HOUR: '2000000' })).toThrow('BATCH_PRIORITY_AGING_PER_HOUR must be at most 1000000');
});

it('refuses a bad value with a message naming the variable', () => {
  expect(() => schedulerConfigFromEnv({ BATCH_USAGE_HALF_LIFE: 'an hour' })).toThrow('BATCH_USAGE_HALF_LIFE must be a number ≥ 0 (got "an hour")');
  expect(() => schedulerConfigFromEnv({ BATCH_LEASE_TTL: '0' })).toThrow('BATCH_LEASE_TTL must be an integer ≥ 1 (got "0")');
});

it('reads fair-share prices, and refuses a malformed list naming the variable', () => {
  expect(schedulerConfigFromEnv({}).prices).toBeUndefined();
  expect(schedulerConfigFromEnv({ BATCH_FAIR_SHARE_PRICES: 'gpu:H100=4, gpu:T4=0.5,cpu=0.02' }).prices).toEqual({ 'gpu:H100': 4, 'gpu:T4': 0.5, cpu: 0.02 });
  expect(() => schedulerConfigFromEnv({ BATCH_FAIR_SHARE_PRICES: 'gpu:H100' })).toThrow(
    'BATCH_FAIR_SHARE_PRICES must be resource=price pairs such as gpu:H100=4 (got "gpu:H100")',
  );
  expect(() => schedulerConfigFromEnv({ BATCH_FAIR_SHARE_PRICES: 'disk=1' })).toThrow('BATCH_FAIR_SHARE_PRICES names an unknown resource "disk"');
  expect(() => schedulerConfigFromEnv({ BATCH_FAIR_SHARE_PRICES: 'gpu=-1' })).toThrow(
    'BATCH_FAIR_SHARE_PRICES must give each resource a price from 0 to 1000000 (got "-1" for gpu)',
  );
  const many = Array.from({ length: 65 }, (_, i) => `gpu:m${i}=1`).join(',');
  expect(() => schedulerConfigFromEnv({ BATCH_FAIR_SHARE_PRICES: many })).toThrow('BATCH_FAIR_SHARE_PRICES must have at most 64 entries');
});

it('reads backfill settings, and refuses bad ones naming the variable', () => {
  expect(
    schedulerConfigFromEnv({
      BATCH_BACKFILL_RESERVATIONS: '4',
      BATCH_BACKFILL_RUNTIME_ESTIMATE: '600',
      BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES: 'train=86400, dev=300',
    }).backfill,
  ).toEqual({ maxReservations: 4, runtimeSeconds: 600, queueRuntimeSeconds: { train: 86400, dev: 300 } });
  expect(schedulerConfigFromEnv({ BATCH_BACKFILL_RESERVATIONS: '0' }).backfill.maxReservations).toBe(0);
  expect(() => schedulerConfigFromEnv({ BATCH_BACKFILL_RESERVATIONS: '101' })).toThrow('BATCH_BACKFILL_RESERVATIONS must be at most 100');
  expect(() => schedulerConfigFromEnv({ BATCH_BACKFILL_RUNTIME_ESTIMATE: '0' })).toThrow('BATCH_BACKFILL_RUNTIME_ESTIMATE must be an integer ≥ 1 (got "0")');
  expect(() => schedulerConfigFromEnv({ BATCH_BACKFILL_RUNTIME_ESTIMATE: '2592001' })).toThrow('BATCH_BACKFILL_RUNTIME_ESTIMATE must be at most 2592000');
  expect(() => schedulerConfigFromEnv({ BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES: 'train' })).toThrow(
    'BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES must be queue=seconds pairs such as train=86400 (got "train")',
  );
  expect(() => schedulerConfigFromEnv({ BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES: 'Train=60' })).toThrow(
    'BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES names "Train", which is not a queue name',
  );
  expect(() => schedulerConfigFromEnv({ BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES: 'train=1.5' })).toThrow(
    'BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES must give each queue a whole number of seconds from 1 to 2592000 (got "1.5" for train)',
  );
  const many = Array.from({ length: 257 }, (_, i) => `q${i}=60`).join(',');
  expect(() => schedulerConfigFromEnv({ BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES: many })).toThrow(
    'BATCH_BACKFILL_QUEUE_RUNTIME_ESTIMATES must have at most 256 entries',
  );
});

it('gives each queue its runtime estimate, the configured default for the others', () => {
  const b = backfillSettings({ maxReservations: 1, runtimeSeconds: 600, queueRuntimeSeconds: { train: 86400 } });
  expect([b.runtimeSeconds('train'), b.runtimeSeconds('dev'), b.maxReservations]).toEqual([86400, 600, 1]);
  // only train's was set by the operator: a learned estimate may replace dev's
  expect([b.configured?.('train'), b.configured?.('dev'), b.configured?.('constructor')]).toEqual([true, false, false]);
});
