/**
 * Create, read, delete, pause, resume and trigger schedules (cron jobs and cron workflows):
 * validation of the cron, zone and template, tenant scoping, and the user's compare-and-swap
 * changes. The elected schedule controller (quota service) fires the ticks.
 */
import {
  ApiError,
  CreateScheduleSchema,
  type CreateScheduleRequest,
  ErrorCode,
  jsonBytes,
  ListSchedulesQuerySchema,
  MAX_SCHEDULE_TEMPLATE_BYTES,
  MAX_SCHEDULES_PER_TENANT,
  ScheduleActionSchema,
  ScheduleTenantQuerySchema,
  parseSubmit,
  parseWith,
  type Principal,
  SCHEDULE_LABEL,
  type ScheduleRecord,
  type ScheduleTemplate,
  type ScheduleView,
  scheduleView,
  scheduleParams,
  templateRunBody,
} from '@batchapi/api';
import { SERVICE, type ServiceContext } from '@batchapi/runtime';
import { createSchedule, deleteSchedule, getSchedule, getWorkflowTemplate, listSchedules, tenantAndQueues, updateSchedule } from '@batchapi/store';
import { traceparentOf } from '@batchapi/telemetry';
import { parseCron } from '@batchapi/workflows';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { WorkflowsService } from './workflows.service';
import { WorkingDirsService } from './working-dirs';

@Injectable()
export class SchedulesService {
  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    private readonly workflows: WorkflowsService,
    /** Checks that the job's working dir is its tenant's. @default none: not checked */
    @Optional() private readonly workingDirs?: WorkingDirsService,
  ) {}

  /** Validates the schedule and its template (as a submit of it would be), then creates it only if its tenant has none of that name. */
  async create(principal: Principal, body: unknown, now: number): Promise<ScheduleView> {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new ApiError(ErrorCode.InvalidArgument, 'the body must be a JSON object', { field: '(body)' });
    }
    const req = parseWith(CreateScheduleSchema, body);
    const tenant = this.tenantOf(principal, req.tenant);
    const timeZone = req.timeZone ?? 'UTC';
    parseCron(req.schedule, timeZone);
    if ([req.job, req.workflow, req.template].filter((x) => x !== undefined).length !== 1) {
      throw new ApiError(ErrorCode.InvalidArgument, 'job: give exactly one of "job", "workflow" and "template": what each tick submits', { field: 'job' });
    }
    const template = req.job
      ? await this.jobTemplate(tenant, req.name, req.job)
      : req.workflow
        ? await this.workflowTemplate(principal, tenant, req.name, req.workflow, now)
        : await this.templateRun(principal, tenant, req.name, req.template!, timeZone, now);
    const field = template.kind;
    if (jsonBytes(template) > MAX_SCHEDULE_TEMPLATE_BYTES) {
      throw new ApiError(
        ErrorCode.PayloadTooLarge,
        `${field}: over ${MAX_SCHEDULE_TEMPLATE_BYTES} bytes of JSON; pass references (URIs) to large data instead`,
        { field },
      );
    }
    const traceparent = traceparentOf();
    const record: ScheduleRecord = {
      name: req.name,
      tenant,
      schedule: req.schedule.trim(),
      timeZone,
      concurrencyPolicy: req.concurrencyPolicy ?? 'Allow',
      ...(req.startingDeadlineSeconds !== undefined ? { startingDeadlineSeconds: req.startingDeadlineSeconds } : {}),
      successfulHistoryLimit: req.successfulHistoryLimit ?? 3,
      failedHistoryLimit: req.failedHistoryLimit ?? 1,
      suspend: req.suspend ?? false,
      template,
      createdAt: now,
      lastScheduleTime: now,
      missedTicks: 0,
      active: [],
      succeeded: [],
      failed: [],
      ...(traceparent ? { traceparent } : {}),
    };
    const existing = await getSchedule(this.ctx.store, tenant, req.name);
    if (existing)
      throw new ApiError(ErrorCode.Conflict, `schedule ${req.name} already exists; delete it first or pick another name`, { field: 'name', id: req.name });
    // Checked before the create, not in its txn: concurrent creates may pass it by a few.
    if ((await this.ctx.store.count(this.ctx.store.keys.schedulesOf(tenant))) >= MAX_SCHEDULES_PER_TENANT) {
      throw new ApiError(ErrorCode.Conflict, `tenant ${tenant} has ${MAX_SCHEDULES_PER_TENANT} schedules, the most a tenant may have; delete some first`, {
        id: tenant,
      });
    }
    return scheduleView((await createSchedule(this.ctx.store, record)).value);
  }

  async get(principal: Principal, name: string, query: unknown): Promise<ScheduleView> {
    return scheduleView(await this.visible(principal, name, query));
  }

  /** The caller's schedules (every tenant's for an operator, unless `tenant` is given), in tenant and name order. */
  async list(principal: Principal, query: unknown): Promise<{ schedules: ScheduleView[] }> {
    const q = parseWith(ListSchedulesQuerySchema, query);
    const tenant = principal.role === 'operator' ? q.tenant : this.tenantOf(principal, q.tenant);
    return { schedules: (await listSchedules(this.ctx.store, { tenant, limit: q.limit ?? 100 })).map(scheduleView) };
  }

  /** Deletes the schedule; the jobs and workflows it started stay (retention removes them). */
  async delete(principal: Principal, name: string, query: unknown): Promise<ScheduleView> {
    const s = await this.visible(principal, name, query);
    const gone = await deleteSchedule(this.ctx.store, s.tenant, name);
    if (!gone) throw notFound(name);
    return scheduleView(gone);
  }

  /** Pauses: no tick fires until resumed (running instances go on). */
  pause(principal: Principal, name: string, query: unknown, body: unknown): Promise<ScheduleView> {
    return this.change(principal, name, query, body, (s) => (s.suspend ? undefined : { ...s, suspend: true }));
  }

  /** Resumes from now: the ticks of the pause never fire (and are not counted missed). */
  resume(principal: Principal, name: string, query: unknown, body: unknown, now: number): Promise<ScheduleView> {
    return this.change(principal, name, query, body, (s) =>
      s.suspend ? { ...s, suspend: false, lastScheduleTime: Math.max(s.lastScheduleTime ?? s.createdAt, now) } : undefined,
    );
  }

  /** Asks the controller to start one instance now, whatever the cron and the policy (a request already pending is kept). */
  trigger(principal: Principal, name: string, query: unknown, body: unknown, now: number): Promise<ScheduleView> {
    return this.change(principal, name, query, body, (s) => (s.triggerRequestedAt !== undefined ? undefined : { ...s, triggerRequestedAt: now }));
  }

  private async change(
    principal: Principal,
    name: string,
    query: unknown,
    body: unknown,
    f: (s: ScheduleRecord) => ScheduleRecord | undefined,
  ): Promise<ScheduleView> {
    parseWith(ScheduleActionSchema, body ?? {});
    const s = await this.visible(principal, name, query);
    const next = await updateSchedule(this.ctx.store, s.tenant, name, f);
    if (!next) throw notFound(name);
    return scheduleView(next);
  }

  private async jobTemplate(tenant: string, name: string, job: Record<string, unknown>): Promise<ScheduleTemplate> {
    if ('tenant' in job) throw new ApiError(ErrorCode.InvalidArgument, "job.tenant: a schedule's job runs as its tenant; remove it", { field: 'job.tenant' });
    const labels = job.labels;
    const body =
      labels === undefined || (typeof labels === 'object' && labels !== null && !Array.isArray(labels))
        ? { ...job, labels: { ...(labels as Record<string, string> | undefined), [SCHEDULE_LABEL]: name } }
        : job;
    let parsed: ReturnType<typeof parseSubmit>;
    try {
      parsed = parseSubmit(body);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const field = `job.${err.details.field ?? ''}`.replace(/\.$/, '');
      throw new ApiError(err.code, `job.${err.message}`, { ...err.details, field });
    }
    const { tenant: t, queues } = await tenantAndQueues(this.ctx.store, tenant, [parsed.queue]);
    if (!t) throw new ApiError(ErrorCode.UnknownTenant, `tenant ${tenant} does not exist; ask an operator to create it`, { field: 'tenant', id: tenant });
    if (!queues[0] || queues[0].tenant !== tenant)
      throw new ApiError(ErrorCode.UnknownQueue, `queue ${parsed.queue} does not exist for tenant ${tenant}`, { field: 'job.queue', id: parsed.queue });
    if (parsed.spec.workingDir) await this.workingDirs?.requireUploaded(tenant, parsed.spec.workingDir.digest, 'job.workingDir.digest');
    return { kind: 'job', queue: parsed.queue, spec: parsed.spec };
  }

  private async workflowTemplate(principal: Principal, tenant: string, name: string, wf: Record<string, unknown>, now: number): Promise<ScheduleTemplate> {
    if ('tenant' in wf)
      throw new ApiError(ErrorCode.InvalidArgument, "workflow.tenant: a schedule's workflow runs as its tenant; remove it", { field: 'workflow.tenant' });
    const { req, queue, steps } = await this.workflows.prepare({ ...principal, tenant }, wf, now, 'workflow.');
    return {
      kind: 'workflow',
      name: req.name ?? name,
      queue,
      labels: { ...req.labels, [SCHEDULE_LABEL]: name },
      ...(req.deadlineSeconds ? { deadlineSeconds: req.deadlineSeconds } : {}),
      ...(req.maxRunning !== undefined ? { maxRunning: req.maxRunning } : {}),
      steps,
    };
  }

  /**
   * A schedule of a workflow template: the template must exist, and a run of it now (with the
   * version given, else the latest) must be valid — each tick reads it again (an update of the
   * template changes the next ticks when no version is pinned).
   */
  private async templateRun(
    principal: Principal,
    tenant: string,
    name: string,
    ref: NonNullable<CreateScheduleRequest['template']>,
    timeZone: string,
    now: number,
  ): Promise<ScheduleTemplate> {
    const t = await getWorkflowTemplate(this.ctx.store, tenant, ref.name);
    if (!t)
      throw new ApiError(ErrorCode.NotFound, `template.name: workflow template ${ref.name} not found; register it first`, {
        field: 'template.name',
        id: ref.name,
      });
    const v = ref.version === undefined ? t.value.versions[t.value.versions.length - 1] : t.value.versions.find((x) => x.version === ref.version);
    if (!v) {
      throw new ApiError(ErrorCode.NotFound, `template.version: workflow template ${ref.name} has no version ${ref.version}`, {
        field: 'template.version',
        id: ref.name,
      });
    }
    const params = ref.params ?? {};
    const { body } = templateRunBody(ref.name, v, scheduleParams(params, now, timeZone), 'template.params.');
    await this.workflows.prepare(
      { ...principal, tenant },
      { ...body, labels: { ...(body.labels as Record<string, string>), [SCHEDULE_LABEL]: name } },
      now,
      'template.',
    );
    return { kind: 'template', name: ref.name, ...(ref.version !== undefined ? { version: ref.version } : {}), params };
  }

  private tenantOf(principal: Principal, asked: string | undefined): string {
    const tenant = asked ?? principal.tenant;
    if (tenant !== principal.tenant && principal.role !== 'operator') {
      throw new ApiError(ErrorCode.PermissionDenied, `your token may use only the schedules of tenant ${principal.tenant}`, { field: 'tenant' });
    }
    return tenant;
  }

  /** The schedule, if the principal may see it; 404 for others' and unknown names alike. */
  private async visible(principal: Principal, name: string, query: unknown): Promise<ScheduleRecord> {
    const q = parseWith(ScheduleTenantQuerySchema, query ?? {});
    const tenant = this.tenantOf(principal, q.tenant);
    const s = await getSchedule(this.ctx.store, tenant, name);
    if (!s) throw notFound(name);
    return s.value;
  }
}

function notFound(name: string): ApiError {
  return new ApiError(ErrorCode.NotFound, `schedule ${name} not found`, { id: name });
}
