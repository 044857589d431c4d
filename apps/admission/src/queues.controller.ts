/**
 * `/v1/queues`: what each queue holds against its quota, its fair-share value, and what waits
 * in it. Tenants see their own queues; operators see all.
 */
import {
  ApiError,
  ErrorCode,
  NameSchema,
  parseWith,
  type Principal,
  PutQueueSchema,
  PutTenantSchema,
  type QueueView,
  type SchedulerQueuesRequest,
  type SchedulerQueuesResponse,
  type Tenant,
  toQueue,
  toTenant,
} from '@batchapi/api';
import { CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import { deleteQueue, getTenant, putQueue, putTenant, readCluster } from '@batchapi/store';
import { buildSnapshot, type ClusterSnapshot, queuePositions, queueViews } from '@batchapi/scheduling';
import { SchedulerCalls } from './scheduler-calls';
import { Body, Controller, Delete, Get, Inject, Optional, Param, Put, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { TokenAuthenticator } from './auth';
import { AUTH } from './jobs.controller';

/**
 * What the controllers of cluster state (queues, tenants, nodes) are built with: the token
 * authenticator, the service's store and the clock that stamps what they write.
 */
export abstract class ClusterStateController {
  constructor(
    @Inject(AUTH) protected readonly auth: TokenAuthenticator,
    @Inject(SERVICE) protected readonly ctx: ServiceContext,
    @Optional() @Inject(CLOCK) protected readonly clock: Clock = systemClock,
  ) {}
}

@Controller('v1/queues')
export class QueuesController extends ClusterStateController {
  constructor(
    @Inject(AUTH) auth: TokenAuthenticator,
    @Inject(SERVICE) ctx: ServiceContext,
    @Inject(SchedulerCalls) private readonly scheduler: SchedulerCalls,
    @Optional() @Inject(CLOCK) clock: Clock = systemClock,
  ) {
    super(auth, ctx, clock);
  }

  @Get()
  async list(@Req() req: FastifyRequest): Promise<{ queues: QueueView[] }> {
    const p = this.auth.authenticate(req.headers.authorization);
    return { queues: (await this.views({})).queues.filter((q) => visible(p, q)) };
  }

  @Get(':name')
  async get(@Req() req: FastifyRequest, @Param('name') name: string): Promise<QueueView> {
    const p = this.auth.authenticate(req.headers.authorization);
    // A name no queue can have is not found (and not sent to a scheduler).
    if (!NameSchema.safeParse(name).success) throw new ApiError(ErrorCode.NotFound, `queue ${name} not found`, { id: name });
    // Where the caller's jobs stand: the queue's waiting work in the scheduler's order.
    const { queues, positions } = await this.views({ queue: name, ...(p.role === 'operator' ? {} : { tenant: p.tenant }) });
    const q = queues.find((v) => v.name === name);
    if (!q || !visible(p, q)) throw new ApiError(ErrorCode.NotFound, `queue ${name} not found`, { id: name });
    return { ...q, positions: positions ?? [] };
  }

  /** Creates or changes a queue (operators). Admission and quota see it within a watch event. */
  @Put(':name')
  async put(@Req() req: FastifyRequest, @Param('name') name: string, @Body() body: unknown): Promise<QueueView> {
    this.auth.authenticateOperator(req.headers.authorization, 'queues');
    parseWith(NameSchema, name, 'name');
    const b = parseWith(PutQueueSchema, body);
    if (!(await getTenant(this.ctx.store, b.tenant)))
      throw new ApiError(ErrorCode.UnknownTenant, `tenant ${b.tenant} does not exist; create it first`, { field: 'tenant', id: b.tenant });
    await putQueue(this.ctx.store, toQueue(name, b));
    // From etcd, not a scheduler's cache: the answer shows the write it follows.
    return queueViews(await this.snapshot()).find((v) => v.name === name)!;
  }

  /** Removes a queue with no unfinished work (operators); 409 while jobs are in it. */
  @Delete(':name')
  async remove(@Req() req: FastifyRequest, @Param('name') name: string): Promise<{ deleted: string }> {
    this.auth.authenticateOperator(req.headers.authorization, 'queues');
    // A queue changed between the read and the delete is a CasConflictError: 409, retry.
    const res = await deleteQueue(this.ctx.store, name);
    if (res.outcome === 'absent') throw new ApiError(ErrorCode.NotFound, `queue ${name} not found`, { id: name });
    if (res.outcome === 'busy') {
      const busy = res.unfinishedJobs;
      throw new ApiError(ErrorCode.Conflict, `queue ${name} still has ${busy} unfinished job${busy === 1 ? '' : 's'}; cancel or wait for them first`, {
        id: name,
      });
    }
    return { deleted: name };
  }

  /** The cluster as the scheduler's snapshot builder sees it, from a fresh read of etcd (no usage history: fair share of what queues hold now). */
  private async snapshot(): Promise<ClusterSnapshot> {
    return buildSnapshot(await readCluster(this.ctx.store), this.clock.now());
  }

  /**
   * The views from a scheduler replica's live cache (its snapshot, with the usage history fair
   * share counts), or — when none answers — from a fresh read of etcd.
   */
  private async views(req: SchedulerQueuesRequest): Promise<SchedulerQueuesResponse> {
    const fromScheduler = await this.scheduler.queues(req);
    if (fromScheduler) return fromScheduler;
    const s = await this.snapshot();
    return { queues: queueViews(s), ...(req.queue !== undefined ? { positions: queuePositions(s, req.queue, req.tenant) } : {}) };
  }
}

/** `PUT /v1/tenants/:name`: creates or changes a tenant (operators). */
@Controller('v1/tenants')
export class TenantsController extends ClusterStateController {
  @Put(':name')
  async put(@Req() req: FastifyRequest, @Param('name') name: string, @Body() body: unknown): Promise<Tenant> {
    this.auth.authenticateOperator(req.headers.authorization, 'tenants');
    parseWith(NameSchema, name, 'name');
    const b = parseWith(PutTenantSchema, body);
    const tenant = toTenant(name, b);
    await putTenant(this.ctx.store, tenant);
    return tenant;
  }
}

function visible(p: Principal, q: QueueView): boolean {
  return p.role === 'operator' || q.tenant === p.tenant;
}
