export * from './quota';
export * from './cluster-config';
