/** `/v1/blobs/working-dirs` routes. Thin: authenticate, delegate, choose the status. */
import { Body, Controller, Get, Inject, Param, Put, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenAuthenticator } from './auth';
import { AUTH } from './jobs.controller';
import { WorkingDirsService } from './working-dirs';

@Controller('v1/blobs/working-dirs')
export class WorkingDirsController {
  constructor(
    private readonly dirs: WorkingDirsService,
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
  ) {}

  /** 200 and the package's size when the caller's tenant uploaded it, else 404; `HEAD` answers the same without a body. */
  @Get(':digest')
  get(@Req() req: FastifyRequest, @Param('digest') digest: string) {
    return this.dirs.get(this.auth.authenticate(req.headers.authorization), digest);
  }

  /** 201 when stored, 200 when it already was. */
  @Put(':digest')
  async put(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('digest') digest: string, @Body() body: unknown) {
    const { view, created } = await this.dirs.put(this.auth.authenticate(req.headers.authorization), digest, body);
    reply.status(created ? 201 : 200).send(view);
  }
}
