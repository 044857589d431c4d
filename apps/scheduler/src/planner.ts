/**
 * The scheduler's `Planner`: applies a cycle's plan to etcd, every write fenced by the
 * leadership key and comparing the revisions the plan was decided on (`CycleVersions`). Gang
 * failures are CAS on the job; stop requests (reclaim, preemption, drain) go through
 * `requestPreemption`; binds through `bindPlan` (chunked, one transaction per unit part). A
 * refused part is decided again by a later cycle on a fresher snapshot.
 */
import type { Plan, PlannedStop, Planner } from '@batchapi/scheduling';
import { type BindResult, type BindUnit, bindPlan, type EtcdStore, type Leadership, replaceJob, requestPreemption } from '@batchapi/store';
import { inSpan, linkTo, startSpan, traceparentOf } from '@batchapi/telemetry';
import { type Span, SpanStatusCode } from '@opentelemetry/api';
import type { CycleVersions } from './cache';

/** What applying a plan did. */
export interface AppliedPlan {
  /** Jobs failed by gang timeout (their CAS landed). */
  failedGangs: string[];
  /** The binds' result; absent when the plan bound nothing. */
  bind?: BindResult;
}

export class EtcdPlanner implements Planner<AppliedPlan> {
  constructor(
    private readonly store: EtcdStore,
    private readonly leadership: Leadership,
    /** The revisions the plan was decided on. @default none (a plan with stops only) */
    private readonly versions: CycleVersions = { jobs: new Map(), allocs: new Map(), nodeRevisions: new Map() },
  ) {}

  async apply(plan: Plan): Promise<AppliedPlan> {
    const failedGangs: string[] = [];
    for (const g of plan.gangFailures) {
      const job = this.versions.jobs.get(g.jobId);
      if (!job) continue;
      if (await replaceJob(this.store, this.leadership.fence(), job, g.next)) failedGangs.push(g.jobId);
    }
    for (const cause of ['reclaim', 'preempt', 'drain'] as const) await this.stop(plan, cause);
    if (plan.binds.length === 0) return { failedGangs };
    return { failedGangs, bind: await this.bind(plan) };
  }

  private async stop(plan: Plan, cause: PlannedStop['cause']): Promise<void> {
    const stops = plan.stops.filter((s) => s.cause === cause);
    if (stops.length === 0) return;
    const victims = cause === 'preempt' ? plan.preempted : cause === 'reclaim' ? plan.reclaimed : [];
    await inSpan(
      `schedule.${cause}`,
      { attributes: { [`batch.${cause}.victims`]: stops.length, [`batch.${cause}.for`]: [...new Set(victims.map((v) => v.forJob))].join(',') } },
      () => requestPreemption(this.store, this.leadership.fence(), stops, plan.at),
    );
  }

  /** Binds in a `schedule.cycle` span linked to every job; each job's bind is a span in its own trace that the executor's run continues. */
  private bind(plan: Plan): Promise<BindResult> {
    const jobs = plan.binds.map((b) => b.next);
    return inSpan(
      'schedule.cycle',
      { links: jobs.flatMap((j) => linkTo(j.traceparent)), attributes: { 'batch.cycle.jobs': jobs.length } },
      async (cycleSpan) => {
        const cycleLinks = linkTo(traceparentOf());
        const spans = new Map<string, Span>();
        const units: BindUnit[] = plan.binds.map((b) => {
          const { span, traceparent } = startSpan('schedule.bind', { parent: b.next.traceparent, links: cycleLinks, attributes: { 'batch.job.id': b.jobId } });
          spans.set(b.jobId, span);
          const tp = traceparent ?? b.next.traceparent;
          return { job: this.versions.jobs.get(b.jobId)!, next: b.next, bindings: b.bindings.map((x) => ({ ...x, traceparent: tp })) };
        });
        let result: BindResult;
        try {
          result = await bindPlan(this.store, this.leadership.fence(), units, this.versions.allocs, { nodes: this.versions.nodeRevisions });
        } catch (err) {
          for (const span of spans.values()) {
            span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
            span.end();
          }
          throw err;
        }
        endBindSpans(spans, result);
        cycleSpan.setAttributes({ 'batch.cycle.placed': tasksBound(result), 'batch.cycle.refused': result.refused.length, 'batch.cycle.txns': result.txns });
        return result;
      },
    );
  }
}

/** Tasks whose bindings landed. */
export function tasksBound(result: BindResult): number {
  return result.bound.reduce((n, u) => n + tasksOf(u), 0);
}

function tasksOf(u: BindUnit): number {
  return u.bindings.reduce((m, b) => m + b.end - b.start, 0);
}

/** Ends each job's bind span once, with what landed (a large unit lands in several parts). */
function endBindSpans(spans: Map<string, Span>, result: BindResult): void {
  const landed = new Map<string, { groups: number; tasks: number; nodes: Set<string> }>();
  for (const u of result.bound) {
    const l = landed.get(u.next.id) ?? { groups: 0, tasks: 0, nodes: new Set<string>() };
    l.groups += u.bindings.length;
    l.tasks += tasksOf(u);
    for (const b of u.bindings) l.nodes.add(b.node);
    landed.set(u.next.id, l);
  }
  const refused = new Set([...result.refused, ...result.tooLarge].map((u) => u.next.id));
  for (const [id, span] of spans) {
    const l = landed.get(id);
    span.setAttributes({
      'batch.groups': l?.groups ?? 0,
      'batch.tasks': l?.tasks ?? 0,
      'batch.nodes': [...(l?.nodes ?? [])].slice(0, 20).join(','),
      'batch.bind.landed': !refused.has(id),
    });
    if (refused.has(id))
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: result.tooLarge.some((u) => u.next.id === id)
          ? 'job too large to bind: failed (bind_too_large)'
          : 'bind refused by a compare (stale view or lost fence)',
      });
    span.end();
  }
}
