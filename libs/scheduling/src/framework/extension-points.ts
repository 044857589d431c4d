/**
 * The extension points of a placement pass, as interfaces (after the Kubernetes scheduler
 * framework). Each plugin is pure: inputs in, a number or a `Status` out, no I/O, no clock.
 *
 *   QueueSort  — the order pending work is tried in (within a priority, fair share may interleave queues);
 *   PreFilter  — once per piece of work: how many of its tasks may be tried at all (quota, gang);
 *   Filter     — can this node ever run a task of it (selector, taints, resource kinds)?
 *   Score      — among the nodes that can, which first (bin packing, GPU fragmentation)?
 *   Domain     — for work that names a topology: which of the ranked nodes, in which order (one rack for a gang)?
 *   Reserve    — take a node's room for some tasks (quota per node), and give it back (Unreserve);
 *   Permit     — accept what was reserved for the work, or refuse it all (a gang places all or none);
 *   PostFilter — after the pass, for work left pending: stop tasks to make room (preemption,
 *                reclaim) or give up on it (gang timeout). These produce entries of the `Plan`.
 */
import type { ResourceVector } from '@batchapi/api';
import type { NodeSnapshot, PendingWork } from '../snapshot';
import type { QuotaLedger } from '../plugins/quota/ledger';
import type { Status } from './status';

/** What plugins of one pass share: the quota room as placement takes from it, and the task budget left. */
export interface PassContext {
  readonly ledger: QuotaLedger;
  /** Tasks this pass may still place. */
  readonly budget: number;
}

/** Orders pending work: negative when `a` goes first. */
export interface QueueSortPlugin {
  name: string;
  compare(a: PendingWork, b: PendingWork): number;
}

/** What a PreFilter allows of one piece of work. */
export interface PreFilterResult {
  /** Tasks that may be tried (at most `work.tasks`). */
  allowed: number;
  /** Set when the plugin limited or refused the work. */
  status?: Status;
}

/** Runs once per piece of work per pass, before any node is looked at. `allowed` is what earlier PreFilters allowed. */
export interface PreFilterPlugin {
  name: string;
  preFilter(work: PendingWork, allowed: number, ctx: PassContext): PreFilterResult;
}

/**
 * Can this node run a task of this work at all? `undefined` to pass, or the refusal. The verdict
 * depends on the node only through its `capacity`, `gpuCount`, `labels` and `taints` — never its
 * name or what is used on it — so the engine asks once per class of such nodes (`framework/node-buckets`).
 */
export interface FilterPlugin {
  name: string;
  filter(work: PendingWork, node: NodeSnapshot): Status | undefined;
  /**
   * The node label keys the verdict reads for this work, so nodes that differ only in other
   * labels (a host name) are asked once. @default every label: nodes that differ in any label are asked apart
   */
  labelKeys?(work: PendingWork): readonly string[];
}

/**
 * A score plugin: a finite number, usually in [-1, 1], weighted and summed with the others; higher
 * is better. It depends on the node only through its `capacity`, `gpuCount`, `labels` and `taints`
 * and on its room only through `free`, `freeDevices` and `devices` — never the node's name or
 * snapshot `used`/`devices` — so nodes alike in those get one score (`framework/node-buckets`).
 */
export interface ScorePlugin {
  name: string;
  /** Weight in the sum. @default 1 */
  weight: number;
  /** `devices`: milli-GPU in use per device now (within a pass; defaults to the snapshot's). */
  score(work: PendingWork, node: NodeSnapshot, free: ResourceVector, freeDevices: number, devices?: Record<string, number>): number;
  /** The node label keys the score reads for this work (see `FilterPlugin.labelKeys`). @default every label */
  labelKeys?(work: PendingWork): readonly string[];
  /**
   * An upper bound of `score` for this work on this node, whatever its room, wherever one task of
   * the work fits (as `score`, it depends on the node only through its `capacity`, `gpuCount`,
   * `labels` and `taints`). A kept ranking re-scores a node whose room changed only when the
   * pass could reach it: while the weighted sum of the bounds ranks it after the nodes placement
   * is taking, it waits (see `PlacementPass.rescore`). A bound below a score the plugin can
   * return breaks that: the plan would not be a scan's. @default Infinity (no bound: re-scored at once)
   */
  bound?(work: PendingWork, node: NodeSnapshot): number;
}

/** A node that passed Filter, in Score order, with how many tasks of the work fit there now. */
export interface DomainCandidate {
  node: NodeSnapshot;
  /** Tasks of the work that fit in the node's free room and devices now. */
  fit: number;
}

/** What a Domain plugin decided: the candidates to reserve on, in order (indices into its input), or a refusal. */
export interface DomainChoice {
  /** Indices of the candidates to try, in order; absent: all of them as ranked. */
  order?: number[];
  /** Set when no allowed set of nodes can take the work now: it places nothing this pass. */
  status?: Status;
}

/**
 * Chooses where among the ranked nodes the work goes as a whole (a topology domain), after
 * Score and before Reserve. Runs only for work that names a topology (`PendingWork.topology`).
 */
export interface DomainPlugin {
  name: string;
  /** `want`: tasks to place in this pass; `candidates`: best first. */
  choose(work: PendingWork, want: number, candidates: readonly DomainCandidate[]): DomainChoice;
}

/** Takes a node's room for tasks, and gives it back when the work is not permitted. */
export interface ReservePlugin {
  name: string;
  /** How many of `want` tasks this plugin lets the node take (≤ want). Changes nothing: the Domain point asks it too, to count a node's room. */
  admit(work: PendingWork, node: NodeSnapshot, want: number, ctx: PassContext): number;
  /** `count` tasks were reserved on the node. */
  reserve(work: PendingWork, node: NodeSnapshot, count: number, ctx: PassContext): void;
  /** Undo of `reserve`. */
  unreserve(work: PendingWork, node: NodeSnapshot, count: number, ctx: PassContext): void;
}

/** Accepts or refuses what was reserved for one piece of work. */
export interface PermitPlugin {
  name: string;
  permit(work: PendingWork, placed: number): Status | undefined;
}
