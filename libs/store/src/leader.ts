/**
 * Leader election with a fence. The leader key is created only if absent, bound to the
 * campaigner's process lease; its create revision is the fence that every leader write
 * compares, so a deposed or partitioned leader's writes fail in etcd itself. etcd3's
 * `Election` helper is not used: its events can name a leader that is not one.
 */
import type { Compare, EtcdStore, ProcessLease } from './etcd';

/** Options of a campaign. */
export interface CampaignOptions {
  /** How often a standby checks whether the seat is free, in milliseconds. @default 250 */
  pollMs?: number;
  /** Stops campaigning when aborted. */
  signal?: AbortSignal;
}

/** How many times `Leadership.resign` sends its fenced delete when etcd does not answer. */
export const RESIGN_ATTEMPTS = 5;

/** Held leadership. Writes go through `fence()`; `held()` says whether to keep acting. */
export class Leadership {
  private deposed = false;

  constructor(
    private readonly store: EtcdStore,
    readonly role: string,
    readonly identity: string,
    readonly key: string,
    /** Create revision of the leader key: the fence. */
    readonly createRevision: string,
    private readonly lease: ProcessLease,
    /**
     * Revision at which this term was won (the header revision of the winning txn): every
     * write of an earlier leader that ever lands is at or below it, since later ones fail the
     * fence. A new leader's caches must reach it before they decide anything.
     * @default createRevision
     */
    readonly wonAt: string = createRevision,
  ) {}

  /** The compare that every leader write carries. */
  fence(): Compare {
    return { key: this.key, createRevision: this.createRevision };
  }

  /** False once a fenced write failed, the key changed, or the lease may have expired (on the lease's monotonic clock; `now` only from tests). */
  held(now?: number): boolean {
    return !this.deposed && this.lease.alive(now);
  }

  /** Marks leadership lost (e.g. after a fenced write was refused). */
  depose(): void {
    this.deposed = true;
  }

  /** Checks etcd: is the leader key still ours? */
  async verify(): Promise<boolean> {
    const cur = await this.store.get(this.key);
    if (!cur || cur.createRevision !== this.createRevision) this.deposed = true;
    return !this.deposed;
  }

  /**
   * Gives the seat up at once (a standby takes over within its poll interval). The delete is
   * fenced, so sending it again after an unanswered try is safe (once it landed, the next
   * compare fails and deletes nothing): it is sent up to `RESIGN_ATTEMPTS` times while the lease
   * holds. Without that, one slow etcd call left the key to go with the lease at the process's
   * exit — a hand-off seconds later (a rolling restart beside two CPU hogs saw 3 s).
   */
  async resign(): Promise<void> {
    this.deposed = true;
    for (let attempt = 1; attempt <= RESIGN_ATTEMPTS; attempt++) {
      try {
        await this.store.txn([this.fence()], [{ delete: this.key }]);
        return;
      } catch {
        // the lease's end deletes the key anyway
        if (!this.lease.alive()) return;
      }
    }
  }
}

/**
 * Waits until this process holds `role`'s leader key, then returns the fenced leadership.
 * `currentLease` may be a function giving the process lease of the moment: a campaign that
 * outlives a lease (the runtime takes a new one after a loss) then goes on with the new one.
 */
export async function campaign(
  store: EtcdStore,
  role: string,
  identity: string,
  currentLease: ProcessLease | (() => ProcessLease),
  opts: CampaignOptions = {},
): Promise<Leadership> {
  const key = store.keys.leader(role);
  const pollMs = opts.pollMs ?? 250;
  for (;;) {
    if (opts.signal?.aborted) throw new Error('campaign aborted');
    const lease = typeof currentLease === 'function' ? currentLease() : currentLease;
    if (lease.alive()) {
      try {
        const res = await store.txn([{ key, absent: true }], [{ put: key, value: { identity, since: Date.now() }, lease: lease.id }]);
        if (res.succeeded) return new Leadership(store, role, identity, key, res.revision, lease);
        const cur = await store.get<{ identity: string }>(key);
        // Our own key from before a restart of this object — on this very lease — is still ours to
        // use. A key of the same identity on another lease (a restarted process reusing the name)
        // is not: it waits for that lease to expire like any standby.
        const own = cur && cur.value.identity === identity ? await store.txn([{ key, lease: lease.id }], []) : undefined;
        if (cur && own?.succeeded) return new Leadership(store, role, identity, key, cur.createRevision, lease, own.revision);
      } catch {
        // etcd unreachable: keep campaigning.
      }
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Identity of the process that holds `role`'s leader key now; undefined when the seat is free. */
export async function getLeader(store: EtcdStore, role: string): Promise<string | undefined> {
  return (await store.get<{ identity: string }>(store.keys.leader(role)))?.value.identity;
}

/** What `serveWhileElected` does around each term of leadership. */
export interface ElectedRole {
  /** Runs while this process leads; returns when leadership is lost (or the signal aborts). */
  lead(leadership: Leadership): Promise<void>;
  /** Called when a term starts (e.g. to set an is-leader gauge and keep the leadership for `resign`). */
  elected?(leadership: Leadership): void;
  /** Called when a term ends. */
  deposed?(): void;
}

/**
 * Campaigns for `role`, leads while elected, and campaigns again after losing it — until the
 * signal aborts. A lost process lease ends a term like any deposition: `currentLease` gives
 * the lease of the moment, so the next campaign runs on the one the runtime took in its place
 * (or waits, if the process is about to exit instead). Services call it through the runtime's
 * `serveElectedRole`, which passes the service's current lease.
 */
export async function serveWhileElected(
  store: EtcdStore,
  role: string,
  identity: string,
  currentLease: () => ProcessLease,
  signal: AbortSignal,
  r: ElectedRole,
): Promise<void> {
  while (!signal.aborted) {
    let leadership: Leadership;
    try {
      leadership = await campaign(store, role, identity, currentLease, { signal });
    } catch {
      return; // aborted
    }
    r.elected?.(leadership);
    await r.lead(leadership);
    r.deposed?.();
  }
}
