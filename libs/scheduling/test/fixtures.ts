/** Record builders for whole-cycle tests of the framework (plain values; no store). */
import { type Binding, type Cordon, type JobRecord, type NodeRecord, parseResources, type Queue } from '@batchapi/api';
import type { NodeSnapshot, PendingWork } from '@batchapi/scheduling';

export const T0 = 1_800_000_000_000;

/** mulberry32: numbers in [0, 1) from `seed`, the same on every run, so each random case is one fixed input. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function nodeRecord(name: string, cap: Record<string, string | number>, extra: Partial<NodeRecord> = {}): NodeRecord {
  const capacity = parseResources(cap);
  const gpus = Math.floor((capacity.gpu ?? 0) / 1000);
  return {
    name,
    capacity,
    labels: {},
    taints: [],
    gpus: Array.from({ length: gpus }, (_, i) => ({ index: i, uuid: `${name}-gpu-${i}`, model: 'fake', memoryMiB: 0 })),
    url: `http://127.0.0.1:0/${name}`,
    registeredAt: T0,
    ...extra,
  };
}

export function jobRecord(
  id: string,
  tasks: number,
  res: Record<string, string | number>,
  extra: Omit<Partial<JobRecord>, 'spec'> & { spec?: Partial<JobRecord['spec']> } = {},
): JobRecord {
  const { spec, ...rest } = extra;
  return {
    id,
    tenant: 't',
    queue: 'q',
    phase: 'Queued',
    pending: [{ start: 0, end: tasks, attempt: 1 }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
    createdAt: T0,
    queuedAt: T0,
    ...rest,
    spec: { name: id, command: ['true'], env: {}, resources: parseResources(res), tasks, priority: 0, labels: {}, ...spec },
  };
}

export function queue(name: string, nominal: Record<string, string | number> = {}, extra: Partial<Queue> = {}): Queue {
  return { name, tenant: 't', nominal: parseResources(nominal), ...extra } as Queue;
}

export function cordon(node: string, extra: Partial<Cordon> = {}): Cordon {
  return { node, reason: 'test', by: 'ops', at: T0, ...extra };
}

/** Tasks of a job that the bindings hold. */
export function boundTasks(bindings: readonly Binding[], jobId: string): number {
  return bindings.filter((b) => b.jobId === jobId).reduce((n, b) => n + b.end - b.start, 0);
}

/** A node as placement sees it: `cap` in the API's quantities (`{ cpu: '8', memory: '32Gi', gpu: 2 }`), nothing used. */
export function nodeSnapshot(name: string, cap: Record<string, string | number>, extra: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return { name, capacity: parseResources(cap), used: {}, devices: {}, gpuCount: Number(cap.gpu ?? 0), labels: {}, taints: [], ...extra };
}

/** `tasks` identical tasks of job `jobId` in queue `q`, priority 0, created at 0. */
export function pendingWork(jobId: string, tasks: number, res: Record<string, string | number>, extra: Partial<PendingWork> = {}): PendingWork {
  return { jobId, queue: 'q', priority: 0, createdAt: 0, resources: parseResources(res), tasks, ...extra };
}
