/** Submit, query and cancel workflows: validation and the durable submit; the controller (quota service) runs them. */
import {
  ApiError,
  ErrorCode,
  IdempotencyKeySchema,
  type JobRecord,
  ListWorkflowsQuerySchema,
  parseWith,
  type Principal,
  RetryWorkflowSchema,
  SCHEDULE_LABEL,
  type SubmitWorkflowRequest,
  type WorkflowRecord,
  TERMINAL_WORKFLOW_PHASES,
  type WorkflowStep,
  type WorkflowTemplateRef,
  type WorkflowView,
  workflowView,
  submitSchemaDigest,
} from '@batchapi/api';
import type { MirroredValue, StreamSnapshot } from './event-stream';
import { HISTORY, SERVICE, type ServiceContext } from '@batchapi/runtime';
import type { HistoryStore } from '@batchapi/history';
import { fromHistory } from './history-reads';
import { cancelJob, getWorkflow, listWorkflows, requestWorkflowCancel, submitWorkflow, tenantAndQueues } from '@batchapi/store';
import { traceparentOf } from '@batchapi/telemetry';
import { readWorkflowBody, retrySteps } from '@batchapi/workflows';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { JobsService, newJobId, requestDigest } from './jobs.service';
import { WorkingDirsService } from './working-dirs';

@Injectable()
export class WorkflowsService {
  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    /** Where finished workflows go once archived out of etcd. @default none: a workflow gone from etcd is not found */
    @Optional() @Inject(HISTORY) private readonly history?: HistoryStore,
    /** Pauses submits while the archive backlog is past its limit (`JobsService.checkBacklog`). */
    @Optional() private readonly jobs?: JobsService,
    /** Checks that each step's working dir is its tenant's. @default none: not checked (the step fails on its node) */
    @Optional() private readonly workingDirs?: WorkingDirsService,
  ) {}

  /** Validates the DAG and every step's job, checks tenant and queues, commits the workflow before answering. */
  async submit(
    principal: Principal,
    body: unknown,
    idempotencyKey: string | undefined,
    now: number,
    /**
     * A template's run (`POST /v1/workflow-templates/{name}/runs`): `template` is recorded on the
     * run, and the Idempotency-Key is matched against `request` (the run request) rather than the
     * substituted body. @default a plain submit
     */
    run?: { template: WorkflowTemplateRef; request: unknown },
  ): Promise<{ view: WorkflowView; created: boolean }> {
    const key = idempotencyKey === undefined ? undefined : parseWith(IdempotencyKeySchema, idempotencyKey, 'Idempotency-Key');
    const { tenant, req, queue, steps } = await this.prepare(principal, body, now);
    this.jobs?.checkBacklog(now);
    const traceparent = traceparentOf();
    const wf: WorkflowRecord = {
      id: `wf-${newJobId(now)}`,
      name: req.name ?? 'workflow',
      tenant,
      queue,
      labels: req.labels ?? {},
      phase: 'Running',
      steps,
      createdAt: now,
      ...(req.deadlineSeconds ? { deadlineAt: now + req.deadlineSeconds * 1000 } : {}),
      ...(req.maxRunning !== undefined ? { maxRunning: req.maxRunning } : {}),
      ...(traceparent ? { traceparent } : {}),
      ...(run ? { template: run.template } : {}),
      stepsValidatedBy: submitSchemaDigest(),
    };
    const res = await submitWorkflow(this.ctx.store, wf, key ? { key, requestHash: requestDigest(tenant, run ? run.request : body) } : undefined);
    return { view: workflowView(res.workflow), created: res.created };
  }

  /**
   * `POST /v1/workflows/{id}/retry`: a new run of a finished run that did not succeed (live or
   * archived) that runs only its failed, cancelled and skipped steps and those after them, reusing
   * the others' jobs and results (`retrySteps`). The new run has its own id, names the old one in
   * `retryOf`, keeps its name, queue, labels (less the schedule's: it is no tick of that schedule),
   * `maxRunning` and deadline (as a span from its own start). A succeeded step whose job retention
   * has deleted (from etcd and history) runs again, with the steps after it. With an
   * Idempotency-Key a retry of the request answers the first retry's run.
   * @throws ApiError `workflow_not_retryable` (409) for a run still running or one that succeeded; `not_found`; `invalid_argument` for a body other than `{}`
   */
  async retry(
    principal: Principal,
    id: string,
    body: unknown,
    idempotencyKey: string | undefined,
    now: number,
  ): Promise<{ view: WorkflowView; created: boolean }> {
    parseWith(RetryWorkflowSchema, body ?? {});
    const key = idempotencyKey === undefined ? undefined : parseWith(IdempotencyKeySchema, idempotencyKey, 'Idempotency-Key');
    const old = await this.visible(principal, id);
    const steps = retrySteps(old, await this.goneJobs(old));
    const queues = new Set([old.queue, ...steps.map((s) => (typeof s.job.queue === 'string' ? s.job.queue : old.queue))]);
    await this.checkTenantAndQueues(old.tenant, [...queues]);
    this.jobs?.checkBacklog(now);
    const traceparent = traceparentOf();
    const { [SCHEDULE_LABEL]: _schedule, ...labels } = old.labels;
    const wf: WorkflowRecord = {
      id: `wf-${newJobId(now)}`,
      name: old.name,
      tenant: old.tenant,
      queue: old.queue,
      labels,
      phase: 'Running',
      steps,
      createdAt: now,
      retryOf: old.id,
      ...(old.template ? { template: old.template } : {}),
      ...(old.deadlineAt !== undefined ? { deadlineAt: now + (old.deadlineAt - old.createdAt) } : {}),
      ...(old.maxRunning !== undefined ? { maxRunning: old.maxRunning } : {}),
      ...(traceparent ? { traceparent } : {}),
    };
    const res = await submitWorkflow(this.ctx.store, wf, key ? { key, requestHash: requestDigest(old.tenant, { retryOf: old.id }) } : undefined);
    return { view: workflowView(res.workflow), created: res.created };
  }

  /** The step jobs of succeeded steps of `wf` that neither etcd nor history holds any more (retention deleted them). */
  private async goneJobs(wf: WorkflowRecord): Promise<Set<string>> {
    // a run that cannot be retried: `retrySteps` says so, without these reads
    if (wf.phase === 'Running' || wf.phase === 'Succeeded') return new Set();
    const ids = wf.steps.filter((s) => s.phase === 'Succeeded' && s.jobId !== undefined).map((s) => s.jobId!);
    const live = await this.ctx.store.getMany<JobRecord>(ids.map((j) => this.ctx.store.keys.job(j)));
    const gone = new Set<string>();
    for (const [k, jobId] of ids.entries()) {
      if (live[k] || (await fromHistory(this.history, (h) => h.getJob(jobId)))) continue;
      gone.add(jobId);
    }
    return gone;
  }

  /**
   * Validates a `POST /v1/workflows` body as submit does — the DAG, every step's job (with the
   * labels the controller adds), tenant and queues — and returns its steps as a record holds them. Schedules keep it as their template.
   * Fields are named from `root` (e.g. `workflow.` for a schedule's).
   */
  async prepare(
    principal: Principal,
    body: unknown,
    now: number,
    root = '',
  ): Promise<{ tenant: string; req: SubmitWorkflowRequest; queue: string; steps: WorkflowStep[] }> {
    const { req, queue, queues, workingDirs, steps } = readWorkflowBody(body, `wf-${newJobId(now)}`, root);
    const tenant = req.tenant ?? principal.tenant;
    if (tenant !== principal.tenant && principal.role !== 'operator') {
      throw new ApiError(ErrorCode.PermissionDenied, `your token may submit only for tenant ${principal.tenant}`, { field: 'tenant' });
    }
    await this.checkTenantAndQueues(tenant, queues);
    for (const w of workingDirs) await this.workingDirs?.requireUploaded(tenant, w.digest, w.field);
    return { tenant, req, queue, steps };
  }

  async get(principal: Principal, id: string): Promise<WorkflowView> {
    return workflowView(await this.visible(principal, id));
  }

  /** Live workflows (etcd, in id order), then archived ones, most recently finished first, at most `limit` in all; one template's runs with `template`. */
  async list(principal: Principal, query: unknown): Promise<{ workflows: WorkflowView[] }> {
    const q = parseWith(ListWorkflowsQuerySchema, query);
    const filter = { tenant: principal.role === 'operator' ? undefined : principal.tenant, template: q.template, limit: q.limit ?? 100 };
    const live = await listWorkflows(this.ctx.store, filter);
    const archived =
      live.length < filter.limit ? ((await fromHistory(this.history, (h) => h.listWorkflows({ ...filter, limit: filter.limit - live.length }))) ?? []) : [];
    const seen = new Set(live.map((w) => w.id));
    return { workflows: [...live, ...archived.filter((w) => !seen.has(w.id))].map(workflowView) };
  }

  /** Marks the workflow cancelled and cancels its running step jobs at once (the controller does it too, for steps submitted meanwhile). */
  async cancel(principal: Principal, id: string, now: number): Promise<WorkflowView> {
    const found = await this.visible(principal, id);
    // An archived workflow has finished: cancelling it changes nothing.
    if (TERMINAL_WORKFLOW_PHASES.has(found.phase) && !(await getWorkflow(this.ctx.store, id))) return workflowView(found);
    const wf = await requestWorkflowCancel(this.ctx.store, id, now);
    for (const s of wf?.steps ?? []) if (s.jobId && s.phase === 'Running') await cancelJob(this.ctx.store, s.jobId, now);
    return this.get(principal, id);
  }

  keyOf(id: string): string {
    return this.ctx.store.keys.workflow(id);
  }

  /** The workflow's view for its event stream. */
  async eventSnapshot(principal: Principal, id: string): Promise<StreamSnapshot> {
    const wf = await getWorkflow(this.ctx.store, id);
    // Archived: one final view, and the stream ends.
    if (!wf) return { view: workflowView(await this.visible(principal, id)), revision: 0n, terminal: true };
    if (principal.role !== 'operator' && wf.value.tenant !== principal.tenant) throw new ApiError(ErrorCode.NotFound, `workflow ${id} not found`, { id });
    return { view: workflowView(wf.value), revision: BigInt(wf.modRevision), terminal: TERMINAL_WORKFLOW_PHASES.has(wf.value.phase) };
  }

  /** Builds a workflow's stream view from its mirrored record (see EventStreams). */
  streamView(id: string): (keys: ReadonlyMap<string, MirroredValue>) => StreamSnapshot | undefined {
    const key = this.keyOf(id);
    return (keys) => {
      const wf = keys.get(key);
      if (!wf) return undefined;
      const value = wf.value as WorkflowRecord;
      return { view: workflowView(value), revision: BigInt(wf.modRevision), terminal: TERMINAL_WORKFLOW_PHASES.has(value.phase) };
    };
  }

  /** A workflow the principal may see — live from etcd, else archived in history; 404 for others' and unknown ids alike. */
  async visible(principal: Principal, id: string): Promise<WorkflowRecord> {
    const wf =
      (await getWorkflow(this.ctx.store, id))?.value ??
      (/^[A-Za-z0-9-]{1,64}$/.test(id) ? await fromHistory(this.history, (h) => h.getWorkflow(id)) : undefined);
    if (!wf || (principal.role !== 'operator' && wf.tenant !== principal.tenant)) {
      throw new ApiError(ErrorCode.NotFound, `workflow ${id} not found`, { id });
    }
    return wf;
  }

  private async checkTenantAndQueues(tenant: string, queues: string[]): Promise<void> {
    const { tenant: t, queues: qs } = await tenantAndQueues(this.ctx.store, tenant, queues);
    if (!t) throw new ApiError(ErrorCode.UnknownTenant, `tenant ${tenant} does not exist; ask an operator to create it`, { field: 'tenant', id: tenant });
    queues.forEach((name, k) => {
      const q = qs[k];
      if (!q || q.tenant !== tenant)
        throw new ApiError(ErrorCode.UnknownQueue, `queue ${name} does not exist for tenant ${tenant}`, { field: 'queue', id: name });
    });
  }
}
