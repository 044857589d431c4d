/**
 * The placement pass: the engine that runs a profile's plugins over pending work in queue
 * order. For each piece of work (one job's identical pending tasks, an equivalence class):
 *   PreFilter  — how many of its tasks may be tried (quota room; a gang all or nothing);
 *   Filter     — drop nodes that can never run it;   Score — rank the rest (or name order),
 *                once per request shape per pass, through node buckets (`framework/node-buckets`);
 *                a kept ranking re-scores the nodes whose room changed since it was last used;
 *   Domain     — work that names a topology: the domain its tasks go to (`plugins/topology`);
 *   Reserve    — tasks fill the best node, then the next, GPU devices picked per task, each
 *                Reserve plugin admitting and taking its part (quota per node);
 *   Permit     — accept, or give back everything reserved (a gang that did not fit whole).
 * Fair share (when given) interleaves queues within a priority; a batch fill packs a tier of
 * simultaneous plain work first. Snapshot in, placements and reasons out; no I/O, no clock.
 */
import { holdGang, placeNominated } from './plugins/nomination';
import { addResources, GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { FilterPlugin, PassContext, ScorePlugin } from './framework/extension-points';
import {
  askLevel,
  coversKeys,
  CPU_LEVELS,
  cpuLevel,
  freeDeviceCount,
  labelKeysOf,
  NodeBuckets,
  nodeKinds,
  NodeScores,
  ranksBefore as before,
  scoreBound,
  unionKeys,
} from './framework/node-buckets';
import { DEFAULT_FILTERS, DEFAULT_PROFILE, DEFAULT_SCORES, type Profile } from './framework/profile';
import { ShapeIds } from './framework/shape-ids';
import { type FilterRefusal, RefusalCounter, type Status } from './framework/status';
import { type BackfillInput, BackfillReserve, type Reservation } from './plugins/backfill';
import { batchFill } from './plugins/batch-fill';
import { type FairShareInput, fairShareOrder, type PlaceStep } from './plugins/fair-share';
import { chargeOf, QuotaLedger } from './plugins/quota/ledger';
import { fitsOne, pickDevices, tasksThatFit } from './plugins/resource-fit';
import { tasksOnNode } from './plugins/topology';
import type { NodeSnapshot, PendingWork, Placement } from './snapshot';

/** How nodes are ranked. `bin-pack` scores with plugins; `first-fit` takes nodes in name order. */
export type PlacementPolicy = 'bin-pack' | 'first-fit';

/** Options of one placement pass. */
export interface PlacementOptions {
  /** Resources each queue may still take (absent queue or dimension = unlimited); ignored when `quota` is given. */
  queueHeadroom?: Map<string, ResourceVector>;
  /** Quota room of queues and cohorts (borrowing, lending, GPU models); taken from as tasks are placed. @default from `queueHeadroom` */
  quota?: QuotaLedger;
  /** Most tasks placed in one pass. @default 100000 */
  maxTasks?: number;
  /** @default "bin-pack" */
  policy?: PlacementPolicy;
  /** The plugins; `filters` and `scores` below override its chains. @default DEFAULT_PROFILE */
  profile?: Profile;
  /** @default the profile's filters */
  filters?: readonly FilterPlugin[];
  /** @default the profile's scores */
  scores?: readonly ScorePlugin[];
  /** Pack simultaneous plain work node by node (minimum bin slack) before the per-job pass. @default true for bin-pack */
  batchFill?: boolean;
  /**
   * The batching window as the fill sees it: plain work of the head's priority created at most this
   * long after it is packed as one tier (in the unit of `createdAt`: epoch ms live, seconds in the
   * simulation). @default 0: work submitted at the same instant only
   */
  batchWindow?: number;
  /**
   * Dominant resource fairness between queues within each priority: the queue with the lowest
   * weighted dominant share places next. Without it, work goes in queue order. @default off
   */
  fairShare?: FairShareInput;
  /**
   * Backfill with reservations: the first blocked pieces of work (queue order) get the nodes
   * where they start soonest, and later work runs there only if it ends before (see
   * `plugins/backfill`). @default off
   */
  backfill?: BackfillInput;
  /**
   * Rank request shapes through node buckets (`framework/node-buckets`: nodes indexed by class and
   * free room) instead of a scan of every node. The plan is the same either way (Filters and
   * Scores must depend on a node only through what `FilterPlugin` and `ScorePlugin` say); off
   * scans every node, as the equivalence tests compare. @default true
   */
  nodeIndex?: boolean;
  /**
   * A ranking kept for a request shape re-scores the nodes whose room changed since it was last
   * used (see `PlacementPass.rescore`); off keeps each ranking as first made, scores of the room
   * then (what the pass did before; tests compare the two). @default true
   */
  rescore?: boolean;
}

/** Why the tasks of a job that were not placed were not. */
export interface Unplaced {
  jobId: string;
  tasks: number;
  /** Nodes refused by each Filter status, most first. */
  filtered: FilterRefusal[];
  /**
   * Nodes that pass the filters but lack free room for one more task (or whose room a Reserve
   * plugin holds back: a reservation's, quota per node), other than those the work was given tasks
   * on in its last turn: counted when the pass ran out of nodes for it. When it did not (its quota,
   * the task budget or its fair-share step stopped it first), the nodes that had no room when the
   * ranking of its request shape was made (once a pass, again after a gang gave room back). Work
   * that names a topology: the nodes without such room when its domain was chosen.
   */
  full: number;
  /** Set when the queue's quota stopped placement (a PreFilter or Reserve said `QuotaLimited`). */
  quotaLimited: boolean;
  /** Set when a gang could not place every task and placed none (`GangBlocked`). */
  gangBlocked: boolean;
  /** The PreFilter and Permit statuses that limited it. */
  statuses: Status[];
  /** The room held for it from its expected start (backfill), when it got a reservation. */
  reservation?: Reservation;
}

/** What a placement pass decided. */
export interface PlacementResult {
  placements: Placement[];
  unplaced: Unplaced[];
  /** Reservations held in this pass (backfill), in the order they were made. @default [] */
  reservations?: Reservation[];
}

/** A ledger of plain per-queue headrooms (no cohorts): each queue may take what its map entry says. */
export function headroomLedger(headroom: Map<string, ResourceVector> | undefined): QuotaLedger {
  return new QuotaLedger(
    [...(headroom ?? [])].map(([name, nominal]) => ({ name, nominal })),
    new Map(),
  );
}

/** Places pending work on nodes. Inputs are not changed. */
export function placeTasks(work: readonly PendingWork[], nodes: readonly NodeSnapshot[], opts: PlacementOptions = {}): PlacementResult {
  const base = opts.profile ?? DEFAULT_PROFILE;
  const backfill = opts.backfill && opts.backfill.maxReservations > 0 ? new BackfillReserve(opts.backfill) : undefined;
  const profile: Profile = {
    ...base,
    filters: opts.filters ?? base.filters ?? DEFAULT_FILTERS,
    scores: opts.policy === 'first-fit' ? [] : (opts.scores ?? base.scores ?? DEFAULT_SCORES),
    ...(backfill ? { reserves: [...base.reserves, backfill] } : {}),
  };
  const pass = new PlacementPass(nodes, profile, opts.quota ?? headroomLedger(opts.queueHeadroom), opts.maxTasks ?? 100_000, backfill);
  // Building the buckets reads every node once, as one scan does: a pass of one piece of work (a
  // why-pending explanation) would not win it back.
  pass.indexed = opts.nodeIndex !== false && work.length > 1;
  pass.rescoring = opts.rescore !== false;
  // Priced fair share counts what placed tasks charge on their nodes (the GPU model).
  pass.charging = !!opts.fairShare && (!!opts.fairShare.prices || !!opts.fairShare.queuePrices?.size);
  const ordered = [...work].sort(profile.queueSort.compare).map((w) => ({ ...w }));
  // Tasks a re-pack moved go first to the nodes it planned for them, where they still fit.
  const outranked: PendingWork[] = [];
  if (ordered.some((w) => w.nominated?.length))
    pass.budget -= placeNominated(ordered, pass.states, profile.filters, pass.ledger, pass.placements, pass.budget, outranked);
  // A gang whose hold gave way to higher-priority work ahead holds its room at its turn, when the
  // pass did not place it. That hold is its reservation: it gets no backfill reservation besides
  // (two would hold room for it twice, and take the slot of the next blocked work), unless it
  // held nothing (the work ahead took its nodes' room, or a nominated node is gone).
  const holds = new Set(outranked);
  const place = (w: PendingWork, limit: number): PlaceStep => {
    const held = holds.has(w);
    const step = pass.place(w, limit, !held);
    if (held && w.tasks > 0 && step.blocked) {
      holds.delete(w);
      if (!pass.holdNominated(w) && step.placed === 0) pass.considerReservation(w);
    }
    return step;
  };
  if (opts.policy !== 'first-fit' && opts.batchFill !== false)
    pass.budget -= batchFill(ordered, pass.states, profile.filters, pass.ledger, pass.placements, pass.budget, !!opts.fairShare, opts.batchWindow ?? 0);
  if (!opts.fairShare) {
    for (const w of ordered) {
      if (pass.budget <= 0) break;
      if (w.tasks === 0) continue;
      place(w, w.tasks);
      if (w.tasks > 0) pass.leave(w);
    }
  } else {
    for (const w of fairShareOrder(ordered, opts.fairShare, () => pass.budget, place)) pass.leave(w);
    // Work the pass never reached (its task budget ran out) waits with no reason of its own.
    for (const w of ordered) if (w.tasks > 0 && !pass.left.has(w)) pass.unplaced.push(emptyWhy(w.jobId, w.tasks));
  }
  return { placements: pass.placements, unplaced: pass.unplaced, ...(backfill ? { reservations: backfill.reservations } : {}) };
}

function emptyWhy(jobId: string, tasks: number): Unplaced {
  return { jobId, tasks, filtered: [], full: 0, quotaLimited: false, gangBlocked: false, statuses: [] };
}

/** Nodes to reserve on (indices into the pass's states), in order, from `start` on; `more` appends the next ones when there are (see `NodeBuckets.rank`). */
interface Candidates {
  nodes: number[];
  start: number;
  more?(fits?: (i: number) => boolean, floor?: number): boolean;
  /** Whether a node of `score` and index `i` ranks before every node `more` has still to append (see `BucketRanking.beforeNext`). */
  beforeNext?(score: number, i: number): boolean;
  /**
   * The score of each node of the ranking, appended or not (a node not appended yet has its
   * bucket's, see `NodeBuckets.rank`), by node index (bin-pack only; NaN: not in the ranking):
   * finds it again when its room changes; with `floor`, the reserve loop reads the score of the
   * node it visits next.
   */
  scoreOf?: NodeScores;
  /**
   * Set while nodes of a kept ranking wait to be scored again (`Ranked.waiting`): no node they
   * could rank before scores above it, so the reserve loop visits only nodes scored above it
   * before they are scored (`PlacementPass.flush`). @default none
   */
  floor?: number;
  /**
   * The score, when it was given tasks, of the first node the last `reserve` on these candidates
   * gave tasks to (where placement takes now): in a kept ranking, a changed node whose bound
   * ranks below it waits (see `PlacementPass.rescore`). @default none: every changed node is
   * scored again at once
   */
  lastScore?: number;
  /** With node buckets, the dimensions of the work's request (`PlacementPass.dimsOf`), kept with a shape's ranking. */
  dims?: Dim[];
  /** With node buckets, whether a node has room for one task on `dims`. */
  fits?: (i: number) => boolean;
}

/** A resource a request asks for: every node's free amount of it (by index) and the amount one task takes. */
interface Dim {
  free: Float64Array;
  amount: number;
}

/** Mutable per-pass state of one node. */
interface NodeState {
  node: NodeSnapshot;
  free: ResourceVector;
  devices: Record<string, number>;
  /** Its index in the pass's states (name order). */
  index: number;
  /** The placement the last `reserve` call that gave it tasks made (see `PlacementPass.placedBy`). */
  placement?: Placement;
}

/** The nodes that pass a shape's filters, best first, with why the others do not. */
interface Ranked extends Candidates {
  /** From `start` on (nodes before it left the ranking: full for the shape). */
  nodes: number[];
  refused: FilterRefusal[];
  /** Nodes that passed the filters but had no room for one task when ranked. */
  full: number;
  /** Nodes that pass the filters. */
  passed: number;
  /** The pass's change count (`PlacementPass.changes`) the scores reflect, but for the `waiting` nodes. */
  seen: number;
  /** With node buckets: each node's bound (`BucketRanking.boundOf`); the scan's rankings compute it per node (`scoreBound`). */
  boundOf?(i: number): number;
  /**
   * With scores kept: by node kind (`PlacementPass.kinds`), the highest bound of a node of the kind
   * the filters pass (NaN: none passes, its changes are not the ranking's).
   */
  kindBound?: Float64Array;
  /**
   * By node kind: −1, or the change count since which the kind's changed nodes wait unscored, the
   * whole kind at once (its `kindBound` ranked below `lastScore`; see `PlacementPass.rescore`). @default none
   */
  pendingSince?: Float64Array;
  /**
   * Changed nodes not scored again yet, in the order they were found (see `PlacementPass.rescore`):
   * each stays where it ranked, and its bound (so its old score too) is at most `floor`. @default none
   */
  waiting?: Waiting;
  /** With node buckets: a re-scored node that ranks after the appended ones waits with those still to append (`BucketRanking.defer`). */
  defer?(i: number, score: number): void;
  /** With node buckets: a deferred node goes back into the appended head (`BucketRanking.undefer`). */
  undefer?(i: number): void;
}

/**
 * Whether node `i` with score `score` ranks in a kept ranking's appended nodes (`nodes`), not with
 * the nodes its buckets have still to append (see `NodeBuckets.rank`): it ranks before the next.
 */
function appended(ranked: Ranked, score: number, i: number): boolean {
  return !ranked.beforeNext || ranked.beforeNext(score, i);
}

/**
 * Index in `list` between `start` and `end` (sorted by `before` on `scoreOf`) where node `i` scored
 * `score` is or would go. Galloping from `start` (each probe twice as far past the last, then a
 * binary search within the last step): a node re-scored after taking work mostly goes near the front
 * (in the single-task bench, 41% of inserts at the first two places, 4% past the 64th), whose
 * scores the pass has just read, and each probe is a read of the ranking's scores by node.
 */
function rankIndex(list: readonly number[], start: number, end: number, scoreOf: NodeScores, score: number, i: number): number {
  let lo = start;
  let hi = end;
  for (let step = 1; lo < end; step *= 2) {
    const probe = Math.min(lo + step - 1, end - 1);
    const m = list[probe];
    if (!before(scoreOf.get(m), m, score, i)) {
      hi = probe;
      break;
    }
    lo = probe + 1;
  }
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const m = list[mid];
    if (before(scoreOf.get(m), m, score, i)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Nodes of a kept ranking waiting to be scored again (`Ranked.waiting`): each once, in the order they came. */
class Waiting {
  /** One bit per node index: whether it waits. */
  private readonly bits: Uint32Array;
  private list: number[] = [];
  constructor(nodes: number) {
    this.bits = new Uint32Array((nodes + 31) >>> 5);
  }
  add(i: number): void {
    const bit = 1 << (i & 31);
    if (this.bits[i >>> 5] & bit) return;
    this.bits[i >>> 5] |= bit;
    this.list.push(i);
  }
  /** The waiting nodes, in order; none wait afterwards. */
  take(): number[] {
    const out = this.list;
    for (const i of out) this.bits[i >>> 5] &= ~(1 << (i & 31));
    this.list = [];
    return out;
  }
}

/**
 * Moves the visited nodes that stay (`list[start..write)`) to just before the unvisited ones
 * (from `i` on) and returns where they start now (the reserve loop's compaction).
 */
function settle(list: number[], start: number, write: number, i: number): number {
  const kept = write - start;
  // Backwards: the target range ends at or after the source's end.
  if (write !== i) for (let k = kept - 1; k >= 0; k--) list[i - kept + k] = list[start + k];
  return i - kept;
}

/** Whether one of `statuses` has `code` (a loop: no closure made per call, as `some` would). */
function hasCode(statuses: readonly Status[], code: string): boolean {
  for (let k = 0; k < statuses.length; k++) if (statuses[k].code === code) return true;
  return false;
}

/** Whether node `n` has room for one task on `dims`: `fitsOne` on the free arrays (the quotient `tasksThatFit` floors; below 1 is no task, NaN falls through as there). */
function fitsOn(dims: readonly Dim[], n: number): boolean {
  for (let k = 0; k < dims.length; k++) if (dims[k].free[n] / dims[k].amount < 1) return false;
  return true;
}

/** Raises `bounds[k]` to `bound` when it is below (or NaN: no bound yet). */
function raiseBound(bounds: Float64Array, k: number, bound: number): void {
  if (!(bounds[k] >= bound)) bounds[k] = bound;
}

/** Sets `xs[i]`, filling the slots before it first (an array written far past its end turns into a dictionary). */
function setAt<T>(xs: Array<T | undefined>, i: number, x: T): void {
  while (xs.length < i) xs.push(undefined);
  xs[i] = x;
}

/** One pass over the nodes: their room as it shrinks, the quota ledger, and what was decided. */
class PlacementPass implements PassContext {
  readonly states: NodeState[];
  readonly placements: Placement[] = [];
  readonly unplaced: Unplaced[] = [];
  /** Work that left the pass with tasks unplaced (already in `unplaced`). */
  readonly left = new Set<PendingWork>();
  /** The last reasons of each piece of work (the latest `place` call). */
  private readonly why = new Map<PendingWork, Unplaced>();
  /** Request shapes by number (`ShapeIds`: work of one shape key, one number). */
  private readonly shapeIds: ShapeIds;
  /** Equivalence classes: once a request shape found no room in this pass, later work of the same shape skips the scan (by shape number). */
  private readonly noRoom: Array<Unplaced | undefined> = [];
  /** Filter + Score results per shape (see `ranking`), by shape number. */
  private rankedByShape: Array<Ranked | undefined> = [];
  /**
   * The change log: nodes whose room changed, by when they last did (`changes` counts the
   * reservations; `changedAt` by node index, 0: not in this pass), linked newest last. A ranking
   * kept for a shape re-scores the nodes changed since it was last used: scores depend on the room
   * left (the fragmentation gradient, most-allocated), and a ranking of the empty cluster reused
   * for work submitted at one instant would place every task as if no other had been placed.
   * Walking back from the newest finds each such node once, however often it changed. One list per
   * node kind (`kinds`) and level (`cpuLevel`) of the kind's free `levelResource` at the last
   * change, list number kind × `CPU_LEVELS` + level: a shape skips the levels too low for one task,
   * and a kind whose nodes its filters refuse or that cannot compete (see `rescore`) without
   * visiting its nodes.
   */
  private changes = 0;
  private changedAt?: Float64Array;
  private changedPrev?: Int32Array;
  private changedNext?: Int32Array;
  /** The list each changed node is in. */
  private changedList?: Int32Array;
  /** The newest node of each list; -1: none. */
  private newest?: Int32Array;
  /** By node kind: the change count of its newest change (0: none). */
  private kindChanged?: Float64Array;
  /** Node kinds (`nodeKinds`: capacity, GPU count and taints), made at first use. */
  private kindsMade?: { of: Int32Array; count: number; gpuCount: number[] };
  private get kinds(): { of: Int32Array; count: number; gpuCount: number[] } {
    return (this.kindsMade ??= nodeKinds(this.states.map((s) => s.node)));
  }

  /**
   * The resource whose free amount levels kind `k`'s change-log lists: GPU (milli) on nodes with
   * GPUs — GPU work skips the nodes whose devices are taken, however much CPU they have left — else
   * CPU (milli).
   */
  private levelResource(k: number): string {
    return this.kinds.gpuCount[k] > 0 ? 'gpu' : 'cpu';
  }
  /** Report what placed tasks charge (with their nodes' GPU models) in each step (priced fair share). */
  charging = false;
  /** Rank through node buckets (see `PlacementOptions.nodeIndex`). */
  indexed = true;
  /** Re-score kept rankings (see `PlacementOptions.rescore`). */
  rescoring = true;
  /**
   * The node buckets (made at the first ranking), one index for every shape: its classes tell apart
   * the labels any shape ranked so far reads (`indexKeys`, see `labelKeysOf`), so each ranks on
   * classes at least as fine as it needs (the ranking is the same: a Filter's verdict is the same
   * for every node of a finer class too). A shape that reads a label the index does not tell apart
   * has it made again with that label too — a few times a pass at most — instead of one index per
   * set of labels, each re-filing every node that moves.
   */
  private index?: NodeBuckets<NodeState>;
  /** The labels `index` tells classes apart by; undefined: every label. */
  private indexKeys?: readonly string[];
  private reserveCalls = 0;
  /** The last `reserve` call that gave each node tasks. */
  private readonly placedBy: Float64Array;

  constructor(
    nodes: readonly NodeSnapshot[],
    private readonly profile: Profile,
    readonly ledger: QuotaLedger,
    public budget: number,
    private readonly backfill?: BackfillReserve,
  ) {
    this.states = [...nodes]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((n) => {
        const free: ResourceVector = {};
        for (const k in n.capacity) free[k] = n.capacity[k] - (n.used[k] ?? 0);
        return { node: n, free, devices: { ...n.devices }, index: 0 };
      });
    this.states.forEach((s, i) => (s.index = i));
    this.placedBy = new Float64Array(this.states.length);
    this.shapeIds = new ShapeIds(!!backfill);
  }

  /** Free amount of a resource on every node, by index, kept equal to `states[i].free[name] ?? 0` (made at first use, after the batch fill). */
  private readonly freeArrays = new Map<string, Float64Array>();
  private freeOf(name: string): Float64Array {
    let a = this.freeArrays.get(name);
    if (!a) {
      a = new Float64Array(this.states.length);
      for (let i = 0; i < a.length; i++) a[i] = this.states[i].free[name] ?? 0;
      this.freeArrays.set(name, a);
    }
    return a;
  }

  /** The dimensions `w` asks for, each with every node's free amount (`freeOf`). */
  private dimsOf(w: PendingWork): Dim[] {
    const dims: Dim[] = [];
    for (const name in w.resources) if (w.resources[name] > 0) dims.push({ free: this.freeOf(name), amount: w.resources[name] });
    return dims;
  }

  /** Records why `w` leaves the pass with tasks unplaced. */
  leave(w: PendingWork): void {
    const reservation = this.backfill?.reservationOf(w.jobId);
    this.unplaced.push({ ...(this.why.get(w) ?? emptyWhy(w.jobId, 0)), tasks: w.tasks, ...(reservation ? { reservation } : {}) });
    this.left.add(w);
  }

  /**
   * Places up to `limit` tasks of `w` (see `placeOn`); with backfill, work that placed nothing
   * and is not held back by quota or the task budget is considered for a reservation
   * (PostFilter; work that requires a topology domain is held within one, see `planReservation`)
   * unless `reserve` is false. @param reserve @default true
   */
  place(w: PendingWork, limit: number, reserve = true): PlaceStep {
    const step = this.placeOn(w, limit);
    if (reserve && step.placed === 0) this.considerReservation(w);
    return step;
  }

  /** With backfill, blocked work `w` (not held back by quota or the task budget) is considered for a reservation. */
  considerReservation(w: PendingWork): void {
    if (this.backfill?.open() && w.tasks > 0 && (w.gang ? w.tasks : 1) <= this.budget && !this.why.get(w)?.quotaLimited) {
      const rooms = this.states.filter((s) => !this.profile.filters.some((f) => f.filter(w, s.node)));
      this.backfill.consider(w, rooms);
    }
  }

  /**
   * Places up to `limit` tasks of `w` (a gang: all or none): appends to `placements`, lowers
   * `w.tasks` and the budget. Blocked when it got less than it asked for (no room, quota or
   * budget), so it leaves a fair-share pass.
   */
  private placeOn(w: PendingWork, limit: number): PlaceStep {
    // The reasons are written into one object the pass reuses, and copied only when kept: work done
    // never leaves the pass nor comes back, so its reasons are dropped (most work of one task is
    // done in its first call; and a Map written and emptied each call reallocates).
    const why = this.scratch;
    why.jobId = w.jobId;
    why.tasks = 0;
    why.filtered = this.scratchFiltered;
    why.full = 0;
    why.quotaLimited = false;
    why.gangBlocked = false;
    this.scratchStatuses.length = 0;
    why.statuses = this.scratchStatuses;
    const step = this.placeShape(w, limit, this.shapeIds.of(w), why);
    if (w.tasks > 0) this.why.set(w, this.keep(why));
    else this.why.delete(w);
    return step;
  }

  /**
   * The reasons of the current `placeOn` call (see there): `filtered` and `statuses` are the
   * scratch lists below until the call sets others (a ranking's refusals, a known shape's reasons).
   */
  private readonly scratch: Unplaced = emptyWhy('', 0);
  private readonly scratchFiltered: FilterRefusal[] = [];
  private readonly scratchStatuses: Status[] = [];

  /** A copy of the scratch reasons to keep (`emptyWhy`'s key order): lists of their own, or the ranking's refusals as before. */
  private keep(why: Unplaced): Unplaced {
    return {
      jobId: why.jobId,
      tasks: why.tasks,
      filtered: why.filtered === this.scratchFiltered ? [] : why.filtered,
      full: why.full,
      quotaLimited: why.quotaLimited,
      gangBlocked: why.gangBlocked,
      statuses: why.statuses.slice(),
    };
  }

  /** `placeOn` for work of request shape `shape`, its reasons written into `why`. */
  private placeShape(w: PendingWork, limit: number, shape: number, why: Unplaced): PlaceStep {
    const known = this.noRoom[shape];
    if (known) {
      Object.assign(why, known, { jobId: w.jobId, quotaLimited: false, gangBlocked: !!w.gang });
      return { placed: 0, blocked: true };
    }
    // PreFilter
    let allowed = w.tasks;
    for (const p of this.profile.preFilters) {
      const r = p.preFilter(w, allowed, this);
      allowed = r.allowed;
      if (r.status) why.statuses.push(r.status);
    }
    why.quotaLimited = hasCode(why.statuses, 'QuotaLimited');
    if (hasCode(why.statuses, 'GangBlocked')) {
      why.gangBlocked = true;
      return { placed: 0, blocked: true };
    }
    const want = w.gang ? w.tasks : Math.min(allowed, this.budget, limit);
    // Filter + Score
    const ranked = this.ranking(w, shape);
    why.filtered = ranked.refused;
    why.full = ranked.full;
    // Domain (work that names a topology)
    let candidates: Candidates = ranked;
    if (w.topology) {
      // Every candidate is read: the nodes waiting to be scored again take their places first.
      if (ranked.floor !== undefined) this.flush(ranked, w);
      while (ranked.more?.());
      for (const d of this.profile.domains ?? []) {
        // A node's room is what the Reserve plugins would admit there (a reservation's held room, quota): a domain that only looks free is not chosen.
        let room = 0;
        const choice = d.choose(
          w,
          want,
          candidates.nodes.slice(candidates.start).map((i) => {
            const c = this.states[i];
            const fit = this.admitted(w, c.node, tasksOnNode(w.resources, c.free, c.devices, c.node.gpuCount));
            if (fit > 0) room++;
            return { node: c.node, fit };
          }),
        );
        // Every node the filters pass and the ranking still holds was read (by the first domain
        // plugin; a later one reads the domain chosen): the others have no room.
        if (candidates === ranked) why.full = ranked.passed - room;
        if (choice.status) {
          why.statuses.push(choice.status);
          why.gangBlocked ||= !!w.gang;
          return { placed: 0, blocked: true };
        }
        if (choice.order) {
          const from = candidates;
          candidates = { nodes: choice.order.map((k) => from.nodes[from.start + k]), start: 0 };
        }
      }
    }
    // Reserve
    const made = this.reserve(w, want, candidates);
    const mine = this.mine;
    let placed = 0;
    for (let k = 0; k < made; k++) placed += mine[k].count;
    // Short of `want`, the ranking ran out: every node it did not give tasks to has no room (see `Unplaced.full`).
    if (candidates === ranked) why.full = placed < want ? ranked.passed - made : ranked.full;
    // Permit
    for (const p of this.profile.permits) {
      const refused = p.permit(w, placed);
      if (!refused) continue;
      this.giveBack(w);
      this.rankedByShape = []; // room came back: rankings of this pass are stale
      why.statuses.push(refused);
      why.gangBlocked ||= refused.code === 'GangBlocked';
      return { placed: 0, blocked: true };
    }
    for (let k = 0; k < made; k++) this.placements.push(mine[k]);
    this.budget -= placed;
    w.tasks -= placed;
    if (placed === 0 && !why.quotaLimited) setAt(this.noRoom, shape, this.keep(why));
    const step: PlaceStep = { placed, blocked: placed < want || want === 0 };
    if (this.charging && placed > 0) {
      let charged: ResourceVector = {};
      for (let k = 0; k < made; k++) charged = addResources(charged, chargeOf(w.resources, this.labelsOf(mine[k].node)), mine[k].count);
      step.charged = charged;
    }
    return step;
  }

  /** Tasks of `want` the Reserve plugins admit on `node` (their `admit` has no effect). */
  private admitted(w: PendingWork, node: NodeSnapshot, want: number): number {
    for (const r of this.profile.reserves) if (want > 0) want = r.admit(w, node, want, this);
    return Math.max(0, want);
  }

  private labels?: Map<string, Record<string, string>>;
  private labelsOf(node: string): Record<string, string> | undefined {
    this.labels ??= new Map(this.states.map((s) => [s.node.name, s.node.labels]));
    return this.labels.get(node);
  }

  /**
   * Filter + Score, once per request shape per pass: filters do not depend on free room, and
   * within a pass room only shrinks, so the ranking stays usable for the next job of the same
   * shape (a node that can no longer take one task leaves it), once the nodes whose room changed
   * since it was last used are scored again (`rescore`). Spreading ranks afresh each time.
   */
  private ranking(w: PendingWork, shape: number): Ranked {
    let ranked = w.spread ? undefined : this.rankedByShape[shape];
    if (ranked) {
      this.rescore(ranked, w);
      return ranked;
    }
    const { filters, scores } = this.profile;
    const keepScores = scores.length > 0 && !w.spread && this.rescoring;
    if (this.indexed) {
      // Built after the batch fill, which changes room without telling the index.
      const keys = labelKeysOf(w, filters, scores);
      let index = this.index;
      if (!index || !coversKeys(this.indexKeys, keys)) {
        // Rankings kept from the index before keep its buckets' member lists as they were (copy on write), and their own score mapping.
        this.indexKeys = index ? unionKeys(this.indexKeys, keys) : keys;
        this.index = index = new NodeBuckets(this.states, this.indexKeys, index);
      }
      const dims = this.dimsOf(w);
      const one = (i: number): boolean => fitsOn(dims, i);
      const r = index.rank(w, filters, scores, keepScores ? (size) => this.newScores(size) : undefined, one);
      const boundOf = r.boundOf;
      let kindBound: Float64Array | undefined;
      if (boundOf) {
        kindBound = this.newKindBounds();
        const kindOf = this.kinds.of;
        for (const i of r.firsts) raiseBound(kindBound, kindOf[i], boundOf(i));
      }
      // Every field set here (none added later): the rankings the engine reads share one shape.
      ranked = {
        nodes: r.nodes,
        start: 0,
        more: r.more,
        beforeNext: r.beforeNext,
        defer: r.defer,
        undefer: r.undefer,
        refused: r.refused,
        full: r.full,
        passed: r.passed,
        scoreOf: r.scoreOf,
        seen: this.changes,
        dims,
        fits: undefined,
        boundOf,
        kindBound,
        pendingSince: kindBound && new Float64Array(kindBound.length).fill(-1),
        waiting: undefined,
        floor: undefined,
        lastScore: undefined,
      };
      if (!w.spread) setAt(this.rankedByShape, shape, ranked);
      return ranked;
    }
    const refused = new RefusalCounter();
    let full = 0;
    const scored: Array<{ s: NodeState; i: number; score: number }> = [];
    const kindBound = keepScores ? this.newKindBounds() : undefined;
    for (let i = 0; i < this.states.length; i++) {
      const s = this.states[i];
      let status: Status | undefined;
      for (const f of filters) if ((status = f.filter(w, s.node))) break;
      if (status) {
        refused.add(status);
        continue;
      }
      if (kindBound) raiseBound(kindBound, this.kinds.of[i], scoreBound(w, s.node, scores));
      if (tasksThatFit(w.resources, s.free) === 0) {
        full++;
        continue;
      }
      let score = 0;
      if (scores.length) {
        const fd = freeDeviceCount(s);
        for (const p of scores) score += p.weight * p.score(w, s.node, s.free, fd, s.devices);
        if (score !== score) score = -Infinity; // NaN (a plugin that could not score): last, not lost (see NodeBuckets.rank)
      }
      scored.push({ s, i, score });
    }
    if (scores.length) scored.sort((x, y) => y.score - x.score || (x.s.node.name < y.s.node.name ? -1 : 1));
    const refusals = refused.list();
    let passed = this.states.length;
    for (const r of refusals) passed -= r.nodes;
    ranked = { nodes: scored.map((c) => c.i), start: 0, refused: refusals, full, passed, seen: this.changes };
    if (keepScores) {
      const scoreOf = NodeScores.dense(this.newScores(this.states.length), (this.denseMapping ??= NodeScores.denseMapping(this.states.length)));
      for (const c of scored) scoreOf.set(c.i, c.score);
      ranked.scoreOf = scoreOf;
      // Nodes not ranked: NaN, below nothing (never waiting).
      const bounds = new Float64Array(this.states.length).fill(NaN);
      for (const c of scored) bounds[c.i] = scoreBound(w, c.s.node, scores);
      ranked.boundOf = (i) => bounds[i];
      ranked.kindBound = kindBound;
      ranked.pendingSince = new Float64Array(kindBound!.length).fill(-1);
    }
    if (!w.spread) setAt(this.rankedByShape, shape, ranked);
    return ranked;
  }

  /** A ranking's `kindBound`, before any kind is known to pass (NaN for each). */
  private newKindBounds(): Float64Array {
    return new Float64Array(this.kinds.count).fill(NaN);
  }

  /** Every node its own slot (`NodeScores.dense`): the scan's rankings. */
  private denseMapping?: { classNo: Int32Array; slotOf: Int32Array };

  /**
   * Rankings' scores (`Ranked.scoreOf`: `size` of them, the nodes their filters pass; NaN: not
   * ranked) are cut from blocks that double up to 64 rankings of every node or 2^20 scores: a pass
   * of many shapes allocates few buffers, one of few shapes small ones. Each slot is handed out
   * once, as allocated (zeros: "not ranked" to `NodeScores`), and never filled.
   */
  private scoreBlock?: Float64Array;
  private scoreBlockAt = 0;
  private newScores(size: number): Float64Array {
    const n = this.states.length;
    if (!this.scoreBlock || this.scoreBlockAt + size > this.scoreBlock.length) {
      const rankings = this.scoreBlock ? Math.min(64, 2 * (this.scoreBlock.length / n), Math.floor(2 ** 20 / n)) : 1;
      this.scoreBlock = new Float64Array(n * Math.max(1, rankings));
      this.scoreBlockAt = 0;
    }
    return this.scoreBlock.subarray(this.scoreBlockAt, (this.scoreBlockAt += size));
  }

  /**
   * Brings a kept ranking up to date: each node whose room changed since it was last used is
   * scored again and moved to its place (one that no longer takes one task is left for the reserve
   * loop to drop, as it drops the nodes a job fills). Nodes that did not change keep their scores,
   * which depend on their own room only. With node buckets, a changed node not appended yet is
   * taken out of the bucket it was ranked in (`NodeBuckets.rank`'s `scoreOf`); at its new score it
   * goes into the appended head when it ranks before the nodes still to append, else it waits with
   * them (`BucketRanking.defer`, appended or not): the ranking stays the one a scan of every node
   * keeps, and the head grows only as the reserve loop reads it (before, a node whose score fell
   * behind the run of empty nodes had the ranking append every node up to it).
   *
   * A changed node whose bound (`scoreBound`: the most it can score, so at least its old score)
   * ranks below where the ranking last placed (`Ranked.lastScore`) is not scored now: it waits
   * where it ranked (`Ranked.waiting`), and the reserve loop scores the waiting nodes before it
   * visits a node scored at or below the highest of their bounds (`Ranked.floor`, `flush`). Until then nothing it visits
   * could rank after them, so it visits what it would have visited with them scored: work without
   * GPUs no longer scores, for each shape, every GPU node that GPU work changed (they rank below
   * every CPU node with room). A waiting node scored when no task fits it any more keeps its old
   * place (scored at once, it would keep the place of its last score that fit): placements are
   * the same.
   *
   * The change log is walked kind by kind (`kinds`): a kind with no change since, or whose nodes the
   * filters all refuse, is skipped, and one whose highest bound (`Ranked.kindBound`) ranks below
   * `lastScore` waits whole, unvisited (`Ranked.pendingSince`; the floor is that bound): in the
   * single-task bench, CPU work no longer visits the GPU nodes GPU work changed, one by one, only to
   * find each waits, nor GPU work the CPU nodes it does not rank.
   */
  private rescore(ranked: Ranked, w: PendingWork): void {
    const scoreOf = ranked.scoreOf;
    if (!scoreOf || ranked.seen === this.changes) return;
    const seen = ranked.seen;
    ranked.seen = this.changes;
    const last = ranked.lastScore;
    const kindBound = ranked.kindBound!;
    const pending = ranked.pendingSince!;
    const changed = this.kindChanged!;
    for (let k = 0; k < kindBound.length; k++) {
      const since = pending[k] >= 0 ? pending[k] : seen;
      const bound = kindBound[k];
      // Nothing changed since, or none of its nodes is the ranking's (NaN).
      if (!(changed[k] > since) || bound !== bound) continue;
      if (last !== undefined && bound < last) {
        // The whole kind waits (no node of it can rank before where the ranking places).
        pending[k] = since;
        if (!(bound <= ranked.floor!)) ranked.floor = bound;
        continue;
      }
      pending[k] = -1;
      this.rescoreKind(ranked, w, k, since, last);
    }
  }

  /**
   * `rescore` for the nodes of kind `k` changed since change count `since`; with `last` (see
   * `Ranked.lastScore`), a node whose bound ranks below it waits (`Ranked.waiting`) instead of being
   * scored. @param last @default none: every node that takes one task is scored
   */
  private rescoreKind(ranked: Ranked, w: PendingWork, k: number, since: number, last: number | undefined): void {
    const scoreOf = ranked.scoreOf!;
    const when = this.changedAt!;
    const prev = this.changedPrev!;
    const newest = this.newest!;
    const dims = this.indexed ? (ranked.dims ??= this.dimsOf(w)) : undefined;
    // Walking back from the newest change finds each changed node once. Nodes in lists below the
    // level of what one task asks of the kind's `levelResource` have less of it free: they do not fit.
    for (let list = k * CPU_LEVELS + askLevel(w.resources[this.levelResource(k)] ?? 0); list < (k + 1) * CPU_LEVELS; list++)
      for (let i = newest[list]; i >= 0 && when[i] > since; i = prev[i]) {
        // A node without room for one task more stays where it is: the reserve loop drops it (full).
        // (Asked first: the free amounts are shared by every shape, its scores are not.)
        if (dims ? !fitsOn(dims, i) : !fitsOne(w.resources, this.states[i].free)) continue;
        // Its bound below where the ranking places: so is its old score (a score it had); it waits.
        // (Asked before the score, which is read from the ranking's own buffer.)
        if (last !== undefined) {
          const bound = ranked.boundOf!(i);
          if (bound < last) {
            ranked.waiting ??= new Waiting(this.states.length);
            ranked.waiting.add(i);
            if (!(bound <= ranked.floor!)) ranked.floor = bound;
            continue;
          }
        }
        const old = scoreOf.get(i);
        if (Number.isNaN(old)) continue; // not in the ranking (refused, or full when ranked)
        this.rescoreNode(ranked, w, i, old);
      }
  }

  /**
   * Scores the nodes of `ranked` that wait (see `rescore`: nodes one by one, and whole kinds) as
   * `rescore` would, those that still take one task; the others keep their places. The reserve
   * loop calls it with its visited nodes settled before the one it would visit next, whose score
   * is at most `floor`: every waiting node goes after the visited ones.
   */
  private flush(ranked: Ranked, w: PendingWork): void {
    const scoreOf = ranked.scoreOf!;
    if (ranked.waiting)
      for (const i of ranked.waiting.take()) {
        if (!fitsOne(w.resources, this.states[i].free)) continue;
        const old = scoreOf.get(i);
        if (!Number.isNaN(old)) this.rescoreNode(ranked, w, i, old);
      }
    const pending = ranked.pendingSince!;
    for (let k = 0; k < pending.length; k++)
      if (pending[k] >= 0) {
        const since = pending[k];
        pending[k] = -1;
        this.rescoreKind(ranked, w, k, since, undefined);
      }
    ranked.floor = undefined;
  }

  /** Scores node `i` of `ranked` (scored `old` there, and it takes one task) again, and moves it to its place (see `rescore`). */
  private rescoreNode(ranked: Ranked, w: PendingWork, i: number, old: number): void {
    const scoreOf = ranked.scoreOf!;
    const list = ranked.nodes;
    const s = this.states[i];
    const fd = freeDeviceCount(s);
    let score = 0;
    for (const p of this.profile.scores) score += p.weight * p.score(w, s.node, s.free, fd, s.devices);
    if (score !== score) score = -Infinity; // NaN marks "not ranked" here: a plugin's NaN ranks last instead
    if (score === old) {
      // Still at its old place; one its buckets have not appended yet left its bucket (it moved),
      // and the buckets skip the nodes that left (`BucketRanking.more`): it waits there, deferred at that score.
      if (!appended(ranked, old, i)) ranked.defer!(i, score);
      return;
    }
    let at = -1;
    if (appended(ranked, old, i)) {
      at = rankIndex(list, ranked.start, list.length, scoreOf, old, i);
      if (list[at] !== i) return; // left the ranking already (full for the shape)
    }
    if (!appended(ranked, score, i)) {
      // It now ranks with the nodes not appended yet: it waits there (the head is not appended up to it).
      if (at >= 0) {
        list.copyWithin(at, at + 1);
        list.length--;
      }
      ranked.defer!(i, score);
      return;
    }
    if (at < 0) {
      // Not appended (in its bucket, or deferred): into the appended head; its bucket leaves it out from now on (its score is no longer the bucket's).
      ranked.undefer!(i);
      scoreOf.set(i, score);
      // The nodes after its place shift by one (`splice` would make a list of the nodes it removed, none).
      const to = rankIndex(list, ranked.start, list.length, scoreOf, score, i);
      for (let k = list.length; k > to; k--) list[k] = list[k - 1];
      list[to] = i;
      return;
    }
    // Its new place (binary search on each side of it), then the nodes between shift by one.
    if (before(score, i, old, i)) {
      const to = rankIndex(list, ranked.start, at, scoreOf, score, i);
      for (; at > to; at--) list[at] = list[at - 1];
    } else {
      const to = rankIndex(list, at + 1, list.length, scoreOf, score, i) - 1;
      for (; at < to; at++) list[at] = list[at + 1];
    }
    scoreOf.set(i, score);
    list[at] = i;
  }

  /** The placements of the last `reserve` call, from 0 (one list the pass reuses, as `picks`: most calls make one). */
  private readonly mine: Placement[] = [];

  /**
   * Packing fills the best node, then the next; spreading deals one task per node per round. A
   * node with no room for one task of a packing shape leaves `candidates` (moving its start).
   * Returns how many placements it made: `mine` from 0, in the order their nodes were first given
   * tasks (the next call writes over them).
   */
  private reserve(w: PendingWork, want: number, candidates: Candidates): number {
    const call = ++this.reserveCalls;
    const mine = this.mine;
    let made = 0;
    this.takenCount = 0;
    const list = candidates.nodes;
    const states = this.states;
    // With node buckets, the shape's dimensions, each with every node's free amount (see `freeOf`):
    // the loop below passes many nodes that became full and reads only these arrays for them.
    // Without, each node's `free` (the plain pass the equivalence tests compare with).
    const dims = this.indexed ? (candidates.dims ??= this.dimsOf(w)) : undefined;
    // Packing drops a full node as it visits it: the ranking leaves out the full nodes before the
    // next that fits (spreading keeps full nodes).
    const fits = dims && !w.spread ? (candidates.fits ??= (n) => fitsOn(dims, n)) : undefined;
    let left = want;
    /** The first node given tasks (its score is where this ranking places now, `Candidates.lastScore`). */
    let first = -1;
    for (let progress = true; progress && left > 0; progress = progress && !!w.spread) {
      progress = false;
      // Visited nodes that stay are written from `start` on, then moved just before the unvisited ones.
      let write = candidates.start;
      let i = candidates.start;
      for (; left > 0; i++) {
        // Nodes that wait to be scored again may rank at or below `floor`: they are scored before the
        // loop visits a node there (see `PlacementPass.rescore`), and the loop goes on where it was.
        if (i >= list.length && !candidates.more?.(fits, candidates.floor) && candidates.floor === undefined) break;
        // At the floor: `more` stopped there (nothing appended), or the next node scores at or below it.
        if (candidates.floor !== undefined && (i >= list.length || !(candidates.scoreOf!.get(list[i]) > candidates.floor))) {
          candidates.start = settle(list, candidates.start, write, i);
          write = i;
          this.flush(candidates as Ranked, w);
          i--;
          continue;
        }
        const n = list[i];
        if (!(dims ? fitsOn(dims, n) : fitsOne(w.resources, states[n].free))) {
          // Full for this shape for the rest of the pass (a gang that gives room back clears the rankings).
          if (w.spread) list[write++] = n;
          continue;
        }
        const s = states[n];
        const fit = Math.min(left, tasksThatFit(w.resources, s.free));
        const reserved = fit > 0 ? this.reserveOn(s, w, w.spread ? Math.min(1, fit) : fit) : 0;
        if (reserved === 0) {
          if (w.spread || fit !== 0) list[write++] = n;
          continue;
        }
        list[write++] = n;
        if (first < 0) first = n;
        let p = this.placedBy[n] === call ? s.placement : undefined;
        if (!p) {
          p = { jobId: w.jobId, node: s.node.name, count: reserved.length, devices: reserved };
          mine[made++] = p;
          this.placedBy[n] = call;
          s.placement = p;
        } else {
          // A new list: the one it had is also what `giveBack` returns for the earlier reservation.
          p.count += reserved.length;
          p.devices = p.devices.concat(reserved);
        }
        left -= reserved.length;
        progress = true;
      }
      candidates.start = settle(list, candidates.start, write, i);
      // The nodes before `start` left the ranking: now and then they leave the array too, so a ranking
      // kept all pass does not grow with every node it ever passed.
      if (candidates.start >= 1024 && 2 * candidates.start >= list.length) {
        list.copyWithin(0, candidates.start);
        list.length -= candidates.start;
        candidates.start = 0;
      }
    }
    if (first >= 0 && candidates.scoreOf) candidates.lastScore = candidates.scoreOf.get(first);
    return made;
  }

  /** Puts node `i` last in the change log's list of its kind and free CPU now (see `changes`). */
  private logChange(i: number): void {
    const n = this.states.length;
    const at = (this.changedAt ??= new Float64Array(n));
    const prev = (this.changedPrev ??= new Int32Array(n).fill(-1));
    const next = (this.changedNext ??= new Int32Array(n).fill(-1));
    const lists = (this.changedList ??= new Int32Array(n));
    const kinds = this.kinds;
    const newest = (this.newest ??= new Int32Array(kinds.count * CPU_LEVELS).fill(-1));
    const kind = kinds.of[i];
    const list = kind * CPU_LEVELS + cpuLevel(this.states[i].free[this.levelResource(kind)] ?? 0);
    (this.kindChanged ??= new Float64Array(kinds.count))[kind] = this.changes + 1;
    if (at[i] > 0) {
      const was = lists[i];
      if (newest[was] === i && was === list) {
        at[i] = ++this.changes;
        return;
      }
      // Unlinked from where it was.
      if (prev[i] >= 0) next[prev[i]] = next[i];
      if (next[i] >= 0) prev[next[i]] = prev[i];
      else newest[was] = prev[i];
    }
    at[i] = ++this.changes;
    lists[i] = list;
    prev[i] = newest[list];
    next[i] = -1;
    if (newest[list] >= 0) next[newest[list]] = i;
    newest[list] = i;
  }

  /** Nodes by name (made at the first `holdNominated`). */
  private byName?: Map<string, NodeState>;

  /**
   * Holds the room of gang `w`'s nominated nodes for the rest of the pass (`holdGang`): the free
   * arrays, the node buckets and the change log are told, as for a reservation. Returns whether
   * it held room on some node (false when none of its nodes had the room — the work ahead took it,
   * or the stops have still to land — or it is no defragmentation's layout any more: a nominated
   * node gone or refused, or the gang over the budget).
   */
  holdNominated(w: PendingWork): boolean {
    this.byName ??= new Map(this.states.map((s) => [s.node.name, s]));
    const held = holdGang(w, this.byName, this.profile.filters, this.budget) as NodeState[];
    for (const s of held) {
      for (const name in w.resources) {
        const free = this.freeArrays.get(name);
        if (free) free[s.index] = s.free[name];
      }
      this.moved(s);
      this.logChange(s.index);
    }
    return held.length > 0;
  }

  /** Tells the node buckets that a node's room changed. */
  private moved(s: NodeState): void {
    this.index?.movedAt(s.index);
  }

  /**
   * What the current `reserve` call took, in order, to give back if Permit refuses: the nodes
   * (`taken`, the first `takenCount`) and the devices of each one's tasks. Kept as data in arrays
   * reused by every call: most work is permitted, and a closure per reservation was garbage.
   */
  private readonly taken: NodeState[] = [];
  private readonly takenDevices: number[][][] = [];
  private takenCount = 0;

  /** Gives back everything the last `reserve` call for `w` took (newest first), Reserve plugins included. */
  private giveBack(w: PendingWork): void {
    const reserves = this.profile.reserves;
    const share = w.resources.gpu ?? 0;
    const each = share >= GPU_MILLI ? GPU_MILLI : share;
    const need = w.resources;
    for (let k = this.takenCount - 1; k >= 0; k--) {
      const s = this.taken[k];
      const devices = this.takenDevices[k];
      const count = devices.length;
      for (const ds of devices) for (const d of ds) s.devices[d] -= each;
      for (const name in need) {
        s.free[name] += need[name] * count;
        const free = this.freeArrays.get(name);
        if (free) free[s.index] = s.free[name];
      }
      this.moved(s);
      for (const r of reserves) r.unreserve(w, s.node, count, this);
    }
    this.takenCount = 0;
  }

  /** The devices `reserveOn` picks, task by task (one list the pass reuses, written from 0: emptied by setting its length, it would give back its room). */
  private readonly picks: number[][] = [];

  /**
   * Reserves up to `want` tasks of `w` on one node: each Reserve plugin admits its part, devices
   * are picked task by task, then the plugins take their part; records it to give back (`taken`).
   * Returns the devices of each reserved task (empty lists without GPUs), or 0.
   */
  private reserveOn(s: NodeState, w: PendingWork, want: number): number[][] | 0 {
    const reserves = this.profile.reserves;
    want = this.admitted(w, s.node, want);
    if (want <= 0) return 0;
    const share = w.resources.gpu ?? 0;
    const each = share >= GPU_MILLI ? GPU_MILLI : share;
    const picks = this.picks;
    let count = 0;
    for (; count < want; count++) {
      const picked = pickDevices(s.devices, s.node.gpuCount, share);
      if (!picked) break;
      for (const d of picked) s.devices[d] = (s.devices[d] ?? 0) + each;
      picks[count] = picked;
    }
    if (count === 0) return 0;
    // Sized to them (a list grown by push from empty reserves 17 slots, and placements are kept).
    const devices = picks.slice(0, count);
    const need = w.resources;
    for (const name in need) {
      s.free[name] = (s.free[name] ?? 0) - need[name] * count;
      const free = this.freeArrays.get(name);
      if (free) free[s.index] = s.free[name];
    }
    this.moved(s);
    this.logChange(s.index);
    for (const r of reserves) r.reserve(w, s.node, count, this);
    this.taken[this.takenCount] = s;
    this.takenDevices[this.takenCount++] = devices;
    return devices;
  }
}

/** First fit (nodes in name order), kept as the simple baseline. */
export function placeFirstFit(work: readonly PendingWork[], nodes: readonly NodeSnapshot[], opts: Omit<PlacementOptions, 'policy'> = {}): Placement[] {
  return placeTasks(work, nodes, { ...opts, policy: 'first-fit' }).placements;
}
