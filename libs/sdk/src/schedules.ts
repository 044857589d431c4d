/** `client.schedules`: cron jobs and cron workflows (`/v1/schedules`). */
import type { CreateScheduleRequest, ScheduleView } from '@batchapi/api';

/** What `SchedulesApi` needs of the client. */
interface Requester {
  request<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
}

/** Options of the calls on one schedule. */
export interface ScheduleOptions {
  /** The tenant whose schedule it is; only operators may name another. @default the token's tenant */
  tenant?: string;
}

/**
 * Schedules of the token's tenant: each tick of a five-field cron (in an IANA time zone)
 * submits a job or a workflow, exactly once, under a concurrency policy.
 *
 * ```ts
 * await batch.schedules.create({ name: 'nightly', schedule: '0 2 * * *', timeZone: 'Europe/Berlin', concurrencyPolicy: 'Forbid', job: { command: ['./etl.sh'] } });
 * await batch.schedules.trigger('nightly'); // one run now
 * ```
 */
export class SchedulesApi {
  constructor(private readonly client: Requester) {}

  /** Creates a schedule (`conflict` when the tenant has one of that name; `invalid_argument` naming `schedule` for a bad cron). */
  create(req: CreateScheduleRequest): Promise<ScheduleView> {
    return this.client.request('POST', '/v1/schedules', req);
  }

  get(name: string, opts: ScheduleOptions = {}): Promise<ScheduleView> {
    return this.client.request('GET', this.path(name, '', opts));
  }

  /** The token's schedules (every tenant's for operators unless `tenant` is given), in name order. @param limit 1 to 1000. @default 100 */
  async list(opts: ScheduleOptions & { limit?: number } = {}): Promise<ScheduleView[]> {
    const q = new URLSearchParams();
    if (opts.limit) q.set('limit', String(opts.limit));
    if (opts.tenant) q.set('tenant', opts.tenant);
    const qs = q.toString();
    return (await this.client.request<{ schedules: ScheduleView[] }>('GET', `/v1/schedules${qs ? `?${qs}` : ''}`)).schedules;
  }

  /** Deletes the schedule; the jobs and workflows it started stay. */
  delete(name: string, opts: ScheduleOptions = {}): Promise<ScheduleView> {
    return this.client.request('DELETE', this.path(name, '', opts));
  }

  /** No tick fires until `resume`; running instances go on. */
  pause(name: string, opts: ScheduleOptions = {}): Promise<ScheduleView> {
    return this.client.request('POST', this.path(name, '/pause', opts), {});
  }

  /** Resumes from now: the ticks of the pause never fire. */
  resume(name: string, opts: ScheduleOptions = {}): Promise<ScheduleView> {
    return this.client.request('POST', this.path(name, '/resume', opts), {});
  }

  /** Starts one instance now, whatever the cron and the policy (within about a second; see `active` of `get`). */
  trigger(name: string, opts: ScheduleOptions = {}): Promise<ScheduleView> {
    return this.client.request('POST', this.path(name, '/trigger', opts), {});
  }

  private path(name: string, action: string, opts: ScheduleOptions): string {
    return `/v1/schedules/${encodeURIComponent(name)}${action}${opts.tenant ? `?tenant=${encodeURIComponent(opts.tenant)}` : ''}`;
  }
}
