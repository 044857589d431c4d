/**
 * QueueSort: higher priority first, then older; among work submitted at the same instant,
 * larger requests first (decreasing order packs better: GPUs, then cores, then memory); then
 * job id, so the order is total and the same on every replica.
 */
import type { ResourceVector } from '@batchapi/api';
import type { QueueSortPlugin } from '../../framework/extension-points';
import type { PendingWork } from '../../snapshot';

export function queueOrder(a: PendingWork, b: PendingWork): number {
  return b.priority - a.priority || a.createdAt - b.createdAt || largerFirst(a.resources, b.resources) || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0);
}

function largerFirst(a: ResourceVector, b: ResourceVector): number {
  return (b.gpu ?? 0) - (a.gpu ?? 0) || (b.cpu ?? 0) - (a.cpu ?? 0) || (b.memory ?? 0) - (a.memory ?? 0);
}

export const PriorityAge: QueueSortPlugin = { name: 'PriorityAge', compare: queueOrder };
