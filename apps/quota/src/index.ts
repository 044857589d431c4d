export * from './quota';
export * from './cluster-config';
export * from './workflow-controller';
export * from './config';
export * from './schedule-controller';
