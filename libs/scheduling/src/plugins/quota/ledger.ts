/**
 * Quota accounting between queues and cohorts. Pure: usage in, decisions out.
 *
 * A queue holds a nominal quota per resource. Queues that name the same cohort pool what
 * they lend: each queue lends at most its lending limit (default: all of its nominal) and
 * may borrow at most its borrowing limit (default: unlimited within the pool) beyond its
 * nominal. For each resource r of a cohort:
 *
 *   guaranteed(q) = nominal(q) − lendable(q)        lendable(q) = min(lendingLimit(q), nominal(q))
 *   pool          = Σ lendable(q)                    poolUsed    = Σ max(0, used(q) − guaranteed(q))
 *   room(q)       = min( nominal(q) + borrowingLimit(q) − used(q),
 *                        max(0, guaranteed(q) − used(q)) + pool − poolUsed )
 *
 * so the cohort as a whole never holds more than the sum of its nominal quotas, a queue's
 * guaranteed part is never taken by others, and nothing runs over quota except borrowed
 * capacity (invariant 5). A queue without a cohort has room nominal − used. A resource
 * without a nominal is not limited for that queue.
 *
 * GPU models: a quota key `gpu:<model>` (e.g. `gpu:NVIDIA H100 80GB HBM3`) limits the GPUs
 * a queue holds on nodes labelled with that `gpu.model`, besides the plain `gpu` total.
 */
import { addResources, type NodeAllocation, type ResourceVector } from '@batchapi/api';

/** The quota settings of one queue (normalized units). */
export interface QuotaQueue {
  name: string;
  /** Queues naming the same cohort lend and borrow between them. @default none (no borrowing) */
  cohort?: string;
  /** Guaranteed resources; an absent resource is unlimited. */
  nominal: ResourceVector;
  /** Most a queue may hold beyond its nominal, per resource. @default unlimited within the cohort's pool */
  borrowingLimit?: ResourceVector;
  /** Most of its nominal a queue lends to the cohort, per resource. @default all of its nominal */
  lendingLimit?: ResourceVector;
}

/** The label whose value names a node's GPU model. */
export const GPU_MODEL_LABEL = 'gpu.model';

/** Prefix of per-model GPU quota keys: `gpu:<model>`. */
export const GPU_MODEL_PREFIX = 'gpu:';

/**
 * What one task charges its queue on a node: its resources, plus `gpu:<model>` when it uses
 * GPUs on a node whose `gpu.model` label names the model.
 */
export function chargeOf(resources: ResourceVector, nodeLabels: Record<string, string> | undefined): ResourceVector {
  const gpu = resources.gpu ?? 0;
  const model = nodeLabels?.[GPU_MODEL_LABEL];
  if (gpu <= 0 || !model) return resources;
  return { ...resources, [`${GPU_MODEL_PREFIX}${model}`]: gpu };
}

/** How many tasks of `charge` fit in `room`; dimensions absent from `room` are unlimited. */
export function tasksIn(charge: ResourceVector, room: ResourceVector): number {
  let n = Number.POSITIVE_INFINITY;
  for (const [name, amount] of Object.entries(charge)) {
    if (amount <= 0) continue;
    const limit = room[name];
    if (limit !== undefined) n = Math.min(n, Math.floor(limit / amount));
  }
  return Math.max(0, n);
}

interface CohortPool {
  /** Σ lendable per resource. */
  pool: ResourceVector;
  /** Σ max(0, used − guaranteed) per resource. */
  poolUsed: ResourceVector;
}

/**
 * The quota room of every queue during one scheduling pass: asks how many tasks a queue may
 * still start, and takes (or gives back) their charge, keeping cohort pools consistent so
 * that two queues of one cohort can never both take the same borrowed capacity.
 */
export class QuotaLedger {
  private readonly queues = new Map<string, QuotaQueue>();
  private readonly used = new Map<string, ResourceVector>();
  private readonly cohorts = new Map<string, CohortPool>();

  constructor(queues: Iterable<QuotaQueue>, usage: ReadonlyMap<string, ResourceVector>) {
    for (const q of queues) {
      this.queues.set(q.name, q);
      this.used.set(q.name, { ...(usage.get(q.name) ?? {}) });
    }
    for (const q of this.queues.values()) {
      if (!q.cohort) continue;
      const c = this.cohorts.get(q.cohort) ?? { pool: {}, poolUsed: {} };
      this.cohorts.set(q.cohort, c);
      const used = this.used.get(q.name)!;
      for (const [r, nominal] of Object.entries(q.nominal)) {
        const lend = this.lendable(q, r);
        c.pool[r] = (c.pool[r] ?? 0) + lend;
        c.poolUsed[r] = (c.poolUsed[r] ?? 0) + Math.max(0, (used[r] ?? 0) - (nominal - lend));
      }
    }
  }

  /** True when the queue has any limit (work of unlimited queues skips quota bookkeeping). */
  limits(queue: string): boolean {
    const q = this.queues.get(queue);
    return !!q && Object.keys(q.nominal).length > 0;
  }

  /** What the queue may still take, per limited resource. */
  room(queue: string): ResourceVector {
    const q = this.queues.get(queue);
    if (!q) return {};
    const used = this.used.get(queue)!;
    const c = q.cohort ? this.cohorts.get(q.cohort) : undefined;
    const out: ResourceVector = {};
    for (const [r, nominal] of Object.entries(q.nominal)) {
      const u = used[r] ?? 0;
      if (!c) {
        out[r] = Math.max(0, nominal - u);
        continue;
      }
      const borrow = q.borrowingLimit?.[r];
      const own = borrow === undefined ? Number.POSITIVE_INFINITY : nominal + borrow - u;
      const guaranteed = nominal - this.lendable(q, r);
      const shared = Math.max(0, guaranteed - u) + (c.pool[r] ?? 0) - (c.poolUsed[r] ?? 0);
      out[r] = Math.max(0, Math.min(own, shared));
    }
    return out;
  }

  /** Tasks of this per-task charge the queue may still start (Infinity when unlimited). */
  allows(queue: string, charge: ResourceVector): number {
    return tasksIn(charge, this.room(queue));
  }

  /** Takes `k` tasks' charge for the queue (a negative `k` gives it back). */
  take(queue: string, charge: ResourceVector, k: number): void {
    const q = this.queues.get(queue);
    if (!q) return;
    const used = this.used.get(queue)!;
    const c = q.cohort ? this.cohorts.get(q.cohort) : undefined;
    for (const [r, amount] of Object.entries(charge)) {
      if (!(r in q.nominal)) continue;
      const before = used[r] ?? 0;
      const after = before + k * amount;
      used[r] = after;
      if (c) {
        const g = q.nominal[r] - this.lendable(q, r);
        c.poolUsed[r] = (c.poolUsed[r] ?? 0) + Math.max(0, after - g) - Math.max(0, before - g);
      }
    }
  }

  /** What the queue holds beyond its nominal, per resource (0 when within it). */
  borrowed(queue: string): ResourceVector {
    const q = this.queues.get(queue);
    const used = this.used.get(queue) ?? {};
    const out: ResourceVector = {};
    if (!q) return out;
    for (const [r, nominal] of Object.entries(q.nominal)) out[r] = Math.max(0, (used[r] ?? 0) - nominal);
    return out;
  }

  /** What the queue holds now, as the ledger counts it. */
  usage(queue: string): ResourceVector {
    return { ...(this.used.get(queue) ?? {}) };
  }

  /** The queue's settings. */
  queue(name: string): QuotaQueue | undefined {
    return this.queues.get(name);
  }

  private lendable(q: QuotaQueue, r: string): number {
    const nominal = q.nominal[r] ?? 0;
    const limit = q.lendingLimit?.[r];
    return limit === undefined ? nominal : Math.min(limit, nominal);
  }
}

/**
 * Usage with exponential decay: the moving average of what each queue held, with the given
 * half-life. A queue that held `a` for a long time converges to `a`; after it stops, its
 * value halves every half-life. `dtMs` is the time since the last update.
 *
 *   next = prev · 2^(−dt/h) + held · (1 − 2^(−dt/h))
 */
export function decayUsage(
  prev: Map<string, ResourceVector>,
  held: Map<string, ResourceVector>,
  dtMs: number,
  halfLifeMs: number,
): Map<string, ResourceVector> {
  const keep = halfLifeMs > 0 ? Math.pow(2, -Math.max(0, dtMs) / halfLifeMs) : 0;
  const out = new Map<string, ResourceVector>();
  for (const q of new Set([...prev.keys(), ...held.keys()])) {
    const p = prev.get(q) ?? {};
    const h = held.get(q) ?? {};
    const v: ResourceVector = {};
    for (const r of new Set([...Object.keys(p), ...Object.keys(h)])) {
      const x = (p[r] ?? 0) * keep + (h[r] ?? 0) * (1 - keep);
      if (x > 1e-6) v[r] = x;
    }
    if (Object.keys(v).length) out.set(q, v);
  }
  return out;
}

/**
 * What each queue's live tasks hold, summed over the nodes' allocations (each task counts
 * until it ends), charged per node (see `chargeOf`).
 */
export function queueUsageOf(
  allocs: Iterable<[node: string, alloc: NodeAllocation | undefined]>,
  nodeLabels: (node: string) => Record<string, string> | undefined,
): Map<string, ResourceVector> {
  const usage = new Map<string, ResourceVector>();
  for (const [node, alloc] of allocs) {
    for (const [queue, held] of Object.entries(alloc?.queues ?? {})) usage.set(queue, addResources(usage.get(queue) ?? {}, chargeOf(held, nodeLabels(node))));
  }
  return usage;
}
