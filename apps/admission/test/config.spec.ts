/** The admission settings from its environment: defaults, coercion, and refusals that name the variable. */
import { admissionConfigFromEnv } from '../src';

it('defaults every setting when the environment is empty', () => {
  expect(admissionConfigFromEnv({})).toEqual({
    tokensFile: undefined,
    bodyLimit: undefined,
    maxInflightSubmits: 256,
    backlog: { maxFinished: 100_000, staleMs: 300_000 },
    overload: { maxLoopDelayMs: 2000, maxCommitLatencyMs: 2000 },
    reads: { tenantRate: 50, tenantBurst: 100, operatorRate: 500, operatorBurst: 1000 },
    streams: { maxStreams: 1000, maxStreamsPerTenant: 100, stallMs: 30_000 },
  });
});

it('coerces numbers from their text, and takes an empty value as unset', () => {
  const c = admissionConfigFromEnv({
    BATCH_READS_PER_SECOND: '2.5',
    BATCH_MAX_BODY_BYTES: '4096',
    BATCH_MAX_INFLIGHT_SUBMITS: '0',
    BATCH_MAX_EVENT_STREAMS: '',
  });
  expect(c.reads.tenantRate).toBe(2.5);
  expect(c.bodyLimit).toBe(4096);
  expect(c.maxInflightSubmits).toBe(0);
  expect(c.streams.maxStreams).toBe(1000);
});

it('refuses a bad value with a message naming the variable, what it must be, and what it was', () => {
  expect(() => admissionConfigFromEnv({ BATCH_MAX_EVENT_STREAMS: 'abc' })).toThrow('BATCH_MAX_EVENT_STREAMS must be an integer ≥ 0 (got "abc")');
  expect(() => admissionConfigFromEnv({ BATCH_MAX_EVENT_LOOP_DELAY_MS: '-1', BATCH_READ_BURST: 'x' })).toThrow(
    'invalid configuration:\n  BATCH_MAX_EVENT_LOOP_DELAY_MS must be a number ≥ 0 (got "-1")\n  BATCH_READ_BURST must be a number ≥ 0 (got "x")',
  );
});
