export * from './executor';
export * from './agent';
export * from './config';
export * from './inventory';
export { attemptPaths } from './task-process';
export { cgroupOwner, detectIsolation, sweepCgroups } from './isolation';
export * from './simulated-fleet';
export { KubernetesBackend, type KubernetesBackendConfig, podExit, podName, podRequests, POD_LABELS } from './kubernetes';
export { DEFAULT_PYTHON_ENV_BUILD_TIMEOUT_SECONDS, DEFAULT_PYTHON_ENV_CACHE_BYTES } from './python-env-cache';
