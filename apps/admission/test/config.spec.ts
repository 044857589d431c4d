/** The admission settings from its environment: defaults, coercion, and refusals that name the variable. */
import { admissionConfigFromEnv } from '../src';
import { traceUrlProblem } from '../src/config';

it('defaults every setting when the environment is empty', () => {
  expect(admissionConfigFromEnv({})).toEqual({
    tokensFile: undefined,
    bodyLimit: undefined,
    workingDirMaxBytes: 100 * 1024 * 1024,
    maxInflightSubmits: 256,
    backlog: { maxFinished: 100_000, staleMs: 300_000 },
    overload: { maxLoopDelayMs: 2000, maxCommitLatencyMs: 2000 },
    reads: { tenantRate: 50, tenantBurst: 100, operatorRate: 500, operatorBurst: 1000 },
    streams: { maxStreams: 1000, maxStreamsPerTenant: 100, stallMs: 30_000 },
    traceUrl: undefined,
  });
});

describe('BATCH_TRACE_URL', () => {
  it.each<[string, string | undefined]>([
    ['https://jaeger.example.com/trace/{traceId}', undefined],
    ['http://tempo:3200/explore?trace={traceId}', undefined],
    ['https://jaeger.example.com/trace/', 'must hold {traceId} where the trace id goes'],
    ['javascript:alert({traceId})', 'must be an http or https URL'],
    ['not a url {traceId}', 'must be a URL'],
    // 2,049 characters > 2,048
    [`https://t.example/{traceId}${'x'.repeat(2049 - 27)}`, 'must be at most 2048 characters'],
  ])('%s: %s', (template, problem) => {
    expect(traceUrlProblem(template)).toBe(problem);
  });

  it('is refused at start naming the variable', () => {
    expect(() => admissionConfigFromEnv({ BATCH_TRACE_URL: 'https://jaeger.example.com/' })).toThrow(/BATCH_TRACE_URL must hold \{traceId\}/);
    expect(admissionConfigFromEnv({ BATCH_TRACE_URL: 'https://j.example/{traceId}' }).traceUrl).toBe('https://j.example/{traceId}');
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
