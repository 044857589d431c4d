/**
 * The simulator's input files (`SIMULATOR.md`): nodes.jsonl, workload.jsonl, queues.json.
 * Strict: an unknown field, a bad quantity or a line that is not JSON stops with an error
 * naming the file, the line and the field.
 */
import {
  ApiError,
  GPU_MILLI,
  type JobTopology,
  MaxRunningSchema,
  parseResources,
  parseWith,
  type ResourceVector,
  TimeoutSecondsSchema,
  TopologySchema,
} from '@batchapi/api';
import type { NodeSnapshot, Toleration } from '@batchapi/scheduling';
import { z } from 'zod';

/** An input error: `file:line: field: message`. */
export class InputError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly field: string,
    message: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${field}: ${message}`);
    this.name = 'InputError';
  }
}

const Quantity = z.union([z.string().max(64), z.number().nonnegative()]);
const Labels = z.record(z.string().min(1).max(253), z.string().max(63));
const TaintSchema = z.strictObject({ key: z.string().min(1), value: z.string().optional(), effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']) });
const TolerationSchema = z.strictObject({
  key: z.string().min(1),
  operator: z.enum(['Equal', 'Exists']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
});

const NodeLine = z.strictObject({
  name: z.string().min(1).max(253),
  capacity: z.record(z.string(), Quantity),
  labels: Labels.optional(),
  taints: z.array(TaintSchema).optional(),
});

const WorkloadLine = z.strictObject({
  name: z.string().min(1).max(253),
  tenant: z.string().min(1).max(63).optional(),
  queue: z.string().min(1).max(63).optional(),
  submitAt: z.number().nonnegative().finite().optional(),
  tasks: z.number().int().min(1).max(10_000_000).optional(),
  resources: z.record(z.string(), Quantity),
  duration: z.number().positive().finite().nullable().optional(),
  timeoutSeconds: TimeoutSecondsSchema.optional(),
  maxRunning: MaxRunningSchema.optional(),
  priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
  gang: z.boolean().optional(),
  selector: Labels.optional(),
  tolerations: z.array(TolerationSchema).optional(),
  topology: TopologySchema.optional(),
});

const QueuesFile = z.strictObject({
  queues: z.array(
    z.strictObject({
      name: z.string().min(1).max(63),
      tenant: z.string().min(1).max(63).optional(),
      weight: z.number().positive().optional(),
      cohort: z.string().min(1).max(63).optional(),
      nominal: z.record(z.string(), Quantity).optional(),
      borrowingLimit: z.record(z.string(), Quantity).optional(),
      lendingLimit: z.record(z.string(), Quantity).optional(),
      maxRunningTasks: z.number().int().nonnegative().max(1e9).optional(),
    }),
  ),
});

/** One submission of the workload. */
export interface Submission {
  name: string;
  tenant: string;
  queue: string;
  /** Seconds from the start. */
  submitAt: number;
  tasks: number;
  resources: ResourceVector;
  /** Seconds each task runs; null = until the end. */
  duration: number | null;
  /** Deadline of each task, in seconds: a task still running then is stopped (as the executor does); backfill trusts it. @default none */
  timeoutSeconds?: number;
  /** Most tasks of the submission running at once, as a job's `maxRunning`. @default unlimited */
  maxRunning?: number;
  priority: number;
  gang: boolean;
  selector: Record<string, string>;
  tolerations: Toleration[];
  /** Topology-aware placement, as a job's `topology` (levels: the scheduler's default, block > rack > host). @default none */
  topology?: JobTopology;
  /** Line in the workload file (1-based), for messages. */
  line: number;
}

/** A queue of the simulation. */
export interface SimQueue {
  name: string;
  tenant: string;
  weight: number;
  cohort: string;
  /** Absent dimension = unlimited. */
  nominal: ResourceVector;
  /** Absent dimension = unlimited within the cohort's pool. */
  borrowingLimit: ResourceVector;
  /** Absent dimension = lends all of its nominal. */
  lendingLimit: ResourceVector;
  /** Most of its tasks running at once (the scheduler's running caps, `plugins/running-caps`). @default unlimited */
  maxRunningTasks?: number;
}

function lines(text: string, file: string, each: (value: unknown, line: number) => void): void {
  text.split('\n').forEach((raw, i) => {
    const s = raw.trim();
    if (!s) return;
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (err) {
      throw new InputError(file, i + 1, '(line)', `not JSON (${(err as Error).message})`);
    }
    each(v, i + 1);
  });
}

function parseLine<T>(schema: z.ZodType<T>, v: unknown, file: string, line: number | undefined): T {
  try {
    return parseWith(schema, v);
  } catch (err) {
    if (err instanceof ApiError) throw new InputError(file, line, err.details.field ?? '(line)', err.message.replace(/^[^:]*: /, ''));
    throw err;
  }
}

function resources(q: Record<string, string | number>, file: string, line: number | undefined, field: string): ResourceVector {
  try {
    return parseResources(q, field);
  } catch (err) {
    if (err instanceof ApiError) throw new InputError(file, line, err.details.field ?? field, err.message.replace(/^[^:]*: /, ''));
    throw err;
  }
}

/** Parses nodes.jsonl into node snapshots with nothing in use. */
export function parseNodes(text: string, file = 'nodes.jsonl'): NodeSnapshot[] {
  const out: NodeSnapshot[] = [];
  const seen = new Set<string>();
  lines(text, file, (v, line) => {
    const n = parseLine(NodeLine, v, file, line);
    if (seen.has(n.name)) throw new InputError(file, line, 'name', `duplicate node ${n.name}`);
    seen.add(n.name);
    const capacity = resources(n.capacity, file, line, 'capacity');
    if ((capacity.gpu ?? 0) % GPU_MILLI !== 0) throw new InputError(file, line, 'capacity.gpu', 'a node has a whole number of GPUs');
    out.push({ name: n.name, capacity, used: {}, devices: {}, gpuCount: (capacity.gpu ?? 0) / GPU_MILLI, labels: n.labels ?? {}, taints: n.taints ?? [] });
  });
  return out;
}

/** Parses workload.jsonl. */
export function parseWorkload(text: string, file = 'workload.jsonl'): Submission[] {
  const out: Submission[] = [];
  lines(text, file, (v, line) => {
    const w = parseLine(WorkloadLine, v, file, line);
    out.push({
      name: w.name,
      tenant: w.tenant ?? 'default',
      queue: w.queue ?? 'default',
      submitAt: w.submitAt ?? 0,
      tasks: w.tasks ?? 1,
      resources: resources(w.resources, file, line, 'resources'),
      duration: w.duration ?? null,
      ...(w.timeoutSeconds !== undefined ? { timeoutSeconds: w.timeoutSeconds } : {}),
      ...(w.maxRunning !== undefined ? { maxRunning: w.maxRunning } : {}),
      priority: w.priority ?? 0,
      gang: w.gang ?? false,
      selector: w.selector ?? {},
      tolerations: w.tolerations ?? [],
      ...(w.topology ? { topology: w.topology } : {}),
      line,
    });
  });
  return out;
}

/** Parses queues.json. */
export function parseQueues(text: string, file = 'queues.json'): SimQueue[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InputError(file, undefined, '(file)', `not JSON (${(err as Error).message})`);
  }
  const q = parseLine(QueuesFile, v, file, undefined);
  return q.queues.map((x, i) => ({
    name: x.name,
    tenant: x.tenant ?? x.name,
    weight: x.weight ?? 1,
    cohort: x.cohort ?? 'default',
    nominal: resources(x.nominal ?? {}, file, undefined, `queues.${i}.nominal`),
    borrowingLimit: resources(x.borrowingLimit ?? {}, file, undefined, `queues.${i}.borrowingLimit`),
    lendingLimit: resources(x.lendingLimit ?? {}, file, undefined, `queues.${i}.lendingLimit`),
    ...(x.maxRunningTasks !== undefined ? { maxRunningTasks: x.maxRunningTasks } : {}),
  }));
}
