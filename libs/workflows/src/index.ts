export * from './dag';
