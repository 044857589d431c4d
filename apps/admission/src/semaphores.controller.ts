/**
 * `/v1/semaphores`: named semaphores (a capacity of units that running tasks hold, see
 * libs/api's `semaphore.ts`) and the mutexes jobs hold. Tenants create and see their own and the
 * `global/…` ones; only operators create, change or delete `global/…` ones or another tenant's.
 * What is held comes from a scheduler replica's live cache (no listing of etcd per request),
 * or — when none answers — from one fresh read of etcd.
 */
import {
  ApiError,
  ErrorCode,
  GLOBAL_SEMAPHORE_PREFIX,
  NameSchema,
  parseWith,
  type Principal,
  PutSemaphoreSchema,
  SemaphoreQuerySchema,
  semaphoreId,
  SemaphoreNameSchema,
  type SemaphoreView,
} from '@batchapi/api';
import { CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import { buildSnapshot, semaphoreViews } from '@batchapi/scheduling';
import { deleteSemaphore, putSemaphore, readCluster } from '@batchapi/store';
import { Body, Controller, Delete, Get, HttpCode, Inject, Optional, Param, Put, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { TokenAuthenticator } from './auth';
import { AUTH } from './jobs.controller';
import { SchedulerCalls } from './scheduler-calls';

@Controller('v1/semaphores')
export class SemaphoresController {
  constructor(
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    @Inject(SchedulerCalls) private readonly scheduler: SchedulerCalls,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {}

  /** Every semaphore and held or awaited mutex the caller may see. */
  @Get()
  async list(@Req() req: FastifyRequest): Promise<{ semaphores: SemaphoreView[] }> {
    const p = this.auth.authenticate(req.headers.authorization);
    return { semaphores: (await this.views()).filter((v) => visible(p, v)) };
  }

  /** One semaphore (or a mutex, with `?mutex=true`) of the caller's tenant, or of `?tenant=` for operators. */
  @Get(':semaphore')
  async get(@Req() req: FastifyRequest, @Param('semaphore') name: string, @Query() query: unknown): Promise<SemaphoreView> {
    const p = this.auth.authenticate(req.headers.authorization);
    const q = parseWith(SemaphoreQuerySchema, query ?? {});
    if (!SemaphoreNameSchema.safeParse(name).success) throw notFound(name);
    const tenant = this.tenantFor(p, q.tenant);
    const mutex = q.mutex === 'true';
    const global = name.startsWith(GLOBAL_SEMAPHORE_PREFIX);
    const v = (await this.views()).find((s) => s.name === name && s.mutex === mutex && (global ? s.tenant === undefined : s.tenant === tenant));
    if (!v) throw notFound(name);
    return v;
  }

  /**
   * Creates a semaphore or changes its capacity (200 either way, with the view). Lowering the
   * capacity below what is held stops nothing: new grants wait until enough units come back.
   */
  @Put(':semaphore')
  async put(@Req() req: FastifyRequest, @Param('semaphore') name: string, @Body() body: unknown): Promise<SemaphoreView> {
    const p = this.auth.authenticate(req.headers.authorization);
    parseWith(SemaphoreNameSchema, name, 'name');
    const b = parseWith(PutSemaphoreSchema, body);
    const global = name.startsWith(GLOBAL_SEMAPHORE_PREFIX);
    if (global && p.role !== 'operator')
      throw new ApiError(
        ErrorCode.PermissionDenied,
        `only operators create or change ${GLOBAL_SEMAPHORE_PREFIX}… semaphores; name it without the prefix for your tenant's own`,
        {
          field: 'name',
        },
      );
    const tenant = global ? undefined : this.tenantFor(p, b.tenant, 'tenant');
    const { record } = await putSemaphore(
      this.ctx.store,
      { name, ...(tenant !== undefined ? { tenant } : {}), capacity: b.capacity, ...(b.description !== undefined ? { description: b.description } : {}) },
      this.clock.now(),
    );
    const held = (await this.views()).find((s) => !s.mutex && s.name === name && s.tenant === tenant);
    return {
      name,
      ...(tenant !== undefined ? { tenant } : {}),
      mutex: false,
      capacity: record.capacity,
      held: held?.held ?? 0,
      holders: held?.holders ?? [],
      waitingTasks: held?.waitingTasks ?? 0,
      ...(record.description !== undefined ? { description: record.description } : {}),
    };
  }

  /** Deletes a semaphore: tasks holding its units run on; tasks waiting for it wait until it exists again. */
  @Delete(':semaphore')
  @HttpCode(200)
  async remove(@Req() req: FastifyRequest, @Param('semaphore') name: string, @Query() query: unknown): Promise<{ deleted: string }> {
    const p = this.auth.authenticate(req.headers.authorization);
    const q = parseWith(SemaphoreQuerySchema, query ?? {});
    if (!SemaphoreNameSchema.safeParse(name).success) throw notFound(name);
    const global = name.startsWith(GLOBAL_SEMAPHORE_PREFIX);
    if (global && p.role !== 'operator')
      throw new ApiError(ErrorCode.PermissionDenied, `only operators delete ${GLOBAL_SEMAPHORE_PREFIX}… semaphores`, { field: 'name' });
    if (q.mutex === 'true')
      throw new ApiError(ErrorCode.InvalidArgument, 'mutex: a lock has no record to delete; it is free once no task holds it', { field: 'mutex' });
    const tenant = this.tenantFor(p, q.tenant);
    if (!(await deleteSemaphore(this.ctx.store, semaphoreId(tenant, name)))) throw notFound(name);
    return { deleted: name };
  }

  /** The tenant a request is about: the caller's, or (operators only) the one it names. */
  private tenantFor(p: Principal, asked: string | undefined, field = 'tenant'): string {
    if (asked === undefined || asked === p.tenant) return p.tenant;
    if (p.role !== 'operator') throw new ApiError(ErrorCode.PermissionDenied, `your token may use only tenant ${p.tenant}'s semaphores`, { field });
    return parseWith(NameSchema, asked, field);
  }

  private async views(): Promise<SemaphoreView[]> {
    const fromScheduler = await this.scheduler.queues({});
    if (fromScheduler?.semaphores) return fromScheduler.semaphores;
    return semaphoreViews(buildSnapshot(await readCluster(this.ctx.store), this.clock.now()).semaphores);
  }
}

function visible(p: Principal, v: SemaphoreView): boolean {
  return p.role === 'operator' || v.tenant === undefined || v.tenant === p.tenant;
}

function notFound(name: string): ApiError {
  return new ApiError(ErrorCode.NotFound, `semaphore ${name} not found`, { id: name });
}
