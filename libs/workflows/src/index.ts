export * from './dag';
export * from './cron';
export * from './retry';
export * from './cache-key';
export * from './inputs';
export * from './workflow-body';
