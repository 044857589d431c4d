/**
 * A profile: which plugins run at each extension point, in order (the Kubernetes scheduler's
 * profiles). `DEFAULT_PROFILE` is what the scheduler runs; benchmarks and tests swap plugins.
 */
import { ContainerImage } from '../plugins/container-image';
import { GangPermit, GangPreFilter } from '../plugins/gang';
import { GpuFragmentation } from '../plugins/gpu-fragmentation';
import { mostAllocated } from '../plugins/most-allocated';
import { NodeSelector } from '../plugins/node-selector';
import { QuotaPreFilter, QuotaReserve } from '../plugins/quota';
import { PriorityAge } from '../plugins/queue-sort';
import { ResourceKinds } from '../plugins/resource-fit';
import { TaintToleration } from '../plugins/taint-toleration';
import { Topology } from '../plugins/topology';
import type { DomainPlugin, FilterPlugin, PermitPlugin, PreFilterPlugin, QueueSortPlugin, ReservePlugin, ScorePlugin } from './extension-points';

/** The default filter chain, in order. */
export const DEFAULT_FILTERS: readonly FilterPlugin[] = [NodeSelector, ContainerImage, TaintToleration, ResourceKinds];

/** The default score chain when no request mix is known (the cycle uses `packingScores` of its mix). */
export const DEFAULT_SCORES: readonly ScorePlugin[] = [mostAllocated(), GpuFragmentation];

/** The plugins of a placement pass. */
export interface Profile {
  queueSort: QueueSortPlugin;
  /** Run in order; each sees what the earlier ones allowed. Quota comes before Gang. */
  preFilters: readonly PreFilterPlugin[];
  filters: readonly FilterPlugin[];
  /** Empty: first fit (nodes in name order). */
  scores: readonly ScorePlugin[];
  /** Run in order for work that names a topology, each narrowing the previous one's choice. @default none (the default profile: `Topology`) */
  domains?: readonly DomainPlugin[];
  reserves: readonly ReservePlugin[];
  permits: readonly PermitPlugin[];
}

export const DEFAULT_PROFILE: Profile = {
  queueSort: PriorityAge,
  preFilters: [QuotaPreFilter, GangPreFilter],
  filters: DEFAULT_FILTERS,
  scores: DEFAULT_SCORES,
  domains: [Topology],
  reserves: [QuotaReserve],
  permits: [GangPermit],
};
