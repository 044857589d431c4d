/**
 * Score: bin packing. Prefer the node that would be fullest after one more task, averaged over
 * the requested resources with their weights, so work packs onto few nodes and whole nodes
 * stay free for large requests. Work that asks to `spread` gets the opposite: the emptiest.
 */
import type { ScorePlugin } from '../../framework/extension-points';

/** Per-resource weights of `MostAllocated`. @default cpu 1, memory 1, gpu 2 */
export const DEFAULT_RESOURCE_WEIGHTS: Readonly<Record<string, number>> = { cpu: 1, memory: 1, gpu: 2 };

/** `MostAllocated`'s bound (see `ScorePlugin.bound`): a score of 1, and room for rounding. */
const BOUND = 1 + 2 ** -20;

/**
 *   score = Σ_r w_r · (cap_r − free_r + ask_r) / cap_r  ÷  Σ_r w_r     over resources the task asks for and the node has
 */
export function mostAllocated(weights: Record<string, number> = DEFAULT_RESOURCE_WEIGHTS): ScorePlugin {
  const bounded = Object.values(weights).every((w) => w >= 0);
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
    // Where one task fits, each used share after it is at most 1, so is their mean with weights of
    // no sign below 0 (a hair above for rounding); spreading: at most 0. A negative weight: none.
    bound: (work) => (!bounded ? Infinity : work.spread ? 0 : BOUND),
    labelKeys: () => [],
  };
}
