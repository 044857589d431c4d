/** `/v1/workflows` routes. Thin: authenticate, delegate, choose the status. */
import { CLOCK, type Clock, systemClock } from '@batchapi/runtime';
import { inSpan, SpanKind } from '@batchapi/telemetry';
import { Body, Controller, Delete, Get, Headers, Inject, Optional, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenAuthenticator } from './auth';
import { EventStreams } from './event-stream';
import { Readers } from './inputs-readers';
import { AUTH } from './jobs.controller';
import { WorkflowsService } from './workflows.service';

@Controller('v1/workflows')
export class WorkflowsController {
  constructor(
    private readonly workflows: WorkflowsService,
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    private readonly streams: EventStreams,
    private readonly readers: Readers,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {}

  /** Server-sent events: the workflow's view now and at every change, until it ends. */
  @Get(':id/events')
  async events(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('id') id: string) {
    const principal = this.auth.authenticate(req.headers.authorization);
    await this.streams.serve(req, reply, {
      principal,
      event: 'workflow',
      prefixes: [this.workflows.keyOf(id)],
      read: () => this.workflows.eventSnapshot(principal, id),
      view: this.workflows.streamView(id),
    });
  }

  @Post()
  async submit(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Body() body: unknown, @Headers('idempotency-key') key?: string) {
    const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
    await inSpan('workflow.submit', { parent: traceparent, kind: SpanKind.SERVER, attributes: { 'http.route': '/v1/workflows' } }, async () => {
      const principal = this.auth.authenticate(req.headers.authorization);
      const { view, created } = await this.workflows.submit(principal, body, key, this.clock.now());
      reply
        .header('Location', `/v1/workflows/${view.id}`)
        .status(created ? 201 : 200)
        .send(view);
    });
  }

  /** Re-run from failure: a new run of the failed, cancelled and skipped steps and those after them; the others' results are reused. */
  @Post(':id/retry')
  async retry(
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
    @Param('id') id: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
    await inSpan(
      'workflow.retry',
      { parent: traceparent, kind: SpanKind.SERVER, attributes: { 'http.route': '/v1/workflows/:id/retry', 'batch.workflow.retry_of': id } },
      async () => {
        const principal = this.auth.authenticate(req.headers.authorization);
        const { view, created } = await this.workflows.retry(principal, id, body, key, this.clock.now());
        reply
          .header('Location', `/v1/workflows/${view.id}`)
          .status(created ? 201 : 200)
          .send(view);
      },
    );
  }

  @Get()
  list(@Req() req: FastifyRequest, @Query() query: unknown) {
    return this.workflows.list(this.auth.authenticate(req.headers.authorization), query);
  }

  @Get(':id')
  async get(@Req() req: FastifyRequest, @Param('id') id: string) {
    return this.workflows.get(await this.readers.principal(req.headers.authorization, { workflowId: id }, this.clock.now()), id);
  }

  @Delete(':id')
  cancel(@Req() req: FastifyRequest, @Param('id') id: string) {
    return this.workflows.cancel(this.auth.authenticate(req.headers.authorization), id, this.clock.now());
  }
}
