export * from './tracing';
export * from './metric-names';
