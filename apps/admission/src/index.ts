export * from './admission';
export * from './auth';
export { newJobId, requestDigest } from './jobs.service';
export * from './config';
