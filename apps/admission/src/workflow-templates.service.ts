/**
 * Workflow templates (`/v1/workflow-templates`): put a version (validated as a submit of its
 * workflow with each parameter's default or a sample), read one version, list, delete, and run:
 * the run's values are checked against the declared parameters, substituted into every string of
 * the workflow body, and the result submitted exactly as `POST /v1/workflows` (`WorkflowsService.submit`).
 */
import {
  ApiError,
  checkTemplate,
  ErrorCode,
  jsonBytes,
  ListWorkflowTemplatesQuerySchema,
  MAX_WORKFLOW_TEMPLATE_BYTES,
  parseWith,
  type Principal,
  PutWorkflowTemplateSchema,
  RunWorkflowTemplateSchema,
  sampleParams,
  substituteParams,
  templateRunBody,
  type WorkflowTemplateRecord,
  WorkflowTemplateQuerySchema,
  WorkflowTemplateTenantQuerySchema,
  type WorkflowTemplateView,
  workflowTemplateView,
  type WorkflowView,
} from '@batchapi/api';
import { SERVICE, type ServiceContext } from '@batchapi/runtime';
import { deleteWorkflowTemplate, getWorkflowTemplate, listWorkflowTemplates, putWorkflowTemplate } from '@batchapi/store';
import { Inject, Injectable } from '@nestjs/common';
import { WorkflowsService } from './workflows.service';

/**
 * Most templates one tenant may have: with records of at most `MAX_WORKFLOW_TEMPLATE_RECORD_BYTES`
 * (512 KiB), at most 50 MiB of etcd a tenant, so templates cannot fill etcd's quota.
 */
export const MAX_WORKFLOW_TEMPLATES_PER_TENANT = 100;

@Injectable()
export class WorkflowTemplatesService {
  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    private readonly workflows: WorkflowsService,
  ) {}

  /**
   * Puts a version of template `name`: a new version (1, 2, …) when its content differs from the
   * latest, else the latest unchanged. `created`: the tenant had no template of that name.
   */
  async put(principal: Principal, name: string, body: unknown, now: number): Promise<{ view: WorkflowTemplateView; created: boolean }> {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new ApiError(ErrorCode.InvalidArgument, 'the body must be a JSON object', { field: '(body)' });
    }
    parseName(name);
    const req = parseWith(PutWorkflowTemplateSchema, body);
    const tenant = this.tenantOf(principal, req.tenant);
    const parameters = req.parameters ?? {};
    if ('tenant' in req.workflow) {
      throw new ApiError(ErrorCode.InvalidArgument, "workflow.tenant: a template's runs run as its tenant; remove it", { field: 'workflow.tenant' });
    }
    if (jsonBytes(req.workflow) > MAX_WORKFLOW_TEMPLATE_BYTES) {
      throw new ApiError(
        ErrorCode.PayloadTooLarge,
        `workflow: over ${MAX_WORKFLOW_TEMPLATE_BYTES} bytes of JSON; pass references (URIs) to large data instead`,
        {
          field: 'workflow',
        },
      );
    }
    checkTemplate(parameters, req.workflow);
    // Valid with each parameter's default (or a sample): a run's own values are validated again.
    await this.workflows.prepare({ ...principal, tenant }, substituteParams(req.workflow, sampleParams(parameters)), now, 'workflow.');
    const existing = await getWorkflowTemplate(this.ctx.store, tenant, name);
    // Checked before the put, not in its txn: concurrent creates may pass it by a few.
    if (!existing && (await this.ctx.store.count(this.ctx.store.keys.workflowTemplatesOf(tenant))) >= MAX_WORKFLOW_TEMPLATES_PER_TENANT) {
      throw new ApiError(
        ErrorCode.Conflict,
        `tenant ${tenant} has ${MAX_WORKFLOW_TEMPLATES_PER_TENANT} workflow templates, the most a tenant may have; delete some first`,
        { id: tenant },
      );
    }
    const { record } = await putWorkflowTemplate(
      this.ctx.store,
      { tenant, name },
      { ...(req.description !== undefined ? { description: req.description } : {}), parameters, workflow: req.workflow },
      now,
    );
    return { view: workflowTemplateView(record)!, created: !existing };
  }

  /** The template at its latest version, or at `?version=N`. */
  async get(principal: Principal, name: string, query: unknown): Promise<WorkflowTemplateView> {
    const q = parseWith(WorkflowTemplateQuerySchema, query ?? {});
    const t = await this.visible(principal, name, q.tenant);
    return workflowTemplateView(t, q.version) ?? throwVersionGone(t, q.version!, 'version');
  }

  /** The caller's templates at their latest versions (every tenant's for an operator, unless `tenant` is given), in tenant and name order. */
  async list(principal: Principal, query: unknown): Promise<{ templates: WorkflowTemplateView[] }> {
    const q = parseWith(ListWorkflowTemplatesQuerySchema, query ?? {});
    const tenant = principal.role === 'operator' ? q.tenant : this.tenantOf(principal, q.tenant);
    const records = await listWorkflowTemplates(this.ctx.store, { tenant, limit: q.limit ?? 100 });
    return { templates: records.map((t) => workflowTemplateView(t)!) };
  }

  /** Deletes the template, every version; the runs it made stay. */
  async delete(principal: Principal, name: string, query: unknown): Promise<WorkflowTemplateView> {
    const q = parseWith(WorkflowTemplateTenantQuerySchema, query ?? {});
    const t = await this.visible(principal, name, q.tenant);
    const gone = await deleteWorkflowTemplate(this.ctx.store, t.tenant, name);
    if (!gone) throw notFound(name);
    return workflowTemplateView(gone)!;
  }

  /**
   * Runs the template: resolves the values (given, else defaults), substitutes them, and submits
   * the workflow exactly as `POST /v1/workflows` — labelled `batch.template` and
   * `batch.template-version`, recording `template: {name, version, params}`. With an
   * Idempotency-Key a retry of the same request answers the first run.
   */
  async run(
    principal: Principal,
    name: string,
    body: unknown,
    idempotencyKey: string | undefined,
    now: number,
  ): Promise<{ view: WorkflowView; created: boolean }> {
    const req = parseWith(RunWorkflowTemplateSchema, body ?? {});
    const tenant = this.tenantOf(principal, req.tenant);
    const t = await this.visible(principal, name, tenant);
    const v = req.version === undefined ? t.versions[t.versions.length - 1] : t.versions.find((x) => x.version === req.version);
    if (!v) throwVersionGone(t, req.version!, 'version');
    const { body: wf, params } = templateRunBody(name, v, req.params ?? {});
    return this.workflows.submit(principal, { ...wf, tenant }, idempotencyKey, now, {
      template: { name, version: v.version, params },
      request: { template: name, version: req.version ?? null, params: req.params ?? {} },
    });
  }

  private tenantOf(principal: Principal, asked: string | undefined): string {
    const tenant = asked ?? principal.tenant;
    if (tenant !== principal.tenant && principal.role !== 'operator') {
      throw new ApiError(ErrorCode.PermissionDenied, `your token may use only the workflow templates of tenant ${principal.tenant}`, { field: 'tenant' });
    }
    return tenant;
  }

  /** The template, if the principal may see it; 404 for others' and unknown names alike. */
  private async visible(principal: Principal, name: string, asked: string | undefined): Promise<WorkflowTemplateRecord> {
    const t = await getWorkflowTemplate(this.ctx.store, this.tenantOf(principal, asked), name);
    if (!t) throw notFound(name);
    return t.value;
  }
}

function parseName(name: string): void {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63) {
    throw new ApiError(ErrorCode.InvalidArgument, 'name: must be 1 to 63 lower-case letters, digits and "-", starting and ending with a letter or digit', {
      field: 'name',
    });
  }
}

function throwVersionGone(t: WorkflowTemplateRecord, version: number, field: string): never {
  throw new ApiError(
    ErrorCode.NotFound,
    `${field}: workflow template ${t.name} has no version ${version} (it keeps ${t.versions.map((v) => v.version).join(', ')})`,
    { field, id: t.name },
  );
}

function notFound(name: string): ApiError {
  return new ApiError(ErrorCode.NotFound, `workflow template ${name} not found`, { id: name });
}
