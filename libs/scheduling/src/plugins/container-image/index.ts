/**
 * Filter: work that names a container image goes only to nodes that run images — those whose
 * executor sets `CONTAINER_RUNTIME_LABEL` (the Kubernetes backend). A process node would run the
 * command on its own machine without the image: never that, silently.
 */
import { CONTAINER_RUNTIME_LABEL } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';

export const ContainerImage: FilterPlugin = {
  name: 'ContainerImage',
  filter(work, node) {
    if (!work.image || node.labels[CONTAINER_RUNTIME_LABEL] !== undefined) return undefined;
    return {
      code: 'Unschedulable',
      plugin: 'ContainerImage',
      reason: `runs no container images (no ${CONTAINER_RUNTIME_LABEL} label) for image ${work.image}`,
      detail: { kind: 'label', key: CONTAINER_RUNTIME_LABEL, value: '*' },
    };
  },
  labelKeys: (work) => (work.image ? [CONTAINER_RUNTIME_LABEL] : []),
};
