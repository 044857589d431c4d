/**
 * "Why is my job pending?": the placement phases run for one job on the current snapshot,
 * with counts of what blocks it and the smallest changes that would let it run now.
 * Pure, like the rest of this lib: a scheduler replica feeds it its live cache, admission
 * (when no scheduler answers) a snapshot read from etcd.
 */
import { countTasks, formatResources, GPU_MILLI, type ResourceVector, type WhyJob, type WhyView } from '@batchapi/api';
import { DEFAULT_FILTERS } from './framework/profile';
import { placeSnapshot, type ScheduleOptions } from './framework/schedule';
import type { ClusterSnapshot } from './framework/snapshot-builder';
import type { StatusDetail } from './framework/status';
import { placeTasks, type Unplaced } from './placement';
import { boundOf, type Reservation } from './plugins/backfill';
import { runLimitMessage } from './plugins/max-running';
import { semaphoreWaitMessage } from './plugins/semaphores';
import { capWaitMessage } from './plugins/running-caps';
import { NodeSelector } from './plugins/node-selector';
import { preemptionPass, type ProtectionReason, type RunningTask } from './plugins/preemption';
import type { PriorityAging } from './plugins/priority-aging';
import { tasksThatFit } from './plugins/resource-fit';
import type { NodeSnapshot, PendingWork, Toleration } from './snapshot';

/** The answer to "why pending". */
export interface Explanation {
  /** Tasks of this job that could be placed right now. */
  placeableNow: number;
  pendingTasks: number;
  /** Blocking reasons with node counts, most common first (`detail` when a Filter plugin said it). */
  blockers: Array<{ reason: string; nodes: number; detail?: StatusDetail }>;
  /** Set when the queue's quota is what stops it. */
  quota?: string;
  /** Lines a person reads, in order. */
  messages: string[];
  /** Smallest changes that would let at least one task run now. */
  counterfactuals: string[];
}

function describeQuantity(name: string, amount: number): string {
  const f = formatResources({ [name]: amount })[name];
  return name === 'gpu' ? `${f} GPU${Number(f) === 1 ? '' : 's'}` : `${f} ${name}`;
}

/** Counts, per node that passes the filters but has no room, the first resource it lacks. */
function shortages(work: PendingWork, nodes: readonly NodeSnapshot[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of nodes) {
    if (DEFAULT_FILTERS.some((f) => f.filter(work, n))) continue;
    const free: ResourceVector = {};
    for (const [k, v] of Object.entries(n.capacity)) free[k] = v - (n.used[k] ?? 0);
    if (tasksThatFit(work.resources, free) > 0 && fitsDevices(work, n)) continue;
    const short =
      Object.entries(work.resources).find(([k, v]) => v > 0 && (free[k] ?? 0) < v) ?? (work.resources.gpu ? ['gpu', work.resources.gpu] : undefined);
    if (!short) continue;
    const reason = `lack ${describeQuantity(short[0], short[1])} free${short[0] === 'gpu' && work.selector?.['gpu.model'] ? ` of model ${work.selector['gpu.model']}` : ''}`;
    out.set(reason, (out.get(reason) ?? 0) + 1);
  }
  return out;
}

function fitsDevices(work: PendingWork, n: NodeSnapshot): boolean {
  const share = work.resources.gpu ?? 0;
  if (share === 0) return true;
  if (share >= GPU_MILLI) {
    let free = 0;
    for (let d = 0; d < n.gpuCount; d++) if (!n.devices[d]) free++;
    return free >= Math.ceil(share / GPU_MILLI);
  }
  for (let d = 0; d < n.gpuCount; d++) if ((n.devices[d] ?? 0) + share <= GPU_MILLI) return true;
  return false;
}

function alone(work: PendingWork, nodes: readonly NodeSnapshot[], headroom?: ResourceVector): PassOutcome {
  const res = placeTasks([work], nodes, { queueHeadroom: headroom ? new Map([[work.queue, headroom]]) : undefined, maxTasks: work.tasks });
  return { placed: res.placements.reduce((n, p) => n + p.count, 0), unplaced: res.unplaced[0] };
}

function placeable(work: PendingWork, nodes: readonly NodeSnapshot[], headroom?: ResourceVector): number {
  return alone(work, nodes, headroom).placed;
}

/** What the placement pass decided for one job: the tasks it placed, and why the rest were not. */
export interface PassOutcome {
  placed: number;
  unplaced?: Unplaced;
}

/**
 * Explains one job's pending tasks. `ahead` is the number of tasks of other work that the
 * queue order puts before it. `outcome` is what the cycle's placement pass decides for it on
 * the whole snapshot (see `explainJob`); without it, a pass of this job alone on `nodes`.
 */
export function explainPending(
  work: PendingWork,
  nodes: readonly NodeSnapshot[],
  headroom: ResourceVector | undefined,
  ahead: number,
  outcome: PassOutcome = alone(work, nodes, headroom),
): Explanation {
  const placeableNow = outcome.placed;
  const why = outcome.unplaced;
  const blockers: Explanation['blockers'] = [];
  // Work at its maxRunning limit, a running cap, or waiting for a semaphore, tries no node: what nodes lack is not what holds it.
  const atLimit = work.tasks === 0 && (work.runLimit !== undefined || work.capWait !== undefined || work.semaphoreWait !== undefined);
  if (!atLimit) {
    for (const r of why?.filtered ?? []) blockers.push({ reason: r.status.reason, nodes: r.nodes, ...(r.status.detail ? { detail: r.status.detail } : {}) });
    for (const [reason, n] of shortages(work, nodes)) blockers.push({ reason, nodes: n });
  }
  blockers.sort((a, b) => b.nodes - a.nodes || (a.reason < b.reason ? -1 : 1));
  const messages: string[] = [];
  // Tasks its maxRunning or its semaphores hold back are pending too, though placement never sees them.
  const pending = work.tasks + (work.runLimit?.held ?? 0) + (work.capWait?.waiting ?? 0) + (work.semaphoreWait?.waiting ?? 0);
  const limited = runLimitMessage(work);
  if (limited) messages.push(limited);
  const capped = capWaitMessage(work);
  if (capped) messages.push(capped);
  const waiting = semaphoreWaitMessage(work);
  if (waiting) messages.push(waiting);
  if (ahead > 0) messages.push(`${ahead} task${ahead === 1 ? '' : 's'} of other jobs come first in queue ${work.queue} (priority, then age)`);
  if (nodes.length === 0) messages.push('no node is registered: start an executor');
  let quota: string | undefined;
  if (why?.quotaLimited && headroom) {
    const dims = Object.entries(work.resources).filter(([k, v]) => v > 0 && k in headroom && headroom[k] < v);
    quota = `quota of queue ${work.queue} has ${dims.map(([k]) => describeQuantity(k, headroom[k])).join(', ') || 'too little'} left`;
    messages.push(quota);
  }
  for (const b of blockers) messages.push(`${b.nodes} node${b.nodes === 1 ? '' : 's'}: ${b.reason}`);
  // Topology: the level required and the roomiest domain of it (see `plugins/topology`).
  for (const st of why?.statuses ?? []) if (st.code === 'TopologyUnfit') messages.push(st.reason);
  if (why?.gangBlocked) messages.push(`gang: all ${pending} tasks must start together; ${placeableNow} could start now`);
  if (placeableNow > 0 && !why?.gangBlocked) messages.push(`${placeableNow} of ${pending} pending tasks fit now and will be placed by the next cycle`);
  return {
    placeableNow,
    pendingTasks: pending,
    blockers,
    quota,
    messages,
    // At its limit (or a semaphore's), no change of shape or queue lets a task start: a slot must free first.
    counterfactuals: placeableNow > 0 || atLimit ? [] : counterfactuals(work, nodes, headroom, blockers),
  };
}

/**
 * Most changes of one kind (smaller resources, one selector entry dropped, one toleration
 * added) an explanation tries. Each try is a placement pass over the nodes, O(selector
 * entries × nodes); without a bound, trying every selector entry made one `/why` cost
 * O(entries² × nodes), with the entries chosen by whoever submitted the job.
 */
export const MAX_COUNTERFACTUALS_PER_KIND = 4;

/**
 * Tries the smallest changes, one at a time, on the same snapshot: at most
 * `MAX_COUNTERFACTUALS_PER_KIND` of each kind, the topology and the quota, so at most 14 placement passes
 * whatever the job carries.
 */
function counterfactuals(work: PendingWork, nodes: readonly NodeSnapshot[], headroom: ResourceVector | undefined, blockers: Explanation['blockers']): string[] {
  const out: string[] = [];
  const tryIt = (label: string, w: PendingWork, ignoreQuota = false) => {
    const n = placeable({ ...w, gang: false }, nodes, ignoreQuota ? undefined : headroom);
    if (n > 0) out.push(`${label}: ${n} task${n === 1 ? '' : 's'} would fit now`);
  };
  const smaller = Object.entries(work.resources).flatMap(([k, v]): Array<[string, number, number]> => {
    const half = k === 'gpu' && v > GPU_MILLI ? Math.floor(v / 2 / GPU_MILLI) * GPU_MILLI || GPU_MILLI : Math.floor(v / 2);
    return v > 0 && half > 0 && half < v ? [[k, v, half]] : [];
  });
  for (const [k, v, half] of smaller.slice(0, MAX_COUNTERFACTUALS_PER_KIND)) {
    tryIt(`with ${describeQuantity(k, half)} instead of ${describeQuantity(k, v)}`, { ...work, resources: { ...work.resources, [k]: half } });
  }
  for (const [key] of soleSelectorMisses(work, nodes).slice(0, MAX_COUNTERFACTUALS_PER_KIND)) {
    const { [key]: _drop, ...rest } = work.selector!;
    tryIt(`without the selector ${key}=${work.selector![key]}`, { ...work, selector: rest });
  }
  const taints = blockers.flatMap((b) => (b.detail?.kind === 'taint' ? [b.detail] : []));
  for (const t of taints.slice(0, MAX_COUNTERFACTUALS_PER_KIND)) {
    const tol: Toleration = { key: t.key, ...(t.value !== undefined ? { value: t.value } : { operator: 'Exists' as const }), effect: t.effect };
    tryIt(`with the toleration ${t.key}${t.value !== undefined ? `=${t.value}` : ''}:${t.effect}`, {
      ...work,
      tolerations: [...(work.tolerations ?? []), tol],
    });
  }
  if (work.topology?.required) tryIt(`without topology required=${work.topology.required}`, { ...work, topology: undefined });
  if (headroom) tryIt('in a queue with free quota', work, true);
  return out;
}

/**
 * The selector entries that alone keep a node out (the node misses no other entry and passes
 * the other filters), with the number of such nodes, most first (ties by key). Only these can
 * let a task in when dropped one at a time. One pass: O(selector entries × nodes).
 */
function soleSelectorMisses(work: PendingWork, nodes: readonly NodeSnapshot[]): Array<[string, number]> {
  const selector = Object.entries(work.selector ?? {});
  if (selector.length === 0) return [];
  const others = DEFAULT_FILTERS.filter((f) => f !== NodeSelector);
  const misses = new Map<string, number>();
  for (const n of nodes) {
    let missed: string | undefined;
    let count = 0;
    for (const [k, v] of selector) {
      if (n.labels[k] === v) continue;
      missed = k;
      if (++count > 1) break;
    }
    if (count !== 1 || others.some((f) => f.filter(work, n))) continue;
    misses.set(missed!, (misses.get(missed!) ?? 0) + 1);
  }
  return [...misses].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

/**
 * "Why is my job pending?" for one job, on the snapshot a cycle would place from: the cycle's
 * own placement pass (every waiting job of the snapshot, the profile, quota, fair share) is run
 * and this job's outcome read from it, so the verdict is what placement would do; then its place
 * in its queue, the blocking reasons, and the counterfactuals (passes of this job alone).
 */
export function explainJob(s: ClusterSnapshot, job: WhyJob, explainedBy: WhyView['explainedBy'], opts: ExplainOptions = {}): WhyView {
  const pendingTasks = countTasks(job.pending);
  if (!(job.phase === 'Queued' || job.phase === 'Running' || job.phase === 'Submitted') || pendingTasks === 0) {
    return {
      jobId: job.id,
      phase: job.phase,
      pendingTasks,
      position: 0,
      tasksAhead: 0,
      placeableNow: 0,
      blockers: [],
      messages: [`job is ${job.phase} with no task waiting for a node`],
      counterfactuals: [],
      explainedBy,
    };
  }
  const mine = s.pendingOf(job);
  // A job not in the snapshot (just submitted, not yet queued) is explained as if it were.
  const work = s.work.some((w) => w.jobId === job.id) ? s.work : [...s.work, mine];
  const { placements, unplaced, profile, reservations } = placeSnapshot(s, work, opts.backfill ? { backfill: opts.backfill } : {});
  const outcome: PassOutcome = {
    placed: placements.reduce((n, p) => (p.jobId === job.id ? n + p.count : n), 0),
    unplaced: unplaced.find((u) => u.jobId === job.id),
  };
  const quota = s.ledger();
  const headroom = quota.limits(job.queue) ? quota.room(job.queue) : undefined;
  const ahead = s.work.filter((w) => w.jobId !== job.id && w.queue === job.queue && profile.queueSort.compare(w, mine) < 0);
  const tasksAhead = ahead.reduce((n, w) => n + w.tasks, 0);
  const e = explainPending(mine, s.nodes, headroom, tasksAhead, outcome);
  if (mine.basePriority !== undefined) e.messages.unshift(agingMessage(mine, s.now, s.agingOf(job.queue)));
  const mineReserved = outcome.unplaced?.reservation;
  if (mineReserved) e.messages.push(reservationMessage(mineReserved, mine, s.now));
  else if (outcome.placed === 0 && reservations?.length) {
    const held = heldElsewhere(mine, reservations, s);
    if (held) e.messages.push(held);
  }
  if (opts.preemption && outcome.placed === 0 && outcome.unplaced && !outcome.unplaced.quotaLimited) {
    const held = protectionMessage(s, { ...mine, tasks: outcome.unplaced.tasks }, opts.preemption);
    if (held) e.messages.push(held);
  }
  const defrag = outcome.placed === 0 ? defragmentMessage(s, job.id, opts.defragmenting, s.work.find((w) => w.jobId === job.id) ?? mine) : undefined;
  if (defrag) e.messages.push(defrag);
  // Consolidation's cordons are named apart: they lift by themselves once their nodes are empty.
  let consolidating = 0;
  for (const c of s.cordons.values()) if (c.consolidation && s.labels.has(c.node)) consolidating++;
  const byOperator = s.cordonedNodes - consolidating;
  if (byOperator)
    e.messages.push(
      byOperator === 1 ? '1 node is cordoned by an operator and takes no new work' : `${byOperator} nodes are cordoned by an operator and take no new work`,
    );
  if (consolidating)
    e.messages.push(
      consolidating === 1
        ? '1 node is being emptied by consolidation (its tasks fit on the other nodes) and takes no new work until it is empty'
        : `${consolidating} nodes are being emptied by consolidation (their tasks fit on the other nodes) and take no new work until they are empty`,
    );
  if (s.drainingNodes)
    e.messages.push(
      s.drainingNodes === 1
        ? "1 node's executor is stopping (draining) and takes no new work"
        : `${s.drainingNodes} nodes' executors are stopping (draining) and take no new work`,
    );
  const blockers = e.blockers.map(({ reason, nodes }) => ({ reason, nodes }));
  return { jobId: job.id, phase: job.phase, position: ahead.length + 1, tasksAhead, ...e, blockers, explainedBy };
}

/** A job defragmentation made room for: the nodes moves freed for it and the tasks the pass asked to stop there. */
export interface Defragmenting {
  /** The nodes freed for it (nominated for its tasks; a gang's other members' nodes had the room). */
  nodes: readonly string[];
  /** The stops the pass recorded (only these count as moving for it; a cancel or a preemption on the node does not). */
  stops: ReadonlyArray<{ jobId: string; groupStart: number; attempt: number; index: number }>;
}

/**
 * "waiting for node gb: 1 task moving to make room, nominated by defragmentation" (a gang: "waiting
 * for nodes ga, gb: 3 tasks moving …") — while the tasks defragmentation asked to stop there still
 * run; "…: the room is free, it is placed there next" once they are gone. Said only while the job's
 * waiting work (`w`) still has such a node nominated (an entry a task of it used, or one lapsed, is
 * no claim).
 */
export function defragmentMessage(
  s: ClusterSnapshot,
  jobId: string,
  defragmenting: ReadonlyMap<string, Defragmenting> | undefined,
  w: PendingWork,
): string | undefined {
  const d = defragmenting?.get(jobId);
  const nodes = d?.nodes.filter((n) => w.nominated?.includes(n)) ?? [];
  if (!d || nodes.length === 0) return undefined;
  const where = nodes.length === 1 ? `node ${nodes[0]}` : `nodes ${nodes.length > 4 ? `${nodes.slice(0, 4).join(', ')}, …` : nodes.join(', ')}`;
  const ours = (t: RunningTask) => d.stops.some((x) => x.jobId === t.jobId && x.groupStart === t.groupStart && x.attempt === t.attempt && x.index === t.index);
  const moving = s.running().filter((t) => nodes.includes(t.node) && t.stopping && ours(t)).length;
  return moving > 0
    ? `waiting for ${where}: ${moving} task${moving === 1 ? '' : 's'} moving to make room, nominated by defragmentation`
    : `waiting for ${where}, nominated by defragmentation: the room is free, it is placed there next`;
}

/** "reserved: room on 2 nodes (a, c) for all 16 tasks from 2026-12-03T08:10:00.000Z, in 12m (ETA) …"; in one domain: "reserved: room in rack b0/r1 on 2 nodes …". */
function reservationMessage(r: Reservation, w: PendingWork, now: number): string {
  const names = r.nodes.map((n) => n.node);
  const shown = names.length > 4 ? `${names.slice(0, 4).join(', ')}, …` : names.join(', ');
  const what = w.gang ? `all ${r.tasks} tasks` : 'its next task';
  const when =
    r.start <= now
      ? 'as soon as the tasks running past their expected end there stop (ETA: now)'
      : `from ${new Date(r.start).toISOString()}, in ${formatWait(r.start - now)} (ETA, from running tasks' timeouts and runtime estimates)`;
  const where = r.domain ? `in ${r.domain.level} ${r.domain.name} ` : '';
  return `reserved: room ${where}on ${names.length} node${names.length === 1 ? '' : 's'} (${shown}) for ${what} ${when}; other work runs there meanwhile only if its timeoutSeconds ends it before then`;
}

/** When reservations for other work hold nodes this work could use and it may run past their start, a line that says so. */
function heldElsewhere(w: PendingWork, reservations: readonly Reservation[], s: ClusterSnapshot): string | undefined {
  const byNode = new Map(s.nodes.map((n) => [n.name, n]));
  const ends = boundOf(w, s.now);
  const blocking = reservations.filter(
    (r) => r.jobId !== w.jobId && ends > r.start && r.nodes.some((n) => byNode.has(n.node) && !DEFAULT_FILTERS.some((f) => f.filter(w, byNode.get(n.node)!))),
  );
  if (blocking.length === 0) return undefined;
  const r = blocking.reduce((a, b) => (b.start > a.start ? b : a));
  const nodes = blocking.reduce((n, x) => n + x.nodes.length, 0);
  const seconds = Math.floor((r.start - s.now) / 1000);
  return (
    `${nodes} node${nodes === 1 ? ' is' : 's are'} reserved for ${blocking.map((x) => `job ${x.jobId}`).join(', ')} (backfill): ` +
    (w.timeoutSeconds ? `with timeoutSeconds ${w.timeoutSeconds} it may still run then` : 'without timeoutSeconds it may still run then') +
    (seconds > 0 ? `; a timeoutSeconds of at most ${seconds} would let it run there now` : '')
  );
}

/** Options of `explainJob`. */
export interface ExplainOptions {
  /** The cycle's preemption settings: with them, "why pending" says when thrash damping kept the victims it would need. @default none */
  preemption?: ScheduleOptions['preemption'];
  /** The cycle's backfill settings: with them, the placement pass holds the same reservations, and "why pending" shows them and their start as the ETA. @default none */
  backfill?: ScheduleOptions['backfill'];
  /** The jobs the leader's defragmentation is making room for, each with the node nominated for it and the stops it asked for there (see `planDefragment`). @default none */
  defragmenting?: ReadonlyMap<string, Defragmenting>;
}

/** "effective priority 7 = priority 2 + 5 for waiting 5h 0m (aging 1/hour, at most 10)". */
function agingMessage(w: PendingWork, now: number, aging: PriorityAging): string {
  const base = w.basePriority ?? w.priority;
  const boost = w.priority - base;
  return (
    `effective priority ${w.priority} = priority ${base} + ${boost} for waiting ${formatWait(now - w.createdAt)} ` +
    `(aging ${aging.perHour}/hour, at most ${aging.max}${boost >= aging.max ? ', reached' : ''})`
  );
}

function formatWait(ms: number): string {
  const m = Math.floor(ms / 60_000);
  return m >= 60 ? `${Math.floor(m / 60)}h ${m % 60}m` : m >= 1 ? `${m}m` : `${Math.floor(ms / 1000)}s`;
}

const PROTECTION: Record<ProtectionReason, string> = {
  'exempt-time': 'started less than the preemption exempt time ago',
  'repeat-limit': 'belong to jobs preempted too often lately (repeat limit)',
};

/** When preemption would make room for `w` but thrash damping protects the tasks it would stop, a line that says so. */
function protectionMessage(s: ClusterSnapshot, w: PendingWork, p: NonNullable<ScheduleOptions['preemption']>): string | undefined {
  const running = s.running();
  const base = w.basePriority ?? w.priority;
  if (!running.some((t) => t.priority < base)) return undefined;
  const { held } = preemptionPass([w], s.nodes, running, {
    now: s.now,
    protectMs: p.protectMs,
    budget: p.budget,
    exemptJobs: p.exemptJobs,
    maxHeldChecks: 1,
    ...(s.topology ? { topology: s.topology } : {}),
  });
  const mine = held.find((h) => h.jobId === w.jobId);
  if (!mine) return undefined;
  const by = new Map<ProtectionReason, number>();
  for (const t of mine.protectedTasks) by.set(t.reason, (by.get(t.reason) ?? 0) + 1);
  const parts = [...by].map(
    ([r, n]) => `${n} ${n === 1 ? 'task' : 'tasks'} ${PROTECTION[r]}${r === 'exempt-time' ? ` (${Math.round(p.protectMs / 1000)} s)` : ''}`,
  );
  return `not preempting lower-priority work for it: the tasks it would stop are protected from thrashing: ${parts.join('; ')}`;
}
