/** `client.workflowTemplates`: workflows defined once, versioned, run many times with parameters (`/v1/workflow-templates`). */
import { randomUUID } from 'node:crypto';
import type { PutWorkflowTemplateRequest, WorkflowTemplateView, WorkflowView } from '@batchapi/api';

/** What `WorkflowTemplatesApi` needs of the client. */
interface Requester {
  request<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
}

/** Options of the calls on one template. */
export interface WorkflowTemplateOptions {
  /** The tenant whose template it is; only operators may name another. @default the token's tenant */
  tenant?: string;
}

/** Options of `run`. */
export interface RunWorkflowTemplateOptions extends WorkflowTemplateOptions {
  /** A value for each parameter (strings); one without a default must be given. @default {} */
  params?: Record<string, string>;
  /** The version to run. @default the latest */
  version?: number;
  /** Makes the run safe to repeat: the same key with the same request answers the first run. @default a random UUID per call */
  idempotencyKey?: string;
}

/**
 * Workflow templates of the token's tenant: a `POST /v1/workflows` body whose strings may hold
 * `{{params.<name>}}`, registered once (each change a new version) and run with values.
 *
 * ```ts
 * await batch.workflowTemplates.put('nightly', { parameters: { date: { pattern: '\\d{4}-\\d{2}-\\d{2}' } }, workflow: { steps: [{ name: 'etl', job: { command: ['./etl.sh', '{{params.date}}'] } }] } });
 * const run = await batch.workflowTemplates.run('nightly', { params: { date: '2026-12-01' } });
 * await run.wait();
 * ```
 */
export class WorkflowTemplatesApi<H> {
  constructor(
    private readonly client: Requester,
    /** Makes the handle of a submitted run. */
    private readonly handleOf: (view: WorkflowView) => H,
  ) {}

  /** Registers the template, or a new version of it when its content differs from the latest (`unknown_parameter` naming the string of an undeclared placeholder). */
  put(name: string, req: PutWorkflowTemplateRequest): Promise<WorkflowTemplateView> {
    return this.client.request('PUT', `/v1/workflow-templates/${encodeURIComponent(name)}`, req);
  }

  /** The template at its latest version, or at `version` (one of the latest 20). */
  get(name: string, opts: WorkflowTemplateOptions & { version?: number } = {}): Promise<WorkflowTemplateView> {
    const q = new URLSearchParams();
    if (opts.tenant) q.set('tenant', opts.tenant);
    if (opts.version !== undefined) q.set('version', String(opts.version));
    const qs = q.toString();
    return this.client.request('GET', `/v1/workflow-templates/${encodeURIComponent(name)}${qs ? `?${qs}` : ''}`);
  }

  /** The token's templates at their latest versions (every tenant's for operators unless `tenant` is given), in name order. @param opts.limit 1 to 1000. @default 100 */
  async list(opts: WorkflowTemplateOptions & { limit?: number } = {}): Promise<WorkflowTemplateView[]> {
    const q = new URLSearchParams();
    if (opts.limit) q.set('limit', String(opts.limit));
    if (opts.tenant) q.set('tenant', opts.tenant);
    const qs = q.toString();
    return (await this.client.request<{ templates: WorkflowTemplateView[] }>('GET', `/v1/workflow-templates${qs ? `?${qs}` : ''}`)).templates;
  }

  /** Deletes the template and every version; its runs stay. */
  delete(name: string, opts: WorkflowTemplateOptions = {}): Promise<WorkflowTemplateView> {
    return this.client.request('DELETE', `/v1/workflow-templates/${encodeURIComponent(name)}${opts.tenant ? `?tenant=${encodeURIComponent(opts.tenant)}` : ''}`);
  }

  /**
   * Runs the template with `params` (`missing_parameter` / `unknown_parameter` naming
   * `params.<name>`; a value that does not match its pattern is `invalid_argument`), and returns
   * the run's handle: a workflow labelled `batch.template`, whose view records `template`.
   */
  async run(name: string, opts: RunWorkflowTemplateOptions = {}): Promise<H> {
    const body = {
      ...(opts.params ? { params: opts.params } : {}),
      ...(opts.version !== undefined ? { version: opts.version } : {}),
      ...(opts.tenant ? { tenant: opts.tenant } : {}),
    };
    const view = await this.client.request<WorkflowView>('POST', `/v1/workflow-templates/${encodeURIComponent(name)}/runs`, body, {
      'idempotency-key': opts.idempotencyKey ?? randomUUID(),
    });
    return this.handleOf(view);
  }
}
