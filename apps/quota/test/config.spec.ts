/** The quota settings from its environment: defaults, coercion, and refusals that name the variable. */
import { quotaConfigFromEnv } from '../src';
import { DEFAULT_ARCHIVE } from '../src/archiver.service';

it('defaults every setting when the environment is empty', () => {
  expect(quotaConfigFromEnv({})).toEqual({
    clusterConfigFile: undefined,
    retention: { jobRetentionMs: 7 * 86_400_000, idempotencyTtlMs: 86_400_000, maxJobsPerPass: 1000, intervalMs: 60_000 },
    // the defaults written once, where the archiver is
    archive: DEFAULT_ARCHIVE,
    // 7 days, 10,000 entries per tenant
    stepCache: { ttlMs: 7 * 86_400_000, maxEntries: 10_000 },
  });
});

it('bounds the step cache by BATCH_STEP_CACHE_TTL seconds and BATCH_STEP_CACHE_MAX_ENTRIES, refusing a bound below 1', () => {
  expect(quotaConfigFromEnv({ BATCH_STEP_CACHE_TTL: '3600', BATCH_STEP_CACHE_MAX_ENTRIES: '50' }).stepCache).toEqual({ ttlMs: 3_600_000, maxEntries: 50 });
  expect(() => quotaConfigFromEnv({ BATCH_STEP_CACHE_MAX_ENTRIES: '0' })).toThrow('BATCH_STEP_CACHE_MAX_ENTRIES must be an integer ≥ 1 (got "0")');
  expect(() => quotaConfigFromEnv({ BATCH_STEP_CACHE_TTL: '0' })).toThrow('BATCH_STEP_CACHE_TTL must be a number ≥ 1 (got "0")');
});

it('archives to the history store only with BATCH_HISTORY_URL, after BATCH_ARCHIVE_AFTER seconds', () => {
  const c = quotaConfigFromEnv({ BATCH_HISTORY_URL: 'postgres://h/db', BATCH_ARCHIVE_AFTER: '30', BATCH_HISTORY_RETENTION: '7' });
  expect(c).toMatchObject({ historyUrl: 'postgres://h/db', archive: { afterMs: 30_000, historyRetentionMs: 7 * 86_400_000 } });
  expect(quotaConfigFromEnv({ BATCH_HISTORY_URL: ' ' }).historyUrl).toBeUndefined();
  expect(() => quotaConfigFromEnv({ BATCH_ARCHIVE_AFTER: '-1' })).toThrow('BATCH_ARCHIVE_AFTER must be a number ≥ 0 (got "-1")');
});

it('coerces seconds from their text into milliseconds', () => {
  const c = quotaConfigFromEnv({ BATCH_JOB_RETENTION: '3600', BATCH_IDEMPOTENCY_TTL: '0.5', BATCH_CLUSTER_CONFIG: '/etc/cluster.json' });
  expect(c).toMatchObject({ clusterConfigFile: '/etc/cluster.json', retention: { jobRetentionMs: 3_600_000, idempotencyTtlMs: 500 } });
});

it('refuses a bad value with a message naming the variable', () => {
  expect(() => quotaConfigFromEnv({ BATCH_JOB_RETENTION: '7d' })).toThrow('BATCH_JOB_RETENTION must be a number ≥ 0 (got "7d")');
});

it('gives steps that read inputs BATCH_STEP_API_URL as their API address, refusing what is not an http(s) URL', () => {
  expect(quotaConfigFromEnv({ BATCH_STEP_API_URL: 'http://batchapi-admission.batch.svc:80' }).stepApiUrl).toBe('http://batchapi-admission.batch.svc:80');
  expect(quotaConfigFromEnv({ BATCH_STEP_API_URL: '' }).stepApiUrl).toBeUndefined();
  for (const bad of ['batchapi-admission:80', 'ftp://x', 'http://a b'])
    expect(() => quotaConfigFromEnv({ BATCH_STEP_API_URL: bad })).toThrow(/BATCH_STEP_API_URL must be an http:\/\/ or https:\/\/ URL/);
});
