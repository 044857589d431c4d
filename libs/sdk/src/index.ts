/** The TypeScript SDK of BatchAPI: `new BatchClient({ url, token })`. */
export * from './client';
export * from './schedules';
export * from './semaphores';
export { backoff, retryAfterMs } from './retry';
export { ApiError, ErrorCode, JobPhase, type JobView, type NodeView, type QueueView, type SubmitJobRequest, type SubmitWorkflowRequest, type TaskCounts, TERMINAL_PHASES, type WhyView, type WorkflowView, type CreateScheduleRequest, type ScheduleView } from '@batchapi/api';
