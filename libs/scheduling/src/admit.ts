/** The quota service's admission decision for a submitted job. Pure. */
import type { JobRecord, Queue, ResourceVector, Tenant } from '@batchapi/api';

/** Why a job was refused, in the API's error vocabulary. */
export interface Refusal {
  code: 'unknown_tenant' | 'unknown_queue' | 'exceeds_quota';
  message: string;
}

/**
 * Decides whether a submitted job may enter its queue: the tenant and the queue must exist,
 * the queue must belong to the tenant, and one task must fit the most the queue can ever
 * hold — its nominal quota plus what it may borrow from its cohort (`queues` are every queue,
 * for the cohort's lendable total) — else it could never run. Returns the refusal, or
 * undefined to admit.
 */
export function admissionRefusal(job: JobRecord, tenant: Tenant | undefined, queue: Queue | undefined, queues: Iterable<Queue> = []): Refusal | undefined {
  if (!tenant) return { code: 'unknown_tenant', message: `tenant ${job.tenant} does not exist` };
  if (!queue || queue.tenant !== job.tenant) return { code: 'unknown_queue', message: `queue ${job.queue} does not exist for tenant ${job.tenant}` };
  const over = overNominal(job.spec.resources, mostEver(queue, queues));
  if (over)
    return {
      code: 'exceeds_quota',
      message: `one task asks for ${over.asked} ${over.name} but queue ${queue.name} can hold at most ${over.nominal} (nominal quota plus what it may borrow)`,
    };
  return undefined;
}

/**
 * The most a queue can ever hold per limited resource: its nominal, plus the smaller of its
 * borrowing limit and what the other queues of its cohort lend at most.
 */
export function mostEver(queue: Queue, queues: Iterable<Queue>): ResourceVector {
  if (!queue.cohort) return queue.nominal;
  const lent: ResourceVector = {};
  for (const q of queues) {
    if (q.cohort !== queue.cohort || q.name === queue.name) continue;
    for (const [r, n] of Object.entries(q.nominal)) lent[r] = (lent[r] ?? 0) + Math.min(n, q.lendingLimit?.[r] ?? n);
  }
  const out: ResourceVector = {};
  for (const [r, n] of Object.entries(queue.nominal)) out[r] = n + Math.min(queue.borrowingLimit?.[r] ?? Number.POSITIVE_INFINITY, lent[r] ?? 0);
  return out;
}

function overNominal(perTask: ResourceVector, nominal: ResourceVector): { name: string; asked: number; nominal: number } | undefined {
  for (const [name, asked] of Object.entries(perTask)) {
    const limit = nominal[name];
    if (limit !== undefined && asked > limit) return { name, asked, nominal: limit };
  }
  return undefined;
}

/** What a queue may still take: nominal minus what its running groups hold (dimensions without a nominal are unlimited). */
export function queueHeadroom(nominal: ResourceVector, used: ResourceVector): ResourceVector {
  const out: ResourceVector = {};
  for (const [name, limit] of Object.entries(nominal)) out[name] = Math.max(0, limit - (used[name] ?? 0));
  return out;
}
