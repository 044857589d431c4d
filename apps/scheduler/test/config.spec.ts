/** The scheduler settings from its environment: defaults, coercion, and refusals that name the variable. */
import { schedulerConfigFromEnv } from '../src';

it('defaults every setting when the environment is empty', () => {
  expect(schedulerConfigFromEnv({})).toEqual({ usageHalfLifeMs: 3_600_000, leaseTtlSeconds: 5 });
});

it('coerces seconds from their text', () => {
  expect(schedulerConfigFromEnv({ BATCH_USAGE_HALF_LIFE: '0', BATCH_LEASE_TTL: '10' })).toEqual({ usageHalfLifeMs: 0, leaseTtlSeconds: 10 });
});

it('refuses a bad value with a message naming the variable', () => {
  expect(() => schedulerConfigFromEnv({ BATCH_USAGE_HALF_LIFE: 'an hour' })).toThrow('BATCH_USAGE_HALF_LIFE must be a number ≥ 0 (got "an hour")');
  expect(() => schedulerConfigFromEnv({ BATCH_LEASE_TTL: '0' })).toThrow('BATCH_LEASE_TTL must be an integer ≥ 1 (got "0")');
});
