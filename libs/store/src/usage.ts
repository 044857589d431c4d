/**
 * The scheduler leader's usage history at `usage`: each queue's decayed usage, stored now and
 * then so that a successor continues fair share where the last leader left it; and at
 * `gpu-usage` the GPU-seconds by hour of each queue and tenant over the last 24 h, which the
 * running caps' `gpuHoursPerDay` is counted from; and at `scheduler-settings` the leader's
 * cluster-wide placement settings; and at `defragmenting` its defragmentation nominations in force.
 */
import type { DefragmentRecord, GpuUsage, ResourceVector, SchedulerSettings } from '@batchapi/api';
import type { Compare, EtcdStore } from './etcd';

/** Decayed usage per queue as of `at`. */
export interface UsageHistory {
  /** When the usage was last advanced, in ms since the epoch. */
  at: number;
  /** Each queue's decayed usage, by queue name. */
  queues: Record<string, ResourceVector>;
}

/** The usage history the last leader stored; undefined when none ever did. */
export async function loadUsageHistory(store: EtcdStore): Promise<UsageHistory | undefined> {
  return (await store.get<UsageHistory>(store.keys.usage()))?.value;
}

/** Stores the usage history, fenced by the leader's compare. False when the fence failed (a deposed leader's copy is refused). */
export async function saveUsageHistory(store: EtcdStore, fence: Compare, history: UsageHistory): Promise<boolean> {
  return (await store.txn([fence], [{ put: store.keys.usage(), value: history }])).succeeded;
}

/** The GPU usage the last leader stored; undefined when none ever did. */
export async function loadGpuUsage(store: EtcdStore): Promise<GpuUsage | undefined> {
  return (await store.get<GpuUsage>(store.keys.gpuUsage()))?.value;
}

/** Stores the GPU usage, fenced by the leader's compare. False when the fence failed (a deposed leader's copy is refused). */
export async function saveGpuUsage(store: EtcdStore, fence: Compare, usage: GpuUsage): Promise<boolean> {
  return (await store.txn([fence], [{ put: store.keys.gpuUsage(), value: usage }])).succeeded;
}

/** The scheduler leader's placement settings as stored, unchecked (the reader validates them); undefined when none are. */
export async function loadSchedulerSettings(store: EtcdStore): Promise<unknown> {
  return (await store.get<unknown>(store.keys.schedulerSettings()))?.value;
}

/** Stores the scheduler leader's placement settings, fenced by its compare. False when the fence failed (a deposed leader's copy is refused). */
export async function saveSchedulerSettings(store: EtcdStore, fence: Compare, settings: SchedulerSettings): Promise<boolean> {
  return (await store.txn([fence], [{ put: store.keys.schedulerSettings(), value: settings }])).succeeded;
}

/** Stores the leader's defragmentation nominations in force, fenced by its compare. False when the fence failed. */
export async function saveDefragmentRecord(store: EtcdStore, fence: Compare, record: DefragmentRecord): Promise<boolean> {
  return (await store.txn([fence], [{ put: store.keys.defragmenting(), value: record }])).succeeded;
}

/**
 * Deletes the stored defragmentation nominations the leader read at `modRevision`, fenced by its
 * compare: a record written since (a later pass's) stays. False when a compare failed.
 */
export async function clearDefragmentRecord(store: EtcdStore, fence: Compare, modRevision: string): Promise<boolean> {
  const key = store.keys.defragmenting();
  return (await store.txn([fence, { key, modRevision }], [{ delete: key }])).succeeded;
}
