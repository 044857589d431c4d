/**
 * Starts a BatchAPI service: connects to etcd, takes the process lease, registers the
 * process as a member, and serves its Nest module on Fastify with `/healthz`, `/readyz`
 * and `/metrics`. Apps stay thin: they pass their module and their readiness check.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import 'reflect-metadata';
import { ApiError, ErrorCode } from '@batchapi/api';
import { type ElectedRole, EtcdStore, OutcomeUnknownError, type ProcessLease, serveWhileElected, StoreUnavailableError } from '@batchapi/store';
import { initTracing, Metric, shutdownTracing } from '@batchapi/telemetry';
import { Controller, type DynamicModule, Get, Global, Inject, Module, type Provider, Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { type MicroserviceOptions, type NestMicroservice, Transport } from '@nestjs/microservices';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { context, trace } from '@opentelemetry/api';
import type { FastifyReply } from 'fastify';
import pino, { type Logger } from 'pino';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { configFromEnv, type ServiceConfig } from './config';
import { ConfigError, exitOnConfigError } from './env';
import { ApiErrorFilter, toApiError } from './errors.filter';
import { RPC_FRAMING, RPC_MAX_CONNECTIONS, RpcApiErrorFilter, ServiceCredentialGuard } from './rpc-server';
import { type CredentialRefusal, ServiceCredential } from './service-credential';

/** Injection token of the `ServiceContext`. */
export const SERVICE = Symbol('ServiceContext');

/** What every part of a service shares. */
export interface ServiceContext {
  /** Service name: admission, quota, scheduler or executor. */
  name: string;
  config: ServiceConfig;
  store: EtcdStore;
  /** The process lease; also binds the member key. */
  lease: ProcessLease;
  registry: Registry;
  log: Logger;
  /** Extra readiness condition of the service (e.g. "caches synced"). */
  readiness: { check: () => boolean | Promise<boolean>; reason?: () => string };
  /** The cluster's service credential: sent on this service's internal calls, required on those it serves. */
  credential: ServiceCredential;
}

@Controller()
class HealthController {
  constructor(@Inject(SERVICE) private readonly ctx: ServiceContext) {}

  /** Liveness: the process answers. */
  @Get('healthz')
  healthz() {
    return { status: 'ok', service: this.ctx.name, instance: this.ctx.config.instanceId };
  }

  /** Readiness: the lease holds, etcd answers, and the service's own condition is met. */
  @Get('readyz')
  async readyz(@Res() reply: { status(n: number): { send(b: unknown): void } }) {
    const checks: Record<string, boolean> = { lease: this.ctx.lease.alive() };
    checks.etcd = await this.ctx.store.get(this.ctx.store.keys.member(this.ctx.name, this.ctx.config.instanceId)).then(
      () => true,
      () => false,
    );
    checks.service = await Promise.resolve(this.ctx.readiness.check()).catch(() => false);
    const ok = Object.values(checks).every(Boolean);
    reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not ready', checks, reason: ok ? undefined : this.ctx.readiness.reason?.() });
  }

  @Get('metrics')
  async metrics(@Res() reply: { header(k: string, v: string): unknown; send(b: unknown): void }) {
    reply.header('Content-Type', this.ctx.registry.contentType);
    reply.send(await this.ctx.registry.metrics());
  }
}

@Global()
@Module({})
class RuntimeModule {
  static forRoot(ctx: ServiceContext): DynamicModule {
    return { module: RuntimeModule, controllers: [HealthController], providers: [{ provide: SERVICE, useValue: ctx }], exports: [SERVICE] };
  }
}

/** Options of `runService`. */
export interface RunServiceOptions {
  name: string;
  /** The service's own controllers and providers. */
  controllers?: Array<new (...args: never[]) => unknown>;
  providers?: Provider[];
  /** Settings; read from the environment when absent. */
  config?: Partial<ServiceConfig>;
  /** Largest request body, in bytes. @default 1048576 */
  bodyLimit?: number;
  /**
   * Called once when the process lease can no longer be trusted (TTL passed since the last
   * acknowledged renewal, on this process's clock). `serviceMain` exits the process then,
   * so its supervisor restarts it with a fresh lease. Without it, the service takes a new
   * lease and registers again (right for stateless services such as admission).
   * @default take a new lease
   */
  onLeaseLost?: () => void;
  /**
   * Serve this service's `@MessagePattern` handlers to other services over TCP
   * (`@nestjs/microservices`) on `BATCH_RPC_PORT`; the address goes in the member record
   * (`members/{service}/{instance}`), where callers find it. @default false
   */
  rpc?: boolean;
  /**
   * Called once the service's routes and hooks are in place, before it listens: to register
   * Fastify plugins of its own (admission serves the console's static files here). @default none
   */
  beforeListen?: (app: NestFastifyApplication) => Promise<void>;
}

/** Where a service process is reached: its member record in etcd, on its process lease. */
export interface MemberRecord {
  service: string;
  id: string;
  pid: number;
  startedAt: number;
  /** Base URL of its HTTP API, once it listens. */
  url?: string;
  /** `host:port` of its service-to-service calls, when it serves them. */
  rpc?: string;
}

/** One HTTP route of a service: method and Fastify path (`/v1/jobs/:id`). */
export interface ServiceRoute {
  method: string;
  url: string;
}

/** A started service. */
export interface RunningService {
  app: NestFastifyApplication;
  ctx: ServiceContext;
  /** Base URL it listens on, e.g. `http://127.0.0.1:7070`. */
  url: string;
  /** Every HTTP route it serves, as registered with Fastify (the automatic HEAD of each GET included). */
  routes: readonly ServiceRoute[];
  /**
   * The first half of a graceful stop, which `serviceMain` awaits on SIGTERM before `close` (the
   * executor drains its node here); SIGINT skips it. @default none: `close` at once
   */
  drain?(): Promise<void>;
  close(): Promise<void>;
}

/** Sends of the member record on a new process lease before that lease is given up. */
const REGISTER_ATTEMPTS = 3;

/** Starts a service and returns once it listens. */
export async function runService(opts: RunServiceOptions): Promise<RunningService> {
  const config = { ...configFromEnv(), ...opts.config };
  initTracing(opts.name);
  const log = pino({
    name: opts.name,
    level: config.logLevel,
    base: { service: opts.name, instance: config.instanceId },
    mixin: traceFields,
    // Defence in depth: credentials and task environments never reach the logs, whatever is logged.
    redact: {
      paths: [
        'authorization',
        '*.authorization',
        'headers.authorization',
        '*.headers.authorization',
        'token',
        '*.token',
        'env',
        '*.env',
        'spec.env',
        '*.spec.env',
      ],
      censor: '***',
    },
  });
  const registry = new Registry();
  registry.setDefaultLabels({ service: opts.name });
  collectDefaultMetrics({ register: registry });
  const etcdLatency = new Histogram({
    name: Metric.etcdRequestDuration,
    help: 'etcd calls by operation',
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
    registers: [registry],
  });
  const etcdErrors = new Counter({
    name: Metric.etcdRequestErrors,
    help: 'etcd calls that failed (deadline, unavailable), by operation',
    labelNames: ['op'],
    registers: [registry],
  });
  const tls = config.etcdTls;
  const store = new EtcdStore({
    endpoints: config.etcdEndpoints,
    prefix: config.etcdPrefix,
    ...(tls
      ? {
          tls: {
            ca: readFileSync(tls.caFile),
            ...(tls.certFile ? { cert: readFileSync(tls.certFile) } : {}),
            ...(tls.keyFile ? { key: readFileSync(tls.keyFile) } : {}),
          },
        }
      : {}),
    onCall: (op, seconds, ok) => {
      etcdLatency.observe({ op }, seconds);
      if (!ok) etcdErrors.inc({ op });
    },
    onWatchStreamFault: (err) =>
      log.warn({ err: err.message }, 'etcd watch stream out of step with its watchers: opened again, every watch resumes from its own revision'),
  });
  new Counter({
    name: Metric.etcdWatchStreamResets,
    help: 'Times an informer tore the etcd watch stream down because it answered nothing for the watch acknowledgement timeout',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(store.watchStreamResets);
    },
  });
  const lease = await store.grantLease(config.leaseTtlSeconds);
  lease.onRenewalFailed((err) => log.warn({ err: err.message, sinceRenewalMs: lease.sinceRenewalMs() }, 'lease keep-alive failed'));
  const ctx: ServiceContext = {
    name: opts.name,
    config,
    store,
    lease,
    registry,
    log,
    readiness: { check: () => true },
    credential: ServiceCredential.fromEnv(),
  };
  const member: MemberRecord = { service: opts.name, id: config.instanceId, pid: process.pid, startedAt: Date.now() };
  const register = (l: ProcessLease) => store.txn([], [{ put: store.keys.member(opts.name, config.instanceId), value: member, lease: l.id }]);
  /** `register`, sent again while its outcome is unknown (an idempotent put) and the lease holds. */
  const registerAgain = async (l: ProcessLease) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await register(l);
      } catch (err) {
        if (attempt >= REGISTER_ATTEMPTS || !l.alive() || !(err instanceof OutcomeUnknownError || err instanceof StoreUnavailableError)) throw err;
      }
    }
  };
  // A lease lost this early is replaced once the service runs (see below), not a failed start.
  await registerAgain(lease).catch((err: unknown) => {
    if (lease.alive()) throw err;
  });

  @Module({ imports: [RuntimeModule.forRoot(ctx)], controllers: opts.controllers ?? [], providers: opts.providers ?? [] })
  class ServiceModule {}

  const adapter = new FastifyAdapter({
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    routerOptions: { maxParamLength: 1024 },
    // Errors the router raises before any handler (bad URL encoding, over-long path
    // parameters) get the same error body and codes as every other error.
    frameworkErrors: (err: Error, _req: unknown, reply: FastifyReply) => {
      const e = toApiError(err);
      void reply.status(e.status).send(e.toBody());
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(ServiceModule, adapter, { logger: ['error', 'warn'] });
  // Nest adds its routes when the app starts listening, after this hook is in place.
  const routes: ServiceRoute[] = [];
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onRoute', (r) => {
      for (const method of [r.method].flat()) routes.push({ method, url: r.url });
    });
  app.useGlobalFilters(new ApiErrorFilter(log));
  instrumentHttp(app, registry);
  const refusedCalls = new Counter({
    name: Metric.internalCallsRefused,
    help: 'Internal calls refused for a missing or wrong service credential, by surface (http, rpc) and reason',
    labelNames: ['surface', 'reason'],
    registers: [registry],
  });
  guardInternalRoutes(app, ctx.credential, (reason) => refusedCalls.inc({ surface: 'http', reason }));
  if (opts.rpc) {
    // Not inheriting the app's config: its error filter answers HTTP; a failed call gets an
    // error reply with a stable code at once (the caller does not wait out its deadline).
    // Listeners deferred until the guard and filter are in place (they are read when the
    // listeners are made); the app's own init hooks have run already and must not run twice.
    const rpc = app.connectMicroservice<MicroserviceOptions>(
      { transport: Transport.TCP, options: { host: config.host, port: config.rpcPort, ...RPC_FRAMING } },
      { deferInitialization: true },
    );
    (rpc as NestMicroservice).setIsInitHookCalled(true);
    rpc.useGlobalGuards(new ServiceCredentialGuard(ctx.credential, (reason) => refusedCalls.inc({ surface: 'rpc', reason })));
    rpc.useGlobalFilters(new RpcApiErrorFilter(log));
    await app.startAllMicroservices();
    const server = rpc.unwrap<Server>();
    server.maxConnections = RPC_MAX_CONNECTIONS;
    member.rpc = `${config.advertiseHost}:${(server.address() as AddressInfo).port}`;
  }
  await opts.beforeListen?.(app);
  await app.listen(config.port, config.host);
  const addr = app.getHttpServer().address() as { port: number };
  const url = `http://${config.host}:${addr.port}`;
  member.url = `http://${config.advertiseHost}:${addr.port}`;
  // The lease may have lapsed while the app was built (a slow start on a loaded machine: its
  // keep-alives wait for the same event loop). Its loss is then handled like any later one, by
  // the watchdog below (a new lease and the member record on it, or `onLeaseLost`); it is not a
  // failed start: the process used to exit here, and a restarted replica never came up.
  try {
    await registerAgain(ctx.lease);
  } catch (err) {
    if (ctx.lease.alive()) throw err;
  }
  log.info({ url, rpc: member.rpc }, `${opts.name} listening`);
  let closed = false;
  let renewing = false;
  const watchdog = setInterval(() => {
    if (ctx.lease.alive() || renewing) return;
    log.error({ sinceRenewalMs: ctx.lease.sinceRenewalMs(), reason: ctx.lease.lostReason ?? 'no renewal acknowledged within its TTL' }, 'process lease lost');
    if (opts.onLeaseLost) {
      clearInterval(watchdog);
      opts.onLeaseLost();
      return;
    }
    renewing = true;
    const old = ctx.lease;
    old.markLost('no renewal acknowledged within its TTL: a new lease is taken');
    // Give the old lease up in etcd too: it may still live there (a new raft leader extends every
    // lease, e.g. after a quorum loss), and with it this process's leader keys, which would keep
    // every replica — this one, on its new lease, included — out of those roles for good. If etcd
    // cannot be reached, its keep-alive stops at least, so it expires within its TTL.
    void old.revoke();
    void store
      .grantLease(config.leaseTtlSeconds)
      .then(async (fresh) => {
        try {
          await registerAgain(fresh);
        } catch (err) {
          // Not left alive unused: the next watchdog tick tries again with another lease.
          await fresh.revoke();
          throw err;
        }
        ctx.lease = fresh;
        log.info('took a new process lease');
      })
      .catch((err: Error) => log.warn({ err: err.message }, 'could not take a new process lease; trying again'))
      .finally(() => {
        renewing = false;
      });
  }, 250);
  watchdog.unref();
  return {
    app,
    ctx,
    url,
    routes,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(watchdog);
      await app.close();
      await ctx.lease.revoke();
      await store.close();
    },
  };
}

/**
 * Serves an elected role of this service (`serveWhileElected`, identity = the instance id) on
 * whichever process lease the service holds at the moment. After a lease loss the runtime
 * takes a new lease (unless `onLeaseLost` ends the process) and the role campaigns again on
 * it, so no elected role stops for good while its replica still reports ready. Every elected
 * role goes through here rather than handing a lease of its own to `serveWhileElected`.
 */
export function serveElectedRole(ctx: ServiceContext, role: string, signal: AbortSignal, r: ElectedRole): Promise<void> {
  return serveWhileElected(ctx.store, role, ctx.config.instanceId, () => ctx.lease, signal, r);
}

/** Trace and span ids of the active span, on every log line written inside one. */
function traceFields(): Record<string, string> {
  const sc = trace.getSpanContext(context.active());
  return sc && sc.traceId !== '00000000000000000000000000000000' ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}

/**
 * Every `/internal/` route of every service answers only callers with the service credential
 * (`Authorization: Bearer <service token>`): 401 `unauthenticated` otherwise, before any handler runs.
 */
function guardInternalRoutes(app: NestFastifyApplication, credential: ServiceCredential, refused: (reason: CredentialRefusal) => void): void {
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onRequest', (req, reply, done) => {
      // The matched route, not the raw URL: an encoded or oddly cased path cannot slip past.
      if (!req.routeOptions.url?.startsWith('/internal/')) return done();
      const refusal = credential.refusal(req.headers.authorization);
      if (!refusal) return done();
      refused(refusal);
      const e = new ApiError(ErrorCode.Unauthenticated, 'internal routes need the cluster\'s service credential: "Authorization: Bearer <service token>"', {
        field: 'Authorization',
      });
      void reply.status(e.status).send(e.toBody());
    });
}

/** Counts requests by route, method and status, and observes their latency. */
function instrumentHttp(app: NestFastifyApplication, registry: Registry): void {
  const requests = new Counter({
    name: Metric.httpRequests,
    help: 'HTTP requests by route, method and status code',
    labelNames: ['route', 'method', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: Metric.httpDuration,
    help: 'HTTP request latency by route and method',
    labelNames: ['route', 'method'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const fastify = app.getHttpAdapter().getInstance();
  fastify.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions?.url ?? 'unmatched';
    requests.inc({ route, method: req.method, code: String(reply.statusCode) });
    duration.observe({ route, method: req.method }, reply.elapsedTime / 1000);
    done();
  });
}

/** Runs a service as the main of its process: stops cleanly on SIGTERM (after its drain, if it has one) or SIGINT (at once). */
export async function serviceMain(start: (onLeaseLost: () => void) => Promise<RunningService>): Promise<void> {
  try {
    const svc = await start(() => {
      // Self-fence: stop at once; in-flight work of this process is no longer ours. A hung
      // trace exporter gets one second, no more.
      setTimeout(() => process.exit(75), 1000).unref();
      void shutdownTracing().finally(() => process.exit(75));
    });
    // SIGTERM (what an orchestrator sends) drains first; SIGINT (Ctrl-C) stops at once, also during a drain.
    const stop = async (drain: boolean) => {
      if (drain) await svc.drain?.().catch(() => undefined);
      await svc.close().catch(() => undefined);
      await shutdownTracing();
      process.exit(0);
    };
    process.once('SIGINT', () => void stop(false));
    process.once('SIGTERM', () => void stop(true));
  } catch (err) {
    // A bad variable: its message says which and what to set, a stack trace would only hide it.
    if (err instanceof ConfigError) return exitOnConfigError(err);
    console.error(err);
    process.exit(1);
  }
}
