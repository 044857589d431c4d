/** `/v1/workflow-templates` routes. Thin: authenticate, delegate, choose the status. */
import { CLOCK, type Clock, systemClock } from '@batchapi/runtime';
import { inSpan, SpanKind } from '@batchapi/telemetry';
import { Body, Controller, Delete, Get, Headers, Inject, Optional, Param, Post, Put, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenAuthenticator } from './auth';
import { AUTH } from './jobs.controller';
import { WorkflowTemplatesService } from './workflow-templates.service';

@Controller('v1/workflow-templates')
export class WorkflowTemplatesController {
  constructor(
    private readonly templates: WorkflowTemplatesService,
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {}

  @Put(':name')
  async put(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('name') name: string, @Body() body: unknown) {
    const { view, created } = await this.templates.put(this.auth.authenticate(req.headers.authorization), name, body, this.clock.now());
    reply
      .header('Location', `/v1/workflow-templates/${view.name}`)
      .status(created ? 201 : 200)
      .send(view);
  }

  @Get()
  list(@Req() req: FastifyRequest, @Query() query: unknown) {
    return this.templates.list(this.auth.authenticate(req.headers.authorization), query);
  }

  @Get(':name')
  get(@Req() req: FastifyRequest, @Param('name') name: string, @Query() query: unknown) {
    return this.templates.get(this.auth.authenticate(req.headers.authorization), name, query);
  }

  @Delete(':name')
  delete(@Req() req: FastifyRequest, @Param('name') name: string, @Query() query: unknown) {
    return this.templates.delete(this.auth.authenticate(req.headers.authorization), name, query);
  }

  /** A run: the template's workflow with the given values, submitted as `POST /v1/workflows`. */
  @Post(':name/runs')
  async run(
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
    @Param('name') name: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
    await inSpan(
      'workflow.submit',
      { parent: traceparent, kind: SpanKind.SERVER, attributes: { 'http.route': '/v1/workflow-templates/:name/runs', 'batch.workflow.template': name } },
      async () => {
        const principal = this.auth.authenticate(req.headers.authorization);
        const { view, created } = await this.templates.run(principal, name, body, key, this.clock.now());
        reply
          .header('Location', `/v1/workflows/${view.id}`)
          .status(created ? 201 : 200)
          .send(view);
      },
    );
  }
}
