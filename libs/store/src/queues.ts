/**
 * Tenants at `tenants/{name}` and queues at `queues/{name}`: reads, create-or-replace by
 * compare-and-swap (`putVersioned`), and deleting a queue that holds no unfinished job.
 */
import { type JobRecord, type Queue, type Tenant, TERMINAL_PHASES } from '@batchapi/api';
import type { EtcdStore, Versioned } from './etcd';
import { CasConflictError } from './errors';
import { putVersioned, type VersionedPut } from './versioned';

/** A tenant by name; undefined when there is none. */
export async function getTenant(store: EtcdStore, name: string): Promise<Tenant | undefined> {
  return (await store.get<Tenant>(store.keys.tenant(name)))?.value;
}

/** A queue by name with its revisions; undefined when there is none. */
export async function getQueue(store: EtcdStore, name: string): Promise<Versioned<Queue> | undefined> {
  return store.get<Queue>(store.keys.queue(name));
}

/**
 * A tenant and some queues by name, read at one revision: what a submit checks it may use.
 * `queues` holds each asked queue in order, undefined where there is none.
 */
export async function tenantAndQueues(store: EtcdStore, tenant: string, queues: string[]): Promise<{ tenant?: Tenant; queues: Array<Queue | undefined> }> {
  const [t, ...qs] = await store.getMany<Tenant | Queue>([store.keys.tenant(tenant), ...queues.map((q) => store.keys.queue(q))]);
  return { tenant: t?.value as Tenant | undefined, queues: qs.map((q) => q?.value as Queue | undefined) };
}

/** Creates or replaces a tenant (see `putVersioned`). @throws CasConflictError when it kept changing meanwhile */
export function putTenant(store: EtcdStore, tenant: Tenant): Promise<VersionedPut> {
  return putVersioned(store, store.keys.tenant(tenant.name), tenant, `tenant ${tenant.name}`);
}

/** Creates or replaces a queue (see `putVersioned`); its tenant is not checked here. @throws CasConflictError when it kept changing meanwhile */
export function putQueue(store: EtcdStore, queue: Queue): Promise<VersionedPut> {
  return putVersioned(store, store.keys.queue(queue.name), queue, `queue ${queue.name}`);
}

/** How many jobs of `queue` have not finished (any phase but a terminal one). */
export async function unfinishedJobsIn(store: EtcdStore, queue: string): Promise<number> {
  const jobs = await store.listAll<JobRecord>(store.keys.jobs());
  return jobs.items.filter((j) => j.value.queue === queue && !TERMINAL_PHASES.has(j.value.phase)).length;
}

/** What `deleteQueue` did: deleted it, found none, or left it because jobs in it have not finished. */
export type QueueDeletion = { outcome: 'deleted' } | { outcome: 'absent' } | { outcome: 'busy'; unfinishedJobs: number };

/**
 * Deletes a queue that holds no unfinished job, by compare-and-swap on the revision it read:
 * a queue changed between the read and the delete stays.
 * @throws CasConflictError when the queue changed meanwhile (nothing was deleted)
 */
export async function deleteQueue(store: EtcdStore, name: string): Promise<QueueDeletion> {
  const cur = await getQueue(store, name);
  if (!cur) return { outcome: 'absent' };
  const unfinishedJobs = await unfinishedJobsIn(store, name);
  if (unfinishedJobs > 0) return { outcome: 'busy', unfinishedJobs };
  const res = await store.txn([{ key: cur.key, modRevision: cur.modRevision }], [{ delete: cur.key }]);
  if (!res.succeeded) throw new CasConflictError(`queue ${name} changed meanwhile`, name);
  return { outcome: 'deleted' };
}
