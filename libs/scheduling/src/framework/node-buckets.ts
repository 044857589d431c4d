/**
 * Node buckets: an index of a pass's nodes by shape and free room, so ranking a new request shape
 * costs one Filter call per node class and one fit check and Score per bucket, not per node.
 *
 *   class  — nodes with the same capacity, GPU count, taints and labels (what Filters look at) —
 *            of the labels, only the keys the plugins say they read (`labelKeys`), so a label
 *            every node has its own value of (a host name) does not make each node a class;
 *   bucket — nodes of one class with the same free room and device use (what Scores look at).
 *
 * A Filter verdict is the same for every node of a class and a Score the same for every node of a
 * bucket (the contract of `FilterPlugin` and `ScorePlugin`), so the ranking this index returns is
 * the one a scan of every node returns: the same nodes, the same order (score, then name), the
 * same refusal counts. It changes how candidates are found, not which node wins. The engine
 * tells it when a node's room changed (`moved`). Pure; no I/O.
 */
import type { ResourceVector } from '@batchapi/api';
import type { NodeSnapshot, PendingWork } from '../snapshot';
import { fitsOne } from '../plugins/resource-fit';
import type { FilterPlugin, ScorePlugin } from './extension-points';
import { type FilterRefusal, RefusalCounter, type Status } from './status';

/** Most nodes one `BucketRanking.more` call appends. */
const APPEND = 32;

/** Above every node index: a merged list with no node left (see `NodeBuckets.rank`). */
const NONE = 2 ** 31 - 1;

/** Levels of free CPU (see `cpuLevel`). */
export const CPU_LEVELS = 33;

/**
 * The level of `milli` free CPU: 0 below 1, else its bits (1: 1, 2: 2–3, 3: 4–7, …; 32 from 2^31);
 * NaN is 32 (a NaN room passes `fitsOne`'s check, so it must be on the level every ask visits). A
 * room of a lower level than an ask's has less free CPU than it: no task of it fits there.
 */
export function cpuLevel(milli: number): number {
  return milli < 1 ? 0 : milli >= 2 ** 31 || milli !== milli ? 32 : 32 - Math.clz32(milli);
}

/**
 * The lowest `cpuLevel` a room needs to take one task asking `milli` CPU: that level, or 0 when the
 * ask is not a positive amount (0, negative, NaN), which `fitsOne` does not check — every level
 * then (NaN as a room is level 32; as an ask it must skip nothing).
 */
export function askLevel(milli: number): number {
  return milli > 0 ? cpuLevel(milli) : 0;
}

/** A node's room as a pass sees it (the engine's per-node state). */
export interface NodeRoom {
  node: NodeSnapshot;
  free: ResourceVector;
  /** Milli-GPU in use per device index. */
  devices: Record<string, number>;
}

/**
 * Nodes that pass a shape's filters and had room for one task when ranked, best first, and why the
 * others do not. `nodes` holds the ranking's first nodes, as indices into the index's states;
 * `more` appends the next ones (up to `APPEND` of them), as they were when ranked, and says
 * whether it did.
 */
export interface BucketRanking {
  nodes: number[];
  /**
   * Appends the next nodes. With `fits`, for a caller that visits them next and drops a node
   * without room for one task (it stays full for the rest of the pass): the nodes before the first
   * that `fits` accepts are passed to `fits` and left out, so a run of full nodes
   * is not appended only to be dropped. With `floor`, it stops before a node whose score is not
   * above it (the caller has nodes waiting to be scored again that may rank there). With a score
   * buffer (`scoreOf`), a node that moved since the ranking was made is not appended from its
   * bucket: the caller scores every such node again, before asking for nodes at or below its old
   * score, and places it (in `nodes`, or with `defer`, at its old score too) unless no task fits it.
   */
  more(fits?: (i: number) => boolean, floor?: number): boolean;
  /** Whether a node of `score` and index `i` ranks before every node `more` has still to append (true when none are left). */
  beforeNext(score: number, i: number): boolean;
  /**
   * With `scoreOf` (see `NodeBuckets.rank`): node `i`, not in `nodes`, which the caller scored
   * again at `score` that ranks after `nodes`, waits with the nodes still to append at that score
   * (`more` appends it in its place; its bucket leaves it out); its `scoreOf` becomes `score`. A
   * node deferred before moves.
   */
  defer(i: number, score: number): void;
  /** Takes node `i` out of the deferred nodes (see `defer`), if it is there: the caller puts it in `nodes`. */
  undefer(i: number): void;
  refused: FilterRefusal[];
  /** Nodes that pass the filters but have no room for one task. */
  full: number;
  /** With a score buffer (see `NodeBuckets.rank`): the score of each node ranked. */
  scoreOf?: NodeScores;
  /** With a score buffer: node `i`'s `scoreBound` (by its class: the nodes of a class have one). */
  boundOf?(i: number): number;
  /** The first node of each class the filters pass, in class order (with `boundOf`: each class's bound, see `nodeKinds`). */
  firsts: number[];
  /** Nodes that pass the filters. */
  passed: number;
}

/**
 * The scores of a ranking's nodes by node index, stored only for the nodes of the classes its
 * filters pass (a shape tied to one zone or GPU model keeps a third of the cluster or less): node
 * `i` is at `base[classNo[i]] + slotOf[i]`. Not ranked (refused, or full when ranked) reads NaN:
 * refused classes have `base` −1, and a slot never written holds +0 — a new buffer's zeros, so a
 * ranking need not fill its buffer (most of a pass's 5 million slots are written with a score
 * anyway) — while a score of 0 is stored as −0, equal to 0 in every comparison.
 */
export class NodeScores {
  /**
   * `classNo`, `slotOf` (by node index): the node's class and its place among the class's nodes, in
   * index order; `base` (by class): where the class's scores start in `scores`, −1 when refused.
   */
  constructor(
    private readonly classNo: Int32Array,
    private readonly slotOf: Int32Array,
    private readonly base: Int32Array,
    private readonly scores: Float64Array,
  ) {}

  /** Every node in one class, in index order: a table over all `scores.length` nodes. */
  static dense(scores: Float64Array, mapping: { classNo: Int32Array; slotOf: Int32Array }): NodeScores {
    return new NodeScores(mapping.classNo, mapping.slotOf, new Int32Array(1), scores);
  }

  /** The identity mapping of `dense` for `n` nodes. */
  static denseMapping(n: number): { classNo: Int32Array; slotOf: Int32Array } {
    const slotOf = new Int32Array(n);
    for (let i = 0; i < n; i++) slotOf[i] = i;
    return { classNo: new Int32Array(n), slotOf };
  }

  /** Node `i`'s score; NaN: not ranked. */
  get(i: number): number {
    const b = this.base[this.classNo[i]];
    if (b < 0) return NaN;
    const v = this.scores[b + this.slotOf[i]];
    // +0: never written (−0 is a score of 0, see `stored`).
    return v !== 0 ? v : 1 / v < 0 ? 0 : NaN;
  }

  /** Sets the score of each node of `members` from `from` on (nodes of one class the ranking's filters pass). @default from: 0 */
  setAll(members: readonly number[], score: number, from = 0): void {
    const b = this.base[this.classNo[members[from]]];
    const v = stored(score);
    for (let k = from; k < members.length; k++) this.scores[b + this.slotOf[members[k]]] = v;
  }

  /** Sets the score of node `i`, which must be of a class the ranking's filters pass (NaN: not ranked). */
  set(i: number, score: number): void {
    this.scores[this.base[this.classNo[i]] + this.slotOf[i]] = stored(score);
  }
}

/** How `NodeScores` stores a score: 0 as −0 (+0 is "not ranked"), NaN (not ranked) as +0. */
function stored(score: number): number {
  return score === 0 ? -0 : score !== score ? 0 : score;
}

interface NodeClass {
  /** Its number (its place in `NodeBuckets.classes`). */
  no: number;
  /** Index of its first node (nodes are in name order): classes are visited in this order. */
  first: number;
  /** The keys of its first node's capacity and labels, in order (compared without a copy per node). */
  capacityKeys: string[];
  labelKeys: string[];
  size: number;
  /**
   * Its buckets by the level of their free CPU (`cpuLevel`), in no order, and how many nodes each
   * level holds: ranking skips the levels below the ask's (every node there is full for it) and
   * counts their nodes as full without visiting them.
   */
  byLevel: Bucket[][];
  levelNodes: Int32Array;
}

interface Bucket {
  /**
   * A node's own bucket, made when it first moved (its only member, for the rest of the pass);
   * else a bucket of the nodes that had one room when the index was made.
   */
  own: boolean;
  /** `cpuLevel` of its free CPU, and its place in its class's `byLevel[level]`. */
  level: number;
  at: number;
  /** Node indices, ascending (= name order), from `from` on. */
  members: number[];
  /**
   * Where its nodes start in `members`: the nodes before it left the bucket at its front (packing
   * takes equal nodes in name order), so a shared list is not copied for them. @default 0
   */
  from: number;
  /** A ranking holds `members` (from `from` on) as it was: copy before changing it. */
  shared: boolean;
}

/** Nodes in bucket `b`. */
function sizeOf(b: Bucket): number {
  return b.members.length - b.from;
}

/**
 * Numbers for rooms: nodes with the same free room (same keys in the same order, values equal by
 * `===`) and the same use of each device (indices below `gpuCount`; absent is 0, as `NodeSnapshot`
 * defines it) get the same number; 0 is a node's room before the pass took any of it. Used when an
 * index is made (nodes a pass moves later get buckets of their own, see `NodeBuckets.moved`).
 */
class RoomIds {
  /** Rooms some node is in now, by a hash of their numbers; a hit is compared exactly. */
  private readonly byHash = new Map<number, RoomEntry[]>();
  /** The room each node was last numbered in (a room no node is in is forgotten). */
  private readonly numbered = new Map<NodeRoom, RoomEntry>();
  private next = 1;

  /** The keys of the last room numbered: rooms of one node kind share one list (never changed). */
  private lastKeys: string[] = [];

  of(s: NodeRoom): number {
    let h = s.node.gpuCount;
    for (const k in s.free) h = (Math.imul(h, 31) + hashNumber(s.free[k])) | 0;
    for (let d = 0; d < s.node.gpuCount; d++) h = (Math.imul(h, 31) + (s.devices[d] ?? 0)) | 0;
    const seen = this.byHash.get(h);
    let entry: RoomEntry | undefined;
    if (seen) for (let k = 0; k < seen.length && !entry; k++) if (sameRoom(seen[k], s)) entry = seen[k];
    if (!entry) {
      let devices = NO_DEVICES;
      if (s.node.gpuCount > 0) {
        const used: number[] = [];
        for (let d = 0; d < s.node.gpuCount; d++) used.push(s.devices[d] ?? 0);
        devices = used;
      }
      if (!sameKeys(this.lastKeys, s.free)) this.lastKeys = Object.keys(s.free);
      entry = { keys: this.lastKeys, free: Object.values(s.free), devices, id: this.next++, hash: h, nodes: 0 };
      if (seen) seen.push(entry);
      else this.byHash.set(h, [entry]);
    }
    const was = this.numbered.get(s);
    if (was !== entry) {
      if (was && --was.nodes === 0) {
        const list = this.byHash.get(was.hash)!;
        if (list.length === 1) this.byHash.delete(was.hash);
        else list.splice(list.indexOf(was), 1);
      }
      entry.nodes++;
      this.numbered.set(s, entry);
    }
    return entry.id;
  }
}

/** A room as it was numbered, and its number. */
interface RoomEntry {
  keys: readonly string[];
  free: number[];
  /** Use of each device, 0..gpuCount−1. */
  devices: readonly number[];
  id: number;
  hash: number;
  /** Nodes in it now. */
  nodes: number;
}

/** The devices of a room on a node without GPUs (shared: never changed). */
const NO_DEVICES: readonly number[] = [];

/** `record` has the keys `keys`, in their order. */
function sameKeys(keys: readonly string[], record: Readonly<Record<string, unknown>>): boolean {
  let n = 0;
  for (const k in record) if (keys[n++] !== k) return false;
  return n === keys.length;
}

/** The low 32 bits of an integer (and a mix of the rest), for the hash. */
function hashNumber(v: number): number {
  return (v | 0) ^ ((v / 4294967296) | 0);
}

function sameRoom(r: RoomEntry, s: NodeRoom): boolean {
  let n = 0;
  for (const k in s.free) {
    if (r.keys[n] !== k || r.free[n] !== s.free[k]) return false;
    n++;
  }
  if (n !== r.keys.length || r.devices.length !== s.node.gpuCount) return false;
  for (let d = 0; d < r.devices.length; d++) if (r.devices[d] !== (s.devices[d] ?? 0)) return false;
  return true;
}

/** A node's room is all of its capacity and no device is used (no key of room needed to tell such nodes of a class apart). */
function untouched(s: NodeRoom): boolean {
  let n = 0;
  for (const k in s.free) {
    if (s.free[k] !== s.node.capacity[k]) return false;
    n++;
  }
  for (let d = 0; d < s.node.gpuCount; d++) if (s.devices[d]) return false;
  for (const _ in s.node.capacity) n--;
  return n === 0;
}

/**
 * The label keys the filters and scores read for `work`, sorted; undefined when one of them may
 * read any label (then every label counts).
 */
export function labelKeysOf(work: PendingWork, filters: readonly FilterPlugin[], scores: readonly ScorePlugin[]): string[] | undefined {
  const keys = new Set<string>();
  for (const p of [...filters, ...scores]) {
    if (!p.labelKeys) return undefined;
    for (const k of p.labelKeys(work)) keys.add(k);
  }
  return [...keys].sort();
}

/** Whether classes told apart by the labels `have` are as fine as `want` needs (undefined: every label). */
export function coversKeys(have: readonly string[] | undefined, want: readonly string[] | undefined): boolean {
  if (!have) return true;
  if (!want) return false;
  for (const k of want) if (!have.includes(k)) return false;
  return true;
}

/** The labels of both, sorted (undefined, every label, when either is). */
export function unionKeys(a: readonly string[] | undefined, b: readonly string[] | undefined): string[] | undefined {
  return a && b ? [...new Set([...a, ...b])].sort() : undefined;
}

/** Same entries in the same order (`keys`: the keys of `a`, in order). */
function sameRecord<T>(keys: readonly string[], a: Record<string, T>, b: Record<string, T>): boolean {
  let n = 0;
  for (const k in b) if (keys[n++] !== k || a[k] !== b[k]) return false;
  return n === keys.length;
}

/** Nodes a Filter cannot tell apart: capacity, GPU count, taints, and the labels of `labelKeys` (every label when absent). */
function sameClass(cls: NodeClass, a: NodeSnapshot, b: NodeSnapshot, labelKeys: readonly string[] | undefined): boolean {
  if (a.gpuCount !== b.gpuCount || !sameRecord(cls.capacityKeys, a.capacity, b.capacity) || a.taints.length !== b.taints.length) return false;
  if (labelKeys) {
    for (const k of labelKeys) if (a.labels[k] !== b.labels[k]) return false;
  } else if (!sameRecord(cls.labelKeys, a.labels, b.labels)) return false;
  for (let k = 0; k < a.taints.length; k++) if (JSON.stringify(a.taints[k]) !== JSON.stringify(b.taints[k])) return false;
  return true;
}

/**
 * Node kinds: nodes with the same capacity (keys in order, values), GPU count and taints — what
 * tells node classes apart but the labels, so every class of every index (`NodeBuckets`) lies
 * within one kind. `of` gives each node's kind by index (0 to `count` − 1, in the order kinds are
 * first met), `gpuCount` each kind's GPU count. A fleet has a few (two in the scheduling bench: CPU
 * and GPU nodes).
 */
export function nodeKinds(nodes: readonly NodeSnapshot[]): { of: Int32Array; count: number; gpuCount: number[] } {
  const of = new Int32Array(nodes.length);
  const gpuCount: number[] = [];
  // Kinds by a hash of what tells them apart; a hit is compared with the kind's first node (as classes are).
  const firsts: NodeSnapshot[] = [];
  const capacityKeys: string[][] = [];
  const byHash = new Map<number, number[]>();
  const keyIds = new Map<string, number>();
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i];
    let h = n.gpuCount;
    for (const k in n.capacity) {
      let id = keyIds.get(k);
      if (id === undefined) keyIds.set(k, (id = keyIds.size + 1));
      h = (Math.imul(h, 31) + id + hashNumber(n.capacity[k])) | 0;
    }
    h = (Math.imul(h, 31) + n.taints.length) | 0;
    const seen = byHash.get(h);
    let kind = -1;
    if (seen) for (let k = 0; k < seen.length && kind < 0; k++) if (sameKind(capacityKeys[seen[k]], firsts[seen[k]], n)) kind = seen[k];
    if (kind < 0) {
      kind = firsts.length;
      firsts.push(n);
      capacityKeys.push(Object.keys(n.capacity));
      gpuCount.push(n.gpuCount);
      if (seen) seen.push(kind);
      else byHash.set(h, [kind]);
    }
    of[i] = kind;
  }
  return { of, count: firsts.length, gpuCount };
}

/**
 * Whether `b` is of the kind of `a` (`nodeKinds`; `keys`: `a`'s capacity keys, in order): `sameClass`
 * but the labels, with NaN equal to NaN (nodes of a NaN capacity are one kind, not one each).
 */
function sameKind(keys: readonly string[], a: NodeSnapshot, b: NodeSnapshot): boolean {
  if (a.gpuCount !== b.gpuCount || a.taints.length !== b.taints.length) return false;
  let n = 0;
  for (const k in b.capacity) {
    const x = a.capacity[k];
    const y = b.capacity[k];
    if (keys[n++] !== k || (x !== y && (x === x || y === y))) return false;
  }
  if (n !== keys.length) return false;
  for (let k = 0; k < a.taints.length; k++) if (JSON.stringify(a.taints[k]) !== JSON.stringify(b.taints[k])) return false;
  return true;
}

/** Wholly free devices of a node. */
export function freeDeviceCount(s: NodeRoom): number {
  let n = 0;
  for (let d = 0; d < s.node.gpuCount; d++) if (!s.devices[d]) n++;
  return n;
}

/**
 * An upper bound of the summed `scores` of `work` on `node` at any room where one task fits: the
 * weighted sum of the plugins' `bound`s, summed as the scores are (so it is not below their sum);
 * Infinity when a plugin has none, has a negative weight, or gives NaN. A weight of 0 adds 0.
 */
export function scoreBound(work: PendingWork, node: NodeSnapshot, scores: readonly ScorePlugin[]): number {
  let bound = 0;
  for (const p of scores) {
    if (p.weight === 0) continue;
    if (!(p.weight > 0) || !p.bound) return Infinity;
    bound += p.weight * p.bound(work, node);
  }
  return bound === bound ? bound : Infinity;
}

/** Order of a ranking: higher score first, then node index (= name order). */
export function ranksBefore(a: number, ai: number, b: number, bi: number): boolean {
  return a > b || (a === b && ai < bi);
}

/** Merges ascending index lists into one ascending list. */
function mergeAscending(lists: readonly number[][]): number[] {
  let n = 0;
  for (const l of lists) n += l.length;
  const all = new Int32Array(n);
  n = 0;
  for (const l of lists) for (const i of l) all[n++] = i;
  return Array.from(all.sort());
}

/** The first index of ascending `xs` whose value is not below `i`. */
function lowerBound(xs: readonly number[], i: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < i) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Removes `i` from ascending `xs`. */
function removeSorted(b: Bucket, i: number): void {
  let lo = lowerBound(b.members, i);
  if (b.members[lo] !== i || lo < b.from) return;
  // Packing takes equal nodes in name order, so nodes mostly leave a bucket at its front: its start
  // moves past them, and a list a ranking holds is neither copied nor changed (it was copied for
  // each: 1.9 million node numbers a single-task pass, kept until the bucket changed again).
  if (lo === b.from) {
    b.from++;
    return;
  }
  if (b.shared) {
    // A ranking holds the list: the bucket's nodes get a list of their own.
    b.members = b.members.slice(b.from);
    lo -= b.from;
    b.from = 0;
    b.shared = false;
  }
  if (lo === b.members.length - 1) b.members.pop();
  else b.members.splice(lo, 1);
}

/**
 * An index of `states` (in name order) by class and free room; kept current through `moved`. When
 * it is made, nodes of a class with one room share a bucket (a cluster's empty nodes, nodes with
 * the same running tasks); a node that moves afterwards leaves it for a bucket of its own, once,
 * and later moves change only that bucket's CPU level. Rooms a pass makes are nearly all distinct
 * (81,452 buckets of 84,907 moved nodes met by the rankings of the single-task bench), so
 * numbering and comparing them after every reservation cost more than the few Score calls that
 * sharing saves; and a bucket of one node never changes its member list, so no ranking holding
 * it makes it copy.
 */
export class NodeBuckets<S extends NodeRoom> {
  private readonly classes: NodeClass[] = [];
  private readonly classOf: NodeClass[] = [];
  private readonly bucketOf: Bucket[] = [];
  /** Node indices by state (made at the first `moved`: the engine says `movedAt`). */
  private indexOf?: Map<S, number>;
  private buckets = 0;
  /** Nodes moved since the last ranking (`moved`), each once. */
  private readonly stale: number[] = [];
  private readonly isStale: Uint8Array;
  /** By node index: its class's number and its place among the class's nodes (see `NodeScores`). */
  private readonly classNo: Int32Array;
  private readonly slotOf: Int32Array;

  /**
   * `states` must be in node name order (ties in a ranking go to the lower index). `labelKeys`:
   * the labels that tell classes apart (see `labelKeysOf`). @default every label. `from`: an index
   * of the same states by some of `labelKeys` (both given), split rather than made afresh; it is
   * not to be used afterwards. @default none
   */
  constructor(
    private readonly states: readonly S[],
    private readonly labelKeys?: readonly string[],
    from?: NodeBuckets<S>,
  ) {
    const rooms = new RoomIds();
    /** The buckets of each class (by number) by room number, while the index is made. */
    const byRoom: Array<Map<number, Bucket>> = [];
    // Made from `from` (an index of the same states by fewer labels): its classes split by the labels
    // it did not tell apart, its buckets by class, without hashing capacities, taints or rooms again.
    const added = from?.labelKeys && labelKeys ? labelKeys.filter((k) => !from.labelKeys!.includes(k)) : undefined;
    if (added) from!.refile();
    /** With `from`: the new classes by old class and added labels' values, and each one's buckets by the old bucket. */
    const split = new Map<string, NodeClass>();
    const byOld: Array<Map<Bucket, Bucket>> = [];
    this.isStale = new Uint8Array(states.length);
    this.classNo = new Int32Array(states.length);
    this.slotOf = new Int32Array(states.length);
    // Classes by a hash of what tells them apart; a hit is compared with the class's first node.
    const byHash = new Map<number, NodeClass[]>();
    const strings = new Map<string, number>();
    const idOf = (x: string) => {
      let id = strings.get(x);
      if (id === undefined) strings.set(x, (id = strings.size + 1));
      return id;
    };
    states.forEach((s, i) => {
      const n = s.node;
      if (added) {
        const key = from!.classNo[i] + JSON.stringify(added.map((k) => n.labels[k]));
        let cls = split.get(key);
        if (!cls) {
          split.set(key, (cls = this.newClass(i, n)));
          byOld.push(new Map());
        }
        this.classNo[i] = cls.no;
        this.slotOf[i] = cls.size++;
        this.classOf.push(cls);
        const old = from!.bucketOf[i];
        let b = byOld[cls.no].get(old);
        if (!b) byOld[cls.no].set(old, (b = this.newBucket(cls, old.level, old.own)));
        b.members.push(i);
        cls.levelNodes[b.level]++;
        this.bucketOf.push(b);
        return;
      }
      let h = n.gpuCount;
      for (const k in n.capacity) h = (Math.imul(h, 31) + idOf(k) + hashNumber(n.capacity[k])) | 0;
      if (labelKeys) for (const k of labelKeys) h = (Math.imul(h, 31) + (n.labels[k] === undefined ? 0 : idOf(n.labels[k]))) | 0;
      else for (const k in n.labels) h = (Math.imul(h, 31) + idOf(k) * 7 + idOf(n.labels[k])) | 0;
      h = (Math.imul(h, 31) + n.taints.length) | 0;
      const seen = byHash.get(h);
      let cls: NodeClass | undefined;
      if (seen) for (let k = 0; k < seen.length && !cls; k++) if (sameClass(seen[k], states[seen[k].first].node, n, labelKeys)) cls = seen[k];
      if (!cls) {
        cls = this.newClass(i, n);
        if (seen) seen.push(cls);
        else byHash.set(h, [cls]);
        byRoom.push(new Map());
      }
      this.classNo[i] = cls.no;
      this.slotOf[i] = cls.size++;
      this.classOf.push(cls);
      const room = untouched(s) ? 0 : rooms.of(s);
      let b = byRoom[cls.no].get(room);
      if (!b) byRoom[cls.no].set(room, (b = this.newBucket(cls, cpuLevel(s.free.cpu ?? 0), false)));
      // In index order: appended.
      b.members.push(i);
      cls.levelNodes[b.level]++;
      this.bucketOf.push(b);
    });
  }

  /** A new class whose first node is node `i`, last of `classes`. */
  private newClass(i: number, n: NodeSnapshot): NodeClass {
    const cls: NodeClass = {
      no: this.classes.length,
      first: i,
      capacityKeys: Object.keys(n.capacity),
      labelKeys: Object.keys(n.labels),
      size: 0,
      byLevel: Array.from({ length: CPU_LEVELS }, () => []),
      levelNodes: new Int32Array(CPU_LEVELS),
    };
    this.classes.push(cls);
    return cls;
  }

  /** Number of buckets now (see the class's header). */
  get size(): number {
    this.refile();
    return this.buckets;
  }

  /**
   * Notes that a node's free room or devices changed: it is re-filed at the next `rank` (a node
   * that changes many times between two rankings moves once).
   */
  moved(s: S): void {
    this.indexOf ??= new Map(this.states.map((x, i) => [x, i]));
    const i = this.indexOf.get(s);
    if (i === undefined) return;
    this.movedAt(i);
  }

  /** `moved` for the node at index `i` of `states`. */
  movedAt(i: number): void {
    if (this.isStale[i]) return;
    this.isStale[i] = 1;
    this.stale.push(i);
  }

  /** Files the nodes that moved since the last ranking: each in a bucket of its own, on the CPU level of its room now. */
  private refile(): void {
    for (const i of this.stale) {
      this.isStale[i] = 0;
      this.refileNode(i);
    }
    this.stale.length = 0;
  }

  private refileNode(i: number): void {
    const from = this.bucketOf[i];
    const cls = this.classOf[i];
    const level = cpuLevel(this.states[i].free.cpu ?? 0);
    if (from.own) {
      if (level === from.level) return;
      this.unlist(cls, from);
      from.level = level;
      this.list(cls, from);
      return;
    }
    removeSorted(from, i);
    cls.levelNodes[from.level]--;
    if (sizeOf(from) === 0) {
      this.unlist(cls, from);
      this.buckets--;
    }
    // Its member list made with its one node: a list grown by push from empty reserves 17 slots,
    // kept all pass by the ~85,000 own buckets of a single-task pass (each copied by the collector).
    const b = this.newBucket(cls, level, true, [i]);
    cls.levelNodes[level]++;
    this.bucketOf[i] = b;
  }

  /** A new bucket of `cls` on `level`, of `members` (ascending). @default members: [] (empty) */
  private newBucket(cls: NodeClass, level: number, own: boolean, members: number[] = []): Bucket {
    const b: Bucket = { own, level, at: 0, members, from: 0, shared: false };
    b.at = cls.byLevel[level].length;
    cls.byLevel[level].push(b);
    this.buckets++;
    return b;
  }

  /** Takes `b` (of one node) off its level's list: the last bucket there takes its place. */
  private unlist(cls: NodeClass, b: Bucket): void {
    const list = cls.byLevel[b.level];
    const last = list.pop()!;
    if (last !== b) list[(last.at = b.at)] = last;
    cls.levelNodes[b.level] -= sizeOf(b);
  }

  /** Puts `b` last on its level's list. */
  private list(cls: NodeClass, b: Bucket): void {
    b.at = cls.byLevel[b.level].length;
    cls.byLevel[b.level].push(b);
    cls.levelNodes[b.level] += sizeOf(b);
  }

  /**
   * The nodes that pass `filters` and have room for one task of `work`, by the summed `scores`
   * (best first, ties in name order; name order when there are no scores), with the refusals
   * counted per reason and the full nodes counted — as a scan of every node gives them.
   * `scoreBuffer`, when given, is asked for a buffer of as many scores as the filters pass nodes
   * (of zeros, as a new `Float64Array` is: each ranked node's score is written, see `NodeScores`), and the ranking's
   * `scoreOf` holds the score of every node ranked, appended or not (a kept ranking finds a node
   * again by it when the node's room changes). `fits`, when given, says whether node `i` has room
   * for one task of `work` as `fitsOne` on its free room does (a caller that keeps the free room in
   * arrays answers without reading the node's state: most buckets a new shape visits are full).
   * @default fitsOne on the state A caller that gives a node
   * not appended yet another score there has placed it itself — in `nodes` (its new score ranks
   * before those still to append) or with `defer` — and `more` leaves it out of its bucket.
   */
  rank(
    work: PendingWork,
    filters: readonly FilterPlugin[],
    scores: readonly ScorePlugin[],
    scoreBuffer?: (size: number) => Float64Array,
    fits?: (i: number) => boolean,
  ): BucketRanking {
    this.refile();
    const refused = new RefusalCounter();
    let full = 0;
    const scored: Array<{ score: number; members: number[]; from: number; bucket: Bucket }> = [];
    // Classes in the order of their first node: each reason's first Status is the one a scan meets first.
    const base = new Int32Array(this.classes.length);
    const firsts: number[] = [];
    let passed = 0;
    for (const cls of this.classes) {
      const rep = this.states[cls.first].node;
      let status: Status | undefined;
      for (const f of filters) if ((status = f.filter(work, rep))) break;
      if (status) {
        refused.add(status, cls.size);
        base[cls.no] = -1;
      } else {
        base[cls.no] = passed;
        passed += cls.size;
        firsts.push(cls.first);
      }
    }
    // A new buffer reads "not ranked" in every slot (see `NodeScores`): full nodes are neither
    // visited nor written one by one, and most nodes a shape meets late in a pass are full.
    const scoreOf = scoreBuffer ? new NodeScores(this.classNo, this.slotOf, base, scoreBuffer(passed)) : undefined;
    // Each passing class's bound, for a kept ranking to tell which changed nodes can wait (see `scoreBound`).
    let boundOf: ((i: number) => number) | undefined;
    if (scoreOf) {
      // Refused classes: NaN, below nothing (their nodes are not in the ranking: never waiting).
      const bounds = new Float64Array(this.classes.length).fill(NaN);
      for (const cls of this.classes) if (base[cls.no] >= 0) bounds[cls.no] = scoreBound(work, this.states[cls.first].node, scores);
      const classNo = this.classNo;
      boundOf = (i) => bounds[classNo[i]];
    }
    // Levels of free CPU below the ask's hold only nodes without room for one task (see `cpuLevel`).
    const lowest = askLevel(work.resources.cpu ?? 0);
    for (const cls of this.classes) {
      if (base[cls.no] < 0) continue;
      for (let level = 0; level < lowest; level++) full += cls.levelNodes[level];
      for (let level = lowest; level < CPU_LEVELS; level++) {
        const list = cls.byLevel[level];
        for (let k = 0; k < list.length; k++) {
          const b = list[k];
          const first = b.members[b.from];
          if (fits ? !fits(first) : !fitsOne(work.resources, this.states[first].free)) {
            full += sizeOf(b);
            continue;
          }
          let score = 0;
          if (scores.length) {
            const s = this.states[first];
            const fd = freeDeviceCount(s);
            for (const p of scores) score += p.weight * p.score(work, s.node, s.free, fd, s.devices);
            // A plugin's NaN ranks the bucket last, as the scan does: compared with itself NaN would drop its nodes.
            if (score !== score) score = -Infinity;
          }
          b.shared = true;
          const { members, from } = b;
          scored.push({ score, members, from, bucket: b });
          if (scoreOf) scoreOf.setAll(members, score, from);
        }
      }
    }
    scored.sort((x, y) => y.score - x.score || x.members[x.from] - y.members[y.from]);
    // Materialized a few nodes at a time, as reserving reaches them: most rankings are used only at
    // their head, and a kept ranking moves a re-scored node within what is materialized.
    const nodes: number[] = [];
    let g = 0;
    let score = 0;
    // The buckets of the score being appended, each from its `at` on: their nodes go in index order
    // (merged as they are appended; more than 8 are merged at once).
    const lists: number[][] = [];
    /** The bucket whose member list each list is (undefined: a merged list), for `more` to skip the nodes that left it. */
    const owners: Array<Bucket | undefined> = [];
    const at: number[] = [];
    /** Each list's next node (`lists[l][at[l]]`), `NONE` when it has none left: the merge compares these only. */
    const heads: number[] = [];
    /** The list whose next node comes first; -1 when the open score has none left. */
    let cur = -1;
    /** That node (`heads[cur]`). */
    let head = NONE;
    const advance = () => {
      cur = -1;
      head = NONE;
      for (let l = 0; l < heads.length; l++)
        if (heads[l] < head) {
          head = heads[l];
          cur = l;
        }
    };
    const open = (): boolean => {
      if (cur >= 0) return true;
      if (g >= scored.length) return false;
      let end = g + 1;
      while (end < scored.length && scored[end].score === scored[g].score) end++;
      lists.length = 0;
      owners.length = 0;
      at.length = 0;
      heads.length = 0;
      // Each list from its bucket's `from` on (a merged list from its start).
      if (end - g > 8) {
        lists.push(mergeAscending(scored.slice(g, end).map((x) => x.members.slice(x.from))));
        owners.push(undefined);
        at.push(0);
      } else
        for (let k = g; k < end; k++) {
          lists.push(scored[k].members);
          owners.push(scored[k].bucket);
          at.push(scored[k].from);
        }
      for (let k = 0; k < lists.length; k++) heads.push(at[k] < lists[k].length ? lists[k][at[k]] : NONE);
      score = scored[g].score;
      g = end;
      advance();
      return true;
    };
    // Nodes the caller scored again that rank after `nodes` (see `defer`), by `scoreOf` then index,
    // from `ex` on: merged with the buckets as they are appended, so the appended head does not grow
    // to reach a node whose score fell behind the nodes still to append.
    const deferred: number[] = [];
    let ex = 0;
    /** Whether the next deferred node comes before the buckets' next one. */
    const deferredFirst = (): boolean => {
      if (ex >= deferred.length) return false;
      if (!open()) return true;
      const e = deferred[ex];
      return ranksBefore(scoreOf!.get(e), e, score, head);
    };
    /** Where node `i` of score `v` is or would go among the deferred nodes. */
    const deferredIndex = (v: number, i: number): number => {
      let lo = ex;
      let hi = deferred.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const m = deferred[mid];
        if (ranksBefore(scoreOf!.get(m), m, v, i)) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    const undefer = (i: number): void => {
      if (ex >= deferred.length) return;
      const k = deferredIndex(scoreOf!.get(i), i);
      if (deferred[k] === i) deferred.splice(k, 1);
    };
    const defer = (i: number, v: number): void => {
      undefer(i);
      scoreOf!.set(i, v);
      deferred.splice(deferredIndex(v, i), 0, i);
    };
    const more = (fits?: (i: number) => boolean, floor?: number): boolean => {
      const was = nodes.length;
      // Buckets are current (see the skip below).
      if (scoreOf) this.refile();
      while (nodes.length - was < APPEND) {
        let i: number;
        if (deferredFirst()) {
          if (floor !== undefined && !(scoreOf!.get(deferred[ex]) > floor)) break;
          i = deferred[ex++];
        } else {
          if (!open() || (floor !== undefined && !(score > floor))) break;
          const from = lists[cur];
          // With `scoreOf`, the nodes that left the bucket since it was ranked (packing takes equal
          // nodes in name order, so they leave at its front: `Bucket.from`) are skipped at once:
          // each moved, so the caller has scored it again — placed elsewhere, or at its bucket's score
          // deferred there (see `defer`) — or left it for having no room for one task, or will
          // score it before it asks for nodes at that score (`floor`). The single-task bench passed
          // 2.5 million such nodes one by one. (A list copied since, or merged, is read node by node.)
          const b = owners[cur];
          if (scoreOf && b !== undefined && b.from > at[cur] && b.members === from) {
            at[cur] = b.from;
            heads[cur] = b.from < from.length ? from[b.from] : NONE;
            advance();
            continue;
          }
          i = head;
          const next = ++at[cur];
          heads[cur] = next < from.length ? from[next] : NONE;
          // A node the caller placed elsewhere (see `scoreOf`) is left out; one deferred at its bucket's score goes once.
          const placed = !!scoreOf && scoreOf.get(i) !== score;
          if (!placed && deferred[ex] === i) ex++;
          advance();
          if (placed) continue;
        }
        // The nodes before the first that fits are passed over (see `BucketRanking.more`).
        if (fits && nodes.length === was && !fits(i)) continue;
        nodes.push(i);
      }
      if (ex >= 1024 && 2 * ex >= deferred.length) {
        deferred.copyWithin(0, ex);
        deferred.length -= ex;
        ex = 0;
      }
      return nodes.length > was;
    };
    more();
    const beforeNext = (v: number, i: number): boolean => {
      if (deferredFirst()) {
        const e = deferred[ex];
        return ranksBefore(v, i, scoreOf!.get(e), e);
      }
      return !open() || ranksBefore(v, i, score, head);
    };
    return { nodes, more, beforeNext, defer, undefer, refused: refused.list(), full, firsts, passed, ...(scoreOf ? { scoreOf, boundOf } : {}) };
  }
}
