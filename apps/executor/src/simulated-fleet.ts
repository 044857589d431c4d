/**
 * Simulated executors: one process registers many simulated nodes under its one lease and
 * "runs" the tasks bound to them for a while without processes — for the local cluster at
 * scale and for end-to-end benchmarks. Attempts run on the `SimulatedBackend` (the same
 * `AttemptBackend` interface as processes and pods); reports go through the same `Reporter`
 * (batched, fenced `reportGroups`) as real executors.
 */
import { type Binding, type GroupStatus, type NodeRecord, parseResources, type TaskStatus, TERMINAL_TASK_STATES } from '@batchapi/api';
import { boundGroupStatus } from '@batchapi/lifecycle';
import { CLOCK, type Clock, runService, type RunningService, SERVICE, type ServiceConfig, type ServiceContext, systemClock } from '@batchapi/runtime';
import { getGroupStatuses, type Informer, registerNodes, type Versioned } from '@batchapi/store';
import { Inject, Injectable, type OnApplicationShutdown, Optional } from '@nestjs/common';
import type { StartedAttempt } from './attempt-backend';
import { classifyExit, unmarkedEnd } from './classify-exit';
import { endedTask, lostTasks, planGroupStart } from './group-events';
import { type ReportedGroup, Reporter } from './reporter';
import { SimulatedBackend } from './simulated-backend';

/** Options of a simulated fleet. */
export interface FleetOptions {
  /** Nodes to simulate. */
  nodes: number;
  /** Node name prefix: nodes are `<prefix>-00000`… @default "sim" */
  prefix?: string;
  /** Capacity of each node (quantities). @default {"cpu": "32", "memory": "128Gi"} */
  capacity?: Record<string, string | number>;
  /** How long a task "runs" unless its job sets `BATCH_SIM_SECONDS`, milliseconds. @default 1000 */
  taskMs?: number;
  /** Report batching interval, milliseconds. @default 100 */
  reportIntervalMs?: number;
}
export const FLEET_OPTIONS = Symbol('FleetOptions');

interface SimGroup extends ReportedGroup {
  /** Its attempts still running, by task index. */
  attempts: Map<number, StartedAttempt>;
}

@Injectable()
export class SimulatedFleet implements OnApplicationShutdown {
  private readonly groups = new Map<string, SimGroup>();
  /** Bindings whose status is being read, with their latest value (a delete drops them). */
  private readonly arriving = new Map<string, Binding>();
  private stopped = false;
  private informer?: Informer;
  private reportTimer?: NodeJS.Timeout;
  private readonly reports: Reporter<SimGroup>;
  /** Runs every node's attempts, as timers. */
  private readonly backend: SimulatedBackend;
  readonly names: string[];

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    @Inject(FLEET_OPTIONS) private readonly o: FleetOptions,
    /** What the registration, start and end times it reports come from. @default systemClock */
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {
    this.backend = new SimulatedBackend({ taskMs: o.taskMs });
    this.names = Array.from({ length: o.nodes }, (_, i) => `${o.prefix ?? 'sim'}-${String(i).padStart(5, '0')}`);
    let ready = false;
    ctx.readiness = { check: () => ready, reason: () => 'registering simulated nodes' };
    this.ready = () => {
      ready = true;
    };
    // A few nodes at a time: every report of an array job also updates its one job record.
    this.reports = new Reporter(
      ctx.store,
      () => ctx.lease.id,
      {
        groups: () => this.groups.values(),
        done: (g) => this.forget(g.key),
        refused: (g) => this.forget(g.key),
        stale: (groups) => this.settleStale(groups),
      },
      { lanes: 4 },
    );
  }
  private readonly ready: () => void;

  /** Registers every node under the process lease and starts watching their bindings. */
  async start(url: string): Promise<void> {
    const { store, lease } = this.ctx;
    const capacity = parseResources(this.o.capacity ?? { cpu: '32', memory: '128Gi' });
    const registeredAt = this.clock.now();
    await registerNodes(
      store,
      this.names.map((name): NodeRecord => ({ name, capacity, labels: { simulated: 'true' }, taints: [], gpus: [], url, registeredAt })),
      lease.id,
    );
    const mine = new Set(this.names);
    const prefix = store.keys.bindings();
    this.informer = await store.inform<Binding>(prefix, {
      // The first listing may hold groups a previous incarnation of these nodes started: their
      // statuses are read (a pristine binding's status may have moved on by its reports).
      onSync: (items) => {
        for (const kv of items) if (mine.has(kv.value.node)) void this.onBinding(kv.key, kv.value, undefined, true);
      },
      onEvent: (ev) => {
        if (ev.type === 'put' && ev.value && mine.has(ev.value.node))
          void this.onBinding(ev.key, ev.value, pristine(ev.value) ? ev.modRevision : undefined, false);
        else if (ev.type === 'delete') {
          this.arriving.delete(ev.key);
          this.forget(ev.key);
        }
      },
    });
    this.reportTimer = setInterval(() => void this.reports.flush(), this.o.reportIntervalMs ?? 100);
    this.ready();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.reportTimer);
    await this.informer?.stop();
    // Its attempts never end (a report could not go out anyway): as if its processes lived on.
    this.backend.close();
  }

  /**
   * A new binding starts its group. `boundAt` is the revision of the bind when the binding is
   * known unchanged since (its status was written beside it then, see `boundGroupStatus`), so
   * the status need not be read. A group of the first listing whose status shows it started
   * (`atStart`) was started by a previous incarnation of this fleet: its tasks end `Failed`
   * with `NodeLost` (requeued at the next attempt), as the process executor does.
   */
  private async onBinding(key: string, b: Binding, boundAt: string | undefined, atStart: boolean): Promise<void> {
    const known = this.groups.get(key);
    if (known) {
      if (b.cancelRequested || b.cancel?.length || b.preempt?.length) this.stopAsAsked(known, b);
      return;
    }
    let st: Versioned<GroupStatus> | undefined;
    if (boundAt)
      st = { key: this.ctx.store.keys.group(b.jobId, b.start, b.attempt), value: boundGroupStatus(b), modRevision: boundAt, createRevision: boundAt };
    else {
      if (this.arriving.has(key)) {
        this.arriving.set(key, b);
        return;
      }
      this.arriving.set(key, b);
      st = await this.readStatus(b, key);
      // The binding's latest value (a cancel may have come meanwhile); gone when it was deleted.
      const latest = this.arriving.get(key);
      this.arriving.delete(key);
      if (!latest) return;
      b = latest;
    }
    if (!st || this.groups.has(key) || this.stopped) return;
    const now = this.clock.now();
    // Only whether a predecessor started it is decided as the agent does; a simulated group then
    // starts every task and ends the cancelled or preempted ones at once (see `finish`).
    if (planGroupStart({ binding: b, tasks: st.value.tasks, atStart, leftOver: false }).kind === 'lost') {
      const g: SimGroup = {
        key,
        statusKey: this.ctx.store.keys.group(b.jobId, b.start, b.attempt),
        node: b.node,
        status: lostByPredecessor(st.value, now),
        statusRevision: st.modRevision,
        dirty: true,
        results: [],
        attempts: new Map(),
      };
      this.groups.set(key, g);
      return;
    }
    const g: SimGroup = {
      key,
      statusKey: this.ctx.store.keys.group(b.jobId, b.start, b.attempt),
      node: b.node,
      status: { ...st.value, tasks: st.value.tasks.map(() => ({ state: 'Running' as const, startedAt: now })) },
      statusRevision: st.modRevision,
      dirty: true,
      results: [],
      attempts: new Map(),
    };
    this.groups.set(key, g);
    for (let i = b.start; i < b.end; i++) this.startAttempt(g, b, i);
    if (b.cancelRequested || b.cancel?.length || b.preempt?.length) this.stopAsAsked(g, b);
  }

  /** Starts task `index`'s simulated attempt; when it runs to its end the task `Succeeded` (exit code 0). */
  private startAttempt(g: SimGroup, b: Binding, index: number): void {
    const attempt = this.backend.start(b, index);
    g.attempts.set(index, attempt);
    void attempt.exited.then((exit) => {
      g.attempts.delete(index);
      const k = index - g.status.start;
      const t = g.status.tasks[k];
      // Stopped by `finish`, `forget` or `settleStale`, which set the task's state themselves.
      if (this.groups.get(g.key) !== g || !t || TERMINAL_TASK_STATES.has(t.state)) return;
      const outcome = classifyExit(unmarkedEnd({ exitCode: exit.exitCode, signal: exit.signal }));
      const tasks = [...g.status.tasks];
      tasks[k] = endedTask(t, outcome, exit, this.clock.now());
      g.status = { ...g.status, tasks };
      g.dirty = true;
    });
  }

  /** Reads a bound group's status, retrying failed reads while the binding stays (a failed read must not drop the group). */
  private async readStatus(b: Binding, bindingKey: string): Promise<Versioned<GroupStatus> | undefined> {
    for (let wait = 200; ; wait = Math.min(wait * 2, 5000)) {
      try {
        return (await getGroupStatuses(this.ctx.store, [this.ctx.store.keys.group(b.jobId, b.start, b.attempt)]))[0];
      } catch (err) {
        this.ctx.log.warn({ err: (err as Error).message, binding: bindingKey }, "could not read a bound group's status; retrying");
      }
      await new Promise((r) => setTimeout(r, wait));
      if (this.stopped || !this.arriving.has(bindingKey)) return undefined;
    }
  }

  /**
   * Ends the group's tasks not ended yet — only the indices in `only` when it has any — as
   * `state`, at once, and stops their attempts (whose ends then change nothing).
   */
  /** A cancel ends every task still running; a cancel of tasks one by one, or a preemption, only the indices it names. */
  private stopAsAsked(g: SimGroup, b: Binding): void {
    if (b.cancelRequested) return this.finish(g, 'Cancelled');
    const cancel = new Set(b.cancel ?? []);
    if (cancel.size) this.finish(g, 'Cancelled', cancel);
    const preempt = new Set((b.preempt ?? []).filter((i) => !cancel.has(i)));
    if (preempt.size) this.finish(g, 'Preempted', preempt);
  }

  private finish(g: SimGroup, state: 'Cancelled' | 'Preempted', only?: Set<number>): void {
    const now = this.clock.now();
    const ending = (t: TaskStatus, i: number) => !TERMINAL_TASK_STATES.has(t.state) && !(only?.size && !only.has(i));
    const stopped = g.status.tasks.flatMap((t, k) => (ending(t, g.status.start + k) ? [g.status.start + k] : []));
    g.status = { ...g.status, tasks: g.status.tasks.map((t, k) => (ending(t, g.status.start + k) ? { ...t, state, finishedAt: now } : t)) };
    for (const i of stopped) g.attempts.get(i)?.stop(0);
    g.dirty = true;
  }

  private forget(key: string): void {
    const g = this.groups.get(key);
    this.groups.delete(key);
    if (g) for (const a of g.attempts.values()) a.kill();
  }

  /**
   * Reports neither accepted nor refused although etcd answered: a lost race on a busy record
   * (sent again as they are), or a status another writer changed while the binding stays. The
   * only such writer is a previous incarnation of these nodes (another lease): the group was
   * started by it, so its tasks end `Failed` with `NodeLost` on top of the status as it is now —
   * never left compared against a revision that cannot come back. A read that fails is tried
   * again after the next refusal.
   */
  private async settleStale(groups: SimGroup[]): Promise<void> {
    const now = await getGroupStatuses(
      this.ctx.store,
      groups.map((g) => g.statusKey),
    ).catch(() => undefined);
    if (!now) return;
    groups.forEach((g, k) => {
      const s = now[k];
      if (!s || s.modRevision === g.statusRevision || s.value.reporter?.lease === this.ctx.lease.id || this.groups.get(g.key) !== g) return;
      g.status = lostByPredecessor(s.value, this.clock.now());
      for (const a of g.attempts.values()) a.kill();
      g.statusRevision = s.modRevision;
      g.dirty = true;
      this.ctx.log.warn(
        { group: g.key, reporter: s.value.reporter?.lease },
        "a group's status was moved on by a previous incarnation of its node: its tasks end NodeLost",
      );
    });
  }
}

/** A group a previous incarnation of its node started: every task not ended is lost with that incarnation (requeued at the next attempt). */
function lostByPredecessor(status: GroupStatus, now: number): GroupStatus {
  const { reporter: _previous, ...rest } = status;
  return { ...rest, tasks: lostTasks(status.tasks, now) };
}

/** A binding as the scheduler wrote it: bindings change only to carry a cancel (of the group or of tasks) or a preemption. */
function pristine(b: Binding): boolean {
  return !b.cancelRequested && !b.cancel?.length && !b.preempt?.length && b.preemptRequestedAt === undefined;
}

/**
 * Starts a simulated fleet as a service (health, metrics, one lease).
 *
 * @param clock the clocks the fleet reads (tests pass a fake one). @default systemClock
 */
export async function startSimulatedFleet(
  o: FleetOptions,
  config?: Partial<ServiceConfig>,
  onLeaseLost?: () => void,
  clock: Clock = systemClock,
): Promise<RunningService & { fleet: SimulatedFleet }> {
  const svc = await runService({
    name: 'executor',
    config,
    onLeaseLost,
    providers: [SimulatedFleet, { provide: FLEET_OPTIONS, useValue: o }, { provide: CLOCK, useValue: clock }],
  });
  const fleet = svc.app.get(SimulatedFleet);
  await fleet.start(svc.url);
  return Object.assign(svc, { fleet });
}
