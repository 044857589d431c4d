/**
 * Preemption (the PostFilter phase): when higher-priority work finds no room, choose the
 * fewest lower-priority tasks to stop on one node — lowest priority first, then the most
 * recently started (least lost work) — within per-queue budgets. Thrash damping: never a task
 * bound less than `protectMs` ago (Slurm's PreemptExemptTime), nor a task of a job preempted too
 * often lately (`exemptJobs`, see `repeatExempt`). Work whose victims protection kept is
 * reported (`held`), for "why pending" and the metrics. Work that requires a topology domain
 * (`topology.required`) gets victims within one domain of its level only — the one that needs
 * the fewest, then the lowest-priority, then the least lost work — so no task is stopped in a rack
 * the gang cannot use. Pure.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';
import { DEFAULT_FILTERS } from '../../framework/profile';
import { queueOrder } from '../queue-sort';
import { pickDevices, tasksThatFit } from '../resource-fit';
import type { NodeSnapshot, PendingWork } from '../../snapshot';
import { DEFAULT_TOPOLOGY_LEVELS, domainOf, type TopologyLevel } from '../topology';

/** One running task as preemption sees it. */
export interface RunningTask {
  jobId: string;
  queue: string;
  node: string;
  /** Start and attempt of its group (the binding), and its own index. */
  groupStart: number;
  attempt: number;
  index: number;
  priority: number;
  resources: ResourceVector;
  devices: number[];
  /** When it was bound (epoch ms). */
  boundAt: number;
  /** Already asked to stop (its resources are on their way back). */
  stopping: boolean;
  /** When it was asked to stop (epoch ms), if known. */
  stopRequestedAt?: number;
}

/** Why a task that would otherwise be a victim is not one. */
export type ProtectionReason = 'exempt-time' | 'repeat-limit';

/** Work that preemption would have made room for, had protection not kept its victims running. */
export interface HeldPreemption {
  jobId: string;
  /** The protected tasks it would have displaced, with the protection that kept each. */
  protectedTasks: Array<{ jobId: string; queue: string; reason: ProtectionReason }>;
}

/** What a preemption pass decided. */
export interface PreemptionOutcome {
  victims: Victim[];
  held: HeldPreemption[];
}

/** A task chosen to stop, and for whom. */
export interface Victim {
  task: RunningTask;
  /** The job it makes room for. */
  forJob: string;
}

/** Options of a preemption pass. */
export interface PreemptionOptions {
  /** Now, epoch ms (time is passed in). */
  now: number;
  /** A task bound less than this long ago is never a victim, in milliseconds. @default 60000 */
  protectMs?: number;
  /** Victims each queue may still lose in the current window; absent = unlimited. */
  budget?: Map<string, number>;
  /** Jobs whose tasks are never victims: preempted too often lately (see `repeatExempt`). @default none */
  exemptJobs?: ReadonlySet<string>;
  /** Most victims in one pass. @default 1000 */
  maxVictims?: number;
  /** Most pieces of work checked for "protection held its victims" in one pass (each check is one more search). @default 100 */
  maxHeldChecks?: number;
  /** @default DEFAULT_FILTERS */
  filters?: readonly FilterPlugin[];
  /** The topology levels, top first, that work's `topology.required` names. @default DEFAULT_TOPOLOGY_LEVELS */
  topology?: readonly TopologyLevel[];
}

interface NodeRoom {
  node: NodeSnapshot;
  free: ResourceVector;
  devices: Record<string, number>;
  running: RunningTask[];
}

function release(room: NodeRoom, t: RunningTask): void {
  for (const [k, v] of Object.entries(t.resources)) room.free[k] = (room.free[k] ?? 0) + v;
  const share = t.resources.gpu ?? 0;
  const each = share >= GPU_MILLI ? GPU_MILLI : share;
  for (const d of t.devices) room.devices[d] = Math.max(0, (room.devices[d] ?? 0) - each);
}

function fitsOne(w: PendingWork, room: NodeRoom): boolean {
  return tasksThatFit(w.resources, room.free) >= 1 && pickDevices(room.devices, room.node.gpuCount, w.resources.gpu ?? 0) !== undefined;
}

function take(w: PendingWork, room: NodeRoom): void {
  for (const [k, v] of Object.entries(w.resources)) room.free[k] = (room.free[k] ?? 0) - v;
  const share = w.resources.gpu ?? 0;
  for (const d of pickDevices(room.devices, room.node.gpuCount, share) ?? [])
    room.devices[d] = (room.devices[d] ?? 0) + (share >= GPU_MILLI ? GPU_MILLI : share);
}

/** Fewest victims, then lowest top priority among them, then least lost work, then node name. */
function cheaper(a: { room: NodeRoom; chosen: RunningTask[]; maxPriority: number; lost: number }, b: typeof a): number {
  return a.chosen.length - b.chosen.length || a.maxPriority - b.maxPriority || a.lost - b.lost || (a.room.node.name < b.room.node.name ? -1 : 1);
}

/** What a pass has decided so far: rooms as they will be, budgets and victims left. */
interface PassState {
  rooms: Map<string, NodeRoom>;
  budget: Map<string, number>;
  left: number;
  victims: Victim[];
}

/** A copy of `s`; with `names`, of those rooms only (what a search within one domain sees and changes). */
function copyState(s: PassState, names: Iterable<string> = s.rooms.keys()): PassState {
  const rooms = new Map<string, NodeRoom>();
  for (const k of names) {
    const r = s.rooms.get(k)!;
    rooms.set(k, { node: r.node, free: { ...r.free }, devices: { ...r.devices }, running: [...r.running] });
  }
  return { rooms, budget: new Map(s.budget), left: s.left, victims: [...s.victims] };
}

/**
 * Chooses victims for work that placement left pending. A gang gets victims only if room
 * for every one of its tasks can be made at once (planned on a copy, kept or dropped whole),
 * so no task is stopped for a gang that still could not start. Inputs are not changed.
 */
export function planPreemption(
  pending: readonly PendingWork[],
  nodes: readonly NodeSnapshot[],
  running: readonly RunningTask[],
  opts: PreemptionOptions,
): Victim[] {
  return preemptionPass(pending, nodes, running, opts).victims;
}

/**
 * `planPreemption` with what protection held back: for work that got less room than it asked
 * for (at most `maxHeldChecks` of them), the same search with protection off, on a copy; if it
 * would have found more, the protected tasks it would have stopped are reported.
 */
export function preemptionPass(
  pending: readonly PendingWork[],
  nodes: readonly NodeSnapshot[],
  running: readonly RunningTask[],
  opts: PreemptionOptions,
): PreemptionOutcome {
  const held: HeldPreemption[] = [];
  let checks = opts.maxHeldChecks ?? 100;
  const protectMs = opts.protectMs ?? 60_000;
  const unprotected: PreemptionOptions = { ...opts, protectMs: 0, exemptJobs: undefined };
  const filters = opts.filters ?? DEFAULT_FILTERS;
  let state: PassState = { rooms: new Map(), budget: new Map(opts.budget ?? []), left: opts.maxVictims ?? 1000, victims: [] };
  for (const n of nodes) {
    const free: ResourceVector = {};
    for (const [k, v] of Object.entries(n.capacity)) free[k] = v - (n.used[k] ?? 0);
    state.rooms.set(n.name, { node: n, free, devices: { ...n.devices }, running: [] });
  }
  for (const t of running) {
    const room = state.rooms.get(t.node);
    if (!room) continue;
    // What is already stopping counts as free: no second victim for the same room.
    if (t.stopping) release(room, t);
    else room.running.push(t);
  }
  const levels = opts.topology ?? DEFAULT_TOPOLOGY_LEVELS;
  for (const w of [...pending].sort(queueOrder)) {
    if (state.left <= 0) break;
    const { found, next } = makeRoomFor(w, state, opts, filters, levels);
    if (!w.gang || found === w.tasks) state = next;
    if (found === w.tasks || checks <= 0) continue;
    checks--;
    // Would the search have found the rest without protection? Asked on a copy, then dropped.
    const rest = w.gang ? w.tasks : w.tasks - found;
    const from = state.victims.length;
    const what = makeRoomFor({ ...w, tasks: rest }, copyState(state), unprotected, filters, levels);
    if (what.found < (w.gang ? rest : 1)) continue;
    const protectedTasks = what.next.victims.slice(from).flatMap(({ task: t }) => {
      const reason: ProtectionReason | undefined =
        opts.now - t.boundAt < protectMs ? 'exempt-time' : opts.exemptJobs?.has(t.jobId) ? 'repeat-limit' : undefined;
      return reason ? [{ jobId: t.jobId, queue: t.queue, reason }] : [];
    });
    if (protectedTasks.length) held.push({ jobId: w.jobId, protectedTasks });
  }
  return { victims: state.victims, held };
}

/**
 * Room for `w` (see `makeRoom`), and the state after it: for a gang a copy (the caller keeps it
 * only if every task got room), for other work `state` itself. Work that requires a domain of a
 * level is searched for in each domain of it alone, each on a copy of that domain's rooms; the
 * domain that gives the most tasks room, then with the fewest victims, then the lowest top
 * priority among them, then the least lost work (then the name) is kept. A gang counts only a
 * domain that takes all of it.
 */
function makeRoomFor(
  w: PendingWork,
  state: PassState,
  opts: PreemptionOptions,
  filters: readonly FilterPlugin[],
  levels: readonly TopologyLevel[],
): { found: number; next: PassState } {
  const name = w.topology?.required;
  if (name === undefined) {
    const trial = w.gang ? copyState(state) : state;
    return { found: makeRoom(w, trial, opts, filters), next: trial };
  }
  const level = levels.findIndex((l) => l.name === name);
  if (level < 0) return { found: 0, next: state };
  const domains = new Map<string, string[]>();
  for (const r of state.rooms.values()) {
    const key = domainOf(levels, r.node, level);
    if (key === undefined) continue;
    const m = domains.get(key);
    if (m) m.push(r.node.name);
    else domains.set(key, [r.node.name]);
  }
  let best: DomainOption | undefined;
  for (const [key, names] of domains) {
    const trial = copyState(state, names);
    const from = trial.victims.length;
    const found = makeRoom(w, trial, opts, filters);
    if (found === 0 || (w.gang && found < w.tasks)) continue;
    const mine = trial.victims.slice(from).map((v) => v.task);
    const option = {
      key,
      found,
      trial,
      victims: mine.length,
      maxPriority: mine.reduce((m, t) => Math.max(m, t.priority), -1e9),
      lost: mine.reduce((n, t) => n + (opts.now - t.boundAt), 0),
    };
    if (!best || betterDomain(option, best) < 0) best = option;
  }
  if (!best) return { found: 0, next: state };
  const rooms = new Map(state.rooms);
  for (const [k, r] of best.trial.rooms) rooms.set(k, r);
  return { found: best.found, next: { rooms, budget: best.trial.budget, left: best.trial.left, victims: best.trial.victims } };
}

/** Most tasks given room, then fewest victims, then lowest top priority among them (none: lowest), then least lost work, then name. */
function betterDomain(a: DomainOption, b: DomainOption): number {
  return b.found - a.found || a.victims - b.victims || a.maxPriority - b.maxPriority || a.lost - b.lost || (a.key < b.key ? -1 : 1);
}

interface DomainOption {
  key: string;
  found: number;
  trial: PassState;
  victims: number;
  /** Highest priority among the victims; -1e9 when there are none. */
  maxPriority: number;
  /** Milliseconds the victims have run, summed. */
  lost: number;
}

/** Finds room for up to `w.tasks` tasks of `w`, free or made by victims; changes `state`; returns how many got room. */
function makeRoom(w: PendingWork, state: PassState, opts: PreemptionOptions, filters: readonly FilterPlugin[]): number {
  const protectMs = opts.protectMs ?? 60_000;
  // Aging orders the queue; it gives no power to preempt.
  const priority = w.basePriority ?? w.priority;
  const { rooms, budget } = state;
  let found = 0;
  for (let want = w.tasks; want > 0 && state.left > 0; want--) {
    const candidates = [...rooms.values()].filter((r) => !filters.some((f) => f.filter(w, r.node)));
    // Room that is free already (or on its way) serves first.
    const ready = candidates.find((r) => fitsOne(w, r));
    if (ready) {
      take(w, ready);
      found++;
      continue;
    }
    let best: { room: NodeRoom; chosen: RunningTask[]; maxPriority: number; lost: number } | undefined;
    for (const room of candidates) {
      const eligible = room.running
        .filter((t) => t.priority < priority && opts.now - t.boundAt >= protectMs && !opts.exemptJobs?.has(t.jobId) && (budget.get(t.queue) ?? Infinity) > 0)
        .sort((a, b) => a.priority - b.priority || b.boundAt - a.boundAt);
      const fresh = (): NodeRoom => ({ node: room.node, free: { ...room.free }, devices: { ...room.devices }, running: [] });
      // One victim that suffices alone beats any set (e.g. a whole-GPU task over two shares).
      const single = eligible.find((t) => {
        const r = fresh();
        release(r, t);
        return fitsOne(w, r);
      });
      const trial = fresh();
      const chosen: RunningTask[] = [];
      const spent = new Map<string, number>();
      for (const t of single ? [single] : eligible) {
        if (fitsOne(w, trial)) break;
        if ((spent.get(t.queue) ?? 0) >= (budget.get(t.queue) ?? Infinity)) continue;
        release(trial, t);
        chosen.push(t);
        spent.set(t.queue, (spent.get(t.queue) ?? 0) + 1);
      }
      if (!fitsOne(w, trial) || chosen.length === 0 || chosen.length > state.left) continue;
      const maxPriority = Math.max(...chosen.map((t) => t.priority));
      const lost = chosen.reduce((s, t) => s + (opts.now - t.boundAt), 0);
      const option = { room, chosen, maxPriority, lost };
      if (!best || cheaper(option, best) < 0) best = option;
    }
    if (!best) break;
    for (const t of best.chosen) {
      release(best.room, t);
      best.room.running = best.room.running.filter((r) => r !== t);
      budget.set(t.queue, (budget.get(t.queue) ?? Infinity) - 1);
      state.victims.push({ task: t, forJob: w.jobId });
      state.left--;
    }
    take(w, best.room);
    found++;
  }
  return found;
}
export * from './budget';
export * from './damping';
