export * from './scheduler';
export * from './scheduler.service';
export * from './cycle';
export * from './cache';
export * from './config';
export * from './consolidation';
