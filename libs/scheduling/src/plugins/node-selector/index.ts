/** Filter: the node's labels must match the work's selector exactly (e.g. `gpu.model=A100`). */
import type { FilterPlugin } from '../../framework/extension-points';

export const NodeSelector: FilterPlugin = {
  name: 'NodeSelector',
  filter(work, node) {
    for (const [key, value] of Object.entries(work.selector ?? {}))
      if (node.labels[key] !== value)
        return { code: 'Unschedulable', plugin: 'NodeSelector', reason: `label ${key}=${value} missing`, detail: { kind: 'label', key, value } };
    return undefined;
  },
  labelKeys: (work) => Object.keys(work.selector ?? {}),
};
