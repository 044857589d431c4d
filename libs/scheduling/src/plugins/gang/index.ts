/**
 * Gang scheduling: all tasks of a gang start together or none do.
 *   PreFilter — a gang whose queue cannot take all of its tasks now, or that is larger than
 *               what this pass may still place, is not tried (it never holds room while blocked);
 *   Permit    — a gang that reserved fewer than all of its tasks is refused, and the engine
 *               gives back everything it reserved (two half-placed gangs never hold capacity hostage).
 */
import type { PermitPlugin, PreFilterPlugin } from '../../framework/extension-points';
import type { Status } from '../../framework/status';

function blocked(tasks: number, placed?: number): Status {
  const reason = placed === undefined ? `gang: all ${tasks} tasks must start together` : `gang: only ${placed} of ${tasks} tasks fit at once`;
  return { code: 'GangBlocked', plugin: 'Gang', reason, detail: { kind: 'gang', tasks } };
}

export const GangPreFilter: PreFilterPlugin = {
  name: 'Gang',
  preFilter(work, allowed, { budget }) {
    if (!work.gang || (allowed >= work.tasks && work.tasks <= budget)) return { allowed };
    return { allowed: 0, status: blocked(work.tasks) };
  },
};

export const GangPermit: PermitPlugin = {
  name: 'Gang',
  permit(work, placed) {
    return work.gang && placed < work.tasks ? blocked(work.tasks, placed) : undefined;
  },
};
