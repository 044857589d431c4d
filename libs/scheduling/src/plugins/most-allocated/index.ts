/**
 * Score: bin packing. Prefer the node that would be fullest after one more task, averaged over
 * the requested resources with their weights, so work packs onto few nodes and whole nodes
 * stay free for large requests. Work that asks to `spread` gets the opposite: the emptiest.
 */
import type { ScorePlugin } from '../../framework/extension-points';

/** Per-resource weights of `MostAllocated`. @default cpu 1, memory 1, gpu 2 */
export const DEFAULT_RESOURCE_WEIGHTS: Readonly<Record<string, number>> = { cpu: 1, memory: 1, gpu: 2 };

/**
 *   score = Σ_r w_r · (cap_r − free_r + ask_r) / cap_r  ÷  Σ_r w_r     over resources the task asks for and the node has
 */
export function mostAllocated(weights: Record<string, number> = DEFAULT_RESOURCE_WEIGHTS): ScorePlugin {
  return {
    name: 'MostAllocated',
    weight: 1,
    score(work, node, free) {
      let sum = 0;
      let wsum = 0;
      // for-in, not Object.entries: the same keys in the same order, without an array per node scored.
      for (const name in work.resources) {
        const amount = work.resources[name];
        const cap = node.capacity[name] ?? 0;
        if (cap <= 0 || amount <= 0) continue;
        const w = weights[name] ?? 1;
        sum += (w * (cap - (free[name] ?? 0) + amount)) / cap;
        wsum += w;
      }
      const packed = wsum ? sum / wsum : 0;
      return work.spread ? -packed : packed;
    },
    labelKeys: () => [],
  };
}
