/**
 * Internal log endpoint, read by admission on a user's behalf (admission checks the tenant):
 * `GET /internal/logs/:jobId/:index/:attempt/:stream[?follow=true]`. With follow, bytes are
 * streamed as they are written until the attempt's process has exited and the file is drained.
 */
import { createReadStream, existsSync, type ReadStream, statSync } from 'node:fs';
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
  read(
    @Param('jobId') jobId: string,
    @Param('index') index: string,
    @Param('attempt') attempt: string,
    @Param('stream') stream: string,
    @Query('follow') follow: string | undefined,
    @Res() reply: FastifyReply,
  ) {
    checkParam('jobId', jobId, /^[A-Za-z0-9_-]{1,64}$/, 'a job id: letters, digits, "-" or "_"');
    checkParam('index', index, /^\d{1,9}$/, 'a task index: a number');
    checkParam('attempt', attempt, /^[1-9]\d{0,5}$/, 'an attempt: a number from 1');
    checkParam('stream', stream, /^(stdout|stderr)$/, '"stdout" or "stderr"');
    const paths = attemptPaths(this.agent.config.dataDir, jobId, Number(index), Number(attempt));
    const file = stream === 'stdout' ? paths.stdout : paths.stderr;
    if (!existsSync(file)) throw new ApiError(ErrorCode.NotFound, `no ${stream} log for task ${index} attempt ${attempt} of job ${jobId}`, { id: jobId });
    reply.header('Content-Type', 'text/plain; charset=utf-8');
    if (follow !== 'true' && follow !== '1') return reply.send(createReadStream(file));
    const out = new PassThrough();
    let offset = 0;
    let closed = false;
    let reading: ReadStream | undefined;
    reply.raw.on('close', () => {
      closed = true;
      reading?.destroy();
    });
    const pump = async () => {
      while (!closed) {
        const running = this.agent.isRunning(jobId, Number(index), Number(attempt));
        let size = 0;
        try {
          size = statSync(file).size;
        } catch {
          break;
        }
        // The file was rotated (copied to `.1` and truncated): follow it from its new start.
        if (size < offset) offset = 0;
        if (size > offset) {
          await new Promise<void>((resolve) => {
            // pipe: a slow reader slows the file reads instead of filling memory
            reading = createReadStream(file, { start: offset, end: size - 1 });
            reading.on('end', resolve);
            reading.on('close', resolve);
            reading.on('error', () => resolve());
            reading.pipe(out, { end: false });
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

/** Path parameters name files: anything but the expected shape (e.g. `..`) is refused before touching the disk. */
function checkParam(field: string, value: string, shape: RegExp, what: string): void {
  if (!shape.test(value)) throw new ApiError(ErrorCode.InvalidArgument, `${field} must be ${what}; got ${JSON.stringify(value.slice(0, 80))}`, { field });
}
