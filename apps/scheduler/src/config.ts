/** The scheduler's own settings: their schema over the environment (`SCHEDULER_ENV`) and the parsed `SchedulerConfig`. */
import { configFromEnv, envNumber, parseEnv } from '@batchapi/runtime';
import { z } from 'zod';

/** The variables of a scheduler replica beyond every service's (docs/configuration.md, "scheduler"). */
export const SCHEDULER_ENV = z.object({
  BATCH_USAGE_HALF_LIFE: envNumber({
    default: 3600,
    min: 0,
    int: false,
    unit: 'seconds',
    doc: 'Half-life of the usage history fair share counts; 0 counts only what queues hold now.',
  }),
});

/** A scheduler replica's settings, as read from its environment. */
export interface SchedulerConfig {
  /** Half-life of the usage history, in milliseconds (`BATCH_USAGE_HALF_LIFE`, in seconds). @default 3600000 */
  usageHalfLifeMs: number;
  /** The process lease TTL, in seconds (`BATCH_LEASE_TTL`, every service's): nodes are lost after it. @default 5 */
  leaseTtlSeconds: number;
}

/** The settings from the environment, defaults for what is unset; a bad value throws `ConfigError` naming the variable. */
export function schedulerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SchedulerConfig {
  const e = parseEnv(SCHEDULER_ENV, env);
  return { usageHalfLifeMs: e.BATCH_USAGE_HALF_LIFE * 1000, leaseTtlSeconds: configFromEnv(env).leaseTtlSeconds };
}
