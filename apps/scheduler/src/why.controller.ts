/**
 * `scheduler.why` (a `@nestjs/microservices` call over TCP): "why is this job pending?"
 * worked out by this replica from its live cache — the nodes, allocations, queues, cordons
 * and waiting jobs it places from — instead of admission listing them all from etcd. Any
 * replica answers (standbys keep their caches warm); admission asks standbys first, the leader last.
 * The runtime's guard has checked the caller's service credential before this runs; the
 * payload is validated here (bounded like an API request) and a bad one gets an
 * `invalid_argument` reply naming the field.
 */
import { type Cordon, parseWith, SCHEDULER_WHY, SchedulerWhyRequestSchema, type SchedulerWhyResponse } from '@batchapi/api';
import { CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import { allocationsByNode } from '@batchapi/store';
import { explainJob } from '@batchapi/scheduling';
import { Controller, Inject, Optional } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { SchedulerService } from './scheduler.service';

@Controller()
export class WhyController {
  constructor(
    @Inject(SchedulerService) private readonly scheduler: SchedulerService,
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {}

  @MessagePattern(SCHEDULER_WHY)
  why(@Payload() payload: unknown): SchedulerWhyResponse {
    const req = parseWith(SchedulerWhyRequestSchema, payload);
    const { cache } = this.scheduler;
    if (!cache.synced) throw new RpcException('the scheduler cache is not synced yet');
    const allocs = allocationsByNode(this.ctx.store.keys, cache.allocs.items.values());
    return explainJob(
      {
        job: req.job,
        nodes: [...cache.nodes.items.values()].map((n) => n.value),
        allocs,
        queues: [...cache.queues.items.values()].map((q) => q.value),
        jobs: [...cache.jobs.items.values()].map((j) => j.value),
        cordons: [...cache.cordons.items.values()].map((c): Cordon => c.value),
        now: this.clock.now(),
      },
      'scheduler',
    );
  }
}
