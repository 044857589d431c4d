/**
 * The workflow controller: a separately elected role (`leaders/workflows`) hosted by the
 * quota service. Every replica keeps a cache of unfinished workflows (an informer over
 * `workflows/`) and reads their step jobs' phases from `StepJobs`, which the admitter's informer
 * over every job keeps (one watch, not one per workflow); the leader turns each change into a plan (`advance`, pure)
 * and applies it with fenced writes: step jobs created only if absent under fixed ids (so a
 * controller killed mid-way never submits a step twice), cancels cascaded to running step
 * jobs, then the workflow record by compare-and-swap; usually (no cancels, every job absent)
 * the jobs and the record in one fenced transaction.
 */
import {
  type JobRecord,
  normalizeSubmit,
  parseSubmit,
  type SubmitJobRequest,
  type TaskResult,
  STEP_LABEL,
  type StepCached,
  type StepPhase,
  TERMINAL_WORKFLOW_PHASES,
  WORKFLOW_LABEL,
  type WorkflowRecord,
  type WorkflowStep,
  submitSchemaDigest,
} from '@batchapi/api';
import type { HistoryStore } from '@batchapi/history';
import { CLOCK, type Clock, HISTORY, type MemberRecord, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import {
  cancelJob,
  createStepJob,
  getJob,
  getWorkflow,
  GroupCommit,
  type Informer,
  type Leadership,
  listMembers,
  listResults,
  putWorkflowFenced,
  submitStepJobsFenced,
  type Versioned,
} from '@batchapi/store';
import {
  advance,
  fanOutItems,
  INPUTS_TOKEN_KEY_PURPOSE,
  inputsTokenExpiry,
  mintInputsToken,
  resolveInputs,
  resultsDigest,
  stepCacheKey,
  stepJobId,
} from '@batchapi/workflows';
import { startSpan } from '@batchapi/telemetry';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { Admitter } from './admitter';
import { ElectedLoop } from './elected-loop';
import { StepJobs } from './step-jobs';

// The labels every step job carries belong to the workflow vocabulary (admission validates steps with them).
export { STEP_LABEL, WORKFLOW_LABEL } from '@batchapi/api';

/** A finished step job and its results (`WorkflowController.outputOf`), read at most once per reconcile. */
type OutputOf = (jobId: string) => Promise<{ job: JobRecord; results: TaskResult[] } | undefined>;

/** How often the leader re-plans the workflows time can change (deadlines, cancels), in ms. */
const TICK_MS = 1000;
/**
 * How often the tick re-plans every workflow, changed or not, in ms: a net under the changes that
 * wake a workflow (its record, its step jobs' ends, a retry's timer), which are what plans depend on.
 * Tests set another (`WORKFLOW_FULL_SWEEP_MS`).
 */
export const DEFAULT_FULL_SWEEP_MS = 15_000;
/** Injection token of the full sweep's period (`DEFAULT_FULL_SWEEP_MS`), in milliseconds. */
export const WORKFLOW_FULL_SWEEP_MS = Symbol('WorkflowFullSweepMs');
/**
 * Workflows the leader reconciles at once. A reconcile mostly waits on etcd (a create per step
 * to submit, then the record's CAS: a few ms each, hundreds on a loaded machine); one at a time,
 * when the steps of 200 runs end together the last run's next step waited ~7 s to be created
 * (`bench pipelines`: p50 6.8 s from inputs ready to job created). Never the same workflow twice
 * at once.
 */
export const RECONCILE_CONCURRENCY = 32;

/** How the step cache (memoized steps, `cache: true`; kept in the history store) is bounded. */
export interface StepCacheTuning {
  /** An entry is found for this long after its step succeeded, in milliseconds (`BATCH_STEP_CACHE_TTL`, seconds). @default 604800000 (7 days) */
  ttlMs: number;
  /** Most entries one tenant keeps; past it the oldest are evicted (`BATCH_STEP_CACHE_MAX_ENTRIES`). @default 10000 */
  maxEntries: number;
}
export const DEFAULT_STEP_CACHE: StepCacheTuning = { ttlMs: 7 * 86_400_000, maxEntries: 10_000 };
export const STEP_CACHE_TUNING = Symbol('StepCacheTuning');
/**
 * The API address a step job reads its inputs from: its `BATCH_API`, unless the step's env sets
 * one (`BATCH_STEP_API_URL`). @default the `url` of a live admission replica's member record
 * (right for `batch dev`, where tasks run on this machine; a Kubernetes deployment sets the
 * admission Service's address)
 */
export const STEP_API_URL = Symbol('StepApiUrl');
/** No API address for a step that reads inputs: no `BATCH_STEP_API_URL`, and no admission replica registered yet. */
export class StepApiUnknownError extends Error {
  constructor() {
    super('no API address for a step that reads its inputs: set BATCH_STEP_API_URL, or wait for an admission replica to register');
    this.name = 'StepApiUnknownError';
  }
}

/** While no API address is known, how long before a waiting workflow (and the lookup) is tried again, in milliseconds. */
const API_UNKNOWN_RETRY_MS = 1000;
/** How long a looked-up admission URL is used before it is looked up again, in milliseconds. */
const API_URL_TTL_MS = 30_000;

/**
 * Whether the tick re-plans `wf` at `now` (epoch ms) between full sweeps: a plan (`advance`) reads
 * time only for the deadline, so only a workflow past its deadline — or with a cancel asked, whose
 * cascade a failed cancel may have left unfinished — can plan something new without a change that
 * wakes it. Pure.
 */
export function replannedByTick(wf: Pick<WorkflowRecord, 'deadlineAt' | 'cancelRequestedAt'>, now: number): boolean {
  return (wf.deadlineAt !== undefined && now >= wf.deadlineAt) || wf.cancelRequestedAt !== undefined;
}

/**
 * The next workflow a free worker reconciles: the first changed one (`dirty`, in the order of their
 * changes) that no worker holds, else the first of the tick's (`swept`) — the tick's first when
 * `sweptFirst` (its re-plans have waited a whole tick: a deadline is enforced only by a re-plan, so
 * a steady stream of changes must not hold them back for ever). The one taken leaves both sets
 * (one reconcile serves a change and the tick alike) and joins `held`. Undefined when every waiting
 * workflow is held. Pure but for the three sets it updates.
 */
export function takeNextWorkflow(dirty: Set<string>, swept: Set<string>, held: Set<string>, sweptFirst = false): string | undefined {
  for (const set of sweptFirst ? [swept, dirty] : [dirty, swept])
    for (const id of set)
      if (!held.has(id)) {
        dirty.delete(id);
        swept.delete(id);
        held.add(id);
        return id;
      }
  return undefined;
}

/**
 * Whether `next`, the record a reconcile built from `wf`, equals it: compared on the fields a
 * reconcile sets — the record's phase and `finishedAt`, and each step's phase, job, cache key
 * and cached result — instead of serializing both records (twice a reconcile, the largest part
 * of its own CPU with 1,000 runs). Pure.
 */
export function planWritesNothing(wf: WorkflowRecord, next: WorkflowRecord): boolean {
  if (next.phase !== wf.phase || next.finishedAt !== wf.finishedAt || next.steps.length !== wf.steps.length) return false;
  return next.steps.every((s, i) => {
    const was = wf.steps[i];
    return (
      s.phase === was.phase &&
      s.jobId === was.jobId &&
      s.cacheKey === was.cacheKey &&
      (s.cached === was.cached || JSON.stringify(s.cached) === JSON.stringify(was.cached))
    );
  });
}

@Injectable()
export class WorkflowController implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly workflows = new Map<string, Versioned<WorkflowRecord>>();
  /** Workflows a change concerns (a step job's phase, the record, a retry): reconciled first. */
  private readonly dirty = new Set<string>();
  /**
   * Workflows the tick re-plans without a change (a deadline may have passed): taken only when no
   * change waits, so with 1,000 runs a step that just ended does not queue behind 1,000 re-plans.
   */
  private readonly swept = new Set<string>();
  /**
   * The reconciles' usual writes (step jobs and record, or the record alone), sent together while
   * others are in flight: in the burst of 1,000 runs, several workflows' writes to a transaction.
   */
  private readonly commits: GroupCommit;
  private informers: Informer[] = [];
  private readonly elected: ElectedLoop;
  /** Stops hearing of step jobs' changes. */
  private unsubscribe?: () => void;
  private readonly m: { submitted: Counter; finished: Counter; cache: Counter };
  private readonly cacheTuning: StepCacheTuning;
  /** What inputs tokens are signed with: derived from the service credential, which admission holds too. */
  private readonly inputsTokenKey: Buffer;

  constructor(
    @Inject(SERVICE) private readonly ctx: ServiceContext,
    /** What step deadlines and record times (wall) and the re-plan tick (monotonic) are read from. @default systemClock */
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
    /** Where the jobs of finished runs are once archived: a retry's reused steps are read from there. @default none: only etcd */
    @Optional() @Inject(HISTORY) private readonly history?: HistoryStore,
    /** The step cache's bounds. @default DEFAULT_STEP_CACHE */
    @Optional() @Inject(STEP_CACHE_TUNING) cacheTuning?: Partial<StepCacheTuning>,
    /** See `STEP_API_URL`. @default an admission replica's member record */
    @Optional() @Inject(STEP_API_URL) private readonly stepApiUrl?: string,
    /** The step jobs' phases, kept from the admitter's jobs informer (one watch over every job). */
    @Optional() private readonly stepJobs: StepJobs = new StepJobs(),
    /** Decides each step job as it is created (`Admitter.admitAtCreate`). @default none: step jobs are created `Submitted` and wait for the admitter's pass */
    @Optional() private readonly admitter?: Admitter,
    /** How often the tick re-plans every workflow, in milliseconds. @default DEFAULT_FULL_SWEEP_MS (15,000) */
    @Optional() @Inject(WORKFLOW_FULL_SWEEP_MS) private readonly fullSweepMs: number = DEFAULT_FULL_SWEEP_MS,
  ) {
    this.cacheTuning = { ...DEFAULT_STEP_CACHE, ...cacheTuning };
    this.commits = new GroupCommit(ctx.store);
    this.inputsTokenKey = ctx.credential.derive(INPUTS_TOKEN_KEY_PURPOSE);
    const registers = [ctx.registry];
    const isLeader = new Gauge({ name: 'batch_workflow_controller_is_leader', help: '1 while this replica holds the fenced workflows leader key', registers });
    this.elected = new ElectedLoop(ctx, { role: 'workflows', title: 'workflow controller', isLeader });
    this.m = {
      submitted: new Counter({ name: 'batch_workflow_steps_submitted_total', help: 'Workflow steps submitted as jobs', registers }),
      finished: new Counter({
        name: 'batch_workflows_finished_total',
        help: 'Workflows that reached a terminal phase, by phase',
        labelNames: ['phase'],
        registers,
      }),
      cache: new Counter({
        name: 'batch_workflow_step_cache_total',
        help: 'Memoized (cache: true) steps about to run, by outcome: hit (an earlier job reused, nothing run) or miss (run)',
        labelNames: ['outcome'],
        registers,
      }),
    };
  }

  async onApplicationBootstrap(): Promise<void> {
    const { store } = this.ctx;
    this.unsubscribe = this.stepJobs.onChange((wf) => {
      if (this.workflows.has(wf)) this.kick(wf);
    });
    this.informers.push(
      await store.inform<WorkflowRecord>(store.keys.workflows(), {
        onSync: (items) => {
          const listed = new Set(items.map((kv) => kv.value.id));
          for (const id of [...this.workflows.keys()]) if (!listed.has(id)) this.forgetWorkflow(id);
          for (const kv of items) this.onWorkflow(kv);
        },
        onEvent: (ev) => {
          const id = store.keys.workflowIdOf(ev.key);
          if (id === undefined) return;
          if (ev.type === 'delete') {
            this.forgetWorkflow(id);
            return;
          }
          // Most events are this controller's own writes, already in the cache: told apart by
          // revision before the record (~5 KB at 20 steps) is decoded.
          const known = this.workflows.get(id);
          if (known && BigInt(known.modRevision) >= BigInt(ev.modRevision)) return;
          if (!ev.value) {
            this.forgetWorkflow(id);
            return;
          }
          this.onWorkflow({ key: ev.key, value: ev.value, modRevision: ev.modRevision, createRevision: ev.createRevision ?? ev.modRevision });
        },
      }),
    );
    this.elected.start((l) => this.reconcileWhileLeader(l));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.elected.stop();
    await Promise.all(this.informers.map((i) => i.stop()));
    this.unsubscribe?.();
  }

  /** The term this replica holds, or held last. */
  get leadership(): Leadership | undefined {
    return this.elected.leadership;
  }

  private onWorkflow(kv: Versioned<WorkflowRecord>): void {
    const id = kv.value.id;
    const known = this.workflows.get(id);
    // Our own write updated the cache already (and its event, at the same revision, changes nothing);
    // an older event must not undo it.
    if (known && BigInt(known.modRevision) >= BigInt(kv.modRevision)) return;
    if (TERMINAL_WORKFLOW_PHASES.has(kv.value.phase)) {
      this.forgetWorkflow(id);
      return;
    }
    this.workflows.set(id, kv);
    this.kick(id);
  }

  /** Drops a finished (or deleted) workflow. */
  private forgetWorkflow(id: string): void {
    this.workflows.delete(id);
    this.swept.delete(id);
  }

  private kick(id: string): void {
    this.dirty.add(id);
    this.elected.wakeOne();
  }

  /**
   * The leader's loop: `RECONCILE_CONCURRENCY` workers each take the next dirty workflow no other
   * worker holds, reconcile it, and take the next; a worker with nothing to take waits for a change
   * or the tick. No pass waits for its slowest workflow before the next change is looked at.
   */
  private async reconcileWhileLeader(leader: Leadership): Promise<void> {
    // The tick is a wait (monotonic: a step of the wall clock must not skip or stall it); the first pass ticks at once.
    let lastTick = -Infinity;
    let lastFullSweep = -Infinity;
    const held = new Set<string>();
    let deposed = false;
    // When the tick last found its previous re-plans all taken (monotonic ms): once they have waited a
    // whole tick, they go before changes until they are all taken.
    let sweptSince = this.clock.monotonic();
    const take = (): string | undefined => {
      if (this.swept.size === 0) sweptSince = this.clock.monotonic();
      return takeNextWorkflow(this.dirty, this.swept, held, this.clock.monotonic() - sweptSince >= TICK_MS);
    };
    const worker = async (): Promise<void> => {
      while (!deposed && this.elected.leading(leader)) {
        const mono = this.clock.monotonic();
        if (mono - lastTick >= TICK_MS) {
          lastTick = mono;
          // Every workflow at a term's first tick and every `fullSweepMs`; in between only those time
          // can change (with 1,000 runs, 1,000 re-plans a second that decided nothing).
          const full = mono - lastFullSweep >= this.fullSweepMs;
          if (full) lastFullSweep = mono;
          const now = this.clock.now();
          for (const [id, kv] of this.workflows) if (!this.dirty.has(id) && (full || replannedByTick(kv.value, now))) this.swept.add(id);
        }
        const id = take();
        if (id === undefined) {
          // Nothing to take: wait for a change or the tick instead of spinning.
          await this.elected.pause(Math.max(1, lastTick + TICK_MS - this.clock.monotonic()));
          continue;
        }
        try {
          await this.reconcile(leader, id);
        } catch (err) {
          if (err instanceof StepApiUnknownError) {
            // not etcd trouble: the workflow waits for an admission replica (a second), without asking etcd about the term
            setTimeout(() => this.kick(id), API_UNKNOWN_RETRY_MS).unref();
            continue;
          }
          if (!(await this.elected.failed(leader, err, { workflow: id }, 'workflow reconcile'))) deposed = true;
          // etcd trouble: this workflow again in 200 ms, not at once
          setTimeout(() => this.kick(id), 200).unref();
        } finally {
          held.delete(id);
        }
      }
    };
    await Promise.all(Array.from({ length: RECONCILE_CONCURRENCY }, worker));
  }

  /** Plans one workflow and applies the plan with fenced writes. */
  private async reconcile(leader: Leadership, id: string): Promise<void> {
    const cur = this.workflows.get(id);
    if (!cur) return;
    const wf = cur.value;
    const now = this.clock.now();
    const plan = advance(wf, this.stepJobs.byId, now);
    if (!plan.changed) return;
    const fence = leader.fence();
    const phases: Record<string, StepPhase> = { ...plan.phases };
    const jobIds = new Map<string, string>();
    const cached = new Map<string, StepCached>();
    const cacheKeys = new Map<string, string>();
    /** The step jobs to create, each with its span (ended once the job is written or found). */
    const toCreate: Array<{ job: JobRecord; span: ReturnType<typeof startSpan>['span'] }> = [];
    await this.recordSucceededInCache(wf, phases, now);
    // A step job's results read once per pass, however many steps ask (a memoized fan-out asks twice: for its items and its cache key).
    const outputs = new Map<string, ReturnType<WorkflowController['outputOf']>>();
    const outputOf: OutputOf = (jobId) => {
      let o = outputs.get(jobId);
      if (!o) outputs.set(jobId, (o = this.outputOf(jobId)));
      return o;
    };
    for (const name of plan.submit) {
      const i = wf.steps.findIndex((s) => s.name === name);
      const made = await this.stepJob(wf, i, phases, now, outputOf);
      if (made === 'empty') {
        phases[name] = 'Succeeded';
        continue;
      }
      if (made === 'invalid') {
        phases[name] = 'Failed';
        continue;
      }
      if (wf.steps[i].cache) {
        const memo = await this.lookUpCache(wf, i, made, phases, now, outputOf);
        if (memo?.hit) {
          // not run: the step reuses the earlier job (its results), as a retry's reused step does; still a span of the run's trace
          startSpan('workflow.step', {
            parent: wf.traceparent,
            attributes: { 'batch.workflow.id': wf.id, 'batch.workflow.step': name, 'batch.step.cached': true, 'batch.job.id': memo.hit.jobId ?? '' },
          }).span.end();
          phases[name] = 'Succeeded';
          cached.set(name, memo.hit);
          if (memo.hit.jobId) jobIds.set(name, memo.hit.jobId);
          continue;
        }
        if (memo) cacheKeys.set(name, memo.key);
      }
      // The step is a span of the workflow's trace; the step job's own spans (admit, bind, runs) hang under it.
      const { span, traceparent } = startSpan('workflow.step', {
        parent: wf.traceparent,
        attributes: {
          'batch.workflow.id': wf.id,
          'batch.workflow.step': name,
          'batch.job.id': made.id,
          'batch.workflow.critical_path': wf.steps[i].criticalPath,
        },
      });
      if (traceparent) made.traceparent = traceparent;
      // admitted in its create when the admitter's caches admit it: no pass of the admitter to wait for
      toCreate.push({ job: this.admitter?.admitAtCreate(made, now) ?? made, span });
      // created now or found (an earlier controller's): the step's job either way
      jobIds.set(name, made.id);
    }
    // An empty fan-out or a step that could not be made changes what follows: plan again next pass.
    const replan = plan.submit.some((n) => phases[n] !== 'Running');
    const steps: WorkflowStep[] = wf.steps.map((s) => ({
      ...s,
      phase: phases[s.name],
      ...(jobIds.has(s.name) ? { jobId: jobIds.get(s.name) } : {}),
      ...(cached.has(s.name) ? { cached: cached.get(s.name) } : {}),
      ...(cacheKeys.has(s.name) ? { cacheKey: cacheKeys.get(s.name) } : {}),
    }));
    const next: WorkflowRecord = {
      ...wf,
      steps,
      ...(replan ? {} : { phase: plan.phase }),
      ...(!replan && plan.finishedAt !== undefined ? { finishedAt: plan.finishedAt } : {}),
    };
    const unchanged = planWritesNothing(wf, next);
    if (toCreate.length > 0 && plan.cancel.length === 0 && !unchanged) {
      // The usual case: every job to create is absent, so the jobs and the record go in one fenced
      // transaction. Anything else (a job a crashed controller created, a record changed by a cancel,
      // a lost fence, too large) wrote nothing: the one-at-a-time path below tells those apart.
      const rev = await submitStepJobsFenced(
        this.ctx.store,
        fence,
        toCreate.map((c) => c.job),
        cur,
        next,
        undefined,
        this.commits.txn,
      );
      if (rev) {
        for (const c of toCreate) {
          c.span.setAttribute('batch.step.created', true);
          await this.admitter?.admittedAtCreate(c.job);
          c.span.end();
          this.m.submitted.inc();
        }
        this.recorded(id, cur, next, rev, replan);
        return;
      }
      // Nothing was written. A record changed meanwhile (a cancel) is planned again from a fresh
      // read, creating nothing: a job made from this stale plan would run on after the cancel, which
      // cancels only the step jobs its record names.
      const fresh = await getWorkflow(this.ctx.store, id);
      if (fresh?.modRevision !== cur.modRevision) {
        for (const c of toCreate) c.span.end();
        if (fresh) this.onWorkflow(fresh);
        this.dirty.add(id);
        return;
      }
    }
    for (const c of toCreate) {
      const outcome = await createStepJob(this.ctx.store, fence, c.job);
      c.span.setAttribute('batch.step.created', outcome === 'created');
      c.span.end();
      if (outcome === 'fenced') {
        leader.depose();
        return;
      }
      if (outcome === 'created') {
        await this.admitter?.admittedAtCreate(c.job);
        this.m.submitted.inc();
      }
    }
    for (const name of plan.cancel) {
      const jobId = wf.steps.find((s) => s.name === name)?.jobId;
      if (jobId) await cancelJob(this.ctx.store, jobId, now, fence);
    }
    if (unchanged) return;
    const rev = await putWorkflowFenced(this.ctx.store, fence, cur, next, this.commits.txn);
    if (!rev) {
      // The record changed (a cancel) or the fence is gone: re-read and decide again.
      if (!(await leader.verify())) return;
      const fresh = await getWorkflow(this.ctx.store, id);
      if (fresh) this.onWorkflow(fresh);
      this.dirty.add(id);
      return;
    }
    this.recorded(id, cur, next, rev, replan);
  }

  /** After the record's write (revision `rev`): the cache holds `next`; a finished workflow is forgotten. */
  private recorded(id: string, cur: Versioned<WorkflowRecord>, next: WorkflowRecord, rev: string, replan: boolean): void {
    if (replan) this.dirty.add(id);
    if (TERMINAL_WORKFLOW_PHASES.has(next.phase)) {
      this.m.finished.inc({ phase: next.phase });
      this.workflows.set(id, { ...cur, value: next, modRevision: rev });
      this.forgetWorkflow(id);
    } else this.workflows.set(id, { ...cur, value: next, modRevision: rev });
  }

  /**
   * The cache key of memoized step `i` about to run as `job`, and the earlier step it may reuse:
   * an entry of the tenant with that key, unexpired, whose job history or etcd still has as
   * `Succeeded`. Undefined without a history store (no cache) or when a dependency's results
   * cannot be read (the step runs). When the step's own job exists already (this controller created
   * it before a crash), the key is kept but nothing is looked up: that job is adopted, so a step
   * never both runs and reuses. A history store that fails is a miss (logged): the step runs.
   */
  private async lookUpCache(
    wf: WorkflowRecord,
    i: number,
    job: JobRecord,
    phases: Readonly<Record<string, StepPhase>>,
    now: number,
    outputOf: OutputOf,
  ): Promise<{ key: string; hit?: StepCached } | undefined> {
    if (!this.history) return undefined;
    const step = wf.steps[i];
    const inputs: Record<string, { phase: StepPhase; results: string }> = {};
    for (const name of step.dependsOn) {
      const dep = wf.steps.find((s) => s.name === name)!;
      const output = dep.jobId ? await outputOf(dep.jobId) : undefined;
      if (dep.jobId && !output) return undefined;
      inputs[name] = { phase: phases[name], results: resultsDigest(output?.results ?? []) };
    }
    const key = stepCacheKey({ spec: job.spec, inputs, ...(step.cacheVersion !== undefined ? { cacheVersion: step.cacheVersion } : {}) });
    if (await getJob(this.ctx.store, job.id)) return { key };
    try {
      const entry = await this.history.findStepCache(wf.tenant, key, now - this.cacheTuning.ttlMs);
      if (entry && (await this.finishedJob(entry.jobId))?.phase === 'Succeeded') {
        this.m.cache.inc({ outcome: 'hit' });
        return { key, hit: { reason: 'cache', workflowId: entry.workflowId, jobId: entry.jobId } };
      }
    } catch (err) {
      this.ctx.log.warn({ workflow: wf.id, step: step.name, err: (err as Error).message }, 'step cache lookup failed; the step runs');
    }
    this.m.cache.inc({ outcome: 'miss' });
    return { key };
  }

  /**
   * Records in the step cache each memoized step of `wf` whose job has just succeeded (`Running`
   * in the record, `Succeeded` in this plan), bounded as `StepCacheTuning` says. Before the record's
   * write: a refused write plans again and records again, which the cache takes as one entry. A
   * history store that fails loses the entry (logged), never the workflow's progress.
   */
  private async recordSucceededInCache(wf: WorkflowRecord, phases: Readonly<Record<string, StepPhase>>, now: number): Promise<void> {
    if (!this.history) return;
    for (const s of wf.steps) {
      if (!s.cacheKey || !s.jobId || s.cached || s.phase !== 'Running' || phases[s.name] !== 'Succeeded') continue;
      const entry = { tenant: wf.tenant, key: s.cacheKey, jobId: s.jobId, workflowId: wf.id, step: s.name, createdAt: now };
      try {
        await this.history.recordStepCache(entry, { notBefore: now - this.cacheTuning.ttlMs, maxEntries: this.cacheTuning.maxEntries });
      } catch (err) {
        this.ctx.log.warn({ workflow: wf.id, step: s.name, err: (err as Error).message }, 'could not record a step in the step cache');
      }
    }
  }

  /** A finished job, from etcd or, once archived, from history; undefined when neither has it (retention). */
  private async finishedJob(jobId: string): Promise<JobRecord | undefined> {
    return (await getJob(this.ctx.store, jobId))?.value ?? (await this.history?.getJob(jobId));
  }

  /**
   * A finished step job and its results, from etcd or, once archived, from history (a step a
   * retry reuses belongs to an earlier run, which the archiver may move at any time). The results
   * are read before the job: the archiver removes a job with its results in one transaction, after
   * history holds them, so a job still in etcd after its results were read had them all, and a job
   * gone from etcd is in history. Undefined when neither has it.
   */
  private async outputOf(jobId: string): Promise<{ job: JobRecord; results: TaskResult[] } | undefined> {
    const results = await listResults(this.ctx.store, jobId);
    const live = await getJob(this.ctx.store, jobId);
    if (live) return { job: live.value, results };
    const job = await this.history?.getJob(jobId);
    if (!job || !this.history) return undefined;
    const archived: TaskResult[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.history.listResults(jobId, { limit: 1000, ...(cursor ? { cursor } : {}) });
      archived.push(...page.results);
      cursor = page.nextCursor;
    } while (cursor);
    return { job, results: archived };
  }

  /**
   * `STEP_API_URL`, else a live admission replica's URL, looked up at most every `API_URL_TTL_MS`;
   * while no replica is registered (all restarting, or their leases lapsed on a stalled machine)
   * the last one seen. With none ever seen it throws `StepApiUnknownError`: the reconcile is tried
   * again shortly, rather than a step made without the address it reads its inputs from.
   */
  private async apiUrl(): Promise<string> {
    if (this.stepApiUrl) return this.stepApiUrl;
    const at = this.clock.monotonic();
    if (this.apiUrlSeen && at - this.apiUrlSeen.at < API_URL_TTL_MS) return this.apiUrlSeen.url;
    // none registered a moment ago: every waiting workflow does not ask etcd again at once
    if (!this.apiUrlSeen && at - this.apiUrlMissedAt < API_UNKNOWN_RETRY_MS) throw new StepApiUnknownError();
    const members = await listMembers<MemberRecord>(this.ctx.store, 'admission');
    const url = members.map((m) => m.url).find((u): u is string => !!u);
    if (url) this.apiUrlSeen = { url, at };
    if (this.apiUrlSeen) return this.apiUrlSeen.url;
    this.apiUrlMissedAt = at;
    if (!this.apiUrlWarned) {
      this.apiUrlWarned = true;
      this.ctx.log.warn('steps that read inputs wait: no BATCH_STEP_API_URL and no admission replica registered');
    }
    throw new StepApiUnknownError();
  }
  private apiUrlSeen?: { url: string; at: number };
  private apiUrlMissedAt = Number.NEGATIVE_INFINITY;
  private apiUrlWarned = false;

  /**
   * The job of step `i`: its body with the workflow's queue, labels naming the workflow and
   * step, the fan-out items, and for a step with `inputs` the jobs holding them (`BATCH_INPUTS`)
   * with a token that only reads them (`BATCH_INPUTS_TOKEN`, over any the step's env sets); `empty`
   * when a fan-out has nothing to map over, `invalid` when the items make an invalid job (e.g. over 1 MiB).
   */
  private async stepJob(
    wf: WorkflowRecord,
    i: number,
    phases: Readonly<Record<string, StepPhase>>,
    now: number,
    outputOf: OutputOf,
  ): Promise<JobRecord | 'empty' | 'invalid'> {
    const step = wf.steps[i];
    const body: Record<string, unknown> = {
      ...step.job,
      queue: step.job.queue ?? wf.queue,
      labels: { ...(step.job.labels as Record<string, string> | undefined), [WORKFLOW_LABEL]: wf.id, [STEP_LABEL]: step.name },
    };
    if (step.inputs?.length) {
      const token = mintInputsToken(this.inputsTokenKey, { tenant: wf.tenant, workflowId: wf.id, expiresAt: inputsTokenExpiry(wf, now) });
      const env = step.job.env as Record<string, string> | undefined;
      const api = env?.BATCH_API ? undefined : await this.apiUrl();
      body.env = {
        ...(api ? { BATCH_API: api } : {}),
        ...env,
        BATCH_INPUTS: JSON.stringify(resolveInputs(wf.steps, i, phases)),
        BATCH_INPUTS_TOKEN: token,
      };
    }
    if (step.map && 'items' in step.map) body.items = step.map.items;
    if (step.map && 'fromStep' in step.map) {
      const from = step.map.fromStep;
      const source = wf.steps.find((s) => s.name === from);
      const output = source?.jobId ? await outputOf(source.jobId) : undefined;
      // a reused step's job (an earlier run's) may be gone from etcd and history alike (retention): the step cannot get its items
      if (source?.jobId && !output) return 'invalid';
      const results = output?.results ?? [];
      // a result kept in the blob store (over 64 KiB) is not inlined into a job's items: the fan-out is refused
      if (results.some((r) => r.ref)) return 'invalid';
      const items = output ? fanOutItems(output.job.spec.tasks, results, source?.map !== undefined) : [];
      if (items.length === 0) return 'empty';
      body.items = items;
    }
    if (body.items) delete body.tasks;
    try {
      // A step with no inputs and no items from another step is submitted as the workflow's submit
      // validated it (readWorkflowBody: queue, labels and items as here), so only the schema is
      // skipped (most of the time of a check); its bounds are checked again. Only when this code's
      // schema did (`stepsValidatedBy`): a retry's or a schedule's steps, or a run made under
      // another schema, are read against the whole schema, as is anything added here (inputs, items).
      const validated = wf.stepsValidatedBy === submitSchemaDigest() && !step.inputs?.length && !(step.map && 'fromStep' in step.map);
      const { spec, queue } = validated ? normalizeSubmit(body as SubmitJobRequest) : parseSubmit(body);
      return {
        id: stepJobId(wf.id, i),
        tenant: wf.tenant,
        queue,
        spec,
        phase: 'Submitted',
        pending: [{ start: 0, end: spec.tasks, attempt: 1 }],
        counts: { succeeded: 0, failed: 0, cancelled: 0 },
        ...(wf.traceparent ? { traceparent: wf.traceparent } : {}),
        createdAt: now,
      };
    } catch (err) {
      this.ctx.log.warn({ workflow: wf.id, step: step.name, err: (err as Error).message }, 'step job is invalid; the step fails');
      return 'invalid';
    }
  }
}
