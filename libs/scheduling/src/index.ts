export * from './snapshot';
export * from './filters';
export * from './scores';
export * from './placement';
export * from './admit';
export * from './explain';
export * from './preemption';
export * from './fill';
