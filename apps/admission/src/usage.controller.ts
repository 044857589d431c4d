/**
 * `GET /v1/usage`: CPU-, memory- and GPU-hours, attempt outcomes and queue waits over a window,
 * by tenant, queue, GPU model or job label — read from the history store (what chargeback and
 * capacity planning need; Slurm's `sreport`). A tenant sees its own usage; an operator anyone's.
 */
import {
  ApiError,
  ErrorCode,
  MAX_USAGE_STEPS,
  parseWith,
  type Principal,
  type UsageGroupView,
  UsageQuerySchema,
  USAGE_STEP_MS,
  type UsageView,
} from '@batchapi/api';
import { type HistoryStore, MAX_USAGE_WINDOW_MS, type UsageGroupBy } from '@batchapi/history';
import { CLOCK, type Clock, HISTORY, systemClock } from '@batchapi/runtime';
import { Controller, Get, Inject, Optional, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { TokenAuthenticator } from './auth';
import { fromHistory } from './history-reads';
import { AUTH } from './jobs.controller';

/** The window when `from` is not given: 7 days before `to`. */
export const DEFAULT_USAGE_WINDOW_MS = 7 * 86_400_000;

@Controller('v1/usage')
export class UsageController {
  constructor(
    @Inject(AUTH) private readonly auth: TokenAuthenticator,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
    @Optional() @Inject(HISTORY) private readonly history?: HistoryStore,
  ) {}

  @Get()
  usage(@Req() req: FastifyRequest, @Query() query: unknown): Promise<UsageView> {
    return usageOf(this.auth.authenticate(req.headers.authorization), query, this.clock.now(), this.history);
  }
}

/**
 * Answers one usage question.
 * @throws ApiError invalid_argument naming the field; permission_denied for a tenant asking for another's; unavailable without a history store or while it does not answer
 */
export async function usageOf(principal: Principal, query: unknown, now: number, history: HistoryStore | undefined): Promise<UsageView> {
  const q = parseWith(UsageQuerySchema, query);
  if (q.tenant !== undefined && principal.role !== 'operator' && q.tenant !== principal.tenant) {
    throw new ApiError(ErrorCode.PermissionDenied, `a tenant sees only its own usage, not tenant ${q.tenant}'s`, { field: 'tenant', id: q.tenant });
  }
  const to = q.to !== undefined ? Date.parse(q.to) : now;
  const from = q.from !== undefined ? Date.parse(q.from) : to - DEFAULT_USAGE_WINDOW_MS;
  if (to <= from) throw new ApiError(ErrorCode.InvalidArgument, 'to: must be after from', { field: 'to' });
  if (to - from > MAX_USAGE_WINDOW_MS)
    throw new ApiError(ErrorCode.InvalidArgument, `to: the window is over ${MAX_USAGE_WINDOW_MS / 86_400_000} days`, { field: 'to' });
  const stepMs = q.step !== undefined ? USAGE_STEP_MS[q.step] : undefined;
  if (stepMs !== undefined && (to - from) / stepMs > MAX_USAGE_STEPS)
    throw new ApiError(
      ErrorCode.InvalidArgument,
      `step: the window holds over ${MAX_USAGE_STEPS} steps (each ${q.step === 'hour' ? 'an hour' : 'a day'}); ask for a shorter window or a longer step`,
      {
        field: 'step',
      },
    );
  const groupBy = q.groupBy ?? 'tenant';
  const by: UsageGroupBy = groupBy.startsWith('label:') ? { label: groupBy.slice('label:'.length) } : (groupBy as 'tenant' | 'queue' | 'gpuModel');
  const tenant = principal.role === 'operator' ? q.tenant : principal.tenant;
  const answer = await fromHistory(history, (h) =>
    h.usage({ from, to, groupBy: by, ...(tenant ? { tenant } : {}), ...(q.queue ? { queue: q.queue } : {}), ...(stepMs ? { stepMs } : {}) }),
  );
  if (!answer) {
    throw new ApiError(ErrorCode.Unavailable, 'usage is read from the history store, and this cluster has none (set BATCH_HISTORY_URL on admission and quota)');
  }
  const groups: UsageGroupView[] = answer.rows;
  return {
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    groupBy,
    ...(q.step ? { step: q.step } : {}),
    groups,
    truncated: answer.truncated,
  };
}
