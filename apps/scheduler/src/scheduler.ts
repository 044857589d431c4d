/** Wires the scheduler service. */
import { CLOCK, type Clock, runService, type RunningService, type ServiceConfig, systemClock } from '@batchapi/runtime';
import { SCHEDULER_TUNING, SchedulerService, type SchedulerTuning } from './scheduler.service';
import { WhyController } from './why.controller';
import { DEFAULT_MAX_JOBS_PER_CYCLE } from './cycle';
import { schedulerConfigFromEnv } from './config';
import { CONSOLIDATION_OFF } from './consolidation';

export interface SchedulerOptions {
  tuning?: Partial<SchedulerTuning>;
  config?: Partial<ServiceConfig>;
  /** Called when the process lease is lost (see `RunServiceOptions.onLeaseLost`). */
  onLeaseLost?: () => void;
  /** The clocks the scheduler reads (tests pass a fake one to skip waits). @default systemClock */
  clock?: Clock;
}

export async function startScheduler(opts: SchedulerOptions = {}): Promise<RunningService> {
  // Read at start, not at import: a bad value stops here with a message naming its variable.
  const env = schedulerConfigFromEnv();
  const ttlMs = (opts.config?.leaseTtlSeconds ?? env.leaseTtlSeconds) * 1000;
  const tuning: SchedulerTuning = {
    idleMs: 500,
    busyMs: 20,
    batchWindowMs: env.batchWindowMs,
    maxTasksPerCycle: 100_000,
    maxJobsPerCycle: DEFAULT_MAX_JOBS_PER_CYCLE,
    nodeLostAfterMs: ttlMs + 2000,
    preemption: { protectMs: env.protectMs, perQueuePerMinute: 100, reclaimProtectMs: env.reclaimProtectMs, repeat: env.repeat },
    aging: env.aging,
    ...(env.prices ? { prices: env.prices } : {}),
    backfill: env.backfill,
    topology: env.topology,
    domainScoreWeight: env.domainScoreWeight,
    usageHalfLifeMs: env.usageHalfLifeMs,
    usageSaveMs: 10_000,
    consolidation: { ...CONSOLIDATION_OFF, ...env.consolidation },
    ...opts.tuning,
  };
  return runService({
    name: 'scheduler',
    config: opts.config,
    onLeaseLost: opts.onLeaseLost,
    rpc: true,
    controllers: [WhyController],
    providers: [SchedulerService, { provide: SCHEDULER_TUNING, useValue: tuning }, { provide: CLOCK, useValue: opts.clock ?? systemClock }],
  });
}
