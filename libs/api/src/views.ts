/** What the API answers about jobs: records turned into the shapes clients read. */
import type { GroupStatus, JobPhase, JobRecord, NodeIsolationKind } from './model';
import { formatResources } from './quantity';
import { countTasks } from './ranges';

export interface TaskCounts {
  pending: number;
  bound: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
}

/** The answer of `GET /v1/jobs/:id/why`: the placement phases run for one job on the cluster as it is now. */
export interface WhyView {
  jobId: string;
  phase: JobPhase;
  /** 1 = next in its queue. */
  position: number;
  /** Tasks of jobs before it in its queue. */
  tasksAhead: number;
  pendingTasks: number;
  /** Tasks of this job that could be placed right now. */
  placeableNow: number;
  /** Blocking reasons with node counts, most common first. */
  blockers: Array<{ reason: string; nodes: number }>;
  /** Set when the queue's quota is what stops it. */
  quota?: string;
  /** Lines a person reads, in order. */
  messages: string[];
  /** Smallest changes that would let at least one task run now. */
  counterfactuals: string[];
  /**
   * Who worked it out: `scheduler` — a scheduler replica from its live cache, the view it
   * places from; `admission` — admission from a fresh read of etcd, when no scheduler answered.
   */
  explainedBy: 'scheduler' | 'admission';
}

/** A job as `GET /v1/jobs/:id` returns it. */
export interface JobView {
  id: string;
  name: string;
  tenant: string;
  queue: string;
  phase: JobPhase;
  reason?: { code: string; message: string };
  command: string[];
  /** The task environment; values of secret-looking names (see `SECRET_ENV_NAME`) show as `***`. */
  env: Record<string, string>;
  resources: Record<string, string | number>;
  tasks: number;
  /** Most tasks bound or running at once, when the job sets it. @default absent: unlimited */
  maxRunning?: number;
  /** The mutexes each running task holds, when the job names any. @default absent */
  locks?: string[];
  /** The semaphore units each running task holds, by name, when the job names any. @default absent */
  limits?: Record<string, number>;
  priority: number;
  labels: Record<string, string>;
  /** The working dir package each task runs in. @default none */
  workingDir?: { digest: string };
  /** The Python environment each task runs in: its requirements (normal form) and their digest. @default none */
  python?: { requirements: string[]; digest: string };
  taskCounts: TaskCounts;
  traceId?: string;
  createdAt: string;
  queuedAt?: string;
  startedAt?: string;
  finishedAt?: string;
}

const iso = (t?: number) => (t === undefined ? undefined : new Date(t).toISOString());

/** Trace id out of a W3C traceparent (`00-<trace>-<span>-<flags>`). */
export function traceIdOf(traceparent?: string): string | undefined {
  return traceparent?.split('-')[1];
}

/** Names of environment variables whose values are secrets: shown as `***`, passed to the task as they are. */
export const SECRET_ENV_NAME = /(SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY|_KEY$|^KEY$)/i;

/** The env with secret-looking values replaced by `***`. */
export function redactEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, SECRET_ENV_NAME.test(k) ? '***' : v]));
}

/**
 * Builds the view of a job from its record and the status of its live groups.
 * Terminal counts come from the record; bound/running from live groups.
 */
export function jobView(job: JobRecord, groups: readonly GroupStatus[] = []): JobView {
  const counts: TaskCounts = { pending: countTasks(job.pending), bound: 0, running: 0, ...job.counts };
  for (const g of groups) {
    for (const t of g.tasks) {
      if (t.state === 'Bound') counts.bound++;
      else if (t.state === 'Running') counts.running++;
    }
  }
  return {
    id: job.id,
    name: job.spec.name,
    tenant: job.tenant,
    queue: job.queue,
    phase: job.phase,
    reason: job.reason,
    command: job.spec.command,
    env: redactEnv(job.spec.env),
    resources: formatResources(job.spec.resources),
    tasks: job.spec.tasks,
    ...(job.spec.maxRunning !== undefined ? { maxRunning: job.spec.maxRunning } : {}),
    ...(job.spec.locks ? { locks: job.spec.locks } : {}),
    ...(job.spec.limits ? { limits: job.spec.limits } : {}),
    priority: job.spec.priority,
    labels: job.spec.labels,
    ...(job.spec.workingDir ? { workingDir: job.spec.workingDir } : {}),
    ...(job.spec.python ? { python: job.spec.python } : {}),
    taskCounts: counts,
    traceId: traceIdOf(job.traceparent),
    createdAt: iso(job.createdAt)!,
    queuedAt: iso(job.queuedAt),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
  };
}

/** A queue as `GET /v1/queues` shows it. */
export interface QueueView {
  name: string;
  tenant: string;
  weight: number;
  /** Absent dimension = unlimited. */
  nominal: Record<string, string | number>;
  cohort?: string;
  borrowingLimit?: Record<string, string | number>;
  lendingLimit?: Record<string, string | number>;
  maxPendingTasks?: number;
  /** Priority aging of the queue's own, when set (else the scheduler's cluster-wide setting applies): points per hour waited, and the most added. */
  priorityAgingPerHour?: number;
  priorityAgingMax?: number;
  /** The queue's own fair-share prices, when set (over the scheduler's BATCH_FAIR_SHARE_PRICES). */
  prices?: Record<string, number>;
  /** What its running tasks hold (with `gpu:<model>` on nodes that name their GPU model). */
  used: Record<string, string | number>;
  /** What it holds beyond its nominal, borrowed from its cohort. */
  borrowed: Record<string, string | number>;
  /**
   * `GET /v1/queues/:name` only: the caller's waiting jobs (every tenant's for operators) with
   * their position in the queue's order (priority, then age; 1 = next), at most 100.
   */
  positions?: Array<{ jobId: string; position: number; pendingTasks: number }>;
  /** Weighted dominant share of the cluster the queue holds now (0–1): lower places first. */
  fairShare: number;
  pendingTasks: number;
  pendingJobs: number;
  runningTasks: number;
  /** The running caps of the queue and of its tenant, when either sets one (docs/scheduler.md, "Running caps"). @default absent */
  caps?: { queue: RunningCapView; tenant: RunningCapView };
}

/** One queue's or tenant's running caps as the scheduler counts them. */
export interface RunningCapView {
  /** Tasks bound or running now (of all the tenant's queues, for a tenant). */
  runningTasks: number;
  /** The cap, when set. @default unlimited */
  maxRunningTasks?: number;
  /** GPU-hours used in the last 24 h (ended attempts and the elapsed part of running ones), to 3 decimals. */
  gpuHoursUsed: number;
  /** The rolling 24-hour GPU-hour budget, when set. @default unlimited */
  gpuHoursPerDay?: number;
  /** When the oldest hour of usage still counted leaves the window (RFC 3339), when a budget is set and used up. @default absent */
  gpuBudgetFreesAt?: string;
}

/** A node as `GET /v1/nodes` shows it. */
export interface NodeView {
  name: string;
  capacity: Record<string, string | number>;
  allocated: Record<string, string | number>;
  labels: Record<string, string>;
  taints: Array<{ key: string; value?: string; effect: string }>;
  gpus: number;
  /** Each GPU device: its index, model and the milli-GPU its tasks hold (0 free, 1000 full; between, shared by fractional tasks). */
  gpuDevices: Array<{ index: number; model: string; milliUsed: number }>;
  /** An operator's cordon or drain, or the system's quarantine (with its cause and failure count). */
  cordon?: { reason: string; by: string; at: string; drainDeadline?: string; quarantine?: { cause: 'node_error' | 'node_lost'; failures: number } };
  /** How its executor limits attempts (`NodeIsolation`); absent for simulated nodes and executors that do not report it. */
  isolation?: { kind: NodeIsolationKind; controllers?: string[] };
  /** Its executor is stopping (SIGTERM): no new work; running tasks may finish until `deadline`, then are requeued. */
  draining?: { since: string; deadline: string };
}

/** States a task is listed in: a task attempt's state, or `Pending` for one not yet bound (waiting, or retrying after its backoff). */
export const TASK_LIST_STATES = ['Pending', 'Bound', 'Running', 'Succeeded', 'Failed', 'Cancelled', 'Preempted'] as const;
export type TaskListState = (typeof TASK_LIST_STATES)[number];

/** One attempt of one task, as `GET /v1/jobs/:id/tasks` lists it (times ISO 8601). */
export interface TaskView {
  index: number;
  attempt: number;
  state: TaskListState;
  /** The node it was bound to (absent while pending). */
  node?: string;
  exitCode?: number;
  /** Why it failed beyond its exit code (`FailureReason`). */
  reason?: string;
  signal?: string;
  boundAt?: string;
  startedAt?: string;
  endedAt?: string;
}

/** One group of `GET /v1/usage`: what the task attempts that ended in the window used. */
export interface UsageGroupView {
  /** The tenant, queue, GPU model or label value; null for attempts without a GPU (`gpuModel`) or jobs without the label. */
  key: string | null;
  /** Σ run time × CPUs, in core-hours. */
  cpuCoreHours: number;
  /** Σ run time × memory, in GiB-hours. */
  memoryGiBHours: number;
  /** Σ run time × GPUs (fractions count as such), in GPU-hours. */
  gpuHours: number;
  /** Task attempts that ended in the window. */
  attempts: number;
  succeeded: number;
  failed: number;
  preempted: number;
  /** Queue wait of first attempts (bound − queued), seconds: median and 99th percentile. */
  queueWaitP50Seconds?: number;
  queueWaitP99Seconds?: number;
  /** With `step`: the group's hours step by step, oldest first; steps in which none of its attempts ended are left out. */
  series?: UsagePointView[];
}

/** One step of a usage group's `series`: the attempts that ended in `[start, start + step)`. */
export interface UsagePointView {
  /** ISO 8601: the step's start (`from` + a whole number of steps). */
  start: string;
  cpuCoreHours: number;
  memoryGiBHours: number;
  gpuHours: number;
  attempts: number;
}

/** `GET /v1/usage`'s answer. */
export interface UsageView {
  /** The window, ISO 8601: attempts that ended in [from, to). */
  from: string;
  to: string;
  groupBy: string;
  /** The step each group's `series` is split by, when one was asked for. */
  step?: 'hour' | 'day';
  /** The groups, most GPU-hours then CPU-hours first. */
  groups: UsageGroupView[];
  /** More than 1000 groups had usage: the rest were left out. */
  truncated: boolean;
}

/** What the console reads of its deployment at start (`GET /console/config.json`, served by admission beside the console); nothing in it is secret. */
export interface ConsoleConfig {
  /** The trace UI's page of a trace, `{traceId}` where the id goes (admission's `BATCH_TRACE_URL`). @default none: trace ids are shown without a link */
  traceUrl?: string;
}
