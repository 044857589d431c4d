/** The TypeScript SDK of BatchAPI: `new BatchClient({ url, token })`. */
export * from './client';
export * from './schedules';
export * from './semaphores';
export * from './workflow-templates';
export { backoff, retryAfterMs } from './retry';
export { ApiError, ErrorCode, JobPhase, type JobView, type NodeView, type QueueView, type SubmitJobRequest, type SubmitWorkflowRequest, type TaskCounts, TERMINAL_PHASES, type WhyView, type WorkflowView, type CreateScheduleRequest, type ScheduleView, type PutWorkflowTemplateRequest, type WorkflowTemplateView } from '@batchapi/api';
