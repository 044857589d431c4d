/** Wires the admission service: the jobs API over the shared runtime. */
import { type BlobSettings, openBlobStore } from '@batchapi/blobs';
import { HistoryStore } from '@batchapi/history';
import { BLOBS, blobSettingsFromEnv, CLOCK, type Clock, HISTORY, runService, type RunningService, type ServiceConfig, systemClock } from '@batchapi/runtime';
import { AUTH, BulkJobsController, JobsController } from './jobs.controller';
import { type EventStreamLimits, EventStreams } from './event-stream';
import { SERVICE, type ServiceContext } from '@batchapi/runtime';
import { Metric } from '@batchapi/telemetry';
import { APP_GUARD } from '@nestjs/core';
import { Counter } from 'prom-client';
import { THROTTLE_TUNING, type ThrottleTuning } from './throttle';
import { OverloadGuard, type OverloadLimits, SUBMIT_LOAD, SubmitLoad } from './overload';
import { READ_LIMITER, ReadLimiter, type ReadLimits, ReadRateGuard, READS_REFUSED } from './read-limit';
import { admissionConfigFromEnv } from './config';
import { NodesController } from './nodes.controller';
import { OpenApiController } from './openapi.controller';
import { QueuesController, TenantsController } from './queues.controller';
import { JobsService } from './jobs.service';
import { TOKEN_EXPIRY_GAUGE, TokenAuthenticator, tokenExpiryGauge } from './auth';
import { UsageController } from './usage.controller';
import { SchedulerCalls } from './scheduler-calls';
import { BACKLOG_GATE, BacklogGate, type BacklogLimits } from './archive-backlog';
import { WorkflowsController } from './workflows.controller';
import { SchedulesController } from './schedules.controller';
import { SemaphoresController } from './semaphores.controller';
import { SchedulesService } from './schedules.service';
import { WorkflowTemplatesController } from './workflow-templates.controller';
import { WorkflowTemplatesService } from './workflow-templates.service';
import { WorkflowsService } from './workflows.service';
import { Readers } from './inputs-readers';
import { DEFAULT_CONSOLE_DIR, serveConsole } from './console';
import { uploadLimitOf, WORKING_DIR_MAX_BYTES, WORKING_DIR_MEDIA_TYPES, WorkingDirsService } from './working-dirs';
import { WorkingDirsController } from './working-dirs.controller';

/** Options of the admission service. */
export interface AdmissionOptions {
  /** Tokens file path (`BATCH_TOKENS_FILE`), or an authenticator (tests). */
  tokens: string | TokenAuthenticator;
  /** Largest request body in bytes. @default `BATCH_MAX_BODY_BYTES`, else 1048576 */
  bodyLimit?: number;
  config?: Partial<ServiceConfig>;
  /** Called when the process lease is lost (see `RunServiceOptions.onLeaseLost`). */
  onLeaseLost?: () => void;
  /** Read budgets per tenant and operator tenant (see `ReadLimits`). @default from the environment */
  reads?: Partial<ReadLimits>;
  /** Capacity for submits before they are shed 503 `overloaded` (see `OverloadLimits`). @default from the environment */
  overload?: Partial<OverloadLimits>;
  /** Submit throttle tuning, over `DEFAULT_THROTTLE` (e.g. `maxInflight`). @default from the environment */
  throttle?: Partial<ThrottleTuning>;
  /** Caps of event streams and their stall timeout (see `EventStreamLimits`). @default from the environment */
  streams?: Partial<EventStreamLimits>;
  /** The clock requests are stamped and limited by (tests pass a fake one). @default systemClock */
  clock?: Clock;
  /** History store URL: jobs no longer in etcd (archived) are read from it. @default `BATCH_HISTORY_URL`, else none */
  historyUrl?: string;
  /** Where ended attempts' logs are read from. @default from `BATCH_BLOB_STORE` (the history database when `BATCH_HISTORY_URL` is set) */
  blobs?: BlobSettings;
  /** Pause of submits on the archive backlog. @default `BATCH_ARCHIVE_BACKLOG_LIMIT` (100000), a count trusted for 5 minutes */
  backlog?: Partial<BacklogLimits>;
  /** Largest working dir package accepted (its tar), in bytes. @default `BATCH_WORKING_DIR_MAX_BYTES` (104857600, 100 MiB) */
  workingDirMaxBytes?: number;
  /** Directory of the console's built files, served under `/console/`. @default apps/console/dist (`npm run build`) */
  consoleDir?: string;
  /** The trace UI's page of a trace, `{traceId}` where the id goes, for the console's links. @default `BATCH_TRACE_URL`, else none */
  traceUrl?: string;
}

export async function startAdmission(opts: AdmissionOptions): Promise<RunningService> {
  // Read at start, not at import: a bad value stops here with a message naming its variable.
  const env = admissionConfigFromEnv();
  // A tokens file is watched: tokens are added and revoked by editing it, no restart (logged once the service logs).
  let log: RunningService['ctx']['log'] | undefined;
  const clock = opts.clock ?? systemClock;
  const watched =
    typeof opts.tokens === 'string'
      ? TokenAuthenticator.watchFile(opts.tokens, {
          now: () => clock.now(),
          onReload: (o) =>
            'reloaded' in o
              ? log?.info({ tokens: o.reloaded }, 'tokens file changed: tokens reloaded')
              : log?.error({ err: o.refused }, 'tokens file changed but is not valid: the tokens in use stay'),
        })
      : undefined;
  const auth = watched ?? (opts.tokens as TokenAuthenticator);
  const historyUrl = opts.historyUrl ?? env.historyUrl;
  // Read only: the quota service migrates the schema and writes.
  const history = historyUrl ? [{ provide: HISTORY, useValue: HistoryStore.connect(historyUrl) }] : [];
  const blobStore = openBlobStore(opts.blobs ?? blobSettingsFromEnv());
  const blobs = blobStore ? [{ provide: BLOBS, useValue: blobStore }] : [];
  const workingDirMaxBytes = opts.workingDirMaxBytes ?? env.workingDirMaxBytes;
  const svc = await runService({
    name: 'admission',
    config: opts.config,
    onLeaseLost: opts.onLeaseLost,
    bodyLimit: opts.bodyLimit ?? env.bodyLimit,
    beforeListen: (app) => {
      // Working dir packages arrive as gzip bytes, up to their own bound (far over the JSON body limit).
      app
        .getHttpAdapter()
        .getInstance()
        .addContentTypeParser(WORKING_DIR_MEDIA_TYPES, { parseAs: 'buffer', bodyLimit: uploadLimitOf(workingDirMaxBytes) }, (_req, body, done) =>
          done(null, body),
        );
      return serveConsole(app, opts.consoleDir ?? DEFAULT_CONSOLE_DIR, { traceUrl: opts.traceUrl ?? env.traceUrl });
    },
    controllers: [
      BulkJobsController,
      JobsController,
      NodesController,
      OpenApiController,
      QueuesController,
      TenantsController,
      UsageController,
      WorkflowsController,
      SchedulesController,
      WorkflowTemplatesController,
      SemaphoresController,
      WorkingDirsController,
    ],
    providers: [
      JobsService,
      Readers,
      WorkflowsService,
      SchedulesService,
      WorkflowTemplatesService,
      WorkingDirsService,
      { provide: WORKING_DIR_MAX_BYTES, useValue: workingDirMaxBytes },
      { provide: AUTH, useValue: auth },
      { provide: CLOCK, useValue: clock },
      ...history,
      ...blobs,
      { provide: BACKLOG_GATE, useValue: new BacklogGate({ ...env.backlog, ...opts.backlog }) },
      { provide: SchedulerCalls, inject: [SERVICE], useFactory: (ctx: ServiceContext) => new SchedulerCalls(ctx.store, ctx.credential) },
      { provide: THROTTLE_TUNING, useValue: { maxInflight: env.maxInflightSubmits, ...opts.throttle } },
      {
        provide: READS_REFUSED,
        inject: [SERVICE],
        useFactory: (ctx: ServiceContext) => {
          const refused = new Counter({
            name: Metric.admissionReadsRefused,
            help: 'Reads (429) and event streams (429, 503, or closed as slow consumers) refused by a limit, by limit',
            labelNames: ['limit'],
            registers: [ctx.registry],
          });
          return (limit: string) => refused.inc({ limit });
        },
      },
      {
        provide: EventStreams,
        useFactory: (ctx: ServiceContext, refused: (l: string) => void) =>
          new EventStreams(ctx.store, { ...env.streams, ...opts.streams }, ctx.registry, refused, clock),
        inject: [SERVICE, READS_REFUSED],
      },
      { provide: READ_LIMITER, useValue: new ReadLimiter({ ...env.reads, ...opts.reads }) },
      { provide: APP_GUARD, useClass: ReadRateGuard },
      {
        provide: SUBMIT_LOAD,
        inject: [SERVICE],
        useFactory: (ctx: ServiceContext) => {
          const shed = new Counter({
            name: Metric.admissionSubmitsShed,
            help: 'Submits answered 503 overloaded because this replica was past its capacity, by reason (event_loop_delay, commit_latency)',
            labelNames: ['reason'],
            registers: [ctx.registry],
          });
          return new SubmitLoad({ ...env.overload, ...opts.overload }, (reason) => shed.inc({ reason }));
        },
      },
      { provide: APP_GUARD, useClass: OverloadGuard },
      { provide: TOKEN_EXPIRY_GAUGE, inject: [SERVICE], useFactory: (ctx: ServiceContext) => tokenExpiryGauge(auth, ctx.registry) },
    ],
  });
  log = svc.ctx.log;
  const close = svc.close.bind(svc);
  return Object.assign(svc, { close: () => close().finally(() => watched?.close()) });
}
