/**
 * The node agent: registers this node under the process lease (its inventory from the backend),
 * watches its bindings and hands each bound group to a `GroupRunner` (which runs its tasks through
 * the `AttemptBackend`), reports state changes in batches through the `Reporter`, quarantines the
 * node after repeated node failures, and self-fences: once its lease can no longer be trusted (TTL
 * passed since the last acknowledged renewal, on its own clock) it kills every task at once and stops.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Binding, type GroupStatus } from '@batchapi/api';
import { DEFAULT_QUARANTINE, recordNodeFailure } from '@batchapi/lifecycle';
import { type BlobStore } from '@batchapi/blobs';
import { BLOBS, CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import {
  getGroupStatuses,
  type Informer,
  monotonicMs,
  quarantineNode,
  registerNodes,
  type ReportResult,
  updateNodeRecord,
  type Versioned,
  type WatchEvent,
} from '@batchapi/store';
import { waitUntil } from '@batchapi/proc';
import { Metric, startSpan } from '@batchapi/telemetry';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { type AttemptBackend, KubernetesAttemptBackend, ProcessBackend } from './attempt-backend';
import { GroupRunner, type GroupRunnerContext } from './group-runner';
import { type IsolationKind, isolationReport } from './isolation';
import { KubernetesBackend } from './kubernetes';
import { type ExecutorConfig, kubernetesConfigFromEnv } from './config';
import { detectGpus, nodeRecord } from './inventory';
import { BlobKeeper, LOG_UPLOAD_TIMEOUT_MS } from './blob-keeper';
import { WorkingDirCache } from './working-dir-cache';
import { PythonEnvCache } from './python-env-cache';
import { Reporter } from './reporter';
import { killedMarker, stopPreviousWatchdog, WATCHDOG_PID_FILE, writeHeartbeat } from './watchdog';

/** Injection tokens. */
export const EXECUTOR_CONFIG = Symbol('ExecutorConfig');
export const EXECUTOR_URL = Symbol('ExecutorUrl');

@Injectable()
export class ExecutorAgent implements OnApplicationBootstrap, OnApplicationShutdown {
  /** The groups bound here, by binding key: each run by its own `GroupRunner`. */
  private readonly groups = new Map<string, GroupRunner>();
  /**
   * Bindings seen but not yet set up (their status is being read), with their latest value:
   * a cancel or preempt mark that arrives meanwhile is applied, and a delete drops them.
   */
  private readonly arriving = new Map<string, Binding>();
  private informer?: Informer;
  private reportTimer?: NodeJS.Timeout;
  private readonly reports: Reporter<GroupRunner>;
  /** What every `GroupRunner` of this node shares; set at registration, with the backend. */
  private runnerContext?: GroupRunnerContext;
  private fenced = false;
  /** Runs the attempts: processes or Kubernetes pods, picked at registration. */
  private backend?: AttemptBackend;
  private registered = false;
  /** The process-group ledger held a previous incarnation's groups at start. */
  private previousRan = false;
  /**
   * Bindings of the first listing when a previous incarnation ran tasks here: the only ones that
   * may be left over from it. Each is decided once; bindings listed later are this incarnation's.
   */
  private leftByPrevious?: Set<string>;
  /** Set when a graceful stop began: no group starts from now on. */
  private stopping = false;
  /** Set when the drain began (`drain`), epoch ms: groups bound from now on are handed back, not run. */
  private draining?: { since: number; deadline: number };
  /** The watchdog's heartbeat file (its kill marker beside it); unset until the watchdog starts. */
  private heartbeatFile?: string;
  /** A read of the Kubernetes node's capacity under way (after the kubelet refused an attempt for room). */
  private refreshing?: Promise<void>;
  private onFencedHandler: () => void = () => undefined;
  /** Uploads an ended attempt's logs (and a large result) before its end is reported; unset without a blob store. */
  private readonly logs?: BlobKeeper;
  /** This node's working dir packages (fetched from the blob store, when there is one). */
  private readonly workingDirs: WorkingDirCache;
  /** This node's Python environments (a job's `python`), built with the node's pip settings. */
  private readonly pythonEnvs: PythonEnvCache;

  /**
   * What to call once this executor fences itself (the process main exits then). Set after
   * the service started: a fence that came before is passed on at once, not lost.
   */
  set onFenced(handler: () => void) {
    this.onFencedHandler = handler;
    if (this.fenced) handler();
  }
  private readonly m: { running: Gauge; outcomes: Counter; txns: Counter; renewFailures: Counter; quarantined: Counter };
  /** When attempts on this node last failed for node reasons (within the quarantine window), ms of `clock.monotonic()`. */
  private nodeFailures: number[] = [];

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    @Inject(EXECUTOR_CONFIG) readonly config: ExecutorConfig,
    /**
     * What this agent's wall-clock readings, its quarantine window and its wait for leftover processes come from (the
     * watchdog's heartbeat stays on the machine's CLOCK_MONOTONIC: another process reads it). @default systemClock
     */
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
    /** Where ended attempts' logs are kept past this node. @default none: they stay on this node only */
    @Optional() @Inject(BLOBS) blobs?: BlobStore,
  ) {
    const registers = [ctx.registry];
    this.workingDirs = new WorkingDirCache(
      blobs,
      { dataDir: config.dataDir, capBytes: config.workingDirCacheBytes, maxBytes: config.workingDirCacheBytes },
      this.clock,
      ctx.log,
      ctx.registry,
    );
    this.pythonEnvs = new PythonEnvCache(
      { dataDir: config.dataDir, capBytes: config.pythonEnvCacheBytes, buildTimeoutMs: config.pythonEnvBuildTimeoutSeconds * 1000, pip: config.pip },
      this.clock,
      ctx.log,
      ctx.registry,
    );
    this.logs = blobs && new BlobKeeper(blobs, { capBytes: config.logUploadMaxBytes }, this.clock, ctx.log, ctx.registry);
    this.m = {
      running: new Gauge({ name: Metric.executorRunningAttempts, help: 'Task attempts running on this node', registers }),
      outcomes: new Counter({ name: Metric.executorOutcomes, help: 'Task attempts ended, by reason', labelNames: ['reason'], registers }),
      txns: new Counter({ name: Metric.executorReportTxns, help: 'Batched status report calls', registers }),
      renewFailures: new Counter({ name: Metric.executorLeaseRenewFailures, help: 'Lease keep-alives that failed', registers }),
      quarantined: new Counter({
        name: Metric.nodeQuarantined,
        help: 'Nodes taken out of scheduling for repeated node failures, by node and cause',
        labelNames: ['node', 'reason'],
        registers,
      }),
    };
    ctx.lease.onRenewalFailed(() => this.m.renewFailures.inc());
    ctx.readiness = { check: () => this.registered && !this.fenced, reason: () => (this.fenced ? 'self-fenced: lease lost' : 'not registered') };
    this.reports = new Reporter(ctx.store, () => ctx.lease.id, {
      groups: () => this.groups.values(),
      halted: () => this.fenced,
      answered: (res, groups) => {
        this.m.txns.inc();
        if (res.fenced) {
          this.selfFence("the node key is no longer bound to this executor's lease");
          return false;
        }
        this.traceRequeues(groups, res.requeued);
        return true;
      },
      done: (g) => {
        g.retire();
        this.groups.delete(g.key);
      },
      // Refused means another writer ended the group and its binding is gone (a report that
      // merely lost a race, or whose answer was lost, is neither accepted nor refused).
      refused: (g) => this.forget(g, 'report refused: the group was ended by another writer and its binding is gone'),
      failed: (err) => this.ctx.log.warn({ err: err.message }, 'status report failed; will retry'),
    });
  }

  /** How attempts are limited on this machine (cgroup v2/v1, rlimits, none); `none` until registered. */
  get isolation(): IsolationKind {
    return this.backend?.isolation ?? 'none';
  }

  /** Registers the node (the URL is known once the HTTP server listens) and starts watching bindings. */
  async register(url: string): Promise<void> {
    const { store, lease } = this.ctx;
    if (this.fenced) throw new Error('the executor fenced itself before it registered (its lease was lost)');
    mkdirSync(this.config.dataDir, { recursive: true });
    const machine = new ProcessBackend({
      dataDir: this.config.dataDir,
      nodeName: this.config.nodeName,
      isolation: this.config.isolation,
      cpuLimit: this.config.cpuLimit,
      log: this.ctx.log,
      clock: this.clock,
    });
    const blobsKept = this.logs !== undefined;
    const backend: AttemptBackend =
      this.config.backend === 'kubernetes'
        ? new KubernetesAttemptBackend(
            machine,
            () =>
              new KubernetesBackend(
                { ...kubernetesConfigFromEnv({}), cpuLimit: this.config.cpuLimit, ...this.config.kubernetes },
                this.config.nodeName,
                this.ctx.log,
              ),
          )
        : machine;
    this.backend = backend;
    this.runnerContext = {
      backend,
      dataDir: this.config.dataDir,
      killGraceMs: this.config.killGraceMs,
      clock: this.clock,
      log: this.ctx.log,
      metrics: this.m,
      fenceKilled: (startedMono) => !this.ctx.lease.alive() || this.watchdogKilledSince(startedMono),
      nodeFailed: (detail, full) => (full ? this.refreshCapacity(detail) : this.nodeFailed(detail)),
      resultMaxBytes: this.config.resultMaxBytes,
      ...(this.logs ? { keepLogs: this.logs.keep.bind(this.logs), keepResult: this.logs.keepResult.bind(this.logs) } : {}),
      ...(blobsKept ? { unpackWorkingDir: (tenant, digest, dest) => this.workingDirs.unpackInto(tenant, digest, dest) } : {}),
      pythonEnv: (python) => this.pythonEnvs.acquire(python),
    };
    // A previous incarnation that ran tasks here may have started groups whose status never
    // reached etcd (still "Bound"): those are not started again at the same attempt.
    // None of its tasks may live on when their attempts are settled below.
    const { previousRan, leftovers } = await backend.reclaim();
    this.previousRan = previousRan;
    stopPreviousWatchdog(this.config.dataDir);
    this.startWatchdog(machine.ledgerFile);
    if (leftovers) this.ctx.log.warn({ leftovers }, 'killed task process groups left by a previous executor');
    // A Kubernetes cluster's GPUs come from its nodes (the inventory below), not from this machine.
    const gpus = this.config.backend === 'kubernetes' ? [] : await detectGpus(this.config.nvidiaSmi);
    let node = nodeRecord(this.config, url, this.clock.now(), gpus);
    const inv = await backend.inventory();
    if (inv) node = { ...node, capacity: inv.capacity, gpus: inv.gpus, labels: { ...this.config.labels, ...inv.labels } };
    // Pods get their limits from Kubernetes; processes from this machine's cgroups or rlimits.
    node.isolation = this.config.backend === 'kubernetes' ? { kind: 'kubernetes' } : isolationReport(machine.isolation);
    await registerNodes(store, [node], lease.id);
    this.informer = await store.inform<Binding>(store.keys.bindingsOf(this.config.nodeName), {
      onSync: (items) => this.onSync(items),
      onEvent: (ev) => this.onEvent(ev),
    });
    this.reportTimer = setInterval(() => void this.flush(), this.config.reportIntervalMs);
    this.logRotator = setInterval(() => this.rotateLogs(), 1000);
    this.logRotator.unref();
    this.registered = true;
    this.ctx.log.info({ node: node.name, capacity: node.capacity, gpus: node.gpus.length, isolation: node.isolation }, 'node registered');
  }

  private watchdog?: NodeJS.Timeout;
  private logRotator?: NodeJS.Timeout;

  /** Rotates the logs of running attempts that passed their cap. */
  private rotateLogs(): void {
    for (const g of this.groups.values()) g.rotateLogs(this.config.logMaxBytes);
  }

  onApplicationBootstrap(): void {
    this.watchdog = setInterval(() => {
      if (!this.ctx.lease.alive()) {
        clearInterval(this.watchdog);
        this.selfFence('lease not renewed within its TTL');
      }
    }, 100);
    this.watchdog.unref();
  }

  /**
   * The first half of a graceful stop (SIGTERM; `close` does the rest): the node takes no new
   * work at once — its record is marked `draining` (a CAS fenced by this executor's lease), so the
   * scheduler places nothing more here, and a group bound meanwhile is handed back `NodeLost`
   * without running — while running tasks go on, still reported, cancellable and preemptible,
   * until they all ended or `drainGraceMs` passed. Those still running then are stopped by `close`
   * and end `NodeLost` too: requeued at the next attempt, no retry of the job charged. Resolves
   * with the attempts still running when it gave up waiting (0: all ended).
   */
  async drain(): Promise<number> {
    const running = () => [...this.groups.values()].reduce((n, g) => n + g.running, 0);
    if (!this.registered || this.fenced || this.draining) return running();
    const since = this.clock.now();
    const graceMs = this.config.drainGraceMs;
    this.draining = { since, deadline: since + graceMs };
    const { store, lease, log } = this.ctx;
    const draining = this.draining;
    // A CAS that lost to another change of the record (a capacity refresh) is decided again on a fresh read.
    let marked = false;
    for (let attempt = 0; attempt < 3 && !marked && !this.fenced; attempt++) {
      try {
        const res = await updateNodeRecord(store, this.config.nodeName, lease.id, (cur) => ({ ...cur, draining }));
        if (!res) break; // the record is gone: this executor's lease is, too
        marked = res.updated;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'could not mark the node draining');
      }
    }
    if (!marked) log.warn({ node: this.config.nodeName }, 'the node is not marked draining: bindings that still arrive are handed back unrun');
    // Groups whose status was being read as the drain began are handed back by onBinding.
    log.info({ node: this.config.nodeName, running: running(), graceMs }, 'draining: no new work; running tasks may finish');
    const drained = await waitUntil(() => running() === 0 || this.fenced, { timeoutMs: graceMs, intervalMs: 50 });
    const left = running();
    if (drained && left === 0) log.info({ node: this.config.nodeName, tookMs: this.clock.now() - since }, 'drained: every running task ended');
    else log.warn({ node: this.config.nodeName, left, graceMs }, 'drain grace over: the tasks still running are stopped and handed back NodeLost');
    return left;
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.watchdog);
    clearInterval(this.logRotator);
    this.pythonEnvs.close();
    if (this.watchdogPid)
      try {
        process.kill(this.watchdogPid, 'SIGTERM');
      } catch {
        /* gone */
      }
    clearInterval(this.reportTimer);
    await this.informer?.stop();
    // The node goes away, not the tasks' fault: they end NodeLost and run again elsewhere.
    this.stopping = true;
    const exits = [...this.groups.values()].flatMap((g) => g.stopForShutdown());
    // an ended attempt's logs are kept before its end is recorded: that wait is bounded too (LOG_UPLOAD_TIMEOUT_MS)
    const keeping = this.logs ? LOG_UPLOAD_TIMEOUT_MS : 0;
    if (exits.length) await Promise.race([Promise.all(exits), sleep(this.config.killGraceMs + 500 + keeping, { unref: true })]);
    this.backend?.close();
    // A report in flight carries none of these ends: let it finish, then send what is left.
    await this.reports.inFlight?.catch(() => undefined);
    await this.flush();
  }

  /**
   * Starts the watchdog (a detached process) and keeps its heartbeat: the time of the last
   * lease renewal etcd acknowledged. If renewals stop for the TTL — the executor is paused,
   * hung or cut off — the watchdog kills every task even though this process cannot.
   */
  private startWatchdog(ledgerFile: string): void {
    const heartbeat = join(this.config.dataDir, 'heartbeat');
    this.heartbeatFile = heartbeat;
    // The send time of each renewal, as the lease's own fence counts it (a reply read late must not
    // look fresh), on CLOCK_MONOTONIC — the lease's clock, and one the watchdog process reads too.
    const beat = (sentAt = monotonicMs()) => writeHeartbeat(heartbeat, sentAt);
    beat();
    this.ctx.lease.onRenewed(beat);
    const ttlMs = this.ctx.lease.ttlSeconds * 1000;
    const script = join(dirname(require.resolve('@batchapi/executor/package.json')), 'dist', 'watchdog.js');
    if (!existsSync(script)) {
      this.ctx.log.warn({ script }, 'no watchdog: build the executor first; a paused executor then cannot be fenced');
      return;
    }
    const child = spawn(process.execPath, [script, heartbeat, ledgerFile, String(ttlMs), String(process.pid), this.config.nodeName], {
      detached: true,
      stdio: 'ignore',
    });
    child.unref();
    this.watchdogPid = child.pid;
    if (child.pid) writeFileSync(join(this.config.dataDir, WATCHDOG_PID_FILE), String(child.pid));
  }

  /** Pid of the watchdog process. */
  watchdogPid?: number;

  /** True while the attempt's process runs (logs follow until it ends). */
  isRunning(jobId: string, index: number, attempt: number): boolean {
    for (const g of this.groups.values()) if (g.runs(jobId, index, attempt)) return true;
    return false;
  }

  /**
   * An attempt could not start because of this node: after `DEFAULT_QUARANTINE.failures` such
   * failures within its window, the executor quarantines its own node (a cordon with the
   * cause, written only while it holds the node's lease); the tasks go elsewhere.
   */
  private nodeFailed(detail: string): void {
    // The window is a duration (monotonic: a step of the wall clock must not stretch or cut it); the cordon records the wall time.
    const { times, quarantine } = recordNodeFailure(this.nodeFailures, this.clock.monotonic());
    this.nodeFailures = times;
    this.ctx.log.warn({ node: this.config.nodeName, failures: times.length, detail }, 'an attempt could not start on this node');
    if (!quarantine) return;
    const { store, lease } = this.ctx;
    const why = `${times.length} attempts could not start on this node within ${DEFAULT_QUARANTINE.windowMs / 60_000} min; last: ${detail}`;
    quarantineNode(
      store,
      { key: store.keys.node(this.config.nodeName), lease: lease.id },
      this.config.nodeName,
      'node_error',
      times.length,
      why,
      this.clock.now(),
    ).then(
      (done) => {
        if (!done) return;
        this.m.quarantined.inc({ node: this.config.nodeName, reason: 'node_error' });
        this.ctx.log.error({ node: this.config.nodeName, reason: why }, 'node quarantined: taken out of scheduling until an operator uncordons it');
      },
      (err: Error) => this.ctx.log.warn({ err: err.message }, 'quarantining this node failed'),
    );
  }

  /**
   * The Kubernetes node refused an attempt for lack of room: pods that are not BatchAPI's took
   * some since the node registered. Its capacity is read again and, if it changed, written to
   * the node record (fenced by this executor's lease), so the scheduler stops over-placing.
   */
  private refreshCapacity(detail: string): void {
    const backend = this.backend;
    if (!backend || this.refreshing) return;
    const { store, lease, log } = this.ctx;
    this.refreshing = (async () => {
      const inv = await backend.inventory();
      // A node the configuration describes is not read again.
      if (!inv) return;
      let unchanged = false;
      const res = await updateNodeRecord(store, this.config.nodeName, lease.id, (cur) => {
        unchanged = JSON.stringify(cur.capacity) === JSON.stringify(inv.capacity);
        return unchanged ? undefined : { ...cur, capacity: inv.capacity, gpus: inv.gpus };
      });
      // Nothing that explains the refusal: counted like any attempt this node could not start.
      if (unchanged) this.nodeFailed(detail);
      if (res?.updated)
        log.warn(
          { node: this.config.nodeName, was: res.was.capacity, capacity: inv.capacity, detail },
          "node capacity read again: pods that are not BatchAPI's changed",
        );
    })()
      .catch((err: Error) => log.warn({ err: err.message }, "reading the node's capacity again failed"))
      .finally(() => {
        this.refreshing = undefined;
      });
  }

  /** Whether the watchdog killed tasks at or after `since` (ms of `monotonicMs`). */
  private watchdogKilledSince(since: number): boolean {
    if (!this.heartbeatFile) return false;
    try {
      return Number(readFileSync(killedMarker(this.heartbeatFile), 'utf8')) >= since;
    } catch {
      return false;
    }
  }

  /** Kills every task at once and stops taking work (invariant 4). */
  selfFence(reason: string): void {
    if (this.fenced) return;
    this.fenced = true;
    this.ctx.log.error({ reason }, 'self-fencing: killing every task');
    clearInterval(this.reportTimer);
    for (const g of this.groups.values()) g.killAll();
    void this.informer?.stop();
    this.onFencedHandler();
  }

  /**
   * A (re)listing of this node's bindings: the first is the executor's start; later ones
   * follow a compaction, and groups missing from them were removed meanwhile.
   */
  private onSync(items: Array<Versioned<Binding>>): void {
    const listed = new Set(items.map((kv) => kv.key));
    this.leftByPrevious ??= this.previousRan ? new Set(listed) : new Set();
    for (const g of [...this.groups.values()]) if (!listed.has(g.key)) this.forget(g, 'binding removed');
    for (const key of [...this.arriving.keys()]) if (!listed.has(key)) this.arriving.delete(key);
    for (const kv of items) void this.onBinding(kv, true);
  }

  private onEvent(ev: WatchEvent<Binding>): void {
    if (ev.type === 'delete') {
      this.arriving.delete(ev.key);
      const g = this.groups.get(ev.key);
      if (g) this.forget(g, 'binding removed');
      return;
    }
    if (ev.value)
      void this.onBinding({ key: ev.key, value: ev.value, modRevision: ev.modRevision, createRevision: ev.createRevision ?? ev.modRevision }, false);
  }

  private async onBinding(kv: Versioned<Binding>, atStart: boolean): Promise<void> {
    if (this.fenced) return;
    const known = this.groups.get(kv.key);
    if (known) {
      known.update(kv.value);
      return;
    }
    if (this.arriving.has(kv.key)) {
      this.arriving.set(kv.key, kv.value);
      return;
    }
    this.arriving.set(kv.key, kv.value);
    const first = kv.value;
    const statusKey = this.ctx.store.keys.group(first.jobId, first.start, first.attempt);
    const st = await this.readStatus(statusKey, kv.key);
    // The latest value of the binding (a cancel may have arrived while reading); gone if it was deleted.
    const b = this.arriving.get(kv.key);
    this.arriving.delete(kv.key);
    if (!st || !b || this.fenced || this.stopping || this.groups.has(kv.key) || !this.runnerContext) return;
    const g = new GroupRunner(this.runnerContext, {
      key: kv.key,
      node: this.config.nodeName,
      binding: b,
      status: st.value,
      statusKey,
      statusRevision: st.modRevision,
    });
    this.groups.set(kv.key, g);
    // Bound before the scheduler saw the drain: not started here, requeued at once.
    if (this.draining) g.handBack();
    else g.begin(atStart, this.leftByPrevious?.delete(kv.key) ?? false);
  }

  /** Reads a newly bound group's status, retrying failed reads while the binding stays. */
  private async readStatus(statusKey: string, bindingKey: string): Promise<Versioned<GroupStatus> | undefined> {
    for (let wait = 200; ; wait = Math.min(wait * 2, 5000)) {
      try {
        return (await getGroupStatuses(this.ctx.store, [statusKey]))[0];
      } catch (err) {
        this.ctx.log.warn({ err: (err as Error).message, binding: bindingKey }, "could not read a bound group's status; retrying");
      }
      await sleep(wait);
      if (this.fenced || !this.arriving.has(bindingKey)) return undefined;
    }
  }

  /** Drops a group that is no longer this executor's: its tasks die at once (`GroupRunner.forget`). */
  private forget(g: GroupRunner, why: string): void {
    this.groups.delete(g.key);
    g.forget(why);
  }

  /** Sends every changed group's status in batched transactions. */
  flush(): Promise<void> {
    return this.reports.flush();
  }

  /** A `task.retry` span in the job's trace (beside the attempt's `task.run`) for each task the control plane sent back to pending. */
  private traceRequeues(groups: GroupRunner[], requeued: ReportResult['requeued']): void {
    for (const r of requeued) {
      const g = groups.find((x) => x.binding.jobId === r.jobId && x.binding.start <= r.index && r.index < x.binding.end);
      const { span } = startSpan('task.retry', {
        parent: g?.binding.traceparent,
        attributes: {
          'batch.job.id': r.jobId,
          'batch.task.index': r.index,
          'batch.attempt': r.attempt - 1,
          'batch.attempt.next': r.attempt,
          'batch.retry.reason': r.reason,
          ...(r.notBefore ? { 'batch.retry.not_before': new Date(r.notBefore).toISOString() } : {}),
        },
      });
      span.end();
    }
  }
}

/** Resolves after `ms`; an unref'd wait does not keep the process alive by itself. */
function sleep(ms: number, opts: { unref?: boolean } = {}): Promise<void> {
  return new Promise((r) => {
    const t = setTimeout(r, ms);
    if (opts.unref) t.unref();
  });
}
