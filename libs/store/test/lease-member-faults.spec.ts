/**
 * The process lease through ordinary etcd member faults (3 real members, TTL 2 s).
 *
 * Kept: a raft leader killed and restarted, a follower killed and restarted, a follower paused
 * for 3 s. None of them may cost the lease: `onLost` never fires and etcd holds the lease
 * throughout. The self-fence (`alive()`, sampled every 50 ms) may pause while a new raft leader
 * is elected — no member can renew a lease then, and etcd's randomized election timeout
 * (500–1000 ms here, a second round after a split vote) can outlast the 2 s counted from the
 * last renewal sent before the kill — but only for a moment: each pause ends within one TTL. (A
 * member's time-to-live answer of 0, under a second left, once read as "gone" gave such a lease
 * up at 2.0 s; one keep-alive per period to a member picked at random lost it whenever two picks
 * in a row were the dead member.)
 *
 * Given up, when etcd revoked it: the raft leader paused for 3 s. A resumed leader still takes
 * itself for the leases' keeper for a moment and may propose revoking the leases it saw expire
 * while it was stopped; the proposal is forwarded to the new leader and committed, so a lease
 * renewed throughout through the other members is revoked (etcd-io/etcd#15247). etcd PR #16822
 * (3.4.28, 3.5.11) checks leadership before revoking, but skips the check while the member "is
 * active" (a raft tick within 3 heartbeats), and a resumed process ticks at once: with 3.5.17
 * here, about 1 pause in 15 still revoked the lease ("gone" from every member 80 ms after the
 * resume, no leadership check logged; the old test, which paused the leader and required the
 * lease kept, failed in CI and in 1 of 10 runs here). No client can keep its lease through that,
 * so what is required is that the holder's view matches etcd's after each pause: held and
 * alive, or revoked and given up (`onLost` fired, `alive()` false). A fourth pause revokes the
 * lease through the new leader while the old one is stopped, as its forwarded proposal would, so
 * the given-up side is checked in every run.
 */
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { Etcd3 } from 'etcd3';

/** A client of member `i` alone, every call with a 1 s deadline. */
const memberClient = (i: number) =>
  new Etcd3({ hosts: [etcd.endpoints[i]], defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 1000 }) });

let etcd: LocalEtcd;
let store: EtcdStore;

beforeAll(async () => {
  etcd = await startEtcd({ members: 3 });
  store = new EtcdStore({ endpoints: etcd.endpoints, prefix: '/lmf/' });
});
afterAll(async () => {
  await store.close();
  await etcd.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Index of the member that is raft leader now, asked of the members that answer (waits out an election). */
function leaderIndex(): Promise<number> {
  return waitFor(raftLeader, () => true, { timeoutMs: 30_000 });
}

/** Index of the member that says it is raft leader; throws while none does (down, or an election under way). */
async function raftLeader(): Promise<number> {
  for (let i = 0; i < etcd.endpoints.length; i++) {
    const c = memberClient(i);
    try {
      const status = await c.maintenance.status();
      if (status.leader !== '0' && status.leader === status.header.member_id) return i;
    } catch {
      /* down or not answering */
    } finally {
      c.close();
    }
  }
  throw new Error('no member says it is the raft leader');
}

/** Waits until member `i` answers a linearizable read (it rejoined the cluster). */
async function answers(i: number): Promise<void> {
  const c = memberClient(i);
  try {
    await waitFor(
      () => c.get('/lmf/probe'),
      () => true,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  } finally {
    c.close();
  }
}

describe('ProcessLease under member faults', () => {
  it('keeps the lease through leader kills, follower kills and follower pauses', async () => {
    const lease = await store.grantLease(2);
    let lost = 0;
    lease.onLost(() => lost++);
    // Every pause of the fence: when it began, how long it lasted, under which fault, and whether the lease was given up.
    const pauses: Array<{ at: string; ms: number; lostReason?: string }> = [];
    let pausedSince: number | undefined;
    let fault = 'none';
    const sampler = setInterval(() => {
      const now = performance.now();
      if (!lease.alive()) {
        pausedSince ??= now;
        if (lease.lostReason && !pauses.some((p) => p.lostReason)) pauses.push({ at: fault, ms: now - pausedSince, lostReason: lease.lostReason });
      } else if (pausedSince !== undefined) {
        pauses.push({ at: fault, ms: Math.round(now - pausedSince) });
        pausedSince = undefined;
      }
    }, 50);
    try {
      for (let round = 0; round < 3; round++) {
        const leader = await leaderIndex();
        fault = `round ${round}: leader m${leader} killed`;
        etcd.kill(leader);
        await sleep(3000);
        etcd.restart(leader);
        await answers(leader);

        const follower = ((await leaderIndex()) + 1) % 3;
        fault = `round ${round}: follower m${follower} killed`;
        etcd.kill(follower);
        await sleep(3000);
        etcd.restart(follower);
        await answers(follower);

        // A follower: a paused leader may revoke the lease when it resumes (the next test). Asked again just before the
        // stop, so a leader that changed meanwhile is not the one paused.
        const pick = ((await leaderIndex()) + 1 + (round % 2)) % 3;
        const leaderNow = await leaderIndex();
        const paused = pick === leaderNow ? (pick + 1) % 3 : pick;
        fault = `round ${round}: follower m${paused} paused`;
        etcd.kill(paused, 'SIGSTOP');
        await sleep(3000);
        etcd.kill(paused, 'SIGCONT');
        await answers(paused);
      }
      fault = 'after';
      await sleep(500);
    } finally {
      clearInterval(sampler);
    }
    if (pauses.length) console.log(`fence pauses: ${JSON.stringify(pauses)}`);
    expect(pauses.filter((p) => p.lostReason)).toEqual([]);
    expect(lost).toBe(0);
    // a pause ends within one TTL (2 s): a renewal sent during the election is acknowledged once a leader holds the lease
    expect(pauses.filter((p) => p.ms >= 2000)).toEqual([]);
    expect(pausedSince).toBeUndefined();
    expect(lease.alive()).toBe(true);
    // etcd still holds it: the lease was never revoked
    const ttl = Number((await store.client.leaseClient.leaseTimeToLive({ ID: lease.id })).TTL);
    expect(ttl).toBeGreaterThanOrEqual(0);
    await lease.revoke();
  }, 90_000);

  it("after a paused raft leader resumes, the holder's view matches etcd's: held and alive, or revoked and given up", async () => {
    const outcomes: string[] = [];
    // Three pauses as they come (etcd revokes now and then), and a fourth where the lease is revoked while the leader is
    // paused — through the new leader, as the resumed one's forwarded proposal does — so the given-up side runs every time.
    for (let round = 0; round < 4; round++) {
      const forced = round === 3;
      const lease = await store.grantLease(2);
      let lost = 0;
      lease.onLost(() => lost++);
      await sleep(1000);
      const leader = await leaderIndex();
      etcd.kill(leader, 'SIGSTOP');
      const resumesAt = Date.now() + 3000;
      if (forced) {
        const next = await waitFor(raftLeader, (i) => i !== leader, { timeoutMs: 30_000, intervalMs: 100 });
        const c = memberClient(next);
        try {
          await c.leaseClient.leaseRevoke({ ID: lease.id });
        } finally {
          c.close();
        }
      }
      await sleep(Math.max(0, resumesAt - Date.now()));
      etcd.kill(leader, 'SIGCONT');
      await answers(leader);
      // A revoke on resume is proposed at once and committed within moments; asked after the resumed member caught up.
      const held = await etcdHolds(lease.id);
      if (held) {
        // Held: renewals go on being acknowledged (two since the member answered) and the holder never gave it up.
        let renewals = 0;
        lease.onRenewed(() => renewals++);
        await waitFor(
          () => renewals,
          (n) => n >= 2 || lost > 0,
          { timeoutMs: 30_000, intervalMs: 50 },
        );
      } else {
        // Revoked: the holder gives it up once a majority says so and its own fence has ended (within one TTL of its last renewal).
        await waitFor(
          () => lost,
          (n) => n > 0,
          { timeoutMs: 30_000, intervalMs: 50 },
        );
      }
      outcomes.push(
        `round ${round}: m${leader} paused${forced ? ', the lease revoked meanwhile' : ''}; etcd ${held ? 'holds' : 'revoked'} the lease; holder ${lease.alive() ? 'alive' : 'gave up'}${lease.lostReason ? ` (${lease.lostReason})` : ''}`,
      );
      if (held) {
        expect({ round, alive: lease.alive(), lost, lostReason: lease.lostReason }).toEqual({ round, alive: true, lost: 0, lostReason: undefined });
        await lease.revoke();
      } else {
        expect({ round, alive: lease.alive(), lost }).toEqual({ round, alive: false, lost: 1 });
      }
      if (forced) expect(held).toBe(false);
    }
    console.log(`leader pauses: ${outcomes.join('; ')}`);
  }, 120_000);
});

/**
 * Whether etcd holds lease `id`, asked of every member (each forwards to the raft leader): held
 * when any answers a TTL ≥ 0, revoked when a majority answers not found; asked again otherwise.
 */
function etcdHolds(id: string): Promise<boolean> {
  const ask = async (i: number): Promise<'held' | 'gone' | 'unknown'> => {
    const c = memberClient(i);
    try {
      return Number((await c.leaseClient.leaseTimeToLive({ ID: id })).TTL) >= 0 ? 'held' : 'gone';
    } catch {
      return 'unknown';
    } finally {
      c.close();
    }
  };
  return waitFor(
    async () => {
      const answers = await Promise.all(etcd.endpoints.map((_, i) => ask(i)));
      if (answers.includes('held')) return true;
      if (answers.filter((a) => a === 'gone').length * 2 > answers.length) return false;
      throw new Error(`no majority about the lease: ${answers.join(', ')}`);
    },
    () => true,
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}
