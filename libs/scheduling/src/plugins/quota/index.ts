/**
 * Quota as plugins over the `QuotaLedger` (see `ledger.ts` for the arithmetic).
 *   PreFilter — a queue with a quota may try only the tasks its room allows now;
 *   Reserve   — per node, a task charges its queue (plus `gpu:<model>` on a GPU node with a
 *               model label), so a node may take fewer than the PreFilter allowed.
 * Queues without any quota are not limited and pay nothing.
 */
import type { PreFilterPlugin, ReservePlugin } from '../../framework/extension-points';
import { chargeOf } from './ledger';

export * from './ledger';

export const QuotaPreFilter: PreFilterPlugin = {
  name: 'Quota',
  preFilter(work, allowed, { ledger }) {
    if (!ledger.limits(work.queue)) return { allowed };
    const room = Math.min(allowed, ledger.allows(work.queue, work.resources));
    return room < work.tasks
      ? {
          allowed: room,
          status: { code: 'QuotaLimited', plugin: 'Quota', reason: `quota of queue ${work.queue}`, detail: { kind: 'quota', queue: work.queue } },
        }
      : { allowed: room };
  },
};

export const QuotaReserve: ReservePlugin = {
  name: 'Quota',
  admit(work, node, want, { ledger }) {
    return ledger.limits(work.queue) ? Math.min(want, ledger.allows(work.queue, chargeOf(work.resources, node.labels))) : want;
  },
  reserve(work, node, count, { ledger }) {
    if (ledger.limits(work.queue)) ledger.take(work.queue, chargeOf(work.resources, node.labels), count);
  },
  unreserve(work, node, count, { ledger }) {
    if (ledger.limits(work.queue)) ledger.take(work.queue, chargeOf(work.resources, node.labels), -count);
  },
};
