/**
 * Builders for the consolidation and re-pack table tests (`planConsolidation`, `planRepack`):
 * nodes, running tasks and the cluster as the tasks hold it, at a fixed `NOW`.
 */
import type { ResourceVector } from '@batchapi/api';
import type { NodeSnapshot, RunningTask } from '@batchapi/scheduling';

/** The tests' now (epoch ms). */
export const NOW = 10_000_000;
/** Old enough for every bound: 1 hour. */
export const OLD = 3_600_000;

/**
 * A node of `cpu` cores (millicores in the snapshot), 64 GiB of memory and `gpus` whole GPUs;
 * `used` and `devices` are filled from its tasks by `cluster`.
 */
export function node(name: string, cpu: number, gpus = 0, extra: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return {
    name,
    capacity: { cpu: cpu * 1000, memory: 64 * 2 ** 30, ...(gpus ? { gpu: gpus * 1000 } : {}) },
    used: {},
    devices: {},
    gpuCount: gpus,
    labels: {},
    taints: [],
    ...extra,
  };
}

/** What a test task may set beside its job, node and cores. */
export interface TaskOptions {
  /** Whole GPUs asked. @default 0 */
  gpu?: number;
  /** Device indexes it holds. @default [] */
  devices?: number[];
  /** Bound this long ago, in milliseconds. @default OLD */
  ageMs?: number;
  /** Already asked to stop. @default false */
  stopping?: boolean;
}

let seq = 0;
/** One running task of `jobId` on `nodeName` asking `cpu` cores (and `o.gpu` whole GPUs on `o.devices`). Indexes rise with each call. */
export function task(jobId: string, nodeName: string, cpu: number, o: TaskOptions = {}): RunningTask {
  const resources: ResourceVector = { cpu: cpu * 1000, ...(o.gpu ? { gpu: o.gpu * 1000 } : {}) };
  return {
    jobId,
    queue: 'q',
    node: nodeName,
    groupStart: 0,
    attempt: 1,
    index: seq++,
    priority: 0,
    resources,
    devices: o.devices ?? [],
    boundAt: NOW - (o.ageMs ?? OLD),
    stopping: o.stopping ?? false,
  };
}

/** The nodes with their `used` and `devices` as the tasks on them hold. */
export function cluster(nodes: readonly NodeSnapshot[], tasks: readonly RunningTask[]): NodeSnapshot[] {
  return nodes.map((n) => {
    const used: ResourceVector = {};
    const devices: Record<string, number> = {};
    for (const t of tasks.filter((x) => x.node === n.name)) {
      for (const [k, v] of Object.entries(t.resources)) used[k] = (used[k] ?? 0) + v;
      for (const d of t.devices) devices[d] = (devices[d] ?? 0) + 1000;
    }
    return { ...n, used, devices };
  });
}
