export * from './client';
export { ApiError, ErrorCode, type JobView, type SubmitJobRequest } from '@batchapi/api';
