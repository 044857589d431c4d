/** Wires the quota service: seed tenants and queues, then admit submitted jobs. */
import { CLOCK, type Clock, runService, type RunningService, type ServiceConfig, systemClock } from '@batchapi/runtime';
import type { ClusterConfig } from '@batchapi/api';
import { Admitter } from './admitter';
import { seedCluster } from './cluster-config';
import { quotaConfigFromEnv } from './config';
import { RETENTION_TUNING, RetentionService, type RetentionTuning } from './retention.service';
import { WorkflowController } from './workflow-controller';

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
}

export async function startQuota(opts: QuotaOptions = {}): Promise<RunningService> {
  // Read at start, not at import: a bad value stops here with a message naming its variable.
  const env = quotaConfigFromEnv();
  const svc = await runService({
    name: 'quota',
    config: opts.config,
    onLeaseLost: opts.onLeaseLost,
    providers: [
      Admitter,
      WorkflowController,
      RetentionService,
      { provide: RETENTION_TUNING, useValue: { ...env.retention, ...opts.retention } },
      { provide: CLOCK, useValue: opts.clock ?? systemClock },
    ],
  });
  if (opts.cluster) await seedCluster(svc.ctx.store, opts.cluster);
  return svc;
}
