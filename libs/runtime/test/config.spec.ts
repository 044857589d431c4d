/** The settings every service reads from its environment: defaults, coercion, and refusals that name the variable. */
import { hostname } from 'node:os';
import { ConfigError, configFromEnv, describeEnv, SERVICE_ENV, serviceTokenFromEnv } from '../src';

it('defaults every setting when the environment is empty', () => {
  const { instanceId, ...c } = configFromEnv({});
  expect(c).toEqual({
    etcdEndpoints: ['http://127.0.0.1:2379'],
    etcdPrefix: '/batch/',
    host: '127.0.0.1',
    port: 0,
    rpcPort: 0,
    advertiseHost: '127.0.0.1',
    leaseTtlSeconds: 5,
    logLevel: 'info',
  });
  expect(instanceId).toMatch(new RegExp(`^${hostname().replace(/[.]/g, '\\.')}-${process.pid}-`));
});

it('coerces numbers and lists from their text', () => {
  const c = configFromEnv({ BATCH_PORT: '8080', BATCH_ETCD_ENDPOINTS: ' http://a:2379, ,http://b:2379', BATCH_HOST: '0.0.0.0', BATCH_ETCD_CA: '/ca.pem' });
  expect(c).toMatchObject({ port: 8080, etcdEndpoints: ['http://a:2379', 'http://b:2379'], advertiseHost: hostname(), etcdTls: { caFile: '/ca.pem' } });
});

it('refuses a bad value with a message naming the variable, what it must be, and what it was', () => {
  expect(() => configFromEnv({ BATCH_LEASE_TTL: 'abc' })).toThrow(new ConfigError(['BATCH_LEASE_TTL must be an integer ≥ 1 (got "abc")']));
  expect(() => configFromEnv({ BATCH_LOG_LEVEL: 'verbose' })).toThrow(
    'BATCH_LOG_LEVEL must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent" (got "verbose")',
  );
  expect(() => configFromEnv({ BATCH_PORT: '1.5' })).toThrow('BATCH_PORT must be an integer ≥ 0 (got "1.5")');
});

it('reads the service token through the same schema', () => {
  expect(serviceTokenFromEnv({})).toBeUndefined();
  expect(serviceTokenFromEnv({ BATCH_SERVICE_TOKEN: 'x'.repeat(32) })).toBe('x'.repeat(32));
});

it('documents every variable with its type and default', () => {
  expect(describeEnv(SERVICE_ENV).find((d) => d.name === 'BATCH_LEASE_TTL')).toEqual({
    name: 'BATCH_LEASE_TTL',
    type: 'integer',
    default: '5',
    unit: 'seconds',
    meaning: expect.any(String),
  });
});
