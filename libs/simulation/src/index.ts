export * from './inputs';
export * from './simulate';
export * from './scenarios';
export * from './topology-scenario';
export * from './consolidation-scenario';
export * from './defragment-scenario';
export * from './random';
