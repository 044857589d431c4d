/** Filter: taints with effect NoSchedule or NoExecute keep away work that does not tolerate them (PreferNoSchedule is only a preference). */
import type { FilterPlugin } from '../../framework/extension-points';
import type { Toleration } from '../../snapshot';

export const TaintToleration: FilterPlugin = {
  name: 'TaintToleration',
  filter(work, node) {
    for (const t of node.taints) {
      if (t.effect === 'PreferNoSchedule') continue;
      if (!(work.tolerations ?? []).some((tol) => tolerates(tol, t)))
        return {
          code: 'Unschedulable',
          plugin: 'TaintToleration',
          reason: `taint ${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`,
          detail: { kind: 'taint', key: t.key, ...(t.value ? { value: t.value } : {}), effect: t.effect },
        };
    }
    return undefined;
  },
  labelKeys: () => [],
};

/** Kubernetes matching: same key; same effect unless the toleration names none; `Exists` matches any value, `Equal` (default) the same value. */
export function tolerates(tol: Toleration, taint: { key: string; value?: string; effect: string }): boolean {
  if (tol.key !== taint.key) return false;
  if (tol.effect && tol.effect !== taint.effect) return false;
  return tol.operator === 'Exists' || (tol.value ?? '') === (taint.value ?? '');
}
