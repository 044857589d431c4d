export * from './executor';
export * from './agent';
export * from './config';
export * from './inventory';
export { attemptPaths } from './task-process';
export { detectIsolation, sweepCgroups } from './isolation';
export * from './simulated-fleet';
export { KubernetesBackend, type KubernetesBackendConfig, podExit, podName, podRequests, POD_LABELS } from './kubernetes';
