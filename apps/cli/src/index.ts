export * from './local-cluster';
export * from './submit-args';
export * from './settings';
