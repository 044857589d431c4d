/**
 * Drain: on a cordoned node past its drain deadline, every task still running (and not already
 * asked to stop or being cancelled) is asked to stop — SIGTERM, grace, SIGKILL — and is
 * requeued at its next attempt. Pure: the stop requests; the planner writes them, fenced.
 */
import type { Binding, Cordon } from '@batchapi/api';

/** One task an executor is asked to stop. */
export interface StopRequest {
  node: string;
  jobId: string;
  /** Start of its group (the binding) and the group's attempt. */
  start: number;
  attempt: number;
  index: number;
}

/** Tasks to stop on nodes whose drain deadline is at or before `now` (epoch ms). */
export function drainStops(bindings: Iterable<Binding>, cordons: ReadonlyMap<string, Cordon>, now: number): StopRequest[] {
  const out: StopRequest[] = [];
  for (const b of bindings) {
    const c = cordons.get(b.node);
    if (c?.drainDeadline === undefined || c.drainDeadline > now || b.cancelRequested) continue;
    const already = new Set(b.preempt ?? []);
    for (let i = b.start; i < b.end; i++) if (!already.has(i)) out.push({ node: b.node, jobId: b.jobId, start: b.start, attempt: b.attempt, index: i });
  }
  return out;
}

/** True when some cordon's drain deadline has passed (a cheap check before `drainStops`). */
export function drainDue(cordons: Iterable<Cordon>, now: number): boolean {
  for (const c of cordons) if (c.drainDeadline !== undefined && c.drainDeadline <= now) return true;
  return false;
}
