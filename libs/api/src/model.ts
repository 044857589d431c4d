/**
 * The records BatchAPI keeps in etcd and returns from its API. Times are epoch milliseconds
 * in records and ISO-8601 strings in API answers.
 */
import type { ResourceVector } from './quantity';
import type { PythonEnv } from './python-env';

/** The phases every kind of run (job, task, workflow step, workflow) can end in; each kind adds its own. */
export const Ended = { Succeeded: 'Succeeded', Failed: 'Failed', Cancelled: 'Cancelled' } as const;

/** How a job can end: a terminal phase never changes again. */
const JobEnd = {
  ...Ended,
  /** Refused by the quota service; `reason` says why. */
  Rejected: 'Rejected',
} as const;
/** Lifecycle of a job. */
export const JobPhase = {
  /** Committed by admission; waiting for the quota service. */
  Submitted: 'Submitted',
  /** Admitted into its queue; waiting for placement. */
  Queued: 'Queued',
  /** At least one task was bound to a node. */
  Running: 'Running',
  ...JobEnd,
} as const;
export type JobPhase = (typeof JobPhase)[keyof typeof JobPhase];
export const TERMINAL_PHASES: ReadonlySet<JobPhase> = new Set(Object.values(JobEnd));

/** How a task attempt can end. */
const TaskEnd = {
  ...Ended,
  /** Stopped to make room for higher-priority work; the task is requeued at its next attempt. */
  Preempted: 'Preempted',
} as const;
/** Outcome of one task attempt. */
export const TaskState = { Bound: 'Bound', Running: 'Running', ...TaskEnd } as const;
export type TaskState = (typeof TaskState)[keyof typeof TaskState];
export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set(Object.values(TaskEnd));

/** A half-open range `[start, end)` of task indices of one array job, all at one attempt number. */
export interface TaskRange {
  start: number;
  end: number;
  /** Attempt number the tasks will run as next (1 for the first run). */
  attempt: number;
  /** Not to be placed before this time (epoch ms): the backoff of a retry. @default placeable now */
  notBefore?: number;
}

/** When a failed task runs again. Applied by the control plane, never by the executor. */
export interface RetryPolicy {
  /** Attempts in all, the first included; 1 = no retry. @default 1 */
  maxAttempts: number;
  /** Wait before the first retry, seconds; doubles at each retry, ±20% jitter per job, rounded up to a whole-second grid (`retryNotBefore`). @default 10 */
  backoffSeconds?: number;
  /** Longest wait between attempts, seconds. @default 600 */
  maxBackoffSeconds?: number;
  /** Retry only these exit codes (absent: any non-zero code). */
  retryOnExitCodes?: number[];
  /** Never retry these exit codes (e.g. a usage error). @default [] */
  failFastOnExitCodes?: number[];
  /** Retry these failure reasons. @default ["Error", "OOMKilled", "DeadlineExceeded"] */
  retryOnReasons?: FailureReason[];
}

/** What a job runs; normalized from the submit request. */
export interface JobSpec {
  name: string;
  /** argv: the program and its arguments; run without a shell. */
  command: string[];
  env: Record<string, string>;
  /** Per task, normalized (see `quantity.ts`). */
  resources: ResourceVector;
  /** Number of identical tasks (an array job). Task `i` sees `BATCH_TASK_INDEX=i`. */
  tasks: number;
  /** Higher runs first. */
  priority: number;
  labels: Record<string, string>;
  /** Node labels that must match (e.g. `{"gpu.model": "A100"}`). @default {} */
  selector?: Record<string, string>;
  /** Node taints this job tolerates. @default [] */
  tolerations?: Array<{ key: string; operator?: 'Equal' | 'Exists'; value?: string; effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute' }>;
  /** All tasks start together or none do. @default false */
  gang?: boolean;
  /** A gang that cannot start within this many seconds of being queued fails with the reason. @default 600 */
  gangTimeoutSeconds?: number;
  /**
   * Most tasks of the job bound or running at once (Slurm's `--array=…%N`, Kubernetes'
   * `parallelism`); the others wait in its pending ranges. A task's slot frees when its attempt
   * ends and its room goes back to its node. @default unlimited
   */
  maxRunning?: number;
  /**
   * Mutexes each running task holds alone, by name (a tenant's own, or `global/…`): two tasks
   * naming the same lock never run at once (see `semaphore.ts`). @default none
   */
  locks?: string[];
  /**
   * Units of named semaphores each running task holds, by name (`PUT /v1/semaphores/{name}` sets
   * a capacity): a task starts only when it can take its units. @default none
   */
  limits?: Record<string, number>;
  /** Prefer the emptiest nodes instead of packing (e.g. for I/O-heavy tasks). @default false */
  spread?: boolean;
  /** Topology-aware placement: every task in one domain of a level (`required`), or as few as fit (`preferred`). @default none */
  topology?: JobTopology;
  /** Deadline of each attempt, seconds: then SIGTERM, the grace, SIGKILL, `DeadlineExceeded`. @default none */
  timeoutSeconds?: number;
  /** Container image of each task on the Kubernetes backend. @default the executor's BATCH_TASK_IMAGE */
  image?: string;
  /** User code unpacked read-only as each task's working directory (`working_dir`). @default none */
  workingDir?: { digest: string };
  /** The Python environment each task runs in (`python` of the submit): requirements in normal form and their digest. @default none */
  python?: PythonEnv;
  /** Retries of failed tasks. @default no retry */
  retry?: RetryPolicy;
  /** Per-task inputs (length `tasks`): task `i` sees `BATCH_MAP_ITEM` = JSON of `items[i]`. @default none */
  items?: unknown[];
}

/** A job's topology constraint: a level name of the scheduler's `BATCH_TOPOLOGY_LEVELS` (e.g. `rack`); one of the two is set. */
export interface JobTopology {
  /** Every task of a placement in one domain of this level, or the job waits. */
  required?: string;
  /** As few domains of this level as fit, falling back to the level above. */
  preferred?: string;
}

/** The job record at `jobs/{id}`: one key per job whatever its task count. */
/** Most ranges of tasks a job records as cancelled one by one; a cancel that would need more is refused (cancel the job instead). */
export const MAX_CANCELLED_TASK_RANGES = 1000;

export interface JobRecord {
  id: string;
  tenant: string;
  queue: string;
  spec: JobSpec;
  phase: JobPhase;
  reason?: { code: string; message: string };
  /** Task ranges not yet bound to a node. */
  pending: TaskRange[];
  /** Terminal task counters, written by executors' reports. */
  counts: { succeeded: number; failed: number; cancelled: number };
  /** W3C traceparent of the submit; every service continues this trace. */
  traceparent?: string;
  createdAt: number;
  queuedAt?: number;
  startedAt?: number;
  finishedAt?: number;
  /** Set when a cancel was asked for. */
  cancelRequestedAt?: number;
  /**
   * Tasks cancelled one by one (`POST /v1/jobs/{id}/tasks/{index}/cancel`), as sorted, merged
   * ranges `[start, end)`: they never run again, whatever their last attempt's outcome. At most
   * `MAX_CANCELLED_TASK_RANGES` ranges. @default none
   */
  cancelledTasks?: Array<{ start: number; end: number }>;
  /** sha256 of its submit's Idempotency-Key, when it had one: where its idempotency record is (`idempotency/{tenant}/{digest}`), which the archiver moves with it. @default none */
  idempotencyDigest?: string;
}

/** Per-task status inside a task group. */
/** Why an attempt ended `Failed` beyond its exit code. */
export const FailureReason = {
  /** Exited with a non-zero code (`exitCode`) or was killed by a signal (`signal`). */
  Error: 'Error',
  /** The kernel killed it at its memory limit. */
  OOMKilled: 'OOMKilled',
  /** It ran past its `timeoutSeconds` and was stopped. */
  DeadlineExceeded: 'DeadlineExceeded',
  /** Its node's executor died or lost its lease under it. */
  NodeLost: 'NodeLost',
  /** The node could not start it (its work dir or log files could not be made, or the process could not be created for a reason other than the command). Not the task's fault: it runs again elsewhere. */
  NodeError: 'NodeError',
  /** It wrote a result over 64 KiB to `BATCH_RESULT_PATH`. */
  ResultTooLarge: 'ResultTooLarge',
} as const;
export type FailureReason = (typeof FailureReason)[keyof typeof FailureReason];

export interface TaskStatus {
  state: TaskState;
  /** Set on `Failed`. */
  reason?: FailureReason;
  exitCode?: number;
  signal?: string;
  startedAt?: number;
  finishedAt?: number;
  /** Set once the task's resources went back to its node (it ended before its group). */
  released?: boolean;
}

/**
 * A range of one job's tasks bound to one node at one attempt. The scheduler creates it;
 * the executor owns it afterwards. Stored twice with one meaning: the run order at
 * `bindings/{node}/{job}/{start}` (what the executor watches; deleted when the group ends)
 * and the status at `groups/{job}/{start}` (kept for queries and logs).
 */
export interface TaskGroup {
  jobId: string;
  tenant: string;
  queue: string;
  node: string;
  start: number;
  end: number;
  attempt: number;
  /** Resources reserved per task. */
  resources: ResourceVector;
  /** The job's priority when bound (preemption compares it). @default 0 */
  priority?: number;
  /** GPU device indices per task (index `i` is task `start + i`); empty without GPUs. */
  devices: number[][];
  /** The `gpu.model` label of the node at bind time, when the tasks use GPUs (usage by GPU model). @default none */
  gpuModel?: string;
  boundAt: number;
  traceparent?: string;
  /** The scheduler's cycle span, linked from the executor's run span. */
  cycleSpan?: string;
}

/**
 * The group of `job`'s tasks `[range.start, range.end)` on `node` at `range.attempt`, bound at
 * `boundAt` (epoch ms): the fields a binding and its status share, from the job's spec.
 * @param devices GPU device indices per task. @default none
 */
export function taskGroupOf(job: JobRecord, node: string, range: Omit<TaskRange, 'notBefore'>, boundAt: number, devices: number[][] = []): TaskGroup {
  return {
    jobId: job.id,
    tenant: job.tenant,
    queue: job.queue,
    node,
    start: range.start,
    end: range.end,
    attempt: range.attempt,
    resources: job.spec.resources,
    priority: job.spec.priority,
    devices,
    boundAt,
    ...(job.traceparent ? { traceparent: job.traceparent } : {}),
  };
}

/** The run order an executor watches. */
export interface Binding extends TaskGroup {
  command: string[];
  env: Record<string, string>;
  /** Deadline of each attempt, seconds. @default none */
  timeoutSeconds?: number;
  /** Container image (Kubernetes backend). @default the executor's */
  image?: string;
  /** The job's working dir package, unpacked read-only as each attempt's cwd. @default none */
  workingDir?: { digest: string };
  /** The job's Python environment, built on the node (once per digest and interpreter) and first on each attempt's PATH. @default none */
  python?: PythonEnv;
  /** The job's node selector (the Kubernetes backend passes it to the pod). @default none */
  selector?: Record<string, string>;
  /** The job's `items` for this range (`items[k]` is task `start + k`'s input). @default none */
  items?: unknown[];
  /** Set by a cancel: the executor stops the group's tasks. */
  cancelRequested?: boolean;
  /** Task indices cancelled one by one: the executor stops them (SIGTERM, grace, SIGKILL) as `Cancelled`. @default none */
  cancel?: number[];
  /** Task indices the scheduler preempts: the executor stops them (SIGTERM, grace, SIGKILL) as `Preempted`. */
  preempt?: number[];
  /** When the scheduler asked for the preemption (epoch ms). */
  preemptRequestedAt?: number;
}

/**
 * Who wrote a group status: the executor process's lease and a sequence number it raises
 * with each report. A report whose answer was lost re-reads the status: its own token there
 * means it landed; another lease's token (or none) means someone else changed the group.
 */
export interface ReporterToken {
  /** Lease id of the reporting process (one lease per process). */
  lease: string;
  /** Increases with every report transaction the process sends. */
  seq: number;
}

/** The status of a group, kept after it ends. */
export interface GroupStatus extends TaskGroup {
  tasks: TaskStatus[];
  /** The report that wrote this status; absent when the scheduler wrote it (bind, node lost). @default none */
  reporter?: ReporterToken;
}

/**
 * Largest result kept inline (in etcd, then in history's `results` rows), in bytes. A larger one
 * is kept in the blob store and referenced (`TaskResult.ref`), up to the executor's
 * `BATCH_RESULT_MAX_BYTES`; without a blob store it fails its task `ResultTooLarge`.
 */
export const MAX_RESULT_BYTES = 65536;

/** Where a result too large to keep inline is: in the blob store, under the key of its job, index and attempt. */
export interface ResultRef {
  /** Bytes of its JSON. */
  sizeBytes: number;
  /** SHA-256 of its JSON, hex: what a reader can check the bytes against. */
  sha256: string;
}

/** A task's result at `results/{jobId}/{index}`: the JSON its last reporting attempt wrote, inline or by reference. */
export interface TaskResult {
  index: number;
  attempt: number;
  /** The result, when kept inline (at most `MAX_RESULT_BYTES` of JSON); absent with `ref`. */
  value?: unknown;
  /** Set when the result is kept in the blob store instead (`GET /v1/jobs/:id/results/:index` answers it). @default none */
  ref?: ResultRef;
}

/** A GPU device found by `nvidia-smi`. */
export interface GpuDevice {
  index: number;
  model: string;
  memoryMiB: number;
  uuid: string;
}

/** A node's inventory at `nodes/{name}`, bound to its executor's lease: it vanishes when the executor dies. */
export interface NodeRecord {
  name: string;
  capacity: ResourceVector;
  labels: Record<string, string>;
  taints: Array<{ key: string; value?: string; effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute' }>;
  gpus: GpuDevice[];
  /** Base URL of the executor's HTTP server (health, logs). */
  url: string;
  registeredAt: number;
  /** How its executor limits attempts. @default absent: an executor older than this field, or a simulated node */
  isolation?: NodeIsolation;
  /**
   * Set while its executor drains for a graceful stop (SIGTERM): the node takes no new work;
   * its running tasks may finish until `deadline`, then are handed back `NodeLost`. Epoch ms.
   * @default absent: not draining
   */
  draining?: { since: number; deadline: number };
}

/**
 * How attempts are limited on a node: a cgroup per attempt (v2, with the controllers delegated
 * to the executor; or v1), address-space rlimits, nothing, or the pod limits of Kubernetes.
 */
export const ISOLATION_KINDS = ['cgroup2', 'cgroup1', 'rlimit', 'none', 'kubernetes'] as const;
export type NodeIsolationKind = (typeof ISOLATION_KINDS)[number];

/** A node's isolation level as its executor reports it in its node record. */
export interface NodeIsolation {
  kind: NodeIsolationKind;
  /** cgroup v2: the controllers enabled for the executor's cgroups (`cgroup.controllers`), e.g. `cpu`, `memory`, `pids`. @default absent */
  controllers?: string[];
}

/** Resources held on a node by its live groups, at `alloc/{name}`. Every bind and release is a CAS on it. */
export interface NodeAllocation {
  used: ResourceVector;
  /** Milli-GPU in use per device index. */
  devices: Record<string, number>;
  /** What each queue's live tasks hold on this node (the sum over queues is `used`): quota usage, exact per task. */
  queues?: Record<string, ResourceVector>;
}

/** An operator's mark on a node at `cordons/{node}`: no new work; with a drain, running work stops at the deadline. */
export interface Cordon {
  node: string;
  reason: string;
  /** Tenant of the operator who set it. */
  by: string;
  at: number;
  /** Drain: running tasks still on the node at this time (epoch ms) are preempted and requeued. */
  drainDeadline?: number;
  /** Set when the system (not an operator) took the node out: repeated node failures. `batch uncordon` lifts it. */
  quarantine?: { cause: QuarantineCause; failures: number };
  /** Set when the scheduler's consolidation took the node out to empty it (its tasks fit on the other nodes): the leader lifts it once the node is empty. An operator's cordon never carries it. */
  consolidation?: { tasks: number };
}

/** Why a node was quarantined: attempts it could not start, or its executor lost again and again. */
export type QuarantineCause = 'node_error' | 'node_lost';

/** How the reason of a consolidation cordon starts (see `Cordon.consolidation`). */
export const CONSOLIDATION_CORDON_REASON = 'consolidation';

/** Per-tenant submit throttles, shared by every admission replica through etcd. */
export interface TenantLimits {
  /** Submit requests per second, sustained. @default unlimited */
  submitsPerSecond?: number;
  /** Submit requests allowed in a burst. @default max(1, submitsPerSecond) */
  submitBurst?: number;
  /** Tasks submitted per second, sustained. @default unlimited */
  tasksPerSecond?: number;
  /** Tasks allowed in a burst. @default max(1, tasksPerSecond) */
  taskBurst?: number;
}

/** A team. */
export interface Tenant {
  name: string;
  /** Fair-share weight. @default 1 */
  weight: number;
  /** Submit throttles. @default none */
  limits?: TenantLimits;
  /** Most tasks of all the tenant's queues bound or running at once (the scheduler's running caps; 0 starts none). @default unlimited */
  maxRunningTasks?: number;
  /**
   * Rolling 24-hour budget of GPU-hours (GPUs × hours; a milli-GPU share counts by its fraction) of all
   * the tenant's queues: work asking for GPUs waits while the last 24 h reached it. @default unlimited
   */
  gpuHoursPerDay?: number;
}

/** A queue of one tenant with a nominal quota. */
export interface Queue {
  name: string;
  tenant: string;
  /** Most resources the queue's running tasks may hold together (normalized). Absent dimension = no limit. */
  nominal: ResourceVector;
  /** Queues of one cohort lend and borrow unused quota. @default none */
  cohort?: string;
  /** Most the queue may hold beyond its nominal, borrowed from its cohort. @default unlimited within the cohort */
  borrowingLimit?: ResourceVector;
  /** Most of its nominal the queue lends to its cohort. @default all of it */
  lendingLimit?: ResourceVector;
  /** Most tasks waiting in the queue before submits get 429 `queue_full`. @default unlimited */
  maxPendingTasks?: number;
  /** How long work may wait in the queue before BatchQueuePendingTooLong fires, in seconds. @default 3600 */
  pendingAgeSloSeconds?: number;
  /** Fair-share weight against the other queues. @default 1 */
  weight?: number;
  /** Priority aging: points added to waiting work's effective priority per hour of waiting. @default the scheduler's cluster-wide setting */
  priorityAgingPerHour?: number;
  /** Priority aging: most points aging adds. @default the scheduler's cluster-wide setting */
  priorityAgingMax?: number;
  /** Prices fair share charges this queue's usage at (per core, GiB, GPU, GPU of a model), over the cluster-wide ones. @default none */
  prices?: Record<string, number>;
  /** Most of the queue's tasks bound or running at once (the scheduler's running caps; 0 starts none). @default unlimited */
  maxRunningTasks?: number;
  /**
   * Rolling 24-hour budget of GPU-hours (GPUs × hours; a milli-GPU share counts by its fraction): work of
   * the queue asking for GPUs waits while the queue's last 24 h reached it; nothing running is stopped. @default unlimited
   */
  gpuHoursPerDay?: number;
}

/**
 * GPU-seconds used per hour by each queue and each tenant over the last 24 h: what the scheduler
 * leader counts from what live tasks hold and stores (fenced) at `gpu-usage`, so that a successor
 * goes on from it (see `plugins/running-caps` of libs/scheduling). Keys of an hour's map are the
 * hour's start in epoch ms; hours older than the window are dropped as it moves.
 */
export interface GpuUsage {
  /** Up to when usage was counted, epoch ms. */
  at: number;
  /** GPU-seconds by hour, per queue. */
  queues: Record<string, Record<string, number>>;
  /** GPU-seconds by hour, per tenant (of all its queues). */
  tenants: Record<string, Record<string, number>>;
}

/**
 * Runtime estimates learned from the history, at `runtime-estimates`: per queue, a high quantile
 * of how long its tasks ran (succeeded attempts, start to end) over a recent window. Written by
 * the elected archiver (quota), fenced; read by the scheduler as the expected runtime of a task
 * without `timeoutSeconds` (backfill reservations), under an operator's per-queue setting.
 */
export interface RuntimeEstimates {
  /** When they were computed, epoch ms. */
  at: number;
  /** The window of attempt ends they cover: `[from, at)`, epoch ms. */
  from: number;
  /** The quantile of run times taken, e.g. 0.9. */
  quantile: number;
  /** Per queue with enough samples: the quantile's run time in seconds and how many attempts it is of. */
  queues: Record<string, { seconds: number; samples: number }>;
}

/**
 * The elected scheduler's cluster-wide placement settings, at `scheduler-settings`: written
 * (fenced) by each scheduler leader as its term starts, read by admission to explain "why pending"
 * the same way when no scheduler replica answers. Per-queue settings live on the queue records.
 */
export interface SchedulerSettings {
  /** When the leader wrote them, epoch ms. */
  at: number;
  /** Cluster-wide priority aging: priority points per hour of waiting, and the most it adds. @default none (no aging) */
  aging?: { perHour: number; max: number };
  /** Fair-share prices per resource: cost per core, GiB or GPU (`BATCH_FAIR_SHARE_PRICES`). @default none (plain DRF) */
  prices?: Record<string, number>;
  /** Topology levels, top first (`BATCH_TOPOLOGY_LEVELS`): a level's node label, or none for the node itself. @default DEFAULT_TOPOLOGY_LEVELS (block, rack, host) */
  topology?: Array<{ name: string; label?: string }>;
  /** Weight of the topology domain score, 0–100 (`BATCH_TOPOLOGY_SCORE_WEIGHT`). @default DEFAULT_DOMAIN_SCORE_WEIGHT */
  domainScoreWeight?: number;
  /** Backfill: most reservations per cycle (0: off), the default runtime estimate and per-queue ones, in seconds. @default none (backfill off) */
  backfill?: { maxReservations: number; runtimeSeconds: number; queueRuntimeSeconds: Record<string, number> };
}

/**
 * The scheduler leader's defragmentation nominations in force, at `defragmenting`: written (fenced)
 * by the leader once a pass's stops landed, deleted when they lapse or a new term starts; read by
 * the standby replicas' and admission's "why pending", which otherwise could not name the node a
 * waiting job is given (the nominations live in the leader's memory). Bounded by
 * `DEFRAGMENT_RECORD_BOUNDS`: the leader leaves out what would exceed them.
 */
export interface DefragmentRecord {
  /**
   * The term that wrote it: the create revision of its leader key (`leaders/scheduler`, the fence).
   * Readers trust it only while that key is the one in etcd; a new leader deletes it.
   */
  term: string;
  /** When it was written, epoch ms. */
  at: number;
  /** When the nominations lapse, epoch ms: after it the record says nothing. */
  until: number;
  /** The jobs a defragmentation made room for, at most `DEFRAGMENT_RECORD_BOUNDS.jobs`. */
  jobs: DefragmentRecordJob[];
}

/** One job of a `DefragmentRecord`. */
export interface DefragmentRecordJob {
  jobId: string;
  /** Its nominated nodes, one entry per task (at most `DEFRAGMENT_RECORD_BOUNDS.nodes`). */
  nominated: string[];
  /** When they were nominated, epoch ms: a task of it bound on such a node since then used its entry. */
  since: number;
  /** The nodes moves freed for it (a subset of `nominated`). */
  freed: string[];
  /** The tasks the pass asked to stop for it (at most `DEFRAGMENT_RECORD_BOUNDS.stops`). */
  stops: Array<{ jobId: string; groupStart: number; attempt: number; index: number }>;
}

/** Most entries a `DefragmentRecord` holds: jobs, nodes per job, stops per job (a few KiB per job at most, far under etcd's 1.5 MiB). */
export const DEFRAGMENT_RECORD_BOUNDS = { jobs: 32, nodes: 128, stops: 64 } as const;

/** Who a bearer token speaks for. */
export interface Principal {
  tenant: string;
  role: 'tenant' | 'operator';
}

/**
 * The node label that says the node runs each task in the container image its job names
 * (`image`): set by the executor of a backend that does (Kubernetes: `kubernetes`), never by the
 * process backend, which runs tasks as processes of its machine. A job with an `image` is placed
 * only on nodes that carry it, and refused at submit when no live node does.
 */
export const CONTAINER_RUNTIME_LABEL = 'batchapi.io/container-runtime';
