/** The executor's settings from its environment: defaults, parsing, and refusals that name the variable. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { executorConfigFromEnv } from '../src';

it('defaults every setting when the environment is empty', () => {
  const c = executorConfigFromEnv({ BATCH_NODE_NAME: 'n1' });
  expect(c).toEqual({
    nodeName: 'n1',
    dataDir: join(homedir(), '.cache', 'batchapi', 'executor', 'n1'),
    cpu: undefined,
    memory: undefined,
    labels: {},
    killGraceMs: 10000,
    reportIntervalMs: 100,
    nvidiaSmi: 'nvidia-smi',
    isolation: 'auto',
    logMaxBytes: 64 * 1024 * 1024,
  });
});

it('reads every variable', () => {
  const c = executorConfigFromEnv({
    BATCH_NODE_NAME: 'gpu-7',
    BATCH_DATA_DIR: '/data',
    BATCH_NODE_CPU: '16',
    BATCH_NODE_MEMORY: '64Gi',
    BATCH_NODE_LABELS: 'zone=eu-1, pool = gpu,expr=a=b',
    BATCH_KILL_GRACE_MS: '0',
    BATCH_REPORT_INTERVAL_MS: '250',
    BATCH_NVIDIA_SMI: '/opt/nv/nvidia-smi',
    BATCH_ISOLATION: 'none',
    BATCH_LOG_MAX_BYTES: '1024',
  });
  expect(c).toMatchObject({
    nodeName: 'gpu-7',
    dataDir: '/data',
    cpu: '16',
    memory: '64Gi',
    labels: { zone: 'eu-1', pool: 'gpu', expr: 'a=b' },
    killGraceMs: 0,
    reportIntervalMs: 250,
    nvidiaSmi: '/opt/nv/nvidia-smi',
    isolation: 'none',
    logMaxBytes: 1024,
  });
});

it.each([
  [{ BATCH_KILL_GRACE_MS: '10s' }, /BATCH_KILL_GRACE_MS="10s" is not an integer of at least 0/],
  [{ BATCH_REPORT_INTERVAL_MS: '0' }, /BATCH_REPORT_INTERVAL_MS="0" is not an integer of at least 1/],
  [{ BATCH_LOG_MAX_BYTES: '-1' }, /BATCH_LOG_MAX_BYTES/],
  [{ BATCH_NODE_LABELS: '=x' }, /BATCH_NODE_LABELS has an entry without a key/],
  [{ BATCH_NODE_NAME: '../etc' }, /BATCH_NODE_NAME="..\/etc" is not a node name/],
  [{ BATCH_NODE_NAME: 'a/b' }, /is not a node name/],
])('refuses %j', (env, message) => {
  expect(() => executorConfigFromEnv({ BATCH_NODE_NAME: 'n1', ...env })).toThrow(message);
});
