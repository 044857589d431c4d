/** The executor's settings from its environment: defaults, parsing, and refusals that name the variable. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { executorConfigFromEnv, kubernetesConfigFromEnv, simulationConfigFromEnv } from '../src';

it('defaults every setting when the environment is empty', () => {
  const c = executorConfigFromEnv({ BATCH_NODE_NAME: 'n1' });
  expect(c).toEqual({
    nodeName: 'n1',
    dataDir: join(homedir(), '.cache', 'batchapi', 'executor', 'n1'),
    cpu: undefined,
    memory: undefined,
    labels: {},
    killGraceMs: 10000,
    drainGraceMs: 60000,
    reportIntervalMs: 100,
    nvidiaSmi: 'nvidia-smi',
    isolation: 'auto',
    // a task's CPU request is a cgroup weight: it may use idle CPU beyond it
    cpuLimit: 'soft',
    logMaxBytes: 64 * 1024 * 1024,
    // with a blob store: 8 MiB of each ended attempt's log kept, results up to 64 MiB by reference
    logUploadMaxBytes: 8 * 1024 * 1024,
    resultMaxBytes: 64 * 1024 * 1024,
    workingDirCacheBytes: 1024 * 1024 * 1024,
    // Python environments: 5 GiB of venvs, 15 minutes a build, pip's own index
    pythonEnvCacheBytes: 5 * 1024 * 1024 * 1024,
    pythonEnvBuildTimeoutSeconds: 900,
    pip: {},
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
    BATCH_DRAIN_GRACE_MS: '0',
    BATCH_REPORT_INTERVAL_MS: '250',
    BATCH_NVIDIA_SMI: '/opt/nv/nvidia-smi',
    BATCH_ISOLATION: 'none',
    BATCH_CPU_LIMIT: 'hard',
    BATCH_LOG_MAX_BYTES: '1024',
    BATCH_LOG_UPLOAD_MAX_BYTES: '2048',
    BATCH_RESULT_MAX_BYTES: '131072',
    BATCH_PYTHON_ENV_CACHE_BYTES: '1000000',
    BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS: '60',
    BATCH_PIP_INDEX_URL: 'https://pypi.internal/simple',
    BATCH_PIP_FIND_LINKS: '/srv/wheels',
    BATCH_PIP_NO_INDEX: 'true',
    BATCH_PIP_ALLOW_SOURCE_BUILDS: 'true',
  });
  expect(c).toMatchObject({
    nodeName: 'gpu-7',
    dataDir: '/data',
    cpu: '16',
    memory: '64Gi',
    labels: { zone: 'eu-1', pool: 'gpu', expr: 'a=b' },
    killGraceMs: 0,
    drainGraceMs: 0,
    reportIntervalMs: 250,
    nvidiaSmi: '/opt/nv/nvidia-smi',
    isolation: 'none',
    cpuLimit: 'hard',
    logMaxBytes: 1024,
    logUploadMaxBytes: 2048,
    resultMaxBytes: 131072,
    pythonEnvCacheBytes: 1000000,
    pythonEnvBuildTimeoutSeconds: 60,
    pip: { indexUrl: 'https://pypi.internal/simple', findLinks: '/srv/wheels', noIndex: true, allowSourceBuilds: true },
  });
});

it.each([
  [{ BATCH_KILL_GRACE_MS: '10s' }, 'BATCH_KILL_GRACE_MS must be an integer ≥ 0 (got "10s")'],
  [{ BATCH_DRAIN_GRACE_MS: '-1' }, 'BATCH_DRAIN_GRACE_MS must be an integer ≥ 0 (got "-1")'],
  [{ BATCH_REPORT_INTERVAL_MS: '0' }, 'BATCH_REPORT_INTERVAL_MS must be an integer ≥ 1 (got "0")'],
  [{ BATCH_LOG_MAX_BYTES: '-1' }, 'BATCH_LOG_MAX_BYTES must be an integer ≥ 1 (got "-1")'],
  // a result under the inline cap (64 KiB) is never kept by reference: the setting starts there
  [{ BATCH_RESULT_MAX_BYTES: '1000' }, 'BATCH_RESULT_MAX_BYTES must be an integer ≥ 65536 (got "1000")'],
  [{ BATCH_NODE_LABELS: '=x' }, 'BATCH_NODE_LABELS must be k=v pairs separated by commas; the entry "=x" has no key (got "=x")'],
  [{ BATCH_NODE_NAME: '../etc' }, /^BATCH_NODE_NAME must be a node name: .* \(got "\.\.\/etc"\)$/],
  [{ BATCH_NODE_NAME: 'a/b' }, /BATCH_NODE_NAME must be a node name/],
  [{ BATCH_PIP_NO_INDEX: 'yes' }, 'BATCH_PIP_NO_INDEX must be one of "false", "true" (got "yes")'],
  [{ BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS: '0' }, 'BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS must be an integer ≥ 1 (got "0")'],
  [{ BATCH_ISOLATION: 'strict' }, 'BATCH_ISOLATION must be one of "auto", "none" (got "strict")'],
  [{ BATCH_CPU_LIMIT: 'burst' }, 'BATCH_CPU_LIMIT must be one of "soft", "hard" (got "burst")'],
  [{ BATCH_EXECUTOR_BACKEND: 'k8s' }, 'BATCH_EXECUTOR_BACKEND must be one of "process", "kubernetes" (got "k8s")'],
  // a process node would run a job's command without its image: it may not claim a container runtime
  [
    { BATCH_NODE_LABELS: 'batchapi.io/container-runtime=podman' },
    /BATCH_NODE_LABELS: batchapi.io\/container-runtime is set by a backend that runs each task in its job's image/,
  ],
])('refuses %j', (env, message) => {
  expect(() => executorConfigFromEnv({ BATCH_NODE_NAME: 'n1', ...env })).toThrow(message);
});

it('reads the Kubernetes backend and the simulated fleet', () => {
  expect(executorConfigFromEnv({ BATCH_NODE_NAME: 'n1', BATCH_EXECUTOR_BACKEND: 'kubernetes', BATCH_K8S_REWATCH_MS: '250', BATCH_K8S_NODE: '' })).toMatchObject(
    {
      backend: 'kubernetes',
      kubernetes: { namespace: 'batchapi-tasks', image: 'busybox:1.36', rewatchMs: 250 },
    },
  );
  expect(kubernetesConfigFromEnv({})).toEqual({ namespace: 'batchapi-tasks', image: 'busybox:1.36', rewatchMs: 1000 });
  expect(simulationConfigFromEnv({})).toEqual({ nodes: 0, prefix: 'sim', taskMs: 1000 });
  expect(simulationConfigFromEnv({ BATCH_SIMULATE_NODES: '500', BATCH_SIM_TASK_MS: '' })).toEqual({ nodes: 500, prefix: 'sim', taskMs: 1000 });
  expect(() => simulationConfigFromEnv({ BATCH_SIMULATE_NODES: 'many' })).toThrow('BATCH_SIMULATE_NODES must be an integer ≥ 0 (got "many")');
});
