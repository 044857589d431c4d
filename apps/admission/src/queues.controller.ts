/**
 * `/v1/queues`: what each queue holds against its quota, its fair-share value, and what waits
 * in it. Tenants see their own queues; operators see all.
 */
import {
  addResources, ApiError, type Binding, countTasks, ErrorCode, formatResources, type JobRecord, type NodeRecord, type Principal, type Queue, type QueueView, type ResourceVector,
} from '@batchapi/api';
import { SERVICE, type ServiceContext } from '@batchapi/runtime';
import { dominantShare } from '@batchapi/scheduling';
import { Controller, Get, Inject, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { TokenAuthenticator } from './auth';
import { AUTH } from './jobs.controller';

@Controller('v1/queues')
export class QueuesController {
  constructor(@Inject(AUTH) private readonly auth: TokenAuthenticator, @Inject(SERVICE) private readonly ctx: ServiceContext) {}

  @Get()
  async list(@Req() req: FastifyRequest): Promise<{ queues: QueueView[] }> {
    const p = this.auth.authenticate(req.headers.authorization);
    return { queues: (await this.views()).filter((q) => visible(p, q)) };
  }

  @Get(':name')
  async get(@Req() req: FastifyRequest, @Param('name') name: string): Promise<QueueView> {
    const p = this.auth.authenticate(req.headers.authorization);
    const q = (await this.views()).find((v) => v.name === name);
    if (!q || !visible(p, q)) throw new ApiError(ErrorCode.NotFound, `queue ${name} not found`, { id: name });
    return q;
  }

  private async views(): Promise<QueueView[]> {
    const { store } = this.ctx;
    const [queues, bindings, jobs, nodes] = await Promise.all([
      store.listAll<Queue>(store.keys.queues()),
      store.listAll<Binding>(store.keys.bindings()),
      store.listAll<JobRecord>(store.keys.jobs()),
      store.listAll<NodeRecord>(store.keys.nodes()),
    ]);
    const capacity = nodes.items.reduce<ResourceVector>((acc, n) => addResources(acc, n.value.capacity), {});
    return queues.items.map(({ value: q }) => {
      let used: ResourceVector = {};
      let runningTasks = 0;
      for (const { value: b } of bindings.items) if (b.queue === q.name) { used = addResources(used, b.resources, b.end - b.start); runningTasks += b.end - b.start; }
      const waiting = jobs.items.map((j) => j.value).filter((j) => j.queue === q.name && (j.phase === 'Queued' || j.phase === 'Running') && countTasks(j.pending) > 0);
      return {
        name: q.name,
        tenant: q.tenant,
        weight: q.weight ?? 1,
        nominal: formatResources(q.nominal),
        used: formatResources(used),
        fairShare: Math.round(dominantShare(used, capacity, q.weight ?? 1) * 10_000) / 10_000,
        pendingTasks: waiting.reduce((n, j) => n + countTasks(j.pending), 0),
        pendingJobs: waiting.length,
        runningTasks,
      };
    });
  }
}

function visible(p: Principal, q: QueueView): boolean {
  return p.role === 'operator' || q.tenant === p.tenant;
}
