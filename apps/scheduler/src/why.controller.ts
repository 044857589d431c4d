/**
 * `scheduler.why` (a `@nestjs/microservices` call over TCP): "why is this job pending?"
 * worked out by this replica on the snapshot its cycles place from (the one builder, with the
 * usage history fair share counts) — instead of admission listing them all from etcd. Any
 * replica answers (standbys keep their caches warm); admission asks standbys first, the leader last.
 * The runtime's guard has checked the caller's service credential before this runs; the
 * payload is validated here (bounded like an API request) and a bad one gets an
 * `invalid_argument` reply naming the field.
 */
import {
  parseWith,
  SCHEDULER_QUEUES,
  SCHEDULER_WHY,
  SchedulerQueuesRequestSchema,
  type SchedulerQueuesResponse,
  SchedulerWhyRequestSchema,
  type SchedulerWhyResponse,
} from '@batchapi/api';
import { CLOCK, type Clock, systemClock } from '@batchapi/runtime';
import { explainJob, queuePositions, queueViews, semaphoreViews } from '@batchapi/scheduling';
import { Controller, Inject, Optional } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { SchedulerService } from './scheduler.service';

@Controller()
export class WhyController {
  constructor(
    @Inject(SchedulerService) private readonly scheduler: SchedulerService,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {}

  @MessagePattern(SCHEDULER_WHY)
  why(@Payload() payload: unknown): SchedulerWhyResponse {
    const req = parseWith(SchedulerWhyRequestSchema, payload);
    const { cache } = this.scheduler;
    if (!cache.synced) throw new RpcException('the scheduler cache is not synced yet');
    const now = this.clock.now();
    const backfill = this.scheduler.backfillSettings();
    return explainJob(this.scheduler.snapshotAt(now), req.job, 'scheduler', {
      preemption: this.scheduler.preemptionAt(now),
      ...(backfill ? { backfill } : {}),
      defragmenting: this.scheduler.defragmentingAt(now),
    });
  }

  /** `scheduler.queues`: the queue views (and one queue's positions) from the same snapshot, with the usage history fair share counts. */
  @MessagePattern(SCHEDULER_QUEUES)
  queues(@Payload() payload: unknown): SchedulerQueuesResponse {
    const req = parseWith(SchedulerQueuesRequestSchema, payload);
    if (!this.scheduler.cache.synced) throw new RpcException('the scheduler cache is not synced yet');
    const s = this.scheduler.snapshotAt(this.clock.now());
    return {
      queues: queueViews(s),
      ...(req.queue !== undefined ? { positions: queuePositions(s, req.queue, req.tenant) } : {}),
      semaphores: semaphoreViews(s.semaphores),
    };
  }
}
