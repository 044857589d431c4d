/** `client.semaphores`: named semaphores jobs take units of with `limits`, and the mutexes they hold with `locks` (`/v1/semaphores`). */
import type { PutSemaphoreRequest, SemaphoreView } from '@batchapi/api';

/** What `SemaphoresApi` needs of the client. */
interface Requester {
  request<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
}

/** Options of the calls on one semaphore. */
export interface SemaphoreOptions {
  /** The tenant whose semaphore it is; only operators may name another (`global/…` names have none). @default the token's tenant */
  tenant?: string;
  /** The mutex of that name (jobs' `locks`), not the semaphore. @default false */
  mutex?: boolean;
}

/**
 * Semaphores of the token's tenant (and the `global/…` ones operators create): a task of a job
 * with `limits: {name: n}` starts only when it can take `n` units, and holds them until its
 * attempt ends.
 *
 * ```ts
 * await batch.semaphores.put('db/warehouse-conn', { capacity: 4 });
 * await batch.jobs.submit({ command: ['./load.sh'], tasks: 100, limits: { 'db/warehouse-conn': 1 } }); // 4 at a time
 * ```
 */
export class SemaphoresApi {
  constructor(private readonly client: Requester) {}

  /** Creates the semaphore or changes its capacity (lowering it stops nothing running). */
  put(name: string, req: PutSemaphoreRequest): Promise<SemaphoreView> {
    return this.client.request('PUT', this.path(name, {}), req);
  }

  /** Capacity, units held, the jobs holding them and the tasks waiting. */
  get(name: string, opts: SemaphoreOptions = {}): Promise<SemaphoreView> {
    return this.client.request('GET', this.path(name, opts));
  }

  /** The tenant's semaphores, the global ones, and the mutexes held or awaited (every tenant's for operators). */
  async list(): Promise<SemaphoreView[]> {
    return (await this.client.request<{ semaphores: SemaphoreView[] }>('GET', '/v1/semaphores')).semaphores;
  }

  /** Deletes the semaphore: tasks holding units run on; waiting ones wait until it exists again. */
  delete(name: string, opts: Omit<SemaphoreOptions, 'mutex'> = {}): Promise<{ deleted: string }> {
    return this.client.request('DELETE', this.path(name, opts));
  }

  private path(name: string, opts: SemaphoreOptions): string {
    const q = new URLSearchParams();
    if (opts.tenant) q.set('tenant', opts.tenant);
    if (opts.mutex) q.set('mutex', 'true');
    const qs = q.toString();
    return `/v1/semaphores/${encodeURIComponent(name)}${qs ? `?${qs}` : ''}`;
  }
}
