/** Wires the scheduler service. */
import { CLOCK, type Clock, runService, type RunningService, type ServiceConfig, systemClock } from '@batchapi/runtime';
import { SCHEDULER_TUNING, SchedulerService, type SchedulerTuning } from './scheduler.service';
import { WhyController } from './why.controller';
import { DEFAULT_MAX_JOBS_PER_CYCLE } from './cycle';
import { type BackfillConfig, schedulerConfigFromEnv } from './config';
import type { BackfillSettings } from '@batchapi/scheduling';

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
    backfill: backfillSettings(env.backfill),
    topology: env.topology,
    domainScoreWeight: env.domainScoreWeight,
    usageHalfLifeMs: env.usageHalfLifeMs,
    usageSaveMs: 10_000,
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

/**
 * The backfill settings of a cycle from the configuration: each queue's runtime estimate, and
 * which queues an operator set one for. The scheduler lays the estimates learned from the history
 * over the others at each cycle (`withLearnedRuntimes`).
 */
export function backfillSettings(c: BackfillConfig): BackfillSettings {
  return {
    maxReservations: c.maxReservations,
    runtimeSeconds: (queue) => (Object.hasOwn(c.queueRuntimeSeconds, queue) ? c.queueRuntimeSeconds[queue] : c.runtimeSeconds),
    configured: (queue) => Object.hasOwn(c.queueRuntimeSeconds, queue),
  };
}
