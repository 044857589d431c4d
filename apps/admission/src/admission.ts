/** Wires the admission service: the jobs API over the shared runtime. */
import { runService, type RunningService, type ServiceConfig } from '@batchapi/runtime';
import { AUTH, BulkJobsController, JobsController } from './jobs.controller';
import { EventStreams } from './event-stream';
import { SERVICE, type ServiceContext } from '@batchapi/runtime';
import { NodesController } from './nodes.controller';
import { QueuesController, TenantsController } from './queues.controller';
import { JobsService } from './jobs.service';
import { TokenAuthenticator } from './auth';
import { WorkflowsController } from './workflows.controller';
import { WorkflowsService } from './workflows.service';

/** Options of the admission service. */
export interface AdmissionOptions {
  /** Tokens file path (`BATCH_TOKENS_FILE`), or an authenticator (tests). */
  tokens: string | TokenAuthenticator;
  /** Largest request body in bytes (`BATCH_MAX_BODY_BYTES`). @default 1048576 */
  bodyLimit?: number;
  config?: Partial<ServiceConfig>;
  /** Called when the process lease is lost (see `RunServiceOptions.onLeaseLost`). */
  onLeaseLost?: () => void;
}

export async function startAdmission(opts: AdmissionOptions): Promise<RunningService> {
  const auth = typeof opts.tokens === 'string' ? TokenAuthenticator.fromFile(opts.tokens) : opts.tokens;
  return runService({
    name: 'admission',
    config: opts.config,
    onLeaseLost: opts.onLeaseLost,
    bodyLimit: opts.bodyLimit,
    controllers: [BulkJobsController, JobsController, NodesController, QueuesController, TenantsController, WorkflowsController],
    providers: [JobsService, WorkflowsService, { provide: EventStreams, useFactory: (ctx: ServiceContext) => new EventStreams(ctx.store), inject: [SERVICE] }, { provide: AUTH, useValue: auth }],
  });
}
