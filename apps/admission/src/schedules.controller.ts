/** `/v1/schedules` routes (cron jobs and cron workflows). Thin: authenticate, delegate, choose the status. */
import { CLOCK, type Clock, systemClock } from '@batchapi/runtime';
import { Body, Controller, Delete, Get, HttpCode, Inject, Optional, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenAuthenticator } from './auth';
import { AUTH } from './jobs.controller';
import { SchedulesService } from './schedules.service';

@Controller('v1/schedules')
export class SchedulesController {
  constructor(
    private readonly schedules: SchedulesService,
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {}

  @Post()
  async create(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Body() body: unknown) {
    const view = await this.schedules.create(this.auth.authenticate(req.headers.authorization), body, this.clock.now());
    reply.header('Location', `/v1/schedules/${view.name}`).status(201).send(view);
  }

  @Get()
  list(@Req() req: FastifyRequest, @Query() query: unknown) {
    return this.schedules.list(this.auth.authenticate(req.headers.authorization), query);
  }

  @Get(':name')
  get(@Req() req: FastifyRequest, @Param('name') name: string, @Query() query: unknown) {
    return this.schedules.get(this.auth.authenticate(req.headers.authorization), name, query);
  }

  @Delete(':name')
  delete(@Req() req: FastifyRequest, @Param('name') name: string, @Query() query: unknown) {
    return this.schedules.delete(this.auth.authenticate(req.headers.authorization), name, query);
  }

  @Post(':name/pause')
  @HttpCode(200)
  pause(@Req() req: FastifyRequest, @Param('name') name: string, @Query() query: unknown, @Body() body: unknown) {
    return this.schedules.pause(this.auth.authenticate(req.headers.authorization), name, query, body);
  }

  @Post(':name/resume')
  @HttpCode(200)
  resume(@Req() req: FastifyRequest, @Param('name') name: string, @Query() query: unknown, @Body() body: unknown) {
    return this.schedules.resume(this.auth.authenticate(req.headers.authorization), name, query, body, this.clock.now());
  }

  @Post(':name/trigger')
  @HttpCode(200)
  trigger(@Req() req: FastifyRequest, @Param('name') name: string, @Query() query: unknown, @Body() body: unknown) {
    return this.schedules.trigger(this.auth.authenticate(req.headers.authorization), name, query, body, this.clock.now());
  }
}
