/**
 * Consolidation, the leader's side (opt-in, `BATCH_CONSOLIDATION_NODES_PER_PASS`): lifts its own
 * cordons once their nodes are empty, and — when no runnable work waits and no consolidation is under way —
 * decides a pass (`planConsolidation`, pure, on the cycle's snapshot, checked with the cycle's own
 * placement) and cordons the chosen nodes with a drain deadline of now. The drain (`drainNodes`)
 * then stops their tasks, which are requeued at their next attempt and placed by the next cycles on
 * the other nodes; the cordon keeps them off the emptied node. With re-pack on
 * (`BATCH_CONSOLIDATION_REPACK_MAX_MOVES`), a pass that empties no node re-packs (`planRepack`):
 * its emptied nodes are cordoned the same way, its other moves asked to stop, and the moved tasks'
 * planned nodes are nominated for the next cycles. With defragmentation on
 * (`BATCH_DEFRAGMENT_MAX_MOVES`), a pass also serves waiting work that fits no node
 * (`planDefragment`): the few tasks whose leaving gives the waiting job the room (a gang: all its
 * members', in one pass) are asked to stop, their destinations and the job's nodes nominated. Every
 * write is fenced.
 */
import type { Binding, Cordon, JobRecord } from '@batchapi/api';
import {
  type ClusterSnapshot,
  type ConsolidationJob,
  type ConsolidationMove,
  type ConsolidationOptions,
  cycleProfile,
  type NodeSnapshot,
  type PendingWork,
  placeTasks,
  type DefragmentTarget,
  planConsolidation,
  planDefragment,
  planRepack,
  type RepackMove,
  type ScheduleOptions,
  runnableOnSome,
} from '@batchapi/scheduling';
import { cordonForConsolidation, type EtcdStore, type Leadership, liftConsolidationCordon, OutcomeUnknownError, requestPreemption } from '@batchapi/store';
import type { SchedulerCache } from './cache';
import { type SnapshotPolicy, takeSnapshot } from './cycle';

/** Consolidation settings of the leader. */
export interface ConsolidationTuning {
  /** Most nodes emptied per pass (`BATCH_CONSOLIDATION_NODES_PER_PASS`). */
  maxNodesPerPass: number;
  /** Most nodes emptied per pass as a fraction of the nodes in use, at least 1 (`BATCH_CONSOLIDATION_NODE_FRACTION`). @default 0.1 */
  maxNodeFraction: number;
  /** A node whose newest task is younger than this is not emptied, in milliseconds (`BATCH_CONSOLIDATE_AFTER`, in seconds). @default 300000 */
  consolidateAfterMs: number;
  /** A task bound longer ago than this is never moved (a move restarts it), in milliseconds; 0 = any age (`BATCH_CONSOLIDATION_MAX_TASK_AGE`, in seconds). @default 600000 */
  maxTaskAgeMs: number;
  /** Least time between two passes, in milliseconds. @default 10000 */
  intervalMs: number;
  /** A consolidation cordon still up this long after it was set is lifted even if its node is not empty, in milliseconds. @default 600000 */
  liftAfterMs: number;
  /** Re-pack when a pass empties no node: most tasks one re-pack pass stops per node it empties; 0 = off (`BATCH_CONSOLIDATION_REPACK_MAX_MOVES`). @default 0 */
  repackMaxMoves?: number;
  /** Defragmentation for waiting work: most tasks one pass stops to give a waiting job that fits no node the room on one; 0 = off (`BATCH_DEFRAGMENT_MAX_MOVES`). @default 0 */
  defragmentMaxMoves?: number;
}

/** Consolidation off (the default): only cordons a previous leader set are lifted. */
export const CONSOLIDATION_OFF: ConsolidationTuning = {
  maxNodesPerPass: 0,
  maxNodeFraction: 0.1,
  consolidateAfterMs: 300_000,
  maxTaskAgeMs: 600_000,
  intervalMs: 10_000,
  liftAfterMs: 600_000,
};

/** What one call did. */
export interface ConsolidationOutcome {
  /** Nodes cordoned to be emptied, with the tasks to move off each. */
  cordoned: Array<{ node: string; moves: ConsolidationMove[] }>;
  /** A re-pack's moves off nodes that stay in use (asked to stop), with the nodes nominated for them. */
  repacked: RepackMove[];
  /** Every cordon of the pass and every stop it asked for landed: only then are its moves' planned nodes nominated (their room depends on all of them). */
  complete: boolean;
  /** Consolidation cordons lifted: `freed` when their node was empty, else `timed_out`. */
  lifted: Array<{ node: string; reason: 'freed' | 'timed_out' }>;
}

/**
 * Lifts the consolidation cordons whose nodes are empty while no runnable work waits (the moved
 * tasks are placed elsewhere by then; one that fits no other node is runnable nowhere else, and the
 * lift lets it back), or that are older than `liftAfterMs`. Fenced, and compares the cordon's
 * revision: an operator's cordon written over it stays.
 */
export async function liftConsolidationCordons(
  store: EtcdStore,
  cache: SchedulerCache,
  leadership: Leadership,
  now: number,
  liftAfterMs: number,
  policy: SnapshotPolicy,
): Promise<ConsolidationOutcome['lifted']> {
  if (![...cache.cordons.items.values()].some((c) => c.value.consolidation)) return [];
  const view = () => {
    const ours = [...cache.cordons.items.values()].filter((c) => c.value.consolidation);
    const holding = new Set([...cache.bindings.items.values()].map((b) => b.value.node));
    // Whether runnable work waits, computed (a snapshot) only when an emptied node asks.
    let waits: boolean | undefined;
    const waiting = () => (waits ??= !cache.waitingJobs().next().done && runnableWaiting(takeSnapshot(cache, now, undefined, policy).snapshot));
    return { ours, holding, waiting };
  };
  let v = view();
  const due = (c: Cordon, w: typeof v) => now - c.at >= liftAfterMs || (!w.holding.has(c.node) && !w.waiting());
  if (!v.ours.some((c) => due(c.value, v))) return [];
  // The bindings and jobs come from separate watches: a task's requeue (its binding gone, its job
  // pending again, one transaction) may show in one before the other. Every cache is brought up to
  // the newest revision seen before deciding, so a moved task still waiting is seen waiting.
  const newest = [cache.bindings.revision, cache.jobs.revision, cache.cordons.revision].reduce((a, b) => (a > b ? a : b));
  if (!(await cache.catchUpTo(newest, () => leadership.held(), 100))) return [];
  v = view();
  const lifted: ConsolidationOutcome['lifted'] = [];
  for (const { value: c, modRevision } of v.ours) {
    if (!due(c, v)) continue;
    const empty = !v.holding.has(c.node);
    if (await liftConsolidationCordon(store, leadership.fence(), c.node, modRevision)) lifted.push({ node: c.node, reason: empty ? 'freed' : 'timed_out' });
  }
  return lifted;
}

/**
 * One consolidation pass at `now`, when consolidation is on, no runnable work waits (see
 * `runnableWaiting`: work that waits is served first; the moved tasks themselves wait until
 * placed) and no consolidation cordon is up (one pass at a time). Protection as preemption's: the
 * exempt time and the jobs at their repeat limit are never moved.
 */
export async function consolidateNodes(
  store: EtcdStore,
  cache: SchedulerCache,
  leadership: Leadership,
  now: number,
  tuning: ConsolidationTuning,
  protection: Pick<NonNullable<ScheduleOptions['preemption']>, 'protectMs' | 'exemptJobs'>,
  policy: SnapshotPolicy,
): Promise<Pick<ConsolidationOutcome, 'cordoned' | 'repacked' | 'complete'>> {
  const none = { cordoned: [], repacked: [], complete: true };
  if (tuning.maxNodesPerPass <= 0) return none;
  if ([...cache.cordons.items.values()].some((c) => c.value.consolidation)) return none;
  const { snapshot: s, versions } = takeSnapshot(cache, now, undefined, policy);
  if (runnableWaiting(s)) return none;
  const jobs = new Map<string, JobRecord>();
  for (const { value: j } of cache.jobs.items.values()) jobs.set(j.id, j);
  const profile = cycleProfile(s);
  const options = {
    consolidateAfterMs: tuning.consolidateAfterMs,
    protectMs: protection.protectMs,
    ...(protection.exemptJobs ? { exemptJobs: protection.exemptJobs } : {}),
    maxNodesPerPass: tuning.maxNodesPerPass,
    maxNodeFraction: tuning.maxNodeFraction,
    ...(tuning.maxTaskAgeMs > 0 ? { maxTaskAgeMs: tuning.maxTaskAgeMs } : {}),
    // The check is the cycle's own placement: where it finds room is where the next cycle puts the tasks.
    placer: (work: PendingWork[], nodes: NodeSnapshot[]) => placeTasks(work, nodes, { profile, maxTasks: 100_000 }).placements,
  } satisfies ConsolidationOptions;
  const jobOf = (id: string) => consolidationJobOf(jobs.get(id));
  let plan: { nodes: string[]; moves: RepackMove[] } = planConsolidation(s.nodes, s.running(), jobOf, now, options);
  // Re-pack when no node can be emptied whole: the moved tasks wait with their planned nodes nominated.
  if (plan.nodes.length === 0 && (tuning.repackMaxMoves ?? 0) > 0)
    plan = planRepack(s.nodes, s.running(), jobOf, now, { ...options, maxMovesPerNode: tuning.repackMaxMoves, nominate: true });
  const cordoned: ConsolidationOutcome['cordoned'] = [];
  let last: bigint | undefined;
  for (const node of plan.nodes) {
    const moves = plan.moves.filter((m) => m.task.node === node);
    const rev = await cordonForConsolidation(store, leadership.fence(), node, moves.length, now, versions.allocs.get(node)?.modRevision);
    if (rev === undefined) continue;
    cordoned.push({ node, moves });
    last = BigInt(rev);
  }
  // A re-pack's other moves are asked to stop only when every node it empties was cordoned: the
  // plan's room on the kept nodes is for those nodes' tasks.
  let repacked: RepackMove[] = [];
  const emptied = new Set(plan.nodes);
  const rest = plan.moves.filter((m) => !emptied.has(m.task.node));
  let complete = cordoned.length === plan.nodes.length;
  if (rest.length > 0 && complete) {
    // requestPreemption counts the bindings it changed: all of them, or the pass is not complete
    const groups = new Set(rest.map((m) => `${m.task.node}/${m.task.jobId}/${m.task.groupStart}/${m.task.attempt}`)).size;
    const asked = await requestPreemption(
      store,
      leadership.fence(),
      rest.map((m) => ({ node: m.task.node, jobId: m.task.jobId, start: m.task.groupStart, attempt: m.task.attempt, index: m.task.index })),
      now,
    );
    complete = asked === groups;
    if (asked > 0) {
      repacked = rest;
      const rev = BigInt(store.lastCommittedRevision);
      if (last === undefined || rev > last) last = rev;
    }
  }
  // The next cycle must see the cordons, or it could bind onto a node being emptied (its drain
  // would then stop a task no plan checked): wait until the caches hold them.
  if (last !== undefined) await cache.catchUpTo(last, () => leadership.held(), 100);
  return { cordoned, repacked, complete };
}

/** What a defragmentation pass did: only what etcd shows landed, never what was only asked. */
export interface DefragmentOutcome {
  /** Waiting jobs whose every stop landed: the node freed for each and its moves (only these are nominated: the room depends on all of them). */
  served: DefragmentTarget[];
  /** Every stop that landed, over all the pass's targets (served or not): counted, and recorded toward the repeat limit. */
  moved: RepackMove[];
  /** A store revision at or after every landed stop (0 when none): the next cycle waits until its cache holds it. */
  revision: bigint;
}

/**
 * One defragmentation pass at `now`, when on (`defragmentMaxMoves` > 0) and work waits: for the first
 * waiting job (the planner's order: priority, submit time, id) that fits no node but would fit one
 * if a few of its tasks moved, those tasks are asked to stop (one fenced CAS per binding, as
 * re-pack's moves). Returns only what landed: when not all of it is known to have (an answer lost,
 * a transaction refused), the bindings are read back (`landedStops`). The caller nominates each
 * served job's moved tasks' destinations and its freed node (`defragmentNominations`). Protection
 * as preemption's.
 */
export async function defragmentNodes(
  store: EtcdStore,
  cache: SchedulerCache,
  leadership: Leadership,
  now: number,
  tuning: ConsolidationTuning,
  protection: Pick<NonNullable<ScheduleOptions['preemption']>, 'protectMs' | 'exemptJobs'>,
  policy: SnapshotPolicy,
): Promise<DefragmentOutcome> {
  const none: DefragmentOutcome = { served: [], moved: [], revision: 0n };
  if ((tuning.defragmentMaxMoves ?? 0) <= 0) return none;
  // Nothing waits: no snapshot to build (the pass runs every `intervalMs`).
  if (cache.waitingJobs().next().done) return none;
  const { snapshot: s } = takeSnapshot(cache, now, undefined, policy);
  if (s.work.length === 0) return none;
  const jobs = new Map<string, JobRecord>();
  for (const { value: j } of cache.jobs.items.values()) jobs.set(j.id, j);
  const profile = cycleProfile(s);
  // Work its queue's quota holds back would not start on the freed node: moving tasks for it is waste.
  const ledger = s.ledger();
  const work = s.work.filter((w) => !ledger.limits(w.queue) || ledger.allows(w.queue, w.resources) >= 1);
  const plan = planDefragment(s.nodes, s.running(), work, (id) => consolidationJobOf(jobs.get(id)), now, {
    protectMs: protection.protectMs,
    ...(protection.exemptJobs ? { exemptJobs: protection.exemptJobs } : {}),
    ...(tuning.maxTaskAgeMs > 0 ? { maxTaskAgeMs: tuning.maxTaskAgeMs } : {}),
    maxMoves: tuning.defragmentMaxMoves,
    ...(s.topology ? { topology: s.topology } : {}),
    // The check is the cycle's own placement, the moved tasks and the job nominated as they will wait.
    placer: (work: PendingWork[], nodes: NodeSnapshot[]) => placeTasks(work, nodes, { profile, maxTasks: 100_000 }).placements,
  });
  if (plan.moves.length === 0) return none;
  const groups = new Set(plan.moves.map((m) => `${m.task.node}/${m.task.jobId}/${m.task.groupStart}/${m.task.attempt}`)).size;
  let asked: number | undefined;
  try {
    asked = await requestPreemption(
      store,
      leadership.fence(),
      plan.moves.map((m) => ({ node: m.task.node, jobId: m.task.jobId, start: m.task.groupStart, attempt: m.task.attempt, index: m.task.index })),
      now,
    );
  } catch (err) {
    // An answer lost: some stops may have landed. Resolved below by reading the bindings.
    if (!(err instanceof OutcomeUnknownError)) throw err;
  }
  if (asked === 0) return none;
  const out: DefragmentOutcome =
    asked === groups ? { served: plan.targets, moved: plan.moves, revision: BigInt(store.lastCommittedRevision) } : await landedStops(store, plan.targets);
  // The next cycle must see the stops (their tasks stopping), or a pass could choose them again.
  if (out.moved.length > 0) await cache.catchUpTo(out.revision, () => leadership.held(), 100);
  return out;
}

/**
 * What etcd shows of a defragmentation's stops when not all of them are known to have landed (an
 * answer lost, a transaction refused): a stop landed when its binding lists the task's index in
 * `preempt` (the leader alone writes it, and no task the plan moved was stopping). A target is
 * served only when every one of its stops landed.
 */
export async function landedStops(store: EtcdStore, targets: readonly DefragmentTarget[]): Promise<DefragmentOutcome> {
  const moves = targets.flatMap((t) => t.moves);
  const keyOf = (m: RepackMove) => store.keys.binding(m.task.node, m.task.jobId, m.task.groupStart, m.task.attempt);
  const keys = [...new Set(moves.map(keyOf))];
  const current = await store.getMany<Binding>(keys);
  const byKey = new Map(keys.map((k, i) => [k, current[i]]));
  let revision = 0n;
  const landed = (m: RepackMove) => {
    const b = byKey.get(keyOf(m));
    if (!b || !(b.value.preempt ?? []).includes(m.task.index)) return false;
    if (BigInt(b.modRevision) > revision) revision = BigInt(b.modRevision);
    return true;
  };
  const moved = moves.filter(landed);
  const served = targets.filter((t) => t.moves.every((m) => moved.includes(m)));
  return { served, moved, revision };
}

/** The nodes to nominate per job for a defragmentation: each moved task's destination, and its waiting job's laid-out nodes (one per task). */
export function defragmentNominations(targets: readonly DefragmentTarget[]): Map<string, string[]> {
  const out = nominationsOf(targets.flatMap((t) => t.moves));
  for (const t of targets) out.set(t.jobId, [...(out.get(t.jobId) ?? []), ...t.nodes]);
  return out;
}

/** The nodes to nominate per job for a pass's moves: a re-pack's planned nodes (consolidation's own moves nominate none). */
export function nominationsOf(moves: readonly RepackMove[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of moves) if (m.nominated) out.set(m.task.jobId, [...(out.get(m.task.jobId) ?? []), m.nominated]);
  return out;
}

/** The nominations a leader holds: per job its nodes and when they were nominated (each job's own lapse: see `addNominations`). */
export interface HeldNominations {
  byJob: ReadonlyMap<string, readonly string[]>;
  since: ReadonlyMap<string, number>;
  /** When the last of them lapses, epoch ms. */
  until: number;
}

/**
 * The nominations in force at `now` (epoch ms): each job's until its own start plus `liftAfterMs`
 * (ms; its pass's lift time), however many passes came since — a later pass does not extend an
 * earlier job's (a gang's nominations hold room on its nodes: a hold that could never start must
 * lapse). Undefined when none is left.
 */
export function nominationsInForce(held: HeldNominations | undefined, now: number, liftAfterMs: number): HeldNominations | undefined {
  if (!held) return undefined;
  // Unchanged when none lapsed (the same maps: the cycles' snapshots see the same policy).
  if ([...held.since.values()].every((at) => now < at + liftAfterMs) && held.since.size === held.byJob.size) return held.byJob.size > 0 ? held : undefined;
  const byJob = new Map<string, readonly string[]>();
  const since = new Map<string, number>();
  let until = -Infinity;
  for (const [job, nodes] of held.byJob) {
    const at = held.since.get(job);
    if (at === undefined || now >= at + liftAfterMs) continue;
    byJob.set(job, nodes);
    since.set(job, at);
    until = Math.max(until, at + liftAfterMs);
  }
  return byJob.size > 0 ? { byJob, since, until } : undefined;
}

/**
 * A pass's nominations at `now` added beside those in force (`nominationsInForce`): a job's new
 * entries replace its old, with their own start (`now`), lapsing `liftAfterMs` later; the others
 * keep theirs.
 */
export function addNominations(
  held: HeldNominations | undefined,
  added: ReadonlyMap<string, readonly string[]>,
  now: number,
  liftAfterMs: number,
): HeldNominations {
  const kept = nominationsInForce(held, now, liftAfterMs);
  const byJob = new Map(kept?.byJob ?? []);
  const since = new Map(kept?.since ?? []);
  for (const [job, nodes] of added) {
    byJob.set(job, nodes);
    since.set(job, now);
  }
  return { byJob, since, until: Math.max(kept?.until ?? -Infinity, added.size > 0 ? now + liftAfterMs : -Infinity) };
}

/**
 * True when work waits that a node taking work could run (its capacity and the filters let it):
 * the cycles serve it first. Work no node could ever run (more than any node has, a selector no
 * node matches) and retries still in backoff hold nothing back.
 */
export function runnableWaiting(s: ClusterSnapshot): boolean {
  return s.work.some((w) => runnableOnSome(w, s.nodes));
}

/** What consolidation reads of a job (undefined: not cached, never moved). */
function consolidationJobOf(j: JobRecord | undefined): ConsolidationJob | undefined {
  if (!j) return undefined;
  const spec = j.spec;
  return {
    createdAt: j.createdAt,
    labels: spec.labels,
    ...(spec.selector ? { selector: spec.selector } : {}),
    ...(spec.tolerations ? { tolerations: spec.tolerations } : {}),
    ...(spec.image ? { image: spec.image } : {}),
    ...(spec.gang ? { gang: true } : {}),
    ...(spec.topology ? { topology: spec.topology } : {}),
  };
}
