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
}

/**
 * `live`: registered nodes. `holding`: nodes named by a live binding or an allocation. A node
 * holding work but not live is missing from the first call that sees it (`mono`); it is lost when
 *   mono − missingSince ≥ afterMs.
 * Nodes no longer missing are forgotten (a node that comes back and goes again waits the full time).
 */
export function lostNodes(
  live: ReadonlySet<string>,
  holding: Iterable<string>,
  missingSince: ReadonlyMap<string, number>,
  mono: number,
  afterMs: number,
): NodeLossDecision {
  const next = new Map<string, number>();
  const lost: NodeLossDecision['lost'] = [];
  for (const node of new Set(holding)) {
    if (live.has(node)) continue;
    const since = missingSince.get(node) ?? mono;
    next.set(node, since);
    if (mono - since >= afterMs) lost.push({ node, goneForMs: mono - since });
  }
  return { missingSince: next, lost };
}
