/**
 * Internal log endpoint, read by admission on a user's behalf (admission checks the tenant):
 * `GET /internal/logs/:jobId/:index/:attempt/:stream[?follow=true]`. With follow, bytes are
 * streamed as they are written until the attempt's process has exited and the file is drained.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { ApiError, ErrorCode } from '@batchapi/api';
import { Controller, Get, Inject, Param, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ExecutorAgent } from './agent';
import { attemptPaths } from './task-process';

@Controller('internal/logs')
export class LogsController {
  constructor(@Inject(ExecutorAgent) private readonly agent: ExecutorAgent) {}

  @Get(':jobId/:index/:attempt/:stream')
  read(@Param('jobId') jobId: string, @Param('index') index: string, @Param('attempt') attempt: string, @Param('stream') stream: string, @Query('follow') follow: string | undefined, @Res() reply: FastifyReply) {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(jobId) || !/^\d{1,9}$/.test(index) || !/^\d{1,6}$/.test(attempt) || (stream !== 'stdout' && stream !== 'stderr')) {
      throw new ApiError(ErrorCode.InvalidArgument, 'bad log path', { field: 'path' });
    }
    const paths = attemptPaths(this.agent.config.dataDir, jobId, Number(index), Number(attempt));
    const file = stream === 'stdout' ? paths.stdout : paths.stderr;
    if (!existsSync(file)) throw new ApiError(ErrorCode.NotFound, `no ${stream} log for task ${index} attempt ${attempt} of job ${jobId}`, { id: jobId });
    reply.header('Content-Type', 'text/plain; charset=utf-8');
    if (follow !== 'true' && follow !== '1') return reply.send(createReadStream(file));
    const out = new PassThrough();
    let offset = 0;
    let closed = false;
    reply.raw.on('close', () => { closed = true; });
    const pump = async () => {
      while (!closed) {
        const running = this.agent.isRunning(jobId, Number(index), Number(attempt));
        const size = statSync(file).size;
        if (size > offset) {
          await new Promise<void>((resolve) => {
            const r = createReadStream(file, { start: offset, end: size - 1 });
            r.on('data', (c) => out.write(c));
            r.on('end', resolve);
            r.on('error', () => resolve());
          });
          offset = size;
        } else if (!running) break;
        else await new Promise((r) => setTimeout(r, 200));
      }
      out.end();
    };
    void pump();
    return reply.send(out);
  }
}
