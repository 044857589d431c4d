/**
 * Score: keep GPU nodes for GPU work (−0.5 for work without GPUs on a GPU node), and do not
 * break a node whose devices are all free for a request that needs fewer than all of them
 * (−0.25). The simple rule used without a request mix; `fragmentationGradient` is the measured one.
 */
import { GPU_MILLI } from '@batchapi/api';
import type { ScorePlugin } from '../../framework/extension-points';

export const GpuFragmentation: ScorePlugin = {
  name: 'GpuFragmentation',
  weight: 1,
  score(work, node, _free, freeDevices) {
    const share = work.resources.gpu ?? 0;
    if (node.gpuCount === 0) return 0;
    if (share === 0) return -0.5;
    const wholeNeeded = Math.ceil(share / GPU_MILLI);
    if (freeDevices === node.gpuCount && wholeNeeded < node.gpuCount) return -0.25;
    return 0;
  },
  // It reads the room only to tell a node with every device free: the larger of its two answers
  // (−0.5 exactly where the score gives it: work asking no GPU on a GPU node).
  bound(work, node) {
    return node.gpuCount > 0 && (work.resources.gpu ?? 0) === 0 ? -0.5 : 0;
  },
  labelKeys: () => [],
};
