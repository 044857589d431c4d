/**
 * Backfill with reservations (EASY backfill, as Slurm's `sched/backfill`): when the
 * highest-priority waiting work cannot start, it gets a reservation — the nodes where it will
 * start soonest, from the expected ends of what runs on them — and later work may use those
 * nodes only if it ends before the reservation starts (its `timeoutSeconds` bound) or fits in
 * what the reservation leaves over. Work without a bound never backfills into reserved room.
 *
 *   PostFilter (`planReservation`) — for work that placed nothing: sweep the expected ends in
 *     time order, adding each freed task's room to its node, until the work fits; that instant
 *     is the reservation's start, the nodes that fit it then are held; work that requires a
 *     topology domain sweeps each domain of its level alone and is held in the one where it
 *     starts soonest (ties: best fit), so a rack gang waits for one rack, not for nodes of several;
 *   Reserve (`BackfillReserve.admit`) — on a held node, work that may run past the start takes
 *     only the node's spare room (free at the start minus what is held).
 *
 * Reservations are decided afresh every cycle from the snapshot (none is stored): when an
 * estimate was wrong, the next cycle moves the start. A task past its expected end counts as
 * ending now (the reservation waits for it; nothing unbounded backfills meanwhile). Pure:
 * time comes in as `now`.
 */
import type { Binding, ResourceVector } from '@batchapi/api';
import type { PassContext, ReservePlugin } from '../../framework/extension-points';
import type { NodeSnapshot, PendingWork } from '../../snapshot';
import { tasksThatFit } from '../resource-fit';
import { DEFAULT_TOPOLOGY_LEVELS, domainOf, type TopologyLevel } from '../topology';

/** Tasks a node gets back at an instant: running tasks' expected end. */
export interface Release {
  node: string;
  /** Expected end, epoch ms. */
  at: number;
  /** Per task. */
  resources: ResourceVector;
  count: number;
}

/** Room held on one node for a reservation. */
export interface ReservedNode {
  node: string;
  /** Tasks of the reserved work this node takes at the start. */
  tasks: number;
  /** What later work that may run past the start can still take on the node: free at the start minus what is held. */
  spare: ResourceVector;
}

/** Room held for blocked work from an expected start. */
export interface Reservation {
  jobId: string;
  queue: string;
  /** When the work is expected to start, epoch ms (≥ the pass's `now`; = `now` when tasks overran their estimate). */
  start: number;
  /** Tasks reserved: a gang's all, one task of other work. */
  tasks: number;
  nodes: ReservedNode[];
  /** The topology domain the nodes are in, when the work names a topology and one domain holds them (e.g. `{level: "rack", name: "b0/r1"}`). @default none */
  domain?: { level: string; name: string };
}

/** Settings of backfill in one cycle. */
export interface BackfillSettings {
  /**
   * Most reservations held in one cycle (Slurm's `bf_max_job_test` bounds the same search): the
   * first blocked pieces of work in queue order get them. 1 is EASY backfill; 0 turns
   * reservations off (smaller work takes any free room, as without backfill). @default 1
   */
  maxReservations: number;
  /** Runtime assumed for a task without `timeoutSeconds`, per queue, in seconds. @default 3600 for every queue */
  runtimeSeconds: (queue: string) => number;
  /** Whether an operator set the queue's estimate (it then wins over one learned from the history, see `withLearnedRuntimes`). @default none did */
  configured?: (queue: string) => boolean;
}

/** Default runtime estimate of a task without `timeoutSeconds`, in seconds. */
export const DEFAULT_RUNTIME_ESTIMATE_SECONDS = 3600;

/** Most blocked pieces of work one pass tries to reserve for (each try sweeps the expected ends once). */
export const MAX_RESERVATION_TESTS = 100;

/** Backfill in one placement pass: the settings, the instant, and the expected ends of running tasks. */
export interface BackfillInput extends BackfillSettings {
  /** Epoch ms. */
  now: number;
  /** Expected ends of running tasks (see `releasesOf`). */
  releases: readonly Release[];
  /** The topology levels, top first, that work's `topology` names (see `planReservation`). @default DEFAULT_TOPOLOGY_LEVELS */
  topology?: readonly TopologyLevel[];
}

/** The instant a task bound at `boundAt` is expected to end: its timeout, else its queue's estimate; never before `now`. */
export function expectedEnd(boundAt: number, timeoutSeconds: number | undefined, estimateSeconds: number, now: number): number {
  return Math.max(now, boundAt + (timeoutSeconds ?? estimateSeconds) * 1000);
}

/** The expected ends of live bindings' tasks; a task asked to stop counts as ending now. */
export function releasesOf(bindings: Iterable<Binding>, now: number, runtimeSeconds: (queue: string) => number): Release[] {
  const out: Release[] = [];
  for (const b of bindings) {
    const tasks = b.end - b.start;
    const stopping = b.cancelRequested ? tasks : new Set([...(b.preempt ?? []), ...(b.cancel ?? [])]).size;
    const at = expectedEnd(b.boundAt, b.timeoutSeconds, runtimeSeconds(b.queue), now);
    if (stopping > 0) out.push({ node: b.node, at: now, resources: b.resources, count: stopping });
    if (tasks - stopping > 0) out.push({ node: b.node, at, resources: b.resources, count: tasks - stopping });
  }
  return out;
}

/** The instant work placed now ends by: its timeout; unbounded work never does. */
export function boundOf(w: PendingWork, now: number): number {
  return w.timeoutSeconds ? now + w.timeoutSeconds * 1000 : Infinity;
}

/** A node as the reservation sweep sees it: its room now, in the pass. */
export interface NodeRoom {
  node: NodeSnapshot;
  free: ResourceVector;
}

/** Where a sweep ends: the start, the nodes held, and the tasks of room it leaves over there at the start. */
interface Sweep {
  start: number;
  nodes: ReservedNode[];
  /** Tasks of the work the swept nodes take at the start beyond `need`: a best fit leaves the fewest. */
  over: number;
}

const byTime = (a: Release, b: Release) => a.at - b.at || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0);

/**
 * One sweep over `rooms`: the releases (`sorted` in time order; those of other nodes are skipped)
 * give their room back to their node, every release of an instant together, until `need` tasks
 * fit (`tasksThatFit` per node, summed). `now` when they fit already; undefined when the releases
 * never make room. The held nodes are those ready earliest, then the ones fitting most, then by name.
 */
function sweep(w: PendingWork, need: number, rooms: readonly NodeRoom[], sorted: readonly Release[], now: number): Sweep | 'now' | undefined {
  const byName = new Map<string, { room: NodeRoom; free: ResourceVector; fit: number; readyAt: number }>();
  let total = 0;
  for (const r of rooms) {
    const fit = tasksThatFit(w.resources, r.free);
    byName.set(r.node.name, { room: r, free: { ...r.free }, fit, readyAt: now });
    total += fit;
  }
  if (total >= need) return 'now';
  for (let i = 0; i < sorted.length; i++) {
    const r = sorted[i];
    const n = byName.get(r.node);
    if (n) {
      for (const [k, v] of Object.entries(r.resources)) n.free[k] = (n.free[k] ?? 0) + v * r.count;
      const fit = tasksThatFit(w.resources, n.free);
      if (fit !== n.fit) {
        total += fit - n.fit;
        n.fit = fit;
        n.readyAt = r.at;
      }
    }
    if (total < need || (i + 1 < sorted.length && sorted[i + 1].at === r.at)) continue;
    const ready = [...byName.values()]
      .filter((x) => x.fit > 0)
      .sort((a, b) => a.readyAt - b.readyAt || b.fit - a.fit || (a.room.node.name < b.room.node.name ? -1 : 1));
    const nodes: ReservedNode[] = [];
    let left = need;
    for (const x of ready) {
      if (left === 0) break;
      const tasks = Math.min(left, x.fit);
      left -= tasks;
      const spare: ResourceVector = { ...x.free };
      for (const [k, v] of Object.entries(w.resources)) spare[k] = (spare[k] ?? 0) - v * tasks;
      nodes.push({ node: x.room.node.name, tasks, spare });
    }
    return { start: Math.max(now, r.at), nodes, over: total - need };
  }
  return undefined;
}

/**
 * The domain of level `i` where `w` starts soonest: one sweep per domain over its own nodes and
 * releases; ties go to the best fit (the least room left over at the start), then the name.
 * Domains where it fits now are passed over (something else holds it back there), and so are
 * nodes without the level's label. O(releases + nodes) besides the sweeps.
 */
function soonestDomain(
  w: PendingWork,
  need: number,
  rooms: readonly NodeRoom[],
  sorted: readonly Release[],
  now: number,
  levels: readonly TopologyLevel[],
  i: number,
): { name: string; sweep: Sweep } | undefined {
  const members = new Map<string, NodeRoom[]>();
  const domainOfNode = new Map<string, string>();
  for (const r of rooms) {
    const key = domainOf(levels, r.node, i);
    if (key === undefined) continue;
    domainOfNode.set(r.node.name, key);
    const m = members.get(key);
    if (m) m.push(r);
    else members.set(key, [r]);
  }
  const releases = new Map<string, Release[]>();
  for (const r of sorted) {
    const key = domainOfNode.get(r.node);
    if (key === undefined) continue;
    const m = releases.get(key);
    if (m) m.push(r);
    else releases.set(key, [r]);
  }
  let best: { name: string; sweep: Sweep } | undefined;
  for (const [name, rs] of members) {
    const s = sweep(w, need, rs, releases.get(name) ?? [], now);
    if (s === undefined || s === 'now') continue;
    const b = best?.sweep;
    if (!b || s.start < b.start || (s.start === b.start && (s.over < b.over || (s.over === b.over && name < best!.name)))) best = { name, sweep: s };
  }
  return best;
}

/**
 * Where and when `w` starts soonest (the PostFilter): nodes that pass the filters (`rooms`,
 * already filtered) gain the room of each release in time order until `need` tasks fit (see
 * `sweep`). Work that names a topology (`w.topology`, levels `levels`):
 *   required — the sweep runs in each domain of the level alone; the reservation is in the domain
 *              where the work starts soonest, ties to the best fit (least room left over);
 *   preferred — the soonest start overall; when one domain of the level (else of the lowest level
 *              above it where one does) can start it then too, the reservation is in that domain.
 * Undefined when the work fits now (something else blocks it), when it names a level the cluster
 * does not have, or when it never fits within the known releases. O(releases log releases + nodes)
 * per level swept.
 */
export function planReservation(
  w: PendingWork,
  need: number,
  rooms: readonly NodeRoom[],
  releases: readonly Release[],
  now: number,
  levels: readonly TopologyLevel[] = DEFAULT_TOPOLOGY_LEVELS,
): Reservation | undefined {
  if (need <= 0) return undefined;
  const sorted = [...releases].sort(byTime);
  const t = w.topology;
  const of = (s: Sweep, domain?: Reservation['domain']): Reservation => ({
    jobId: w.jobId,
    queue: w.queue,
    start: s.start,
    tasks: need,
    nodes: s.nodes,
    ...(domain ? { domain } : {}),
  });
  if (t?.required !== undefined) {
    const level = levels.findIndex((l) => l.name === t.required);
    const d = level < 0 ? undefined : soonestDomain(w, need, rooms, sorted, now, levels, level);
    return d && of(d.sweep, { level: t.required, name: d.name });
  }
  const all = sweep(w, need, rooms, sorted, now);
  if (all === undefined || all === 'now') return undefined;
  if (t?.preferred !== undefined)
    for (let i = levels.findIndex((l) => l.name === t.preferred); i >= 0; i--) {
      const d = soonestDomain(w, need, rooms, sorted, now, levels, i);
      // No domain starts it before the whole cluster does: a tie is all one can ask.
      if (d && d.sweep.start <= all.start) return of(d.sweep, { level: levels[i].name, name: d.name });
    }
  return of(all);
}

/**
 * The Reserve plugin that enforces reservations in one pass, and the PostFilter that makes
 * them (`consider`, called by the engine for work that placed nothing). One per pass.
 */
export class BackfillReserve implements ReservePlugin {
  readonly name = 'Backfill';
  readonly reservations: Reservation[] = [];
  private readonly held = new Map<string, { res: Reservation; spare: ResourceVector }>();
  /** Expected ends of what this pass placed (later reservations count them), newest last. */
  private readonly placed: Array<Release & { jobId: string }> = [];
  private tests = 0;

  constructor(private readonly input: BackfillInput) {}

  /** True while this pass may still make a reservation (fewer than `maxReservations` held, fewer than `MAX_RESERVATION_TESTS` tries). */
  open(): boolean {
    return this.reservations.length < this.input.maxReservations && this.tests < MAX_RESERVATION_TESTS;
  }

  /** The reservation of a job, if this pass made one. */
  reservationOf(jobId: string): Reservation | undefined {
    return this.reservations.find((r) => r.jobId === jobId);
  }

  /** True when `w` may still run when the reservation holding `node` starts. */
  private outlasts(w: PendingWork, res: Reservation): boolean {
    return res.jobId !== w.jobId && boundOf(w, this.input.now) > res.start;
  }

  admit(w: PendingWork, node: NodeSnapshot, want: number): number {
    const h = this.held.get(node.name);
    if (!h || !this.outlasts(w, h.res)) return want;
    return Math.min(want, tasksThatFit(w.resources, h.spare));
  }

  reserve(w: PendingWork, node: NodeSnapshot, count: number, _ctx: PassContext): void {
    const h = this.held.get(node.name);
    if (h && this.outlasts(w, h.res)) for (const [k, v] of Object.entries(w.resources)) h.spare[k] = (h.spare[k] ?? 0) - v * count;
    const at = Math.min(boundOf(w, this.input.now), this.input.now + this.input.runtimeSeconds(w.queue) * 1000);
    this.placed.push({ jobId: w.jobId, node: node.name, at, resources: w.resources, count });
  }

  unreserve(w: PendingWork, node: NodeSnapshot, count: number, _ctx: PassContext): void {
    const h = this.held.get(node.name);
    if (h && this.outlasts(w, h.res)) for (const [k, v] of Object.entries(w.resources)) h.spare[k] = (h.spare[k] ?? 0) + v * count;
    for (let i = this.placed.length - 1; i >= 0; i--) {
      const p = this.placed[i];
      if (p.jobId === w.jobId && p.node === node.name && p.count === count) {
        this.placed.splice(i, 1);
        break;
      }
    }
  }

  /**
   * PostFilter: `w` placed nothing in this pass (not for quota). While fewer than
   * `maxReservations` are held (and at most `MAX_RESERVATION_TESTS` tries were made), reserve
   * for it on the nodes that pass its filters (`rooms`) and no other reservation holds: a
   * gang's every task, one task of other work (its next task to start).
   */
  consider(w: PendingWork, rooms: readonly NodeRoom[]): Reservation | undefined {
    if (!this.open() || this.reservationOf(w.jobId)) return undefined;
    this.tests++;
    const free = rooms.filter((r) => !this.held.has(r.node.name));
    const res = planReservation(w, w.gang ? w.tasks : 1, free, [...this.input.releases, ...this.placed], this.input.now, this.input.topology);
    if (!res) return undefined;
    this.reservations.push(res);
    for (const n of res.nodes) this.held.set(n.node, { res, spare: n.spare });
    return res;
  }
}
