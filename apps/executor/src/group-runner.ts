/**
 * One bound group as its executor runs it: how it begins (`planGroupStart`), its tasks' attempts
 * started through the node's `AttemptBackend` (environment, deadline, `task.run` span), the state
 * each task is set to, preemption of indices, cancel, the result file an ended attempt wrote, and
 * forgetting the group. The agent keeps the node (lease, bindings, fence, shutdown) and one
 * `GroupRunner` per binding; the `Reporter` reports the runner as a `ReportedGroup`.
 */
import { appendFileSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { type Binding, type GroupStatus, MAX_RESULT_BYTES, type PythonEnv, type ResultRef, type TaskResult, type TaskStatus } from '@batchapi/api';
import type { Clock } from '@batchapi/runtime';
import { monotonicMs } from '@batchapi/store';
import { startSpan } from '@batchapi/telemetry';
import { SpanStatusCode } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { AttemptBackend, AttemptExit, RunningAttempt, StartedAttempt } from './attempt-backend';
import { classifyExit } from './classify-exit';
import { type PythonEnvLease, venvEnv } from './python-env-cache';
import { endedTask, endWithoutAttempt, lostTasks, planGroupStart } from './group-events';
import type { ReportedGroup } from './reporter';
import { attemptPaths, type ProcessExit, rotateIfOver } from './task-process';

/** What every group of a node shares: its backend, its settings and what the agent is told of ended attempts. */
export interface GroupRunnerContext {
  /** Runs the attempts. */
  backend: AttemptBackend;
  /** The executor's data directory: attempts' logs, work dirs and result files are under it (`attemptPaths`). */
  dataDir: string;
  /** Between SIGTERM and SIGKILL when an attempt is stopped (cancel, preemption, deadline), milliseconds. */
  killGraceMs: number;
  /** What start and end times are read from. */
  clock: Clock;
  log: Logger;
  /** Attempts running on this node (up at a start, down at an end) and ended attempts by reason. */
  metrics: { running: { inc(): void; dec(): void }; outcomes: { inc(labels: { reason: string }): void } };
  /**
   * Whether the fence may have killed an attempt that died of a signal: the lease is not held now,
   * or the watchdog killed tasks at or after `startedMono` (ms of `monotonicMs`).
   */
  fenceKilled(startedMono: number): boolean;
  /** An attempt could not start for the node's sake (`full`: the node refused it for lack of room). */
  nodeFailed(detail: string, full: boolean): void;
  /**
   * Keeps an ended attempt's logs past the node (the blob store); awaited before the attempt's end
   * is reported, and bounded by its own timeout. @default none: logs stay on the node
   */
  keepLogs?(jobId: string, index: number, attempt: number, paths: { stdout: string; stderr: string }): Promise<void>;
  /**
   * Keeps a result over `MAX_RESULT_BYTES` in the blob store and answers its reference; undefined
   * when the file is not JSON (ignored, as an inline one). Throws when the store did not keep it.
   * @default none: such a result fails its task `ResultTooLarge`
   */
  keepResult?(jobId: string, index: number, attempt: number, file: string): Promise<ResultRef | undefined>;
  /** Largest result `keepResult` keeps, in bytes (`BATCH_RESULT_MAX_BYTES`). */
  resultMaxBytes: number;
  /**
   * Unpacks a job's working dir package (read-only) into an attempt's work dir, fetching it once
   * per node. Throws with a message for the task's stderr. @default none: such attempts fail NodeError
   */
  unpackWorkingDir?(tenant: string, digest: string, dest: string): Promise<void>;
  /**
   * The node's environment of a job's `python`, built once per digest and interpreter; released
   * when the attempt ends. Throws with pip's output for the task's stderr. @default none: such attempts fail NodeError
   */
  pythonEnv?(python: PythonEnv): Promise<PythonEnvLease>;
}

/** A group as bound and read: its binding and its status as etcd holds it. */
export interface GroupRunnerInit {
  /** Key of its binding. */
  key: string;
  /** This executor's node. */
  node: string;
  binding: Binding;
  status: GroupStatus;
  statusKey: string;
  statusRevision: string;
}

/** One bound group as this executor runs it, reported by the agent's `Reporter`. */
export class GroupRunner implements ReportedGroup {
  readonly key: string;
  readonly node: string;
  readonly statusKey: string;
  status: GroupStatus;
  statusRevision: string;
  dirty = false;
  results: TaskResult[] = [];
  /** The binding's latest value (a cancel or preemption arrives as a change of it). */
  binding: Binding;
  /** Running attempts by task index. */
  private readonly procs = new Map<number, StartedAttempt>();
  /** Each attempt from its start until its end is recorded in the status (after its logs are kept): what `running` counts. */
  private readonly recording = new Set<Promise<void>>();
  private cancelling = false;
  /** Task indices the scheduler preempted. */
  private readonly preempting = new Set<number>();
  /** Indices of tasks cancelled one by one (the binding's `cancel`), each stopped once. */
  private readonly cancelled = new Set<number>();
  /**
   * Attempts this executor's graceful stop asked to stop: those that die of its signal end
   * `NodeLost` (requeued, no retry charged); an attempt that ends otherwise ended on its own.
   */
  private readonly stoppedForShutdown = new WeakSet<RunningAttempt>();
  /** No longer tracked (done, or forgotten): an attempt that ends later changes nothing. */
  private retired = false;

  constructor(
    private readonly ctx: GroupRunnerContext,
    init: GroupRunnerInit,
  ) {
    this.key = init.key;
    this.node = init.node;
    this.binding = init.binding;
    this.status = init.status;
    this.statusKey = init.statusKey;
    this.statusRevision = init.statusRevision;
  }

  /** Begins the group as `planGroupStart` decides (see `BoundGroup` for `atStart` and `leftOver`). */
  begin(atStart: boolean, leftOver: boolean): void {
    const plan = planGroupStart({ binding: this.binding, tasks: this.status.tasks, atStart, leftOver });
    if (plan.kind === 'lost') {
      // A previous incarnation of this executor started these; their processes died with it.
      this.status = { ...this.status, tasks: lostTasks(this.status.tasks, this.ctx.clock.now()) };
      this.dirty = true;
      return;
    }
    if (plan.kind === 'cancel') {
      this.cancel();
      return;
    }
    this.cancelTasks(plan.cancel);
    this.preempt(plan.preempt);
    for (const i of plan.start) this.startTask(i);
  }

  /** The binding changed: a cancel or preemption marked on it is carried out (once each). */
  update(b: Binding): void {
    this.binding = b;
    if (b.cancelRequested && !this.cancelling) this.cancel();
    this.cancelTasks(b.cancel ?? []);
    this.preempt(b.preempt ?? []);
  }

  /** True while an attempt of task `index` of `jobId` at `attempt` runs here. */
  runs(jobId: string, index: number, attempt: number): boolean {
    return this.binding.jobId === jobId && this.binding.attempt === attempt && this.procs.has(index);
  }

  /** Rotates the logs of its running attempts that passed `maxBytes` (`rotateIfOver`). */
  rotateLogs(maxBytes: number): void {
    for (const index of this.procs.keys()) {
      const p = attemptPaths(this.ctx.dataDir, this.binding.jobId, index, this.binding.attempt);
      for (const f of [p.stdout, p.stderr]) if (rotateIfOver(f, maxBytes)) this.ctx.log.info({ file: f }, 'log rotated');
    }
  }

  /** Attempts of this group running now, or ended and not yet recorded as ended (their logs being kept). */
  get running(): number {
    return this.recording.size;
  }

  /**
   * The executor drains and will not run this group (bound as the drain began): every task not
   * ended is handed back `Failed/NodeLost` without an attempt, requeued at the next attempt with no
   * retry charged (`lostTasks`).
   */
  handBack(): void {
    this.status = { ...this.status, tasks: lostTasks(this.status.tasks, this.ctx.clock.now()) };
    this.dirty = true;
  }

  /** The executor stops gracefully: each attempt is stopped (SIGTERM, the grace, SIGKILL) and ends `NodeLost` if it dies of it. */
  stopForShutdown(): Array<Promise<void>> {
    for (const p of this.procs.values()) {
      this.stoppedForShutdown.add(p);
      p.stop(this.ctx.killGraceMs);
    }
    // resolved once each end is in the status (its logs kept first), so the last report carries it; never rejected
    return [...this.recording].map((r) => r.catch(() => undefined));
  }

  /** Kills every attempt at once (the executor fences itself); the group stays tracked. */
  killAll(): void {
    for (const p of this.procs.values()) p.kill();
  }

  /** Accepted with every task ended: no longer tracked. */
  retire(): void {
    this.retired = true;
  }

  /**
   * Drops a group that is no longer this executor's (its binding was removed; a report refused
   * only once its binding is gone too): another attempt may already run elsewhere, so its
   * processes die at once. Never for a report that lost a race or whose answer was lost.
   */
  forget(why: string): void {
    this.retired = true;
    for (const p of this.procs.values()) p.kill();
    if (this.procs.size) this.ctx.log.warn({ group: this.key, why }, 'killed the tasks of a group that is no longer ours');
  }

  /** Stops preempted tasks (SIGTERM, grace, SIGKILL); they end `Preempted` and are requeued by the job. */
  private preempt(indices: number[]): void {
    for (const i of indices) {
      if (this.preempting.has(i)) continue;
      this.preempting.add(i);
      const k = i - this.binding.start;
      const proc = this.procs.get(i);
      if (proc) proc.stop(this.ctx.killGraceMs);
      else this.setTask(k, endWithoutAttempt(this.status.tasks[k], 'preempt', this.ctx.clock.now()));
    }
  }

  /** Stops tasks cancelled one by one (SIGTERM, grace, SIGKILL); they end `Cancelled` and never run again. */
  private cancelTasks(indices: number[]): void {
    for (const i of indices) {
      if (this.cancelled.has(i)) continue;
      this.cancelled.add(i);
      const proc = this.procs.get(i);
      if (proc) proc.stop(this.ctx.killGraceMs);
      else this.setTask(i - this.binding.start, endWithoutAttempt(this.status.tasks[i - this.binding.start], 'cancel', this.ctx.clock.now()));
    }
  }

  private cancel(): void {
    this.cancelling = true;
    const now = this.ctx.clock.now();
    this.status.tasks.forEach((t, k) => {
      if (!this.procs.has(this.binding.start + k)) this.setTask(k, endWithoutAttempt(t, 'cancel', now));
    });
    for (const p of this.procs.values()) p.stop(this.ctx.killGraceMs);
  }

  private startTask(index: number): void {
    const { ctx } = this;
    const b = this.binding;
    const k = index - b.start;
    const { span, traceparent } = startSpan('task.run', {
      parent: b.traceparent,
      attributes: { 'batch.job.id': b.jobId, 'batch.task.index': index, 'batch.attempt': b.attempt, 'batch.node': b.node },
    });
    const paths = attemptPaths(ctx.dataDir, b.jobId, index, b.attempt);
    // A result left by an earlier run of this attempt's path must not count; a path that cannot be
    // cleared is the node's problem, reported when the attempt fails to start below.
    try {
      rmSync(paths.result, { force: true });
    } catch {
      /* reported by TaskProcess */
    }
    const env = attemptEnv(b, index, paths.result, traceparent, inheritedEnv(), ctx.keepResult ? ctx.resultMaxBytes : MAX_RESULT_BYTES);
    // Processes get cgroup (or rlimit) limits from the backend; pods get them from Kubernetes.
    const proc = b.workingDir || b.python ? this.startPrepared(b, index, env, paths) : ctx.backend.start(b, index, env, paths);
    this.procs.set(index, proc);
    let deadlineHit = false;
    const deadline = b.timeoutSeconds
      ? setTimeout(() => {
          deadlineHit = true;
          proc.stop(ctx.killGraceMs);
        }, b.timeoutSeconds * 1000)
      : undefined;
    const startedAt = ctx.clock.now();
    const startedMono = monotonicMs();
    this.setTask(k, { state: 'Running', startedAt });
    ctx.metrics.running.inc();
    const recorded = proc.exited.then(async (exit: AttemptExit) => {
      clearTimeout(deadline);
      this.procs.delete(index);
      ctx.metrics.running.dec();
      const cancelling = this.cancelling || this.cancelled.has(index);
      const preempting = !cancelling && this.preempting.has(index);
      // A result counts only for an attempt that ran to its end (not cancelled or preempted).
      const result = cancelling || preempting ? undefined : this.readResult(paths.result, b.jobId, index);
      // A result over the inline cap goes to the blob store (only a successful attempt's: a failed one's is not read).
      let resultNotKept: string | undefined;
      if (result !== undefined && result !== 'too-large' && 'largeBytes' in result) {
        if (exit.exitCode === 0) {
          try {
            const ref = await ctx.keepResult!(b.jobId, index, b.attempt, paths.result);
            if (ref) this.results.push({ index, attempt: b.attempt, ref });
          } catch (err) {
            resultNotKept = `could not keep the task's ${result.largeBytes}-byte result in the blob store (${(err as Error).message})`;
            ctx.log.warn({ job: b.jobId, index, attempt: b.attempt }, resultNotKept);
          }
        }
      } else if (result !== undefined && result !== 'too-large') this.results.push({ index, attempt: b.attempt, value: result.value });
      const outcome = classifyExit({
        exitCode: exit.exitCode,
        signal: exit.signal,
        nodeError: exit.nodeError,
        cancelling,
        preempting,
        resultTooLarge: result === 'too-large',
        ...(resultNotKept ? { resultNotKept } : {}),
        stoppedForShutdown: this.stoppedForShutdown.has(proc),
        // The fence (the watchdog or the self-fence) while the lease was not held, or the watchdog while this process stalled.
        fenceKilled: !!exit.signal && ctx.fenceKilled(startedMono),
        deadlineHit: deadlineHit || !!exit.deadlineExceeded,
        oomKilled: !!exit.oomKilled || proc.oomKilled(),
      });
      proc.release();
      ctx.metrics.outcomes.inc({ reason: outcome.reason ?? outcome.state });
      if (exit.nodeFull) ctx.nodeFailed(exit.nodeError ?? 'the node refused an attempt for room', true);
      else if (exit.nodeError) ctx.nodeFailed(exit.nodeError, false);
      span.setAttributes({
        'batch.outcome': outcome.state,
        ...(exit.exitCode !== undefined ? { 'process.exit.code': exit.exitCode } : {}),
        ...(exit.signal ? { 'process.signal': exit.signal } : {}),
      });
      if (outcome.state === 'Failed') span.setStatus({ code: SpanStatusCode.ERROR, message: `${outcome.reason}: ${describe(exit)}` });
      span.end();
      if (this.retired) return;
      const endedAt = ctx.clock.now();
      // Kept before the end is reported: whoever learns that the attempt ended finds its log kept.
      if (ctx.keepLogs) await ctx.keepLogs(b.jobId, index, b.attempt, paths);
      if (this.retired) return;
      this.setTask(k, endedTask(this.status.tasks[k], outcome, exit, endedAt));
    });
    this.recording.add(recorded);
    void recorded.then(
      () => this.recording.delete(recorded),
      (err: Error) => {
        this.recording.delete(recorded);
        ctx.log.error({ err: err.message, job: b.jobId, index }, 'recording the end of an attempt failed');
      },
    );
  }

  /**
   * Starts an attempt once what it needs on the node is ready: the job's working dir unpacked into
   * its work dir, then its Python environment built (or found) and put first on its `PATH`. Until
   * then a stop or kill is remembered (the attempt then never starts and ends as stopped). A package
   * that cannot be fetched, verified or unpacked, or an environment that cannot be built (pip's
   * output goes to the task's stderr), ends the attempt `NodeError` (run again, counted toward
   * quarantine); a package its tenant does not have (never uploaded, or past the blob retention),
   * or a requirement the node's index has no distribution of, `Error` with exit code 126, and a backend without working dirs or Python environments `Error`
   * (exit code 125), each with a line in the task's stderr saying why.
   */
  private startPrepared(b: Binding, index: number, env: Record<string, string>, paths: ReturnType<typeof attemptPaths>): StartedAttempt {
    const { ctx } = this;
    let started: StartedAttempt | undefined;
    let stopped: 'SIGTERM' | 'SIGKILL' | undefined;
    let release: (() => void) | undefined;
    let runEnv = env;
    // A stop before the start ends the attempt at once, not when a long build or fetch ends.
    let stopNow: (exit: AttemptExit) => void = () => undefined;
    const stoppedEarly = new Promise<AttemptExit>((resolve) => (stopNow = resolve));
    const tell = (line: string) => {
      try {
        mkdirSync(paths.logDir, { recursive: true });
        appendFileSync(paths.stderr, `batch: ${line}\n`);
      } catch (err) {
        ctx.log.warn({ err: (err as Error).message, job: b.jobId, index }, "could not write to an attempt's stderr");
      }
    };
    const workingDir = async (digest: string): Promise<AttemptExit | undefined> => {
      if (!ctx.backend.workingDirs) {
        tell(
          `working_dir is not supported on this node's backend (Kubernetes pods cannot see the executor's files); run the job on process executors, or put the code in its image`,
        );
        return { exitCode: 125 };
      }
      if (!ctx.unpackWorkingDir) {
        const message = `working dir ${digest}: this executor has no blob store to fetch it from (BATCH_BLOB_STORE)`;
        tell(message);
        return { exitCode: 126, nodeError: message };
      }
      try {
        await ctx.unpackWorkingDir(b.tenant, digest, paths.workDir);
        return undefined;
      } catch (e) {
        const err = e as Error;
        tell(err.message);
        // A package its tenant does not have is the job's fault (Error); any other failure the node's (NodeError, run again).
        if (err.name === 'WorkingDirMissingError') return { exitCode: 126 };
        ctx.log.warn({ err: err.message, job: b.jobId, index, attempt: b.attempt }, 'working dir not ready: the attempt ends NodeError');
        return { exitCode: 126, nodeError: err.message };
      }
    };
    const pythonEnv = async (python: PythonEnv): Promise<AttemptExit | undefined> => {
      if (!ctx.backend.pythonEnvs) {
        tell(
          `python environments are not supported on this node's backend (Kubernetes pods cannot see the executor's files); run the job on process executors, or install its requirements in its image`,
        );
        return { exitCode: 125 };
      }
      if (!ctx.pythonEnv) {
        const message = `python environment ${python.digest}: this executor builds no python environments`;
        tell(message);
        return { exitCode: 126, nodeError: message };
      }
      try {
        const lease = await ctx.pythonEnv(python);
        if (stopped) {
          lease.release();
          return { signal: stopped };
        }
        release = lease.release;
        runEnv = venvEnv(env, lease.dir);
        return undefined;
      } catch (e) {
        const err = e as Error;
        tell(err.message);
        // A requirement the index does not have is the job's fault (Error, no node blamed); any other failure the node's.
        if (err.name === 'PythonRequirementNotFoundError') return { exitCode: 126 };
        ctx.log.warn({ err: err.message.split('\n')[0], job: b.jobId, index, attempt: b.attempt }, 'python environment not ready: the attempt ends NodeError');
        return { exitCode: 126, nodeError: err.message.split('\n')[0] };
      }
    };
    const prepared = (async (): Promise<AttemptExit | undefined> => {
      const failed = b.workingDir ? await workingDir(b.workingDir.digest) : undefined;
      if (failed || stopped || !b.python) return failed;
      return pythonEnv(b.python);
    })();
    const exited = Promise.race([
      prepared.then((failed) => {
        if (failed) return failed;
        if (stopped) return { signal: stopped };
        started = ctx.backend.start(b, index, runEnv, paths);
        return started.exited;
      }),
      stoppedEarly,
    ]).finally(() => release?.());
    return {
      exited,
      get pid() {
        return started?.pid;
      },
      stop: (graceMs) => {
        if (started) return started.stop(graceMs);
        stopped ??= 'SIGTERM';
        stopNow({ signal: stopped });
      },
      kill: () => {
        if (started) return started.kill();
        stopped = 'SIGKILL';
        stopNow({ signal: stopped });
      },
      oomKilled: () => started?.oomKilled() ?? false,
      release: () => started?.release(),
    };
  }

  /**
   * The JSON a task wrote to `BATCH_RESULT_PATH`: absent or not JSON → none (logged); over
   * `MAX_RESULT_BYTES` → `largeBytes` when the blob store keeps it (up to `resultMaxBytes`), else
   * `too-large` (the task fails with `ResultTooLarge`).
   */
  private readResult(file: string, jobId: string, index: number): { value: unknown } | { largeBytes: number } | 'too-large' | undefined {
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      return undefined;
    }
    if (size > MAX_RESULT_BYTES && this.ctx.keepResult && size <= this.ctx.resultMaxBytes) return { largeBytes: size };
    if (size > MAX_RESULT_BYTES) {
      this.ctx.log.warn({ job: jobId, index, bytes: size }, `task result over ${MAX_RESULT_BYTES} bytes: the task fails with ResultTooLarge`);
      return 'too-large';
    }
    try {
      return { value: JSON.parse(readFileSync(file, 'utf8')) };
    } catch (err) {
      this.ctx.log.warn({ job: jobId, index, err: (err as Error).message }, 'task result is not valid JSON; ignored');
      return undefined;
    }
  }

  /** Sets task `k` (an offset in the group) to `t`; `undefined` leaves it as it is. */
  private setTask(k: number, t: TaskStatus | undefined): void {
    if (!t) return;
    const tasks = [...this.status.tasks];
    tasks[k] = t;
    this.status = { ...this.status, tasks };
    this.dirty = true;
  }
}

/**
 * The environment of task `index`'s attempt: `inherited` (the few variables a task takes from the
 * executor), the job's env, then the `BATCH_*` variables, `TRACEPARENT` and `CUDA_VISIBLE_DEVICES`
 * (the devices the scheduler chose), which the job cannot override. With `resultMaxBytes`, the
 * largest result this node keeps (`BATCH_RESULT_MAX_BYTES`: its blob store's bound, or
 * `MAX_RESULT_BYTES` without one), so a task can refuse a larger one before it ends.
 */
export function attemptEnv(
  b: Binding,
  index: number,
  resultPath: string,
  traceparent: string | undefined,
  inherited: Record<string, string>,
  resultMaxBytes?: number,
): Record<string, string> {
  const k = index - b.start;
  const devices = b.devices[k] ?? [];
  return {
    ...inherited,
    ...b.env,
    BATCH_JOB_ID: b.jobId,
    BATCH_TASK_INDEX: String(index),
    BATCH_ATTEMPT: String(b.attempt),
    BATCH_NODE: b.node,
    BATCH_RESULT_PATH: resultPath,
    ...(resultMaxBytes !== undefined ? { BATCH_RESULT_MAX_BYTES: String(resultMaxBytes) } : {}),
    ...(b.items && k < b.items.length ? { BATCH_MAP_ITEM: JSON.stringify(b.items[k] ?? null) } : {}),
    ...(traceparent ? { TRACEPARENT: traceparent } : {}),
    ...(devices.length ? { CUDA_VISIBLE_DEVICES: devices.join(',') } : {}),
  };
}

function describe(exit: ProcessExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.exitCode}`;
}

/** The few variables a task inherits from the executor; everything else comes from the job. */
function inheritedEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR']) if (process.env[k] !== undefined) out[k] = process.env[k]!;
  return out;
}
