/** The executor's own settings: their schema over the environment (`EXECUTOR_ENV`) and the parsed `ExecutorConfig`. */
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError, envEnum, envNumber, envString, parseEnv } from '@batchapi/runtime';
import { CONTAINER_RUNTIME_LABEL } from '@batchapi/api';
import { z } from 'zod';
import type { CpuLimit } from './isolation';
import type { KubernetesBackendConfig } from './kubernetes';
import type { PipIndexOptions } from './python-env-cache';

/** Settings of one executor. */
export interface ExecutorConfig {
  /** Node name (`BATCH_NODE_NAME`). @default the host name */
  nodeName: string;
  /** Work and log directory (`BATCH_DATA_DIR`). @default `$XDG_CACHE_HOME` or ~/.cache, then batchapi/executor/<node> */
  dataDir: string;
  /** CPU capacity override (`BATCH_NODE_CPU`, a quantity). @default the OS's CPU count */
  cpu?: string;
  /** Memory capacity override (`BATCH_NODE_MEMORY`, a quantity). @default the OS's total memory */
  memory?: string;
  /** Node labels (`BATCH_NODE_LABELS`, `k=v,k=v`). @default {} */
  labels: Record<string, string>;
  /** SIGTERM → SIGKILL grace when stopping a task, in milliseconds (`BATCH_KILL_GRACE_MS`). @default 10000 */
  killGraceMs: number;
  /**
   * On a graceful stop (SIGTERM), how long running tasks may go on to finish, in milliseconds
   * (`BATCH_DRAIN_GRACE_MS`): the node takes no new work at once; tasks still running after it are
   * stopped (`killGraceMs`) and handed back `NodeLost`, to run again elsewhere. 0 hands them back at
   * once. The pod's `terminationGracePeriodSeconds` must cover it plus `killGraceMs`. @default 60000
   */
  drainGraceMs: number;
  /** How often state changes are reported in one batch, in milliseconds (`BATCH_REPORT_INTERVAL_MS`). @default 100 */
  reportIntervalMs: number;
  /** The `nvidia-smi` binary (`BATCH_NVIDIA_SMI`). @default "nvidia-smi" on PATH */
  nvidiaSmi: string;
  /** Resource limits of attempts (`BATCH_ISOLATION`): `auto` uses cgroups where writable, else rlimits. @default "auto" */
  isolation: 'auto' | 'none';
  /**
   * How an attempt's CPU request limits it (`BATCH_CPU_LIMIT`, see `CpuLimit`): `soft`, a cgroup
   * weight in proportion to the request (it may use idle CPU beyond it; a Kubernetes pod gets a CPU
   * request and no CPU limit); `hard`, a CFS quota of the request (a pod's CPU limit = its request).
   * @default "soft"
   */
  cpuLimit: CpuLimit;
  /** Cap of each attempt's stdout and stderr file, in bytes (`BATCH_LOG_MAX_BYTES`); checked each second; past it the file rotates to `.1`. @default 67108864 */
  logMaxBytes: number;
  /** Most bytes of an ended attempt's log kept in the blob store, before compression (`BATCH_LOG_UPLOAD_MAX_BYTES`); the tail is kept. @default 8388608 (8 MiB) */
  logUploadMaxBytes: number;
  /** Largest result kept in the blob store, in bytes (`BATCH_RESULT_MAX_BYTES`); a larger one (or any over 64 KiB without a blob store) fails its task `ResultTooLarge`. @default 67108864 (64 MiB) */
  resultMaxBytes: number;
  /** Most bytes of working dir packages this node keeps (`BATCH_WORKING_DIR_CACHE_BYTES`); past it the least recently used go. @default 1073741824 (1 GiB) */
  workingDirCacheBytes: number;
  /** Most bytes of Python environments this node keeps (`BATCH_PYTHON_ENV_CACHE_BYTES`); past it the least recently used not in use go. @default 5368709120 (5 GiB) */
  pythonEnvCacheBytes: number;
  /** Deadline of building one Python environment, in seconds (`BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS`). @default 900 */
  pythonEnvBuildTimeoutSeconds: number;
  /** Where and how pip installs a job's `python` requirements (`BATCH_PIP_INDEX_URL`, `BATCH_PIP_FIND_LINKS`, `BATCH_PIP_NO_INDEX`, `BATCH_PIP_ALLOW_SOURCE_BUILDS`). @default {}: pip's own index, wheels only */
  pip: PipIndexOptions;
  /** Where attempts run (`BATCH_EXECUTOR_BACKEND`): processes of this machine, or pods of a Kubernetes cluster. @default "process" */
  backend?: 'process' | 'kubernetes';
  /** Settings of the Kubernetes backend. @default see `KubernetesBackendConfig` */
  kubernetes?: KubernetesBackendConfig;
}

/** Why `name` cannot be a node name, or undefined: it is part of etcd keys and of the data dir, so no "/" and no "..". */
function nodeNameProblem(name: string): string | undefined {
  return /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$/.test(name) && !name.includes('..')
    ? undefined
    : 'must be a node name: letters, digits, "-", "_" or "." (at most 253), starting and ending with a letter or digit';
}

/** Why a `k=v,k=v` list is malformed, or undefined. */
function labelsProblem(list: string): string | undefined {
  const bad = list
    .split(',')
    .filter(Boolean)
    .find((pair) => !pair.split('=')[0].trim());
  return bad === undefined ? undefined : `must be k=v pairs separated by commas; the entry ${JSON.stringify(bad)} has no key`;
}

/** The variables of an executor (docs/configuration.md, "executor"). */
export const EXECUTOR_ENV = z.object({
  BATCH_NODE_NAME: envString({
    check: nodeNameProblem,
    defaultText: 'the host name (simulated fleet: `sim`)',
    doc: 'Name of the node this executor registers; with `BATCH_SIMULATE_NODES`, the prefix of the simulated nodes.',
  }),
  BATCH_DATA_DIR: envString({ type: 'path', defaultText: '`$XDG_CACHE_HOME`/batchapi/executor/<node>', doc: "Work and log directory of the node's attempts." }),
  XDG_CACHE_HOME: envString({ type: 'path', defaultText: '~/.cache', doc: 'Where the default `BATCH_DATA_DIR` is made.' }),
  BATCH_NODE_CPU: envString({ type: 'quantity', defaultText: "the OS's CPU count", doc: 'CPU capacity the node offers, e.g. `16` or `15500m`.' }),
  BATCH_NODE_MEMORY: envString({ type: 'quantity', defaultText: "the OS's total memory", doc: 'Memory capacity the node offers, e.g. `64Gi`.' }),
  BATCH_NODE_LABELS: envString({
    type: 'k=v list',
    check: labelsProblem,
    defaultText: 'none',
    doc: 'Labels of the node, which jobs select nodes by: `k=v,k=v`.',
  }),
  BATCH_KILL_GRACE_MS: envNumber({ default: 10_000, min: 0, unit: 'ms', doc: 'Grace between SIGTERM and SIGKILL when stopping a task.' }),
  BATCH_DRAIN_GRACE_MS: envNumber({
    default: 60_000,
    min: 0,
    unit: 'ms',
    doc: "On SIGTERM the node takes no new work and its running tasks may finish for this long; those still running are then stopped and requeued as `NodeLost` (0: at once). Set the pod's `terminationGracePeriodSeconds` above it plus `BATCH_KILL_GRACE_MS`.",
  }),
  BATCH_REPORT_INTERVAL_MS: envNumber({ default: 100, min: 1, unit: 'ms', doc: 'How often state changes of attempts are reported, in one batch.' }),
  BATCH_NVIDIA_SMI: envString({
    type: 'path',
    default: 'nvidia-smi',
    blankIsUnset: true,
    doc: 'The `nvidia-smi` binary that finds GPUs (on PATH unless a path); no answer within 10 s means no GPUs.',
  }),
  BATCH_ISOLATION: envEnum(['auto', 'none'], {
    default: 'auto',
    doc: 'Resource limits of attempts: `auto` uses cgroups where writable, else rlimits; `none` sets none.',
  }),
  BATCH_CPU_LIMIT: envEnum(['soft', 'hard'], {
    default: 'soft',
    doc: "How an attempt's CPU request limits it: `soft`, a cgroup weight in proportion to the request (attempts share a busy node's CPU in proportion to their requests, and may use idle CPU beyond them; a Kubernetes pod gets no CPU limit); `hard`, a CFS quota of exactly the request (a pod's CPU limit = its request).",
  }),
  BATCH_LOG_MAX_BYTES: envNumber({
    default: 64 * 1024 * 1024,
    min: 1,
    unit: 'bytes',
    doc: "Cap of each attempt's stdout and stderr file, checked each second; past it the file rotates to `.1`.",
  }),
  BATCH_LOG_UPLOAD_MAX_BYTES: envNumber({
    default: 8 * 1024 * 1024,
    min: 1,
    unit: 'bytes',
    doc: "With a blob store (`BATCH_BLOB_STORE`): most bytes of an ended attempt's stdout and stderr kept there, before compression; the tail is kept and a last line says what was cut.",
  }),
  BATCH_RESULT_MAX_BYTES: envNumber({
    default: 64 * 1024 * 1024,
    min: 65_536,
    unit: 'bytes',
    doc: 'With a blob store (`BATCH_BLOB_STORE`): largest task result kept there (a result over 64 KiB is kept there by reference); a larger one fails its task `ResultTooLarge`.',
  }),
  BATCH_WORKING_DIR_CACHE_BYTES: envNumber({
    default: 1024 * 1024 * 1024,
    min: 1,
    unit: 'bytes',
    doc: 'Most bytes of working dir packages (`batch submit --working-dir`) kept on the node under `<data dir>/working-dirs/`; past it the least recently used ones no attempt is unpacking are removed (fetched again when needed). Also the largest package the node accepts, measured as its uncompressed tar (admission bounds uploads lower, with `BATCH_WORKING_DIR_MAX_BYTES`).',
  }),
  BATCH_PYTHON_ENV_CACHE_BYTES: envNumber({
    default: 5 * 1024 * 1024 * 1024,
    min: 1,
    unit: 'bytes',
    doc: "Most bytes of Python environments (a job's `python` requirements: a venv each, built once per digest and interpreter) kept on the node under `<data dir>/python-envs/`; past it the least recently used ones no attempt runs in are removed (built again when needed).",
  }),
  BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS: envNumber({
    default: 900,
    min: 1,
    unit: 's',
    doc: 'Deadline of building one Python environment (`python3 -m venv` and `pip install`); past it the build is killed and the attempts waiting for it end `NodeError`.',
  }),
  BATCH_PIP_INDEX_URL: envString({
    blankIsUnset: true,
    type: 'url',
    defaultText: "pip's own (PyPI, or the node's pip config)",
    doc: "Package index a job's `python` requirements are installed from (`pip install --index-url`). Jobs cannot name an index: it is the node's.",
  }),
  BATCH_PIP_FIND_LINKS: envString({
    blankIsUnset: true,
    type: 'path or url',
    defaultText: 'none',
    doc: 'A local directory of wheels (or a page of links) pip also installs from (`--find-links`), e.g. a wheel cache built in CI.',
  }),
  BATCH_PIP_NO_INDEX: envEnum(['false', 'true'], {
    default: 'false',
    doc: '`true`: pip installs only from `BATCH_PIP_FIND_LINKS` (`--no-index`), for nodes without network access to an index.',
  }),
  BATCH_PIP_ALLOW_SOURCE_BUILDS: envEnum(['false', 'true'], {
    default: 'false',
    doc: "`true`: pip may build a requirement from its source distribution, which runs that package's build code as the executor's user, outside any task's limits; by default only wheels are installed (`--only-binary :all:`), which run no code at install.",
  }),
  BATCH_EXECUTOR_BACKEND: envEnum(['process', 'kubernetes'], {
    default: 'process',
    doc: 'Where attempts run: processes of this machine, or pods of a Kubernetes cluster.',
  }),
  BATCH_K8S_NAMESPACE: envString({ default: 'batchapi-tasks', doc: 'Kubernetes backend: namespace of the task pods.' }),
  BATCH_TASK_IMAGE: envString({ default: 'busybox:1.36', doc: 'Kubernetes backend: image of tasks whose job names none.' }),
  BATCH_K8S_REWATCH_MS: envNumber({ default: 1000, min: 0, unit: 'ms', doc: 'Kubernetes backend: wait before watching pods again after the watch failed.' }),
  BATCH_K8S_SERVER: envString({
    blankIsUnset: true,
    defaultText: 'in-cluster service account, else the kubeconfig',
    doc: 'Kubernetes backend: API server URL, used with `BATCH_K8S_TOKEN` (http:// only for a local `kubectl proxy`).',
  }),
  BATCH_K8S_TOKEN: envString({ blankIsUnset: true, doc: 'Kubernetes backend: bearer token for `BATCH_K8S_SERVER`.' }),
  BATCH_K8S_NODE: envString({
    blankIsUnset: true,
    defaultText: 'none: the whole cluster as one node',
    doc: 'Kubernetes backend: the Kubernetes node this executor stands for.',
  }),
  BATCH_SIMULATE_NODES: envNumber({
    default: 0,
    min: 0,
    unit: 'nodes',
    doc: 'Runs this many simulated nodes instead of one real one (load tests); 0 runs a real node.',
  }),
  BATCH_SIM_TASK_MS: envNumber({ default: 1000, min: 0, unit: 'ms', doc: 'Simulated nodes: how long a task "runs" unless its job sets `BATCH_SIM_SECONDS`.' }),
});

const KUBERNETES_ENV = EXECUTOR_ENV.pick({
  BATCH_K8S_NAMESPACE: true,
  BATCH_TASK_IMAGE: true,
  BATCH_K8S_REWATCH_MS: true,
  BATCH_K8S_SERVER: true,
  BATCH_K8S_TOKEN: true,
  BATCH_K8S_NODE: true,
});

/** The Kubernetes backend's settings from `BATCH_K8S_*` and `BATCH_TASK_IMAGE`. */
export function kubernetesConfigFromEnv(env: NodeJS.ProcessEnv = process.env): KubernetesBackendConfig {
  // unset optional settings stay undefined: the backend then uses the in-cluster account or kubeconfig, and the whole cluster
  const { BATCH_K8S_NAMESPACE: namespace, BATCH_TASK_IMAGE: image, BATCH_K8S_REWATCH_MS: rewatchMs, ...optional } = parseEnv(KUBERNETES_ENV, env);
  return { namespace, image, rewatchMs, server: optional.BATCH_K8S_SERVER, token: optional.BATCH_K8S_TOKEN, kubeNode: optional.BATCH_K8S_NODE };
}

/** The executor's settings from the environment, defaults for what is unset; a bad value throws `ConfigError` naming the variable. */
export function executorConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ExecutorConfig {
  const e = parseEnv(EXECUTOR_ENV, env);
  const nodeName =
    e.BATCH_NODE_NAME ??
    hostname()
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .replace(/^-+|-+$/g, '');
  const problem = nodeNameProblem(nodeName);
  if (problem) throw new ConfigError([`BATCH_NODE_NAME is unset and the host name ${JSON.stringify(nodeName)} ${problem}: set BATCH_NODE_NAME`]);
  const labels: Record<string, string> = {};
  for (const pair of (e.BATCH_NODE_LABELS ?? '').split(',').filter(Boolean)) {
    const [k, ...rest] = pair.split('=');
    labels[k.trim()] = rest.join('=').trim();
  }
  // Jobs that name an image go to nodes with this label: a backend that runs no images must not claim it.
  if (labels[CONTAINER_RUNTIME_LABEL] !== undefined && e.BATCH_EXECUTOR_BACKEND !== 'kubernetes') {
    throw new ConfigError([
      `BATCH_NODE_LABELS: ${CONTAINER_RUNTIME_LABEL} is set by a backend that runs each task in its job's image (BATCH_EXECUTOR_BACKEND=kubernetes); the process backend runs none`,
    ]);
  }
  return {
    nodeName,
    dataDir: e.BATCH_DATA_DIR ?? join(e.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'batchapi', 'executor', nodeName),
    cpu: e.BATCH_NODE_CPU,
    memory: e.BATCH_NODE_MEMORY,
    labels,
    killGraceMs: e.BATCH_KILL_GRACE_MS,
    drainGraceMs: e.BATCH_DRAIN_GRACE_MS,
    reportIntervalMs: e.BATCH_REPORT_INTERVAL_MS,
    nvidiaSmi: e.BATCH_NVIDIA_SMI,
    isolation: e.BATCH_ISOLATION,
    cpuLimit: e.BATCH_CPU_LIMIT,
    logMaxBytes: e.BATCH_LOG_MAX_BYTES,
    logUploadMaxBytes: e.BATCH_LOG_UPLOAD_MAX_BYTES,
    resultMaxBytes: e.BATCH_RESULT_MAX_BYTES,
    workingDirCacheBytes: e.BATCH_WORKING_DIR_CACHE_BYTES,
    pythonEnvCacheBytes: e.BATCH_PYTHON_ENV_CACHE_BYTES,
    pythonEnvBuildTimeoutSeconds: e.BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS,
    pip: {
      ...(e.BATCH_PIP_INDEX_URL ? { indexUrl: e.BATCH_PIP_INDEX_URL } : {}),
      ...(e.BATCH_PIP_FIND_LINKS ? { findLinks: e.BATCH_PIP_FIND_LINKS } : {}),
      ...(e.BATCH_PIP_NO_INDEX === 'true' ? { noIndex: true } : {}),
      ...(e.BATCH_PIP_ALLOW_SOURCE_BUILDS === 'true' ? { allowSourceBuilds: true } : {}),
    },
    ...(e.BATCH_EXECUTOR_BACKEND === 'kubernetes' ? { backend: 'kubernetes' as const, kubernetes: kubernetesConfigFromEnv(env) } : {}),
  };
}

/** How a process runs simulated nodes instead of a real one (`BATCH_SIMULATE_NODES` > 0). */
export interface SimulationConfig {
  /** Simulated nodes to run (`BATCH_SIMULATE_NODES`); 0 runs a real node. @default 0 */
  nodes: number;
  /** Prefix of their names (`BATCH_NODE_NAME`). @default "sim" */
  prefix: string;
  /** How long a task "runs", in milliseconds (`BATCH_SIM_TASK_MS`). @default 1000 */
  taskMs: number;
}

const SIMULATION_ENV = EXECUTOR_ENV.pick({ BATCH_SIMULATE_NODES: true, BATCH_NODE_NAME: true, BATCH_SIM_TASK_MS: true });

/** The simulated fleet's settings from the environment; a bad value throws `ConfigError` naming the variable. */
export function simulationConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SimulationConfig {
  const e = parseEnv(SIMULATION_ENV, env);
  return { nodes: e.BATCH_SIMULATE_NODES, prefix: e.BATCH_NODE_NAME ?? 'sim', taskMs: e.BATCH_SIM_TASK_MS };
}
