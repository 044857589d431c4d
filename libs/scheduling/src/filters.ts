/**
 * Filter plugins: can this node run a task of this work at all? Each is a pure predicate
 * over a read-only node, and names the reason it refuses so "why pending" can count them.
 */
import type { NodeSnapshot, PendingWork, Toleration } from './snapshot';

/** A filter plugin. Returns undefined to pass, or the reason the node is refused. */
export interface FilterPlugin {
  name: string;
  filter(work: PendingWork, node: NodeSnapshot): string | undefined;
}

/** The node's labels must match the work's selector (e.g. `gpu.model=A100`). */
export const NodeSelector: FilterPlugin = {
  name: 'NodeSelector',
  filter(work, node) {
    for (const [k, v] of Object.entries(work.selector ?? {})) if (node.labels[k] !== v) return `label ${k}=${v} missing`;
    return undefined;
  },
};

/** Taints with effect NoSchedule or NoExecute keep away work that does not tolerate them. */
export const TaintToleration: FilterPlugin = {
  name: 'TaintToleration',
  filter(work, node) {
    for (const t of node.taints) {
      if (t.effect === 'PreferNoSchedule') continue;
      if (!(work.tolerations ?? []).some((tol) => tolerates(tol, t))) return `taint ${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`;
    }
    return undefined;
  },
};

/** The node has each resource the task asks for at all (capacity, not free). */
export const ResourceKinds: FilterPlugin = {
  name: 'ResourceKinds',
  filter(work, node) {
    for (const [name, amount] of Object.entries(work.resources)) if (amount > 0 && (node.capacity[name] ?? 0) < amount) return `capacity of ${name} too small`;
    return undefined;
  },
};

export function tolerates(tol: Toleration, taint: { key: string; value?: string; effect: string }): boolean {
  if (tol.key !== taint.key) return false;
  if (tol.effect && tol.effect !== taint.effect) return false;
  return tol.operator === 'Exists' || (tol.value ?? '') === (taint.value ?? '');
}

/** The default filter chain, in order. */
export const DEFAULT_FILTERS: readonly FilterPlugin[] = [NodeSelector, TaintToleration, ResourceKinds];
