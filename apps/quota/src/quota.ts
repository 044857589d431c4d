/** Wires the quota service: seed tenants and queues, then admit submitted jobs. */
import { CLOCK, type Clock, HISTORY, runService, type RunningService, type ServiceConfig, systemClock } from '@batchapi/runtime';
import type { ClusterConfig } from '@batchapi/api';
import { Admitter } from './admitter';
import { seedCluster } from './cluster-config';
import { quotaConfigFromEnv } from './config';
import { RETENTION_TUNING, RetentionService, type RetentionTuning } from './retention.service';
import { ARCHIVE_TUNING, ArchiverService, type ArchiveTuning } from './archiver.service';
import { HistoryStore, migrate } from '@batchapi/history';
import { STEP_API_URL, STEP_CACHE_TUNING, type StepCacheTuning, WORKFLOW_FULL_SWEEP_MS, WorkflowController } from './workflow-controller';
import { SCHEDULE_TUNING, ScheduleController, type ScheduleTuning } from './schedule-controller';
import { FinishedJobs } from './finished-jobs';
import { StepJobs } from './step-jobs';

export interface QuotaOptions {
  /** Tenants and queues to create or update at start. @default DEFAULT_CLUSTER */
  cluster?: ClusterConfig;
  config?: Partial<ServiceConfig>;
  /** Called when the process lease is lost (see `RunServiceOptions.onLeaseLost`). */
  onLeaseLost?: () => void;
  /** History retention. @default from `BATCH_JOB_RETENTION` / `BATCH_IDEMPOTENCY_TTL`, else 7 days / 24 h */
  retention?: Partial<RetentionTuning>;
  /** The clocks the admitter, workflow controller and retention read (tests pass a fake one). @default systemClock */
  clock?: Clock;
  /** History store URL: set, the schema is migrated at start and the elected archiver moves finished jobs there. @default `BATCH_HISTORY_URL`, else none */
  historyUrl?: string;
  /** Archiving. @default from `BATCH_ARCHIVE_AFTER`, else 60 s after the end */
  archive?: Partial<ArchiveTuning>;
  /** The schedule controller (cron jobs and workflows). @default one pass a second, no hook */
  schedules?: Partial<ScheduleTuning>;
  /** The step cache of memoized workflow steps (with a history store). @default from `BATCH_STEP_CACHE_TTL` / `BATCH_STEP_CACHE_MAX_ENTRIES`, else 7 days, 10,000 entries per tenant */
  stepCache?: Partial<StepCacheTuning>;
  /** The API address steps that read other steps' outputs get as `BATCH_API`. @default `BATCH_STEP_API_URL`, else a live admission replica's member record URL */
  stepApiUrl?: string;
  /** How often the workflow controller re-plans every workflow, changed or not, in milliseconds (tests lengthen it). @default 15000 */
  workflowFullSweepMs?: number;
}

export async function startQuota(opts: QuotaOptions = {}): Promise<RunningService> {
  // Read at start, not at import: a bad value stops here with a message naming its variable.
  const env = quotaConfigFromEnv();
  const historyUrl = opts.historyUrl ?? env.historyUrl;
  // The schema first (node-pg-migrate takes an advisory lock: replicas starting together migrate once).
  if (historyUrl) await migrate(historyUrl);
  const history = historyUrl
    ? [
        ArchiverService,
        { provide: HISTORY, useValue: HistoryStore.connect(historyUrl) },
        { provide: ARCHIVE_TUNING, useValue: { ...env.archive, ...opts.archive } },
      ]
    : [];
  const svc = await runService({
    name: 'quota',
    config: opts.config,
    onLeaseLost: opts.onLeaseLost,
    providers: [
      Admitter,
      // the finished jobs' index: kept from the admitter's jobs informer, read by the archiver
      FinishedJobs,
      // the step jobs' phases: kept from the same informer, read by the workflow controller
      StepJobs,
      WorkflowController,
      { provide: STEP_CACHE_TUNING, useValue: { ...env.stepCache, ...opts.stepCache } },
      { provide: STEP_API_URL, useValue: opts.stepApiUrl ?? env.stepApiUrl },
      ...(opts.workflowFullSweepMs !== undefined ? [{ provide: WORKFLOW_FULL_SWEEP_MS, useValue: opts.workflowFullSweepMs }] : []),
      ScheduleController,
      { provide: SCHEDULE_TUNING, useValue: opts.schedules ?? {} },
      RetentionService,
      { provide: RETENTION_TUNING, useValue: { ...env.retention, ...opts.retention } },
      { provide: CLOCK, useValue: opts.clock ?? systemClock },
      ...history,
    ],
  });
  if (opts.cluster) await seedCluster(svc.ctx.store, opts.cluster);
  return svc;
}
