/**
 * The report loop of an executor (real or simulated): every changed group's status goes out in
 * batched, fenced `reportGroups` calls, one batch per node, and each outcome is settled on the
 * group — accepted (adopt the revision and the `released` marks), refused (no longer ours), or
 * neither (sent again, with the results it carried).
 */
import { type GroupStatus, type TaskResult, TERMINAL_TASK_STATES } from '@batchapi/api';
import { type EtcdStore, reportGroups, type ReportResult } from '@batchapi/store';

/** A group an executor runs and reports. */
export interface ReportedGroup {
  /** Key of its binding. */
  readonly key: string;
  /** Key of its status, as `reportGroups` answers by. */
  readonly statusKey: string;
  /** The node it is bound to (a report is fenced by that node's key). */
  readonly node: string;
  status: GroupStatus;
  /** Mod revision of its status key this executor last saw or wrote. */
  statusRevision: string;
  /** Its status changed since the last accepted report. */
  dirty: boolean;
  /** Results of ended tasks not yet in an accepted report. */
  results: TaskResult[];
}

/** What the owner of the groups does with each outcome. */
export interface ReportHooks<G extends ReportedGroup> {
  /** The groups to report from (only dirty ones are sent). */
  groups(): Iterable<G>;
  /** While true no report goes out (the executor fenced itself). @default never */
  halted?(): boolean;
  /**
   * etcd answered a batch: return false to settle none of its groups (the executor must
   * self-fence). Called before any group is settled. @default settle
   */
  answered?(res: ReportResult, groups: G[]): boolean;
  /** Accepted with every task ended: the group is done and no longer tracked. */
  done(g: G): void;
  /** Refused: another writer ended the group and its binding is gone. */
  refused(g: G): void;
  /** Neither accepted nor refused although etcd answered (already marked to be sent again). @default none */
  stale?(groups: G[]): Promise<void>;
  /** The batch's outcome could not be settled (every group is sent again). @default none */
  failed?(err: Error): void;
}

/** How a reporter sends. */
export interface ReporterOptions {
  /** Batches (nodes) reported at once: every report of an array job also updates its one job record. @default 1 */
  lanes?: number;
  /** The time stamped on reports, in epoch milliseconds. @default Date.now */
  now?: () => number;
}

/** Sends changed groups' statuses, one call of `reportGroups` per node, and settles the outcomes. */
export class Reporter<G extends ReportedGroup> {
  private flushing?: Promise<void>;

  constructor(
    private readonly store: EtcdStore,
    private readonly leaseId: () => string,
    private readonly hooks: ReportHooks<G>,
    private readonly o: ReporterOptions = {},
  ) {}

  /** Sends every changed group's status; while a flush is under way, that one is returned. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = this.sendAll().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** The flush under way, if any. */
  get inFlight(): Promise<void> | undefined {
    return this.flushing;
  }

  private async sendAll(): Promise<void> {
    const byNode = new Map<string, G[]>();
    for (const g of this.hooks.groups()) if (g.dirty) byNode.set(g.node, [...(byNode.get(g.node) ?? []), g]);
    if (byNode.size === 0 || this.hooks.halted?.()) return;
    const todo = [...byNode];
    const lane = async () => {
      for (let next = todo.shift(); next; next = todo.shift()) await this.report(next[0], next[1]);
    };
    await Promise.all(Array.from({ length: this.o.lanes ?? 1 }, lane));
  }

  /** Reports one node's changed groups; fenced by the node key, which lives on this process's lease. */
  private async report(node: string, groups: G[]): Promise<void> {
    for (const g of groups) g.dirty = false;
    const sent = new Map(groups.map((g) => [g, g.results]));
    for (const g of groups) g.results = [];
    const again = (g: G) => {
      g.dirty = true;
      g.results = [...(sent.get(g) ?? []), ...g.results];
    };
    const stale: G[] = [];
    try {
      const res = await reportGroups(
        this.store,
        node,
        this.leaseId(),
        groups.map((g) => ({ status: g.status, statusRevision: g.statusRevision, ...(sent.get(g)!.length ? { results: sent.get(g) } : {}) })),
        (this.o.now ?? Date.now)(),
      );
      if (this.hooks.answered && !this.hooks.answered(res, groups)) return;
      for (const g of groups) {
        const rev = res.accepted.get(g.statusKey);
        if (rev) {
          g.statusRevision = rev;
          // Adopt the `released` marks, keeping any change made while the report was in flight.
          const written = res.written.get(g.statusKey)!;
          g.status = { ...g.status, tasks: g.status.tasks.map((t, k) => (written.tasks[k]?.released ? { ...t, released: true } : t)) };
          if (g.status.tasks.every((t) => TERMINAL_TASK_STATES.has(t.state)) && !g.dirty) this.hooks.done(g);
        } else if (res.refused.includes(g.statusKey)) this.hooks.refused(g);
        // Lost a race or its answer was lost: again next flush, which recognises a report of this
        // process that did land by its token (rebased, never refused).
        else {
          again(g);
          stale.push(g);
        }
      }
    } catch (err) {
      // A report whose outcome could not be settled (the re-read failed too) keeps its old
      // revision: if it did land, the next report's compare fails, and the status it re-reads
      // carries this process's lease token, so that report is rebased on it, not refused.
      for (const g of groups) again(g);
      this.hooks.failed?.(err as Error);
      return;
    }
    if (stale.length && this.hooks.stale) await this.hooks.stale(stale);
  }
}
