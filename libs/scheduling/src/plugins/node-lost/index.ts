/**
 * Node loss: a node whose executor's lease expired (its node key is gone) but that still has
 * live bindings or an allocation is lost once it has been gone for `afterMs` — the executor's
 * lease TTL plus a grace, so the executor has certainly killed its tasks on its own clock first
 * (invariant 4). Then its tasks are requeued (`reapLostNode`). Pure: times are CLOCK_MONOTONIC
 * milliseconds passed in, so a step of the wall clock cannot cut the wait short.
 */

/** What `lostNodes` decided. */
export interface NodeLossDecision {
  /** When each still-missing node was first seen missing (the caller keeps it for the next call). */
  missingSince: Map<string, number>;
  /** Nodes gone for at least `afterMs`, with how long. */
  lost: Array<{ node: string; goneForMs: number }>;
  /**
   * Many nodes are missing at once (`isMassLoss`): the trouble is more likely etcd's, the network's
   * or a stalled machine's than each node's, so these losses count toward no node's quarantine.
   * Their tasks are requeued all the same (each executor has stopped them on its own clock).
   */
  massLoss: boolean;
}

/**
 * When missing nodes are a mass loss, as the Kubernetes node lifecycle controller tells a zone's
 * disruption: every node missing, or more than `minMissing` of them and at least `fraction` of the
 * nodes known (live, or missing while holding work).
 */
export interface MassLossPolicy {
  /** Share of the known nodes missing at once that makes a mass loss, 0–1. @default 0.55 (Kubernetes' `--unhealthy-zone-threshold`) */
  fraction: number;
  /** Below the "every node" case, more than this many must be missing. @default 2 */
  minMissing: number;
}

export const DEFAULT_MASS_LOSS: MassLossPolicy = { fraction: 0.55, minMissing: 2 };

/**
 * Whether `missing` nodes missing at once among `live` live ones is a mass loss:
 *   (live = 0 and missing > 0) or (missing > minMissing and missing / (live + missing) ≥ fraction).
 */
export function isMassLoss(missing: number, live: number, policy: MassLossPolicy = DEFAULT_MASS_LOSS): boolean {
  if (missing === 0) return false;
  if (live === 0) return true;
  return missing > policy.minMissing && missing / (live + missing) >= policy.fraction;
}

/**
 * `live`: registered nodes. `holding`: nodes named by a live binding or an allocation. A node
 * holding work but not live is missing from the first call that sees it (`mono`); it is lost when
 *   mono − missingSince ≥ afterMs.
 * Nodes no longer missing are forgotten (a node that comes back and goes again waits the full time).
 * `massLoss` says whether the nodes missing now (lost or not yet, and `goneIdle`) are a mass loss among `live`.
 */
export function lostNodes(
  live: ReadonlySet<string>,
  holding: Iterable<string>,
  missingSince: ReadonlyMap<string, number>,
  mono: number,
  afterMs: number,
  /** When the missing nodes are a mass loss. @default DEFAULT_MASS_LOSS */
  massLoss: MassLossPolicy = DEFAULT_MASS_LOSS,
  /** Idle nodes gone lately (see `recentlyGone`): missing too for a mass loss, though they hold no work. @default none */
  goneIdle: ReadonlySet<string> = new Set(),
): NodeLossDecision {
  const next = new Map<string, number>();
  const lost: NodeLossDecision['lost'] = [];
  for (const node of new Set(holding)) {
    if (live.has(node)) continue;
    const since = missingSince.get(node) ?? mono;
    next.set(node, since);
    if (mono - since >= afterMs) lost.push({ node, goneForMs: mono - since });
  }
  let idle = 0;
  for (const n of goneIdle) if (!next.has(n) && !live.has(n)) idle++;
  return { missingSince: next, lost, massLoss: isMassLoss(next.size + idle, live.size, massLoss) };
}

/**
 * The nodes seen live within `windowMs` before `mono` but not live now, and the last instant each
 * node was seen live (the caller keeps it for the next call; a node gone longer than the window
 * is forgotten). A mass loss counts them beside the missing nodes that hold work, so a partition
 * that cuts off mostly idle nodes is still seen as one. Pure: CLOCK_MONOTONIC ms passed in.
 */
export function recentlyGone(
  lastLive: ReadonlyMap<string, number>,
  live: ReadonlySet<string>,
  mono: number,
  windowMs: number,
): { lastLive: Map<string, number>; gone: Set<string> } {
  const next = new Map<string, number>();
  const gone = new Set<string>();
  for (const [node, at] of lastLive)
    if (!live.has(node) && mono - at < windowMs) {
      next.set(node, at);
      gone.add(node);
    }
  for (const node of live) next.set(node, mono);
  return { lastLive: next, gone };
}
