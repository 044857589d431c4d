/**
 * The process lease through ordinary etcd member faults (3 real members, TTL 2 s): a raft
 * leader killed and restarted, a follower killed and restarted, a member paused for 3 s. None
 * of them may cost the lease: `alive()`, sampled every 50 ms, never turns false and `onLost`
 * never fires. One keep-alive per period to a member picked at random lost it whenever two
 * picks in a row were the dead member.
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
  it('keeps the lease through leader kills, follower kills and member pauses', async () => {
    const lease = await store.grantLease(2);
    let lost = 0;
    lease.onLost(() => lost++);
    const dead: Array<{ at: string; sinceRenewalMs: number; lostReason?: string }> = [];
    let fault = 'none';
    // The first few samples that found the lease not alive, with the fault under way.
    const sampler = setInterval(() => {
      if (!lease.alive() && dead.length < 5) dead.push({ at: fault, sinceRenewalMs: lease.sinceRenewalMs(), lostReason: lease.lostReason });
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

        // Pausing the leader is the harder case (an election, and followers forward to a member that does not answer).
        const paused = round % 2 === 0 ? await leaderIndex() : ((await leaderIndex()) + 2) % 3;
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
    expect(dead).toEqual([]);
    expect(lost).toBe(0);
    expect(lease.alive()).toBe(true);
    await lease.revoke();
  }, 90_000);
});
