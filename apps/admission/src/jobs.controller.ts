/** `/v1/jobs` routes. Thin: authenticate, delegate, choose the status. */
import { CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import { inSpan, SpanKind } from '@batchapi/telemetry';
import { Body, Controller, Delete, Get, Headers, HttpCode, Inject, Optional, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TokenAuthenticator } from './auth';
import { EventStreams } from './event-stream';
import { JobsService } from './jobs.service';

/** Injection token of the authenticator. */
export const AUTH = Symbol('TokenAuthenticator');

@Controller('v1/jobs')
export class JobsController {
  constructor(
    private readonly jobs: JobsService,
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    private readonly streams: EventStreams,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {}

  @Post()
  async submit(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Body() body: unknown, @Headers('idempotency-key') key?: string) {
    const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
    await inSpan('job.submit', { parent: traceparent, kind: SpanKind.SERVER, attributes: { 'http.route': '/v1/jobs' } }, async (span) => {
      const principal = await inSpan('admission.authenticate', {}, () => this.auth.authenticate(req.headers.authorization));
      span.setAttribute('batch.tenant', principal.tenant);
      const { view, created } = await this.jobs.submit(principal, body, key, this.clock.now());
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

  @Get(':id')
  get(@Req() req: FastifyRequest, @Param('id') id: string) {
    return this.jobs.get(this.auth.authenticate(req.headers.authorization), id);
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
  results(@Req() req: FastifyRequest, @Param('id') id: string) {
    return this.jobs.results(this.auth.authenticate(req.headers.authorization), id);
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
