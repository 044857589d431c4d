/** `/v1/jobs` routes. Thin: authenticate, delegate, choose the status. */
import type { JobView, Principal } from '@batchapi/api';
import { CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import { inSpan, SpanKind } from '@batchapi/telemetry';
import { Body, Controller, Delete, Get, Headers, HttpCode, Inject, Optional, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AUTH, TokenAuthenticator } from './auth';
import { EventStreams } from './event-stream';
import { Readers } from './inputs-readers';
import { JobsService } from './jobs.service';

export { AUTH } from './auth';

@Controller('v1/jobs')
export class JobsController {
  constructor(
    private readonly jobs: JobsService,
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    private readonly streams: EventStreams,
    private readonly readers: Readers,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {}

  @Post()
  async submit(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Body() body: unknown, @Headers('idempotency-key') key?: string) {
    await this.created(req, reply, 'job.submit', '/v1/jobs', (principal, now) => this.jobs.submit(principal, body, key, now));
  }

  /** A new job with the spec of job `id` (see `JobsService.resubmit`): 201 and the new job, 200 for a retry with the same Idempotency-Key. */
  @Post(':id/resubmit')
  async resubmit(
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
    @Param('id') id: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    await this.created(req, reply, 'job.resubmit', '/v1/jobs/{id}/resubmit', (principal, now) => this.jobs.resubmit(principal, id, body, key, now));
  }

  /** A request that makes a job, in its server span (continuing the caller's `traceparent`): 201 and its Location, or 200 for a retried key. */
  private async created(
    req: FastifyRequest,
    reply: FastifyReply,
    spanName: string,
    route: string,
    make: (principal: Principal, now: number) => Promise<{ view: JobView; created: boolean }>,
  ): Promise<void> {
    const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
    await inSpan(spanName, { parent: traceparent, kind: SpanKind.SERVER, attributes: { 'http.route': route } }, async (span) => {
      const principal = await inSpan('admission.authenticate', {}, () => this.auth.authenticate(req.headers.authorization));
      span.setAttribute('batch.tenant', principal.tenant);
      const { view, created } = await make(principal, this.clock.now());
      span.setAttribute('batch.job.id', view.id);
      reply
        .header('Location', `/v1/jobs/${view.id}`)
        .status(created ? 201 : 200)
        .send(view);
    });
  }

  @Get()
  list(@Req() req: FastifyRequest, @Query() query: unknown) {
    return this.jobs.list(this.auth.authenticate(req.headers.authorization), query);
  }

  /** Server-sent events: the counts per phase of the caller's jobs in etcd, now and at every change (the console's jobs page reloads its list on each). */
  @Get('events')
  async countEvents(@Req() req: FastifyRequest, @Res() reply: FastifyReply) {
    const principal = this.auth.authenticate(req.headers.authorization);
    await this.streams.serve(req, reply, {
      principal,
      event: 'jobs',
      prefixes: [this.ctx.store.keys.jobs()],
      read: () => this.jobs.countsSnapshot(principal),
      view: this.jobs.countsView(principal),
    });
  }

  @Get(':id')
  async get(@Req() req: FastifyRequest, @Param('id') id: string) {
    return this.jobs.get(await this.reader(req, id), id);
  }

  /** Server-sent events: the job's view now and at every change, until it ends. */
  @Get(':id/events')
  async events(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('id') id: string) {
    const principal = this.auth.authenticate(req.headers.authorization);
    const { keys } = this.ctx.store;
    await this.streams.serve(req, reply, {
      principal,
      event: 'job',
      prefixes: [keys.job(id), keys.groupsOf(id)],
      read: () => this.jobs.eventSnapshot(principal, id),
      view: this.jobs.streamView(id),
    });
  }

  @Get(':id/tasks')
  tasks(@Req() req: FastifyRequest, @Param('id') id: string, @Query() query: unknown) {
    return this.jobs.tasks(this.auth.authenticate(req.headers.authorization), id, query);
  }

  @Get(':id/results')
  async results(@Req() req: FastifyRequest, @Param('id') id: string) {
    return this.jobs.results(await this.reader(req, id), id);
  }

  @Get(':id/results/:index')
  async result(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('id') id: string, @Param('index') index: string) {
    const json = await this.jobs.result(await this.reader(req, id), id, index);
    reply.header('Content-Type', 'application/json').send(json);
  }

  /** Who reads job `id`: a user, or a step whose inputs token names it (`Readers`). */
  private reader(req: FastifyRequest, id: string): Promise<Principal> {
    return this.readers.principal(req.headers.authorization, { jobId: id }, this.clock.now());
  }

  @Get(':id/why')
  why(@Req() req: FastifyRequest, @Param('id') id: string) {
    return this.jobs.why(this.auth.authenticate(req.headers.authorization), id);
  }

  @Delete(':id')
  @HttpCode(202)
  cancel(@Req() req: FastifyRequest, @Param('id') id: string) {
    return this.jobs.cancel(this.auth.authenticate(req.headers.authorization), id, this.clock.now());
  }

  @Delete(':id/tasks/:index')
  @HttpCode(202)
  cancelTask(@Req() req: FastifyRequest, @Param('id') id: string, @Param('index') index: string) {
    return this.jobs.cancelTask(this.auth.authenticate(req.headers.authorization), id, index, this.clock.now());
  }

  @Get(':id/tasks/:index/logs')
  async logs(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('id') id: string, @Param('index') index: string, @Query() query: unknown) {
    const stream = await this.jobs.logs(this.auth.authenticate(req.headers.authorization), id, index, query);
    stream.on('error', (err) => this.ctx.log.warn({ err: err.message, job: id }, 'log stream broke'));
    reply.header('Content-Type', 'text/plain; charset=utf-8').send(stream);
  }
}

/** `POST /v1/jobs:batch` (a colon in the path, so outside the `v1/jobs` prefix). */
@Controller()
export class BulkJobsController {
  constructor(
    private readonly jobs: JobsService,
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {}

  @Post('v1/jobs::batch')
  @HttpCode(200)
  submitMany(@Req() req: FastifyRequest, @Body() body: unknown) {
    return this.jobs.submitMany(this.auth.authenticate(req.headers.authorization), body, this.clock.now());
  }
}
