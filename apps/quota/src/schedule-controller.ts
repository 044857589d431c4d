/**
 * The schedule controller: a separately elected role (`leaders/schedules`) hosted by the quota
 * service, beside the workflow controller. Every replica keeps a cache of schedules from an
 * informer over `schedules/`; the leader, once a second (on the injected clock's time), settles
 * the instances that finished, decides each schedule's tick (`decideTick`, pure) and applies the
 * decision with fenced writes. A tick is recorded (`lastScheduleTime`) and its job or workflow
 * created in ONE transaction (`fireScheduleTick`): a controller killed at any point, or deposed
 * while deciding, can neither fire a tick twice nor lose it — its successor decides again from
 * what etcd holds.
 */
import { createHash } from 'node:crypto';
import {
  ApiError,
  ErrorCode,
  type JobRecord,
  MAX_ACTIVE_INSTANCES,
  SCHEDULE_LABEL,
  scheduleParams,
  templateRunBody,
  type ScheduleInstance,
  type ScheduleRecord,
  TERMINAL_PHASES,
  TERMINAL_WORKFLOW_PHASES,
  type WorkflowRecord,
  submitSchemaDigest,
} from '@batchapi/api';
import { CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import {
  cancelJob,
  fireScheduleTick,
  getJob,
  getSchedule,
  getWorkflow,
  getWorkflowTemplate,
  type Informer,
  type Leadership,
  putScheduleFenced,
  requestWorkflowCancel,
  type ScheduleInstanceRecord,
  type FencedScheduleWrite,
  type Versioned,
} from '@batchapi/store';
import { startSpan } from '@batchapi/telemetry';
import { type CronSchedule, decideTick, parseCron, readWorkflowBody, settleInstances } from '@batchapi/workflows';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Counter, Gauge, Histogram } from 'prom-client';
import { ElectedLoop } from './elected-loop';

/** Injection token of `ScheduleTuning`. */
export const SCHEDULE_TUNING = Symbol('SCHEDULE_TUNING');

/** How the schedule controller runs. */
export interface ScheduleTuning {
  /** Real time between two passes of the leader over every schedule, in milliseconds. @default 1000 */
  intervalMs: number;
  /**
   * Real time between two reads of a schedule's running instances while none of its ticks is due,
   * in milliseconds (when a tick is due, or a trigger-now pending, they are read at once). @default 5000
   */
  settleIntervalMs: number;
  /**
   * Called after a tick was decided and before the transaction that fires it (tests: kill or
   * depose the leader exactly there). @default none
   */
  beforeFire?: (schedule: ScheduleRecord, tick: number) => Promise<void>;
}

const DEFAULT_TUNING: ScheduleTuning = { intervalMs: 1000, settleIntervalMs: 5000 };

@Injectable()
export class ScheduleController implements OnApplicationBootstrap, OnApplicationShutdown {
  /** Schedules by key, as the informer and our own writes last saw them. */
  private readonly schedules = new Map<string, Versioned<ScheduleRecord>>();
  /** Compiled cron per key, with the record's expression and zone it was compiled from. */
  private readonly crons = new Map<string, CronSchedule>();
  /**
   * Per key, the next tick of the record at `modRevision` (Infinity: none, or suspended): until
   * then a schedule with nothing running and no trigger is skipped without evaluating its cron
   * (croner takes about a millisecond per evaluation).
   */
  private readonly nextDue = new Map<string, { modRevision: string; at: number }>();
  /** Per key, when its running instances were last read (`performance.now()`, ms): pacing only, never a decision. */
  private readonly lastSettled = new Map<string, number>();
  private informer?: Informer;
  private readonly elected: ElectedLoop;
  private readonly tuning: ScheduleTuning;
  private readonly m: { fired: Counter; missed: Counter; lag: Histogram; schedules: Gauge };

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    /** What ticks are decided against (wall). @default systemClock */
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
    /** @default one pass a second, no hook */
    @Optional() @Inject(SCHEDULE_TUNING) tuning?: Partial<ScheduleTuning>,
  ) {
    this.tuning = { ...DEFAULT_TUNING, ...tuning };
    const registers = [ctx.registry];
    const isLeader = new Gauge({ name: 'batch_schedule_controller_is_leader', help: '1 while this replica holds the fenced schedules leader key', registers });
    this.elected = new ElectedLoop(ctx, { role: 'schedules', title: 'schedule controller', isLeader });
    this.m = {
      fired: new Counter({
        name: 'batch_schedule_ticks_fired_total',
        help: 'Schedule ticks that started an instance (trigger-now included), by trigger',
        labelNames: ['trigger'],
        registers,
      }),
      missed: new Counter({
        name: 'batch_schedule_ticks_missed_total',
        help: 'Schedule ticks never started: past their starting deadline, or superseded by a later tick',
        registers,
      }),
      lag: new Histogram({
        name: 'batch_schedule_lag_seconds',
        help: "Seconds from a tick's time to the commit that started its instance",
        buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
        registers,
      }),
      schedules: new Gauge({ name: 'batch_schedules', help: 'Schedules in the controller cache, by state', labelNames: ['state'], registers }),
    };
  }

  async onApplicationBootstrap(): Promise<void> {
    const { store } = this.ctx;
    this.informer = await store.inform<ScheduleRecord>(store.keys.schedules(), {
      onSync: (items) => {
        this.schedules.clear();
        for (const kv of items) this.onSchedule(kv);
      },
      onEvent: (ev) => {
        if (ev.type === 'delete' || !ev.value) {
          this.schedules.delete(ev.key);
          this.crons.delete(ev.key);
          this.nextDue.delete(ev.key);
          this.lastSettled.delete(ev.key);
          return;
        }
        this.onSchedule({ key: ev.key, value: ev.value, modRevision: ev.modRevision, createRevision: ev.createRevision ?? ev.modRevision });
      },
    });
    this.elected.start((l) => this.reconcileWhileLeader(l));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.elected.stop();
    await this.informer?.stop();
  }

  /** The term this replica holds, or held last. */
  get leadership(): Leadership | undefined {
    return this.elected.leadership;
  }

  private onSchedule(kv: Versioned<ScheduleRecord>): void {
    const known = this.schedules.get(kv.key);
    // Our own write updated the cache already; an older event must not undo it.
    if (known && known.createRevision === kv.createRevision && BigInt(known.modRevision) > BigInt(kv.modRevision)) return;
    this.schedules.set(kv.key, kv);
    // A trigger-now or a resume should not wait for the next pass.
    if (kv.value.triggerRequestedAt !== undefined) this.elected.wakeUp();
  }

  private cronOf(kv: Versioned<ScheduleRecord>): CronSchedule {
    const c = this.crons.get(kv.key);
    if (c && c.expression === kv.value.schedule.trim() && c.timeZone === kv.value.timeZone) return c;
    const compiled = parseCron(kv.value.schedule, kv.value.timeZone);
    this.crons.set(kv.key, compiled);
    return compiled;
  }

  private async reconcileWhileLeader(leader: Leadership): Promise<void> {
    while (this.elected.leading(leader)) {
      let failed = false;
      let suspended = 0;
      for (const key of [...this.schedules.keys()]) {
        if (!this.elected.leading(leader)) return;
        const kv = this.schedules.get(key);
        if (!kv) continue;
        if (kv.value.suspend) suspended++;
        try {
          await this.reconcile(leader, kv);
        } catch (err) {
          failed = true;
          if (!(await this.elected.failed(leader, err, { schedule: kv.value.name, tenant: kv.value.tenant }, 'schedule reconcile'))) return;
        }
      }
      this.m.schedules.set({ state: 'active' }, this.schedules.size - suspended);
      this.m.schedules.set({ state: 'suspended' }, suspended);
      await this.elected.pause(failed ? Math.min(200, this.tuning.intervalMs) : this.tuning.intervalMs);
    }
  }

  /** Settles finished instances, decides the schedule's tick (or trigger-now) and applies it. */
  private async reconcile(leader: Leadership, cur: Versioned<ScheduleRecord>): Promise<void> {
    const s = cur.value;
    const now = this.clock.now();
    const due = this.nextDue.get(cur.key);
    const quiet = due !== undefined && due.modRevision === cur.modRevision && now < due.at && s.triggerRequestedAt === undefined;
    // Nothing due: skip the cron, and read the running instances only every settleIntervalMs.
    if (quiet && (s.active.length === 0 || performance.now() - (this.lastSettled.get(cur.key) ?? -Infinity) < this.tuning.settleIntervalMs)) return;
    if (s.active.length > 0) this.lastSettled.set(cur.key, performance.now());
    const settled = { ...s, ...settleInstances(s, await this.finishedPhases(s.active), now) };

    const { triggerRequestedAt, ...untriggered } = settled;
    if (triggerRequestedAt !== undefined && settled.active.length < MAX_ACTIVE_INSTANCES) {
      await this.fire(leader, cur, untriggered, triggerRequestedAt, true, now);
      return;
    }

    const d = decideTick({
      cron: this.cronOf(cur),
      lastScheduleTime: s.lastScheduleTime ?? s.createdAt,
      now,
      startingDeadlineSeconds: s.startingDeadlineSeconds,
      concurrencyPolicy: s.concurrencyPolicy,
      running: settled.active.length,
      suspend: s.suspend,
    });
    if (d.action === 'idle') this.nextDue.set(cur.key, { modRevision: cur.modRevision, at: d.next ?? Infinity });
    let next: ScheduleRecord = settled;
    if (d.action !== 'idle' && d.missed.count > 0) {
      next = { ...next, lastScheduleTime: d.missed.last, missedTicks: next.missedTicks + d.missed.count, lastMissedTick: d.missed.last };
      this.ctx.log.warn({ schedule: s.name, tenant: s.tenant, missed: d.missed.count, lastMissed: d.missed.last }, 'schedule ticks missed');
    }
    if (d.action === 'fire') {
      if (d.replace) await this.cancelInstances(leader, settled.active, now);
      await this.fire(leader, cur, next, d.tick, false, now, d.missed.count);
      return;
    }
    if (JSON.stringify(next) === JSON.stringify(s)) return;
    const res = await putScheduleFenced(this.ctx.store, leader.fence(), cur, next);
    if (res.outcome === 'written' && d.action !== 'idle') this.m.missed.inc(d.missed.count);
    await this.after(leader, cur, next, res);
  }

  /** Starts the instance of `tick` and records it, in one fenced transaction. */
  private async fire(
    leader: Leadership,
    cur: Versioned<ScheduleRecord>,
    base: ScheduleRecord,
    tick: number,
    manual: boolean,
    now: number,
    missed = 0,
  ): Promise<void> {
    const s = cur.value;
    // Each tick is a trace of its own (a nightly schedule's runs are not one ever-growing trace); its instance's spans hang under it.
    const { span, traceparent } = startSpan('schedule.tick', {
      attributes: {
        'batch.schedule.name': s.name,
        'batch.schedule.tenant': s.tenant,
        'batch.schedule.tick': new Date(tick).toISOString(),
        'batch.schedule.manual': manual,
        'batch.schedule.missed': missed,
      },
    });
    try {
      let instance: ScheduleInstanceRecord;
      try {
        instance = await this.instanceOf(cur, tick, manual, now, traceparent);
      } catch (err) {
        // A template's run that cannot be made (the template deleted, its version gone, a value no longer valid): the tick is missed.
        if (!(err instanceof ApiError)) throw err;
        this.ctx.log.warn(
          { schedule: s.name, tenant: s.tenant, tick, code: err.code, field: err.details.field, err: err.message },
          'schedule tick cannot run its template',
        );
        span.setAttribute('batch.schedule.outcome', 'missed');
        const next: ScheduleRecord = {
          ...base,
          ...(manual ? {} : { lastScheduleTime: tick }),
          missedTicks: base.missedTicks + 1,
          lastMissedTick: tick,
        };
        const res = await putScheduleFenced(this.ctx.store, leader.fence(), cur, next);
        if (res.outcome === 'written') this.m.missed.inc(1 + missed);
        await this.after(leader, cur, next, res);
        return;
      }
      span.setAttribute(instance.kind === 'job' ? 'batch.job.id' : 'batch.workflow.id', instance.record.id);
      const ref: ScheduleInstance = { id: instance.record.id, kind: instance.kind, scheduledAt: tick, ...(manual ? { manual: true } : {}) };
      const next: ScheduleRecord = {
        ...base,
        active: [...base.active, ref],
        ...(manual ? {} : { lastScheduleTime: tick, lastFiredTick: tick }),
      };
      await this.tuning.beforeFire?.(s, tick);
      const res = await fireScheduleTick(this.ctx.store, leader.fence(), cur, next, instance);
      span.setAttribute('batch.schedule.outcome', res.outcome);
      if (res.outcome === 'written') {
        this.m.fired.inc({ trigger: manual ? 'manual' : 'cron' });
        if (!manual) this.m.lag.observe(Math.max(0, this.clock.now() - tick) / 1000);
        if (missed > 0) this.m.missed.inc(missed);
      }
      await this.after(leader, cur, next, res);
    } finally {
      span.end();
    }
  }

  /** Keeps the cache after a fenced write: ours when written, a fresh read after a conflict, deposed when fenced. */
  private async after(leader: Leadership, cur: Versioned<ScheduleRecord>, next: ScheduleRecord, res: FencedScheduleWrite): Promise<void> {
    if (res.outcome === 'written') {
      this.schedules.set(cur.key, { ...cur, value: next, modRevision: res.revision });
      return;
    }
    if (res.outcome === 'fenced') {
      leader.depose();
      return;
    }
    const fresh = await getSchedule(this.ctx.store, cur.value.tenant, cur.value.name);
    if (fresh) this.schedules.set(cur.key, fresh);
    else this.schedules.delete(cur.key);
  }

  /** Terminal phase of each finished active instance (`Unknown` when its record is gone: archived or deleted after it ended). */
  private async finishedPhases(active: readonly ScheduleInstance[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const inst of active) {
      if (inst.kind === 'job') {
        const j = await getJob(this.ctx.store, inst.id);
        if (!j) out.set(inst.id, 'Unknown');
        else if (TERMINAL_PHASES.has(j.value.phase)) out.set(inst.id, j.value.phase);
      } else {
        const w = await getWorkflow(this.ctx.store, inst.id);
        if (!w) out.set(inst.id, 'Unknown');
        else if (TERMINAL_WORKFLOW_PHASES.has(w.value.phase)) out.set(inst.id, w.value.phase);
      }
    }
    return out;
  }

  /** `Replace`: cancels the running instances (fenced; idempotent, so a retry after a crash repeats it harmlessly). */
  private async cancelInstances(leader: Leadership, active: readonly ScheduleInstance[], now: number): Promise<void> {
    for (const inst of active) {
      if (inst.kind === 'job') await cancelJob(this.ctx.store, inst.id, now, leader.fence());
      else await requestWorkflowCancel(this.ctx.store, inst.id, now);
    }
  }

  /**
   * The job or workflow of a tick, under an id fixed by the schedule (its create revision: a
   * schedule deleted and made again starts afresh), the tick and the trigger — time-ordered like
   * submitted ids, and the same for every attempt to fire that tick.
   */
  private async instanceOf(cur: Versioned<ScheduleRecord>, tick: number, manual: boolean, now: number, traceparent?: string): Promise<ScheduleInstanceRecord> {
    const s = cur.value;
    const digest = createHash('sha256')
      .update(`${s.tenant}/${s.name}/${cur.createRevision}/${manual ? 'manual' : 'cron'}`)
      .digest('hex')
      .slice(0, 12);
    const suffix = `${tick.toString(36).padStart(9, '0')}-${digest}`;
    const t = s.template;
    if (t.kind === 'job') {
      const job: JobRecord = {
        id: suffix,
        tenant: s.tenant,
        queue: t.queue,
        spec: t.spec,
        phase: 'Submitted',
        pending: [{ start: 0, end: t.spec.tasks, attempt: 1 }],
        counts: { succeeded: 0, failed: 0, cancelled: 0 },
        createdAt: now,
        ...(traceparent ? { traceparent } : {}),
      };
      return { kind: 'job', record: job };
    }
    if (t.kind === 'template') return { kind: 'workflow', record: await this.templateRunOf(s, t, `wf-${suffix}`, tick, now, traceparent) };
    const wf: WorkflowRecord = {
      id: `wf-${suffix}`,
      name: t.name,
      tenant: s.tenant,
      queue: t.queue,
      labels: t.labels,
      phase: 'Running',
      steps: t.steps.map((step) => ({ ...step, phase: 'Pending' })),
      createdAt: now,
      ...(t.deadlineSeconds ? { deadlineAt: now + t.deadlineSeconds * 1000 } : {}),
      ...(t.maxRunning !== undefined ? { maxRunning: t.maxRunning } : {}),
      ...(traceparent ? { traceparent } : {}),
    };
    return { kind: 'workflow', record: wf };
  }
  /**
   * The run of a schedule's workflow template for one tick: the template read now (the version
   * pinned, else the latest), `{{schedule.date}}` and `{{schedule.time}}` of the values made the
   * tick's, the values resolved and substituted, the body read as a submit reads it.
   * @throws ApiError when the template or its version is gone, or the run would be invalid
   */
  private async templateRunOf(
    s: ScheduleRecord,
    t: Extract<ScheduleRecord['template'], { kind: 'template' }>,
    id: string,
    tick: number,
    now: number,
    traceparent?: string,
  ): Promise<WorkflowRecord> {
    const rec = await getWorkflowTemplate(this.ctx.store, s.tenant, t.name);
    if (!rec) throw new ApiError(ErrorCode.NotFound, `workflow template ${t.name} not found`, { field: 'template.name', id: t.name });
    const v = t.version === undefined ? rec.value.versions[rec.value.versions.length - 1] : rec.value.versions.find((x) => x.version === t.version);
    if (!v) throw new ApiError(ErrorCode.NotFound, `workflow template ${t.name} has no version ${t.version}`, { field: 'template.version', id: t.name });
    const { body, params } = templateRunBody(t.name, v, scheduleParams(t.params, tick, s.timeZone), 'template.params.');
    const { req, queue, steps } = readWorkflowBody(
      { ...body, labels: { ...(body.labels as Record<string, string>), [SCHEDULE_LABEL]: s.name } },
      id,
      'template.',
    );
    return {
      id,
      name: req.name ?? s.name,
      tenant: s.tenant,
      queue,
      labels: req.labels ?? {},
      phase: 'Running',
      steps,
      createdAt: now,
      template: { name: t.name, version: v.version, params },
      ...(req.deadlineSeconds ? { deadlineAt: now + req.deadlineSeconds * 1000 } : {}),
      ...(req.maxRunning !== undefined ? { maxRunning: req.maxRunning } : {}),
      ...(traceparent ? { traceparent } : {}),
      // read just now as a submit reads it
      stepsValidatedBy: submitSchemaDigest(),
    };
  }
}
