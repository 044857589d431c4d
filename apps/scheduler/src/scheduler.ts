/** Wires the scheduler service. */
import { runService, type RunningService, type ServiceConfig } from '@batchapi/runtime';
import { SCHEDULER_TUNING, SchedulerService, type SchedulerTuning } from './scheduler.service';

export interface SchedulerOptions {
  tuning?: Partial<SchedulerTuning>;
  config?: Partial<ServiceConfig>;
}

export async function startScheduler(opts: SchedulerOptions = {}): Promise<RunningService> {
  const tuning: SchedulerTuning = { idleMs: 500, busyMs: 20, maxTasksPerCycle: 100_000, ...opts.tuning };
  return runService({ name: 'scheduler', config: opts.config, providers: [SchedulerService, { provide: SCHEDULER_TUNING, useValue: tuning }] });
}
