/**
 * The self-fence of a lease holder, kept on its own clock and free of I/O (the process lease
 * feeds it; tests drive it with a fake clock).
 *
 * etcd starts a lease's TTL afresh when it *processes* a grant or keep-alive, which is some
 * time after the request was sent and some time before its reply is read here. Only the send
 * time is a bound this process knows: counting the TTL from it can only end the fence early,
 * never late. Counting from when the reply is read (what the client's own keep-alive does)
 * is wrong after any stall of this process or of the path back: a reply that sat in the
 * socket for longer than the TTL would announce a fresh TTL for a lease etcd has already
 * expired, and the holder would keep acting without it.
 */

/**
 * The clock every fence and TTL is measured on: CLOCK_MONOTONIC (`process.hrtime`) in
 * milliseconds. It never steps when the wall clock is set (NTP, an operator, a VM restore), so
 * a step forward cannot fence a holder early and a step back cannot stretch a fence past its
 * TTL; and it is one clock for the whole machine on Linux, so the executor and its watchdog
 * process compare its readings (a heartbeat written by one, read by the other). It keeps counting
 * while a process is stopped (SIGSTOP), as a fence must. Not a time of day: wall time
 * (`Date.now`) stays for the timestamps users see.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/** What one acknowledged renewal did to the fence. */
export const RenewalOutcome = {
  /** The renewal extends the fence: it was sent after the one the fence counted from. */
  Renewed: 'renewed',
  /** An older renewal than the one the fence counts from (replies can overtake each other): nothing changes. */
  Stale: 'stale',
  /** etcd answered with no TTL left: the lease is gone, for good. */
  Gone: 'gone',
} as const;
export type RenewalOutcome = (typeof RenewalOutcome)[keyof typeof RenewalOutcome];

/** The time a lease is certainly held until, from the send times of acknowledged renewals. */
export class LeaseFence {
  /** Send time of the grant or keep-alive the fence counts from, in ms of the holder's clock. */
  private renewedAt: number;
  /** How long after `renewedAt` the lease is held, in ms. */
  private validMs: number;
  private gone = false;

  /**
   * @param grantSentAt when the grant request was sent, in ms of the holder's clock
   * @param ttlMs the TTL asked for, in ms; a longer TTL granted by etcd is not relied on
   */
  constructor(
    grantSentAt: number,
    private readonly ttlMs: number,
  ) {
    this.renewedAt = grantSentAt;
    this.validMs = ttlMs;
  }

  /**
   * Records etcd's reply to a keep-alive sent at `sentAt` (ms, holder's clock) that granted
   * `grantedTtlSeconds`. A TTL of 0 or less means etcd no longer knows the lease.
   */
  acknowledged(sentAt: number, grantedTtlSeconds: number): RenewalOutcome {
    if (!(grantedTtlSeconds > 0)) {
      this.gone = true;
      return RenewalOutcome.Gone;
    }
    if (this.gone) return RenewalOutcome.Stale;
    const validMs = Math.min(this.ttlMs, grantedTtlSeconds * 1000);
    if (sentAt + validMs <= this.renewedAt + this.validMs) return RenewalOutcome.Stale;
    this.renewedAt = sentAt;
    this.validMs = validMs;
    return RenewalOutcome.Renewed;
  }

  /** True while the lease is certainly held at `now` (ms, holder's clock). */
  alive(now: number): boolean {
    return !this.gone && now - this.renewedAt < this.validMs;
  }

  /** Milliseconds from the send time of the renewal the fence counts from to `now`. */
  sinceRenewalMs(now: number): number {
    return now - this.renewedAt;
  }

  /** Send time (ms, holder's clock) of the renewal the fence counts from. */
  get lastRenewalSentAt(): number {
    return this.renewedAt;
  }

  /** True once etcd said the lease is gone. */
  get isGone(): boolean {
    return this.gone;
  }
}

/** What a member answered about a lease: its TTL is positive, it is gone, or no answer (down, or no raft leader, or a TTL of 0). */
export type LeaseAnswer = 'held' | 'gone' | 'unknown';

/**
 * A member's answer to a lease time-to-live request, from the TTL it returned (seconds). etcd
 * reports the remaining time truncated to whole seconds and -1 for a lease it does not know:
 *   held    ⇐ TTL ≥ 1 (at least a second left)
 *   unknown ⇐ TTL = 0: the lease exists with under a second left — or expired under a second
 *             ago and is not revoked yet; a renewal in flight may still keep it
 *   gone    ⇐ TTL < 0 (not found: revoked or expired)
 * Reading 0 as gone gave a held lease up: with a 2 s TTL every member answers 0 for the second
 * half of each period (a 3-member fault test lost its lease at 2.0 s as "gone, unknown, gone"
 * right after the raft leader was killed).
 */
export function leaseAnswerOfTtl(ttlSeconds: number): LeaseAnswer {
  if (ttlSeconds >= 1) return 'held';
  return ttlSeconds < 0 ? 'gone' : 'unknown';
}

/**
 * Whether the answers of every member about a lease mean it is lost — the decision of the
 * process lease's loss check, pure:
 *   keep    ⇐ any member says held, or gone ≤ members / 2 (no majority says gone)
 *   recheck ⇐ a majority says gone while the fence still runs: ask again once it has ended
 *   lost    ⇐ a majority says gone and the fence has ended
 * "Gone" is not trusted inside the fence: right after the raft leader is killed the members can
 * answer gone for a lease a keep-alive renewed a moment ago (seen 1.6 s into a 2 s TTL as
 * "unknown, gone, gone", and 186 ms after a renewal as "gone, gone, gone" while the election
 * ran). Waiting costs nothing in safety — the holder stops acting when its fence ends anyway —
 * and renewals that land meanwhile extend the fence, so a lease that is held is kept.
 */
export function leaseLossVerdict(answers: readonly LeaseAnswer[], fenceAlive: boolean): 'keep' | 'lost' | 'recheck' {
  const gone = answers.filter((a) => a === 'gone').length;
  if (answers.includes('held') || gone <= answers.length / 2) return 'keep';
  return fenceAlive ? 'recheck' : 'lost';
}
