/**
 * The process lease through ordinary etcd member faults (3 real members, TTL 2 s): a raft
 * leader killed and restarted, a follower killed and restarted, a member (the leader, on an
 * etcd without the revoke bug below) paused for 3 s. None of them may cost the lease: `onLost`
 * never fires and etcd holds the lease throughout. The self-fence (`alive()`, sampled every
 * 50 ms) may pause while a new raft leader is elected — no member can renew a lease then, and
 * etcd's randomized election timeout (500–1000 ms here, a second round after a split vote) can
 * outlast the 2 s counted from the last renewal sent before the kill — but only for a moment:
 * each pause ends within one TTL. (A member's time-to-live answer of 0, under a second left,
 * once read as "gone" gave such a lease up at 2.0 s; one keep-alive per period to a member
 * picked at random lost it whenever two picks in a row were the dead member.)
 */
import { EtcdStore, installedEtcdRevokesOnLeaderResume, type LocalEtcd, startEtcd } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { Etcd3 } from 'etcd3';

/** A client of member `i` alone, every call with a 1 s deadline. */
const memberClient = (i: number) =>
  new Etcd3({ hosts: [etcd.endpoints[i]], defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 1000 }) });

/** The installed etcd has etcd-io/etcd#15247 (see `revokesLeasesOnLeaderResume`): its leaders are not paused here. */
const OLD_LEADER_REVOKES = installedEtcdRevokesOnLeaderResume();

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
  it('keeps the lease through leader kills, follower kills and member pauses', async () => {
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

        // Pausing the leader is the harder case (an election, and followers forward to a member that does not answer),
        // except on an etcd that revokes live leases when a paused leader resumes (see OLD_LEADER_REVOKES).
        const paused = round % 2 === 0 && !OLD_LEADER_REVOKES ? await leaderIndex() : ((await leaderIndex()) + 2) % 3;
        fault = `round ${round}: m${paused} paused`;
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
});
