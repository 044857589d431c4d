/**
 * PostFilter: reclaim. A queue below its nominal quota whose work quota stopped (because
 * other queues of its cohort borrowed the capacity) takes it back: the borrowers' newest,
 * lowest-priority tasks are asked to stop, as few as its waiting tasks need. Pure.
 */
import type { ResourceVector } from '@batchapi/api';
import type { RunningTask, Victim } from '../preemption';
import { type QuotaLedger, tasksIn } from '../quota/ledger';

/** Work of a queue that quota stopped in this cycle. */
export interface QuotaDemand {
  jobId: string;
  queue: string;
  /** What one task charges (see `chargeOf`). */
  charge: ResourceVector;
  /** Tasks still pending. */
  tasks: number;
}

/** Options of a reclaim pass. */
export interface ReclaimOptions {
  /** Victims each queue may still lose in the current window; absent = unlimited. */
  budget?: Map<string, number>;
  /** Most victims in one pass. @default 1000 */
  maxVictims?: number;
  /** Now, epoch ms: with `protectMs`, tasks bound less than that long ago are never victims. @default no protection */
  now?: number;
  /** Thrash damping for reclaim: a task bound less than this long ago is never a victim, in milliseconds. @default 0 */
  protectMs?: number;
  /** Jobs whose tasks are never victims: preempted too often lately (see `repeatExempt`). @default none */
  exemptJobs?: ReadonlySet<string>;
}

/**
 * Reclaim: a queue below its nominal quota that cannot start work because others borrowed
 * the cohort's capacity takes it back. Victims are tasks of queues in the same cohort that
 * hold more than their nominal, lowest priority first, then the most recently started, and
 * only as many as needed for the demand's tasks that fit within the demanding queue's nominal.
 * Work that would itself borrow never reclaims.
 */
export function planReclaim(
  ledger: QuotaLedger,
  demands: QuotaDemand[],
  running: RunningTask[],
  chargeFor: (t: RunningTask) => ResourceVector,
  opts: ReclaimOptions = {},
): Victim[] {
  const victims: Victim[] = [];
  const max = opts.maxVictims ?? 1000;
  const budget = new Map(opts.budget ?? []);
  const order = [...running]
    .filter((t) => !t.stopping && !protectedNow(t, opts))
    .sort((a, b) => a.priority - b.priority || b.boundAt - a.boundAt || (a.jobId < b.jobId ? -1 : 1) || a.index - b.index);
  // The victims of a queue are always a prefix of its tasks in `order` (a queue that may lose a
  // task while a demand scans `order` may lose every earlier one too), so each queue keeps a
  // cursor into its own list: a demand then costs O(queues) per victim, not a scan of every
  // running task — O(demands × running) was seconds of blocked event loop under a backlog.
  const byQueue = new Map<string, { tasks: RunningTask[]; next: number }>();
  for (const t of order) {
    const q = byQueue.get(t.queue) ?? { tasks: [], next: 0 };
    q.tasks.push(t);
    byQueue.set(t.queue, q);
  }
  const rank = new Map(order.map((t, i) => [t, i]));
  for (const d of demands) {
    const q = ledger.queue(d.queue);
    if (!q?.cohort) continue;
    const used = ledger.usage(d.queue);
    const withinNominal: ResourceVector = {};
    for (const [r, nominal] of Object.entries(q.nominal)) withinNominal[r] = Math.max(0, nominal - (used[r] ?? 0));
    const target = Math.min(d.tasks, tasksIn(d.charge, withinNominal));
    if (target === 0) continue;
    // A queue may lose a task now when it is another queue of the cohort that borrows what the demand needs, within its budget.
    const mayLose = (name: string): boolean => {
      if (name === d.queue || ledger.queue(name)?.cohort !== q.cohort) return false;
      const borrowed = ledger.borrowed(name);
      if (!Object.keys(d.charge).some((r) => (d.charge[r] ?? 0) > 0 && (borrowed[r] ?? 0) > 0)) return false;
      const left = budget.get(name);
      return left === undefined || left > 0;
    };
    while (ledger.allows(d.queue, d.charge) < target && victims.length < max) {
      let from: { tasks: RunningTask[]; next: number } | undefined;
      for (const [name, list] of byQueue) {
        if (list.next >= list.tasks.length || !mayLose(name)) continue;
        if (!from || rank.get(list.tasks[list.next])! < rank.get(from.tasks[from.next])!) from = list;
      }
      if (!from) break;
      const t = from.tasks[from.next++];
      const left = budget.get(t.queue);
      if (left !== undefined) budget.set(t.queue, left - 1);
      ledger.take(t.queue, chargeFor(t), -1);
      victims.push({ task: t, forJob: d.jobId });
    }
    const granted = Math.min(target, ledger.allows(d.queue, d.charge));
    if (Number.isFinite(granted) && granted > 0) ledger.take(d.queue, d.charge, granted);
  }
  return victims;
}

function protectedNow(t: RunningTask, opts: ReclaimOptions): boolean {
  return (opts.now !== undefined && opts.now - t.boundAt < (opts.protectMs ?? 0)) || !!opts.exemptJobs?.has(t.jobId);
}
