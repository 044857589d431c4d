export * from './dag';
export * from './cron';
