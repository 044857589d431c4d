/**
 * The scheduler's cluster-wide placement settings as a record (`SchedulerSettings`, stored by the
 * leader at `scheduler-settings`), and back: admission explains "why pending" with the same
 * aging, prices, topology levels, domain score and backfill when no scheduler replica answers.
 * Pure.
 */
import type { SchedulerSettings } from '@batchapi/api';
import type { SnapshotOptions } from './framework/snapshot-builder';
import type { BackfillSettings } from './plugins/backfill';
import { MAX_RUNTIME_ESTIMATE_SECONDS } from './plugins/backfill/learned';
import { parseTopologyLevels, type TopologyLevel } from './plugins/topology';

/** The snapshot settings a record carries (the rest of `SnapshotOptions` is per cycle). */
export type SettingsPolicy = Pick<SnapshotOptions, 'aging' | 'prices' | 'topology' | 'domainScoreWeight'>;

/** Backfill's configuration as data: most reservations per cycle, the default estimate and per-queue ones, in seconds. */
export type BackfillConfigRecord = NonNullable<SchedulerSettings['backfill']>;

/**
 * The bounds of the scheduler's placement settings: its configuration (`BATCH_*`) is refused past
 * them, and a stored record (`settingsOfRecord`) past them is ignored field by field.
 */
export const SETTINGS_BOUNDS = {
  /** Topology levels. */
  topologyLevels: 8,
  /** Fair-share price entries. */
  prices: 64,
  /** Highest price of one resource (per core, GiB or GPU). */
  price: 1e6,
  /** Per-queue runtime estimates. */
  queueEstimates: 256,
  /** Longest runtime estimate, in seconds (30 days). */
  estimateSeconds: MAX_RUNTIME_ESTIMATE_SECONDS,
  /** Most backfill reservations per cycle. */
  maxReservations: 100,
  /** Most priority points aging adds per hour of waiting. */
  agingPerHour: 1e6,
  /** Most priority points aging adds (the whole priority range). */
  agingMax: 2000,
  /** Highest weight of the topology domain score. */
  domainScoreWeight: 100,
  /** Longest name of a resource or queue in the record, in characters. */
  nameLength: 253,
} as const;

/**
 * Backfill settings from their configuration: each queue's runtime estimate (its own, else the
 * default), and which queues an operator set one for (learned estimates go under those, see
 * `withLearnedRuntimes`).
 */
export function backfillSettings(c: BackfillConfigRecord): BackfillSettings {
  return {
    maxReservations: c.maxReservations,
    runtimeSeconds: (queue) => (Object.hasOwn(c.queueRuntimeSeconds, queue) ? c.queueRuntimeSeconds[queue] : c.runtimeSeconds),
    configured: (queue) => Object.hasOwn(c.queueRuntimeSeconds, queue),
  };
}

/** The record a scheduler leader stores at `at` (epoch ms) for its `policy` and backfill configuration (none: backfill off). */
export function settingsRecord(policy: SettingsPolicy, backfill: BackfillConfigRecord | undefined, at: number): SchedulerSettings {
  return {
    at,
    ...(policy.aging ? { aging: { perHour: policy.aging.perHour, max: policy.aging.max } } : {}),
    ...(policy.prices ? { prices: { ...policy.prices } } : {}),
    ...(policy.topology ? { topology: policy.topology.map((l) => (l.label === undefined ? { name: l.name } : { name: l.name, label: l.label })) } : {}),
    ...(policy.domainScoreWeight !== undefined ? { domainScoreWeight: policy.domainScoreWeight } : {}),
    ...(backfill ? { backfill: { ...backfill, queueRuntimeSeconds: { ...backfill.queueRuntimeSeconds } } } : {}),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const finiteAtLeast = (v: unknown, min: number, max = Number.MAX_VALUE): v is number => typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;
const name = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= SETTINGS_BOUNDS.nameLength;

/** A map of names to numbers within bounds, or undefined when it is not one. */
function numbers(v: unknown, most: number, min: number, max?: number): Record<string, number> | undefined {
  if (!isObject(v)) return undefined;
  const entries = Object.entries(v);
  if (entries.length > most || !entries.every(([k, n]) => name(k) && finiteAtLeast(n, min, max))) return undefined;
  return Object.fromEntries(entries) as Record<string, number>;
}

/**
 * Stored topology levels checked as the configuration is (`parseTopologyLevels` of their
 * `name=label,…` form: level names, distinct, a bare level only last), at most
 * `SETTINGS_BOUNDS.topologyLevels`; undefined when they are not such.
 */
function topologyOf(v: unknown): TopologyLevel[] | undefined {
  if (!Array.isArray(v) || v.length === 0 || v.length > SETTINGS_BOUNDS.topologyLevels) return undefined;
  if (!v.every((l) => isObject(l) && name(l.name) && (l.label === undefined || name(l.label)))) return undefined;
  const text = v.map((l) => (l.label === undefined ? String(l.name) : `${String(l.name)}=${String(l.label)}`)).join(',');
  try {
    const parsed = parseTopologyLevels(text, 'scheduler-settings.topology');
    return parsed.length === v.length ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The settings a stored record gives (`loadSchedulerSettings`'s value): each field that is well
 * formed and within `SETTINGS_BOUNDS`; a missing or malformed one is left out, so its default
 * applies (as for a cluster whose scheduler never stored any).
 */
export function settingsOfRecord(raw: unknown): { policy: SettingsPolicy; backfill?: BackfillSettings } {
  const policy: SettingsPolicy = {};
  if (!isObject(raw)) return { policy };
  const { aging, prices, topology, domainScoreWeight, backfill } = raw;
  const B = SETTINGS_BOUNDS;
  if (isObject(aging) && finiteAtLeast(aging.perHour, 0, B.agingPerHour) && finiteAtLeast(aging.max, 0, B.agingMax))
    policy.aging = { perHour: aging.perHour, max: aging.max };
  const priced = numbers(prices, B.prices, 0, B.price);
  if (priced) policy.prices = priced;
  const levels = topologyOf(topology);
  if (levels) policy.topology = levels;
  if (finiteAtLeast(domainScoreWeight, 0, B.domainScoreWeight)) policy.domainScoreWeight = domainScoreWeight;
  if (
    !isObject(backfill) ||
    !Number.isInteger(backfill.maxReservations) ||
    !finiteAtLeast(backfill.maxReservations, 0, B.maxReservations) ||
    !finiteAtLeast(backfill.runtimeSeconds, 1, B.estimateSeconds)
  )
    return { policy };
  const perQueue = numbers(backfill.queueRuntimeSeconds ?? {}, B.queueEstimates, 1, B.estimateSeconds);
  if (!perQueue) return { policy };
  return {
    policy,
    backfill: backfillSettings({ maxReservations: backfill.maxReservations, runtimeSeconds: backfill.runtimeSeconds, queueRuntimeSeconds: perQueue }),
  };
}
