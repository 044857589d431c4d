/**
 * Score plugins: among nodes that can run a task, which is best? Pure functions of the
 * work and the node's state; higher is better.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { NodeSnapshot, PendingWork } from './snapshot';

/** A score plugin: a number, usually in [-1, 1], weighted and summed with the others. */
export interface ScorePlugin {
  name: string;
  /** Weight in the sum. @default 1 */
  weight: number;
  /** `devices`: milli-GPU in use per device now (within a pass; defaults to the snapshot's). */
  score(work: PendingWork, node: NodeSnapshot, free: ResourceVector, freeDevices: number, devices?: Record<string, number>): number;
}

/** Per-resource weights of `MostAllocated`. @default cpu 1, memory 1, gpu 2 */
export const DEFAULT_RESOURCE_WEIGHTS: Readonly<Record<string, number>> = { cpu: 1, memory: 1, gpu: 2 };

/**
 * Bin packing: prefer the node that would be fullest after one more task, averaged over the
 * requested resources with their weights, so work packs onto few nodes and whole nodes
 * stay free for large requests. Work that asks to `spread` gets the opposite: the emptiest.
 */
export function mostAllocated(weights: Record<string, number> = DEFAULT_RESOURCE_WEIGHTS): ScorePlugin {
  return {
    name: 'MostAllocated',
    weight: 1,
    score(work, node, free) {
      let sum = 0;
      let wsum = 0;
      for (const [name, amount] of Object.entries(work.resources)) {
        const cap = node.capacity[name] ?? 0;
        if (cap <= 0 || amount <= 0) continue;
        const w = weights[name] ?? 1;
        sum += (w * (cap - (free[name] ?? 0) + amount)) / cap;
        wsum += w;
      }
      const packed = wsum ? sum / wsum : 0;
      return work.spread ? -packed : packed;
    },
  };
}

/**
 * GPU fragmentation: keep GPU nodes for GPU work, and do not break a node whose devices are
 * all free for a request that a partly used node can take.
 */
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
};

/** The default score chain. */
export const DEFAULT_SCORES: readonly ScorePlugin[] = [mostAllocated(), GpuFragmentation];
