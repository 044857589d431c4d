/**
 * The outcome of one plugin's check, in the style of the Kubernetes scheduler framework's
 * `Status`: a code the engine acts on, the plugin that said it, a reason a person reads, and a
 * detail a program reads (so "why pending" and counterfactuals never parse the reason back).
 */

/** What a non-success status means to the engine. */
export type StatusCode =
  /** A Filter refused the node: no amount of free room there would help (selector, taint, capacity). */
  | 'Unschedulable'
  /** The queue's quota (with cohort borrowing) stops the work now; reclaim may help. */
  | 'QuotaLimited'
  /** A gang could not place every task and placed none (Permit refused). */
  | 'GangBlocked'
  /** No topology domain of the level the work requires has room for it now (see `plugins/topology`). */
  | 'TopologyUnfit';

/** What a refusal was about, for programs (counterfactuals, the gang-timeout message). */
export type StatusDetail =
  | { kind: 'label'; key: string; value: string }
  | { kind: 'taint'; key: string; value?: string; effect: string }
  | { kind: 'capacity'; resource: string }
  | { kind: 'quota'; queue: string }
  | { kind: 'gang'; tasks: number }
  /** `largest`: tasks the roomiest domain of `level` could take now (`domain`, absent when no node is in one). */
  | { kind: 'topology'; level: string; tasks: number; largest: number; domain?: string };

/** A plugin's refusal. Success is `undefined`. */
export interface Status {
  code: StatusCode;
  /** The plugin that refused, e.g. `TaintToleration`. */
  plugin: string;
  /** One line for a person, e.g. `taint dedicated=ml:NoSchedule`. Also the key nodes are counted by. */
  reason: string;
  detail?: StatusDetail;
}

/** Nodes refused for one reason. */
export interface FilterRefusal {
  status: Status;
  nodes: number;
}

/** Counts refusals by reason (one `Status` object kept per reason). */
export class RefusalCounter {
  private readonly byReason = new Map<string, FilterRefusal>();
  add(status: Status, nodes = 1): void {
    const r = this.byReason.get(status.reason);
    if (r) r.nodes += nodes;
    else this.byReason.set(status.reason, { status, nodes });
  }
  addAll(refusals: readonly FilterRefusal[]): void {
    for (const r of refusals) this.add(r.status, r.nodes);
  }
  /** Most nodes first, then by reason. */
  list(): FilterRefusal[] {
    return [...this.byReason.values()].map((r) => ({ ...r })).sort((a, b) => b.nodes - a.nodes || (a.status.reason < b.status.reason ? -1 : 1));
  }
}
