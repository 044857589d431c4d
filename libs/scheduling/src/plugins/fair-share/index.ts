/**
 * Fair share between queues (dominant resource fairness, Ghodsi et al., NSDI '11), within each
 * priority level: progressive filling — the queue with the lowest weighted dominant share
 * places its oldest work next, as many tasks as keep it at or below the next queue's share (at
 * least one), until no queue can place more. The engine calls back to place; this decides the
 * order and the step sizes. With prices (GPU-model-priced fair share), the priced resources
 * count as one: what they cost (`pricedCharge`), so an H100 counts as much as it costs.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { PendingWork } from '../../snapshot';

/** What dominant resource fairness needs. */
export interface FairShareInput {
  /** Total capacity the shares are relative to (normalized units). */
  capacity: ResourceVector;
  /** What each queue holds now (normalized units), plus its decayed past usage when the scheduler keeps one. */
  usage: Map<string, ResourceVector>;
  /** Weight of each queue. @default 1 */
  weights?: Map<string, number>;
  /**
   * Smallest step of dominant share a queue takes at a time (as a fraction of the cluster):
   * the bound on how far from exact fairness one decision can be, traded for speed.
   * @default 0.001
   */
  granularity?: number;
  /** Cluster-wide prices (see `ResourcePrices`): the priced resources count as their cost. @default none (plain DRF) */
  prices?: ResourcePrices;
  /** A queue's own prices, over the cluster-wide ones, for its usage. @default none */
  queuePrices?: ReadonlyMap<string, ResourcePrices>;
}

/**
 * Prices of resources for fair share, per unit a person reads: a core (`cpu`), a GiB
 * (`memory`), a GPU of a model (`gpu:H100`), a GPU of no priced model (`gpu`; when only models
 * are priced, 1), and any other resource per unit of its quantity.
 */
export type ResourcePrices = Readonly<Record<string, number>>;

/** The resource the priced resources are summed into. */
export const PRICED_RESOURCE = 'priced';

const GPU_PREFIX = 'gpu:';

function unitOf(resource: string): number {
  return resource === 'cpu' ? 1000 : resource === 'memory' ? 1024 ** 3 : resource === 'gpu' || resource.startsWith(GPU_PREFIX) ? GPU_MILLI : 1;
}

/**
 * A charge (resources plus `gpu:<model>`, see `chargeOf`) with its priced resources replaced by
 * their cost, in `PRICED_RESOURCE`:
 *   priced = Σ_r price_r × amount_r / unit_r
 * GPUs are priced together once any GPU price is set: the GPUs of a priced model at its price,
 * the rest (`gpu` minus those) at the `gpu` price (1 when unset), and no `gpu`/`gpu:*` key is
 * left. Unpriced resources stay as they are (DRF dimensions of their own). Without prices, `v`.
 */
export function pricedCharge(v: ResourceVector, prices: ResourcePrices | undefined): ResourceVector {
  if (!prices) return v;
  const names = Object.keys(prices);
  if (names.length === 0) return v;
  const gpuPriced = names.some((k) => k === 'gpu' || k.startsWith(GPU_PREFIX));
  const out: ResourceVector = {};
  let cost = 0;
  let modelled = 0;
  for (const [k, amount] of Object.entries(v)) {
    if (k === 'gpu') continue;
    if (k.startsWith(GPU_PREFIX)) {
      if (!gpuPriced) out[k] = amount;
      else if (prices[k] !== undefined) {
        cost += (prices[k] * amount) / GPU_MILLI;
        modelled += amount;
      }
      continue;
    }
    if (prices[k] !== undefined) cost += (prices[k] * amount) / unitOf(k);
    else out[k] = amount;
  }
  if (v.gpu !== undefined) {
    if (gpuPriced) cost += ((prices.gpu ?? 1) * Math.max(0, v.gpu - modelled)) / GPU_MILLI;
    else out.gpu = v.gpu;
  }
  out[PRICED_RESOURCE] = cost;
  return out;
}

/** The prices a queue's usage is charged at: its own over the cluster-wide ones. */
export function pricesOf(queue: string, fair: Pick<FairShareInput, 'prices' | 'queuePrices'>): ResourcePrices | undefined {
  const own = fair.queuePrices?.get(queue);
  return own ? { ...fair.prices, ...own } : fair.prices;
}

/** A queue's weighted dominant share as fair share orders it: on priced capacity when prices are set. */
export function fairShareOf(queue: string, usage: ResourceVector, fair: FairShareInput): number {
  if (!fair.prices && !fair.queuePrices?.size) return dominantShare(usage, fair.capacity, fair.weights?.get(queue) ?? 1);
  return dominantShare(pricedCharge(usage, pricesOf(queue, fair) ?? {}), pricedCharge(fair.capacity, fair.prices ?? {}), fair.weights?.get(queue) ?? 1);
}

/**
 * A queue's dominant share: its largest share of any resource, divided by its weight.
 *   share = max_r usage_r / capacity_r ÷ weight
 */
export function dominantShare(usage: ResourceVector, capacity: ResourceVector, weight = 1): number {
  let share = 0;
  for (const k in usage) if (capacity[k] > 0) share = Math.max(share, usage[k] / capacity[k]);
  return share / weight;
}

/**
 * Adds `k` × `v` to `into` in place (a pass's own copy of a queue's usage; `addResources` would make
 * a new vector per placement). Zero amounts stay: a dominant share reads them as no share.
 */
function addInto(into: ResourceVector, v: ResourceVector, k: number): void {
  for (const name in v) into[name] = (into[name] ?? 0) + k * v[name];
}

/** What placing up to `limit` tasks of a piece of work did. */
export interface PlaceStep {
  placed: number;
  /** What the placed tasks charge together (with `gpu:<model>` of their nodes), when the engine was asked for it (priced fair share). @default placed × resources */
  charged?: ResourceVector;
  /** It got less than it asked for (no room, quota or budget): it leaves the pass. */
  blocked: boolean;
}

/** A queue in a fair-share pass: its usage (the pass's own copy), weight, and share while it has not placed since. */
interface QueueState {
  queue: string;
  used: ResourceVector;
  weight: number;
  /** Its weighted dominant share; undefined: to compute (it placed since). */
  share: number | undefined;
}

/** One queue's work of a priority level in a fair-share pass. */
interface QueueTurn {
  queue: string;
  state: QueueState;
  items: PendingWork[];
  /** The next item to place. */
  head: number;
}

/**
 * Runs progressive filling over `ordered` (queue order) with `place` as the engine's callback.
 * Returns the work that left the pass blocked (its remaining tasks count as unplaced with the
 * engine's reasons); work never reached (budget spent) is left for the caller to count.
 */
export function fairShareOrder(
  ordered: readonly PendingWork[],
  fair: FairShareInput,
  budget: () => number,
  place: (w: PendingWork, limit: number) => PlaceStep,
): Set<PendingWork> {
  const priced = !!fair.prices || !!fair.queuePrices?.size;
  const capacity = priced ? pricedCharge(fair.capacity, fair.prices ?? {}) : fair.capacity;
  const price = (q: string, v: ResourceVector) => (priced ? pricedCharge(v, pricesOf(q, fair) ?? {}) : v);
  // Each queue's state, made once: its share changes only when it places, so it is computed once
  // per change, not per comparison (and not looked up by name per step).
  const queues = new Map<string, QueueState>();
  const stateOf = (q: string): QueueState => {
    let st = queues.get(q);
    if (!st) {
      const u = fair.usage.get(q);
      queues.set(q, (st = { queue: q, used: u ? { ...u } : {}, weight: fair.weights?.get(q) ?? 1, share: undefined }));
    }
    return st;
  };
  const shareOf = (st: QueueState): number => (st.share ??= dominantShare(price(st.queue, st.used), capacity, st.weight));
  const levels = [...new Set(ordered.map((w) => w.priority))].sort((x, y) => y - x);
  const left = new Set<PendingWork>();
  const granularity = fair.granularity ?? 0.001;
  for (const level of levels) {
    // Each queue's work of this level, oldest first (the order is already by age), from `head` on.
    const byQueue = new Map<string, QueueTurn>();
    for (const w of ordered) {
      if (w.priority !== level || w.tasks === 0) continue;
      const turn = byQueue.get(w.queue);
      if (turn) turn.items.push(w);
      else byQueue.set(w.queue, { queue: w.queue, state: stateOf(w.queue), items: [w], head: 0 });
    }
    const turns = [...byQueue.values()];
    // Lower share first, ties by queue name (a NaN share compares by name).
    const lower = (x: QueueTurn, y: QueueTurn) => (shareOf(x.state) - shareOf(y.state) || (x.queue < y.queue ? -1 : 1)) < 0;
    while (turns.length > 0 && budget() > 0) {
      // The queue of the lowest share (ties by name) places next; the second lowest bounds its step.
      let best = 0;
      let second = -1;
      for (let k = 1; k < turns.length; k++) {
        if (lower(turns[k], turns[best])) {
          second = best;
          best = k;
        } else if (second < 0 || lower(turns[k], turns[second])) second = k;
      }
      const turn = turns[best];
      const st = turn.state;
      const q = turn.queue;
      const w = turn.items[turn.head];
      // A task's share for the step size; the GPU model it will get is known only when its selector names it.
      const model = w.resources.gpu ? w.selector?.['gpu.model'] : undefined;
      const perTask = dominantShare(price(q, model ? { ...w.resources, [`${GPU_PREFIX}${model}`]: w.resources.gpu } : w.resources), capacity, st.weight);
      const next = second >= 0 ? shareOf(turns[second].state) : Infinity;
      const step = Math.ceil(granularity / Math.max(perTask, 1e-12));
      const limit = perTask > 0 && Number.isFinite(next) ? Math.max(1, step, Math.floor((next - shareOf(st)) / perTask)) : w.tasks;
      const { placed, blocked, charged } = place(w, limit);
      addInto(st.used, charged ?? w.resources, charged ? 1 : placed);
      st.share = undefined;
      if (w.tasks === 0 || blocked) {
        if (w.tasks > 0) left.add(w);
        if (++turn.head === turn.items.length) turns.splice(best, 1);
      }
    }
  }
  return left;
}
