/** The executor's own settings, from its environment. */
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import type { KubernetesBackendConfig } from './kubernetes';

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
  /** How often state changes are reported in one batch, in milliseconds (`BATCH_REPORT_INTERVAL_MS`). @default 100 */
  reportIntervalMs: number;
  /** The `nvidia-smi` binary (`BATCH_NVIDIA_SMI`). @default "nvidia-smi" on PATH */
  nvidiaSmi: string;
  /** Resource limits of attempts (`BATCH_ISOLATION`): `auto` uses cgroups where writable, else rlimits. @default "auto" */
  isolation: 'auto' | 'none';
  /** Cap of each attempt's stdout and stderr file, bytes (`BATCH_LOG_MAX_BYTES`); checked each second; past it the file rotates to `.1`. @default 67108864 */
  logMaxBytes: number;
  /** Where attempts run (`BATCH_EXECUTOR_BACKEND`): processes of this machine, or pods of a Kubernetes cluster. @default "process" */
  backend?: 'process' | 'kubernetes';
  /** Settings of the Kubernetes backend. @default see `KubernetesBackendConfig` */
  kubernetes?: KubernetesBackendConfig;
}

/** The Kubernetes backend's settings from `BATCH_K8S_*` and `BATCH_TASK_IMAGE`. */
export function kubernetesConfigFromEnv(env: NodeJS.ProcessEnv = process.env): KubernetesBackendConfig {
  return {
    namespace: env.BATCH_K8S_NAMESPACE ?? 'batchapi-tasks',
    image: env.BATCH_TASK_IMAGE ?? 'busybox:1.36',
    rewatchMs: Number(env.BATCH_K8S_REWATCH_MS ?? 1000),
    ...(env.BATCH_K8S_SERVER ? { server: env.BATCH_K8S_SERVER } : {}),
    ...(env.BATCH_K8S_TOKEN ? { token: env.BATCH_K8S_TOKEN } : {}),
    ...(env.BATCH_K8S_NODE ? { kubeNode: env.BATCH_K8S_NODE } : {}),
  };
}

export function executorConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ExecutorConfig {
  const nodeName =
    env.BATCH_NODE_NAME ??
    hostname()
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .replace(/^-+|-+$/g, '');
  // The name is part of etcd keys and of the data dir: no "/" and no "..".
  if (!/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$/.test(nodeName) || nodeName.includes('..')) {
    throw new Error(`BATCH_NODE_NAME=${JSON.stringify(nodeName)} is not a node name: use letters, digits, "-", "_" or "." (at most 253)`);
  }
  const labels: Record<string, string> = {};
  for (const pair of (env.BATCH_NODE_LABELS ?? '').split(',').filter(Boolean)) {
    const [k, ...rest] = pair.split('=');
    if (!k.trim()) throw new Error(`BATCH_NODE_LABELS has an entry without a key: ${JSON.stringify(pair)}; write k=v,k=v`);
    labels[k.trim()] = rest.join('=').trim();
  }
  return {
    nodeName,
    dataDir: env.BATCH_DATA_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'batchapi', 'executor', nodeName),
    cpu: env.BATCH_NODE_CPU,
    memory: env.BATCH_NODE_MEMORY,
    labels,
    killGraceMs: positiveInt(env, 'BATCH_KILL_GRACE_MS', 10000, 0),
    reportIntervalMs: positiveInt(env, 'BATCH_REPORT_INTERVAL_MS', 100, 1),
    nvidiaSmi: env.BATCH_NVIDIA_SMI || 'nvidia-smi',
    isolation: env.BATCH_ISOLATION === 'none' ? 'none' : 'auto',
    logMaxBytes: positiveInt(env, 'BATCH_LOG_MAX_BYTES', 64 * 1024 * 1024, 1),
    ...(env.BATCH_EXECUTOR_BACKEND === 'kubernetes' ? { backend: 'kubernetes' as const, kubernetes: kubernetesConfigFromEnv(env) } : {}),
  };
}

/** An integer setting of at least `min`, or its default when unset; anything else stops the start with a message naming the variable. */
function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${name}=${JSON.stringify(raw)} is not an integer of at least ${min}; unset it for the default ${fallback}`);
  return n;
}
