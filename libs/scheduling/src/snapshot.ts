/** The read-only view a scheduling decision works on. Built per cycle; never mutated by plugins. */
import { countTasks, eligibleRanges, GPU_MILLI, type JobTopology, type NodeAllocation, type NodeRecord, type ResourceVector, type WhyJob } from '@batchapi/api';
import { limitRunning, type RunLimit } from './plugins/max-running';
import type { SemaphoreWait } from './plugins/semaphores';
import type { CapWait } from './plugins/running-caps';

/** A node as a cycle sees it. */
export interface NodeSnapshot {
  name: string;
  capacity: ResourceVector;
  /** Resources held by live groups. */
  used: ResourceVector;
  /** Milli-GPU in use per device index (absent = free). */
  devices: Record<string, number>;
  /** Number of GPU devices (indices 0..gpuCount-1). */
  gpuCount: number;
  labels: Record<string, string>;
  taints: Array<{ key: string; value?: string; effect: string }>;
}

/** Work waiting to be placed: the pending tasks of one job, all identical (one equivalence class). */
export interface PendingWork {
  jobId: string;
  queue: string;
  /** Effective priority: the job's, raised by priority aging while it waits (see `agePendingWork`). */
  priority: number;
  /** The job's own priority when aging raised `priority` (preemption compares this one). @default priority */
  basePriority?: number;
  /** Submit time, epoch ms: older first among equal priorities. */
  createdAt: number;
  /** Per task. */
  resources: ResourceVector;
  /** Tasks still to place. */
  tasks: number;
  /** Node labels that must match exactly (e.g. `{"gpu.model": "A100"}`). @default {} */
  selector?: Record<string, string>;
  /** Taints this work tolerates. @default [] */
  tolerations?: Toleration[];
  /** All tasks start together or none do. @default false */
  gang?: boolean;
  /** Prefer the emptiest nodes. @default false */
  spread?: boolean;
  /** Deadline of each task, in seconds: the bound backfill trusts (see `plugins/backfill`). @default none (unbounded) */
  timeoutSeconds?: number;
  /** One topology domain (`required`) or as few as fit (`preferred`) of a level (see `plugins/topology`). @default none */
  topology?: JobTopology;
  /** The container image the tasks run in: only nodes with a container runtime take them (`plugins/container-image`). @default none */
  image?: string;
  /** Set when the job's `maxRunning` held placeable tasks back: `tasks` is what it leaves room for (`plugins/max-running`). @default none */
  runLimit?: RunLimit;
  /** Set when a semaphore or lock the job names held placeable tasks back: `tasks` is what it granted (`plugins/semaphores`). @default none */
  semaphoreWait?: SemaphoreWait;
  /** Set when its queue's or tenant's running caps held placeable tasks back: `tasks` is what they leave (`plugins/running-caps`). @default none */
  capWait?: CapWait;
  /** Nodes a re-pack or a defragmentation planned for its tasks, one entry per task: each is placed there first while it fits (`plugins/nomination`). @default none */
  nominated?: string[];
}

/** A toleration in the Kubernetes sense: matches a taint by key, optional value and effect. */
export interface Toleration {
  key: string;
  /** `Equal` (default) compares the value; `Exists` matches any value. */
  operator?: 'Equal' | 'Exists';
  value?: string;
  /** Absent matches every effect. */
  effect?: string;
}

/** A decision: `count` tasks of a job go to `node`, with the GPU devices of each task. */
export interface Placement {
  jobId: string;
  node: string;
  count: number;
  /** Device indices per task; empty lists when the task takes no GPU. */
  devices: number[][];
}

/** Appends one task of job `jobId` on `node` (its `devices`) to `placements`, into the last entry when that is the same job and node. */
export function appendPlacement(placements: Placement[], jobId: string, node: string, devices: number[]): void {
  const last = placements[placements.length - 1];
  if (last && last.jobId === jobId && last.node === node) {
    last.count++;
    last.devices.push(devices);
  } else placements.push({ jobId, node, count: 1, devices: [devices] });
}

/** A node record and its allocation as a cycle sees them. */
export function toNodeSnapshot(n: NodeRecord, alloc?: NodeAllocation): NodeSnapshot {
  return {
    name: n.name,
    capacity: n.capacity,
    used: alloc?.used ?? {},
    devices: alloc?.devices ?? {},
    gpuCount: Math.floor((n.capacity.gpu ?? 0) / GPU_MILLI),
    labels: n.labels,
    taints: n.taints,
  };
}

/**
 * A job's tasks placeable at `now` (retries past their backoff) as one piece of work: an
 * equivalence class of identical tasks, at most what its `maxRunning` leaves room for. Reads only
 * the placement fields (a `JobRecord` is one).
 */
export function toPendingWork(j: WhyJob, now: number): PendingWork {
  const spec = j.spec;
  return limitRunning(
    {
      jobId: j.id,
      queue: j.queue,
      priority: spec.priority,
      createdAt: j.createdAt,
      resources: spec.resources,
      tasks: countTasks(eligibleRanges(j.pending, now)),
      selector: spec.selector,
      tolerations: spec.tolerations,
      gang: spec.gang,
      spread: spec.spread,
      ...(spec.timeoutSeconds ? { timeoutSeconds: spec.timeoutSeconds } : {}),
      ...(spec.topology ? { topology: spec.topology } : {}),
      ...(spec.image ? { image: spec.image } : {}),
    },
    j,
  );
}
