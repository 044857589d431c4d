/**
 * Runtime estimates learned from the history (`RuntimeEstimates`, stored by the archiver: per
 * queue, the p90 of its succeeded task attempts' run times over the last 7 days by default) as
 * backfill's expected runtime of a task without `timeoutSeconds`. An operator's per-queue setting
 * wins; a queue without either gets the configured default. Pure.
 */
import type { RuntimeEstimates } from '@batchapi/api';
import type { BackfillSettings } from './index';

/** Longest runtime estimate used, in seconds (30 days: the bound of a configured one). */
export const MAX_RUNTIME_ESTIMATE_SECONDS = 2_592_000;

/** A queue's learned estimate in whole seconds (rounded up, at least 1, at most `MAX_RUNTIME_ESTIMATE_SECONDS`); undefined without one. */
export function learnedRuntimeSeconds(learned: RuntimeEstimates | undefined, queue: string): number | undefined {
  const e = learned && Object.hasOwn(learned.queues, queue) ? learned.queues[queue] : undefined;
  if (!e || !Number.isFinite(e.seconds) || e.seconds < 0) return undefined;
  return Math.min(MAX_RUNTIME_ESTIMATE_SECONDS, Math.max(1, Math.ceil(e.seconds)));
}

/** A stored `runtime-estimates` value if it has the shape the scheduler reads (a record of another shape — hand-written, another version — is ignored). */
export function learnedRuntimesOf(raw: unknown): RuntimeEstimates | undefined {
  const v = raw as Partial<RuntimeEstimates> | undefined;
  return v && typeof v === 'object' && typeof v.queues === 'object' && v.queues !== null && !Array.isArray(v.queues) ? (v as RuntimeEstimates) : undefined;
}

/**
 * `settings` with each queue's runtime: the operator's setting for it (`configured`), else its
 * learned estimate, else the settings' own (the configured default).
 */
export function withLearnedRuntimes(settings: BackfillSettings, learned: RuntimeEstimates | undefined): BackfillSettings {
  if (!learned || Object.keys(learned.queues).length === 0) return settings;
  return {
    ...settings,
    runtimeSeconds: (queue) => (settings.configured?.(queue) ? undefined : learnedRuntimeSeconds(learned, queue)) ?? settings.runtimeSeconds(queue),
  };
}
