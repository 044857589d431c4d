/**
 * A `Planner` over records in memory: applies a plan the way the scheduler's etcd planner does
 * (job after binding, bindings, node allocations, stop requests, failed gangs), without
 * revisions or fences. For tests of whole cycles that run in milliseconds, and simulations.
 */
import { type Binding, type Cordon, type JobRecord, type NodeAllocation, type NodeRecord, type Queue } from '@batchapi/api';
import { applyGroupOutcomes, boundGroupStatus, releaseOnNode, reserveOnNode } from '@batchapi/lifecycle';
import type { Plan, Planner } from './schedule';
import type { ClusterState } from './snapshot-builder';

/** What applying one plan did. */
export interface MemoryApplyResult {
  /** Tasks bound. */
  bound: number;
  /** Stop requests recorded (tasks not already asked to stop). */
  stopped: number;
  /** Jobs failed by gang timeout. */
  failed: string[];
}

export class MemoryPlanner implements Planner<MemoryApplyResult> {
  readonly jobs = new Map<string, JobRecord>();
  readonly nodes = new Map<string, NodeRecord>();
  readonly allocs = new Map<string, NodeAllocation>();
  readonly queues = new Map<string, Queue>();
  readonly cordons = new Map<string, Cordon>();
  readonly bindings: Binding[] = [];

  constructor(init: { jobs?: Iterable<JobRecord>; nodes?: Iterable<NodeRecord>; queues?: Iterable<Queue>; cordons?: Iterable<Cordon> } = {}) {
    for (const j of init.jobs ?? []) this.jobs.set(j.id, j);
    for (const n of init.nodes ?? []) this.nodes.set(n.name, n);
    for (const q of init.queues ?? []) this.queues.set(q.name, q);
    for (const c of init.cordons ?? []) this.cordons.set(c.node, c);
  }

  /** The records, as `buildSnapshot` takes them. */
  state(): ClusterState {
    return {
      jobs: this.jobs.values(),
      nodes: this.nodes.values(),
      allocs: this.allocs,
      queues: this.queues.values(),
      bindings: this.bindings,
      cordons: this.cordons.values(),
    };
  }

  apply(plan: Plan): Promise<MemoryApplyResult> {
    const failed: string[] = [];
    for (const g of plan.gangFailures) {
      this.jobs.set(g.jobId, g.next);
      failed.push(g.jobId);
    }
    let stopped = 0;
    for (const s of plan.stops) {
      const b = this.bindings.find((x) => x.node === s.node && x.jobId === s.jobId && x.start === s.start && x.attempt === s.attempt);
      if (!b || (b.preempt ?? []).includes(s.index)) continue;
      b.preempt = [...(b.preempt ?? []), s.index];
      b.preemptRequestedAt = plan.at;
      stopped++;
    }
    let bound = 0;
    for (const u of plan.binds) {
      this.jobs.set(u.jobId, u.next);
      for (const b of u.bindings) {
        this.bindings.push(b);
        this.allocs.set(b.node, reserveOnNode(this.allocs.get(b.node) ?? { used: {}, devices: {} }, b));
        bound += b.end - b.start;
      }
    }
    return Promise.resolve({ bound, stopped, failed });
  }

  /** Ends a binding (its tasks finished or stopped): its room goes back to the node. */
  release(b: Binding): void {
    const i = this.bindings.indexOf(b);
    if (i < 0) return;
    this.bindings.splice(i, 1);
    this.allocs.set(b.node, releaseOnNode(this.allocs.get(b.node) ?? { used: {}, devices: {} }, b));
  }

  /** Ends a binding whose tasks all succeeded at `now`, as an executor's report does: room back to the node, outcomes into the job. */
  succeed(b: Binding, now: number): void {
    this.release(b);
    const job = this.jobs.get(b.jobId);
    if (!job) return;
    const status = boundGroupStatus(b);
    this.jobs.set(b.jobId, applyGroupOutcomes(job, [{ ...status, tasks: status.tasks.map(() => ({ state: 'Succeeded' as const })) }], now));
  }
}
