export * from './admission';
export * from './auth';
export { newJobId, requestDigest, RUNTIME_RECHECK_MS } from './jobs.service';
export * from './config';
