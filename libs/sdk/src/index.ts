export * from './client';
export { ApiError, ErrorCode, type JobView, type NodeView, type QueueView, type SubmitJobRequest } from '@batchapi/api';
