/** Prometheus metric names, in one place so dashboards and alerts can rely on them. */
export const Metric = {
  httpRequests: 'batch_http_requests_total',
  httpDuration: 'batch_http_request_duration_seconds',
  jobsSubmitted: 'batch_jobs_submitted_total',
  jobsAdmitted: 'batch_jobs_admitted_total',
  jobsRejected: 'batch_jobs_rejected_total',
  schedulerIsLeader: 'batch_scheduler_is_leader',
  schedulerCycleDuration: 'batch_scheduler_cycle_duration_seconds',
  schedulerPlacements: 'batch_scheduler_placements_total',
  schedulerBindsFailed: 'batch_scheduler_binds_failed_total',
  schedulerLastCycle: 'batch_scheduler_last_cycle_timestamp_seconds',
  schedulerPendingTasks: 'batch_scheduler_pending_tasks',
  queueOldestPendingAge: 'batch_queue_oldest_pending_age_seconds',
  executorRunningAttempts: 'batch_executor_running_attempts',
  executorOutcomes: 'batch_executor_attempt_outcomes_total',
  executorLeaseRenewFailures: 'batch_executor_lease_renew_failures_total',
  executorReportTxns: 'batch_executor_report_txns_total',
} as const;
