/** Prometheus metric names, in one place so dashboards and alerts can rely on them. */
export const Metric = {
  httpRequests: 'batch_http_requests_total',
  httpDuration: 'batch_http_request_duration_seconds',
  jobsSubmitted: 'batch_jobs_submitted_total',
  jobsAdmitted: 'batch_jobs_admitted_total',
  jobsRejected: 'batch_jobs_rejected_total',
  schedulerIsLeader: 'batch_scheduler_is_leader',
  schedulerCycleDuration: 'batch_scheduler_cycle_duration_seconds',
  schedulerCyclePhase: 'batch_scheduler_cycle_longest_phase_seconds',
  schedulerDeferredJobs: 'batch_scheduler_deferred_jobs',
  schedulerPlacements: 'batch_scheduler_placements_total',
  schedulerBindsFailed: 'batch_scheduler_binds_failed_total',
  schedulerPreemptions: 'batch_scheduler_preemptions_total',
  schedulerStops: 'batch_scheduler_stops_total',
  schedulerPreemptionsHeld: 'batch_scheduler_preemptions_held_total',
  /** Reservations (backfill) the last cycle held for blocked work, by its queue. */
  schedulerReservations: 'batch_scheduler_reservations',
  quotaReclaimed: 'batch_quota_reclaimed_tasks_total',
  admissionThrottled: 'batch_admission_throttled_total',
  admissionWorkingDirUploads: 'batch_admission_working_dir_uploads_total',
  executorWorkingDirFetches: 'batch_executor_working_dir_fetches_total',
  executorPythonEnvs: 'batch_executor_python_envs_total',
  admissionWhy: 'batch_admission_why_total',
  /** Reads (GET) and event streams refused by a limit, by limit. */
  admissionReadsRefused: 'batch_admission_reads_refused_total',
  /** When each API token with an `expiresAt` expires (epoch seconds), by tenant, role and name. */
  admissionTokenExpiry: 'batch_admission_token_expiry_timestamp_seconds',
  /** Event streams open on the replica. */
  admissionEventStreams: 'batch_admission_event_streams',
  /** Bytes event streams hold in their sockets' buffers, unread by their clients. */
  admissionEventStreamBuffered: 'batch_admission_event_stream_buffered_bytes',
  /** Internal calls (`/internal/*`, RPC) refused for a missing or wrong service credential, by surface and reason. */
  internalCallsRefused: 'batch_internal_calls_refused_total',
  retentionDeleted: 'batch_retention_deleted_total',
  /** Finished jobs moved from etcd to the history store (written there, then removed from etcd). */
  archiveJobs: 'batch_archive_jobs_total',
  /** Finished workflows moved from etcd to the history store. */
  archiveWorkflows: 'batch_archive_workflows_total',
  /** Seconds from a job's end to its removal from etcd by the archiver. */
  archiveLag: 'batch_archive_lag_seconds',
  /** Finished jobs etcd still holds (waiting for the archiver), as of its last pass. */
  archivePending: 'batch_archive_pending_jobs',
  /** Age of the oldest finished job etcd still holds, as of the archiver's last pass (0 when none). */
  archiveOldest: 'batch_archive_oldest_finished_seconds',
  /** Monthly history partitions dropped by retention (`BATCH_HISTORY_RETENTION`). */
  historyPartitionsDropped: 'batch_history_partitions_dropped_total',
  /** Archiver passes that failed, by reason (`history_unavailable`, `error`). */
  archiveFailures: 'batch_archive_failures_total',
  schedulerNodeLostTasks: 'batch_scheduler_node_lost_tasks_total',
  schedulerLastCycle: 'batch_scheduler_last_cycle_timestamp_seconds',
  schedulerPendingTasks: 'batch_scheduler_pending_tasks',
  queueOldestPendingAge: 'batch_queue_oldest_pending_age_seconds',
  /** Units a semaphore hands out at once (1 for a lock), as of the leader's last cycle. */
  semaphoreCapacity: 'batch_semaphore_capacity',
  /** Units held by bound or running tasks. */
  semaphoreHeld: 'batch_semaphore_held_units',
  /** Tasks waiting for units. */
  semaphoreWaiting: 'batch_semaphore_waiting_tasks',
  /** Age of the oldest work waiting for units. */
  semaphoreOldestWait: 'batch_semaphore_oldest_wait_seconds',
  /** Time since the longest-running job holding units started. */
  semaphoreOldestHold: 'batch_semaphore_oldest_hold_seconds',
  executorRunningAttempts: 'batch_executor_running_attempts',
  executorOutcomes: 'batch_executor_attempt_outcomes_total',
  executorLeaseRenewFailures: 'batch_executor_lease_renew_failures_total',
  executorReportTxns: 'batch_executor_report_txns_total',
  executorLogUploads: 'batch_executor_log_uploads_total',
  executorLogUploadSeconds: 'batch_executor_log_upload_seconds',
  nodeQuarantined: 'batch_node_quarantined_total',
  /** Nodes consolidation cordoned to empty, and its cordons lifted (`reason`: cordoned, freed, timed_out). */
  schedulerConsolidationNodes: 'batch_scheduler_consolidation_nodes_total',
  etcdRequestDuration: 'batch_etcd_request_duration_seconds',
  etcdRequestErrors: 'batch_etcd_request_errors_total',
  admissionSubmitsShed: 'batch_admission_submits_shed_total',
  etcdWatchStreamResets: 'batch_etcd_watch_stream_resets_total',
  clusterAllocation: 'batch_cluster_allocation_ratio',
  clusterGpuFragmented: 'batch_cluster_gpus_fragmented',
  queueUsage: 'batch_queue_usage',
  queueNominal: 'batch_queue_nominal',
  queueFairShare: 'batch_queue_fair_share',
  queuePendingTasks: 'batch_queue_pending_tasks',
  queuePendingAgeSlo: 'batch_queue_pending_age_slo_seconds',
  /** Tasks bound or running of a queue or tenant, as the running caps count them (`scope`: queue or tenant). */
  queueCapRunningTasks: 'batch_queue_cap_running_tasks',
  /** A queue's or tenant's `maxRunningTasks`. */
  queueMaxRunningTasks: 'batch_queue_max_running_tasks',
  /** GPU-hours a queue or tenant used in the last 24 h. */
  queueGpuHoursUsed: 'batch_queue_gpu_hours_used',
  /** A queue's or tenant's `gpuHoursPerDay`. */
  queueGpuHoursPerDay: 'batch_queue_gpu_hours_per_day',
} as const;
