/**
 * The self-fence's arithmetic on a fake clock: the TTL runs from when a renewal was sent,
 * never from when its reply was read.
 */
import { type LeaseAnswer, leaseAnswerOfTtl, LeaseFence, leaseLossVerdict, RenewalOutcome } from '@batchapi/store';

const TTL_MS = 2000;

/** A keep-alive sent at `sentAt`, its reply read at `readAt`, granting `ttl` seconds (ms of the holder's clock). */
const ack = (sentAt: number, readAt: number, ttl = 2) => ({ sentAt, readAt, ttl });

describe('LeaseFence', () => {
  it.each([
    // grant sent at 0: held until 0 + 2000 (exclusive)
    { name: 'right after the grant', acks: [], now: 1999, alive: true },
    { name: 'a TTL after the grant was sent, with no renewal', acks: [], now: 2000, alive: false },
    // renewal sent at 600, read at 610: held until 600 + 2000 = 2600
    { name: 'a prompt renewal extends from its send time', acks: [ack(600, 610)], now: 2599, alive: true },
    { name: 'a prompt renewal ends a TTL after its send time, not its reply', acks: [ack(600, 610)], now: 2600, alive: false },
    // the stalled-reply interleaving: sent at 600, reply read at 600 + 2000 + 500 = 3100 (it sat
    // in the socket while this process was stopped). etcd renewed at most until ~600 + 2000,
    // so at 3100 the lease may be gone: not alive, although the reply was just read.
    { name: 'a reply read a TTL after its request was sent does not make the lease alive', acks: [ack(600, 3100)], now: 3100, alive: false },
    // two renewals whose replies arrive out of order: the later send time (1200) wins → 3200
    { name: 'an older renewal read after a newer one does not shorten the fence', acks: [ack(1200, 1210), ack(600, 1300)], now: 3199, alive: true },
    // etcd says TTL 0: the lease is gone, whatever was acknowledged before
    { name: 'a reply with no TTL left ends the fence for good', acks: [ack(600, 610), ack(1200, 1210, 0), ack(1800, 1810)], now: 1900, alive: false },
    // etcd granted 1 s (less than asked): held until 600 + 1000 = 1600, then the grant's 2000 is later → keep 2000
    { name: 'a shorter granted TTL is not stretched to the one asked for', acks: [ack(900, 910, 1)], now: 1999, alive: true },
    // etcd granted 60 s (more than asked): only the 2 s asked for is relied on → 600 + 2000
    { name: 'a longer granted TTL is not relied on', acks: [ack(600, 610, 60)], now: 2600, alive: false },
  ])('$name', ({ acks, now, alive }) => {
    const fence = new LeaseFence(0, TTL_MS);
    for (const a of [...acks].sort((x, y) => x.readAt - y.readAt)) fence.acknowledged(a.sentAt, a.ttl);
    expect(fence.alive(now)).toBe(alive);
  });

  it('says which renewals moved the fence and measures time since the send time', () => {
    const fence = new LeaseFence(0, TTL_MS);
    expect(fence.acknowledged(1200, 2)).toBe(RenewalOutcome.Renewed);
    expect(fence.acknowledged(600, 2)).toBe(RenewalOutcome.Stale);
    expect(fence.sinceRenewalMs(1500)).toBe(300); // 1500 − 1200
    expect(fence.lastRenewalSentAt).toBe(1200);
    expect(fence.acknowledged(1800, 0)).toBe(RenewalOutcome.Gone);
    expect(fence.acknowledged(2400, 2)).toBe(RenewalOutcome.Stale);
    expect(fence.isGone).toBe(true);
  });
});

describe('leaseAnswerOfTtl', () => {
  it.each<[number, LeaseAnswer]>([
    // the granted TTL or any whole second left: held
    [2, 'held'],
    [1, 'held'],
    // 0: under a second left, or expired and not yet revoked (etcd truncates the remaining time) — no answer
    [0, 'unknown'],
    // -1: etcd does not know the lease
    [-1, 'gone'],
  ])('TTL %d → %s', (ttl, answer) => {
    expect(leaseAnswerOfTtl(ttl)).toBe(answer);
  });
});

describe('leaseLossVerdict', () => {
  it.each<[LeaseAnswer[], boolean, 'keep' | 'lost' | 'recheck']>([
    // any member holding it: kept, whatever the others say
    [['held', 'gone', 'gone'], false, 'keep'],
    // gone from 1 of 3 (≤ 3/2): no majority, kept
    [['gone', 'unknown', 'unknown'], false, 'keep'],
    [['unknown', 'unknown', 'unknown'], false, 'keep'],
    // every member says gone inside the fence (seen during an election, 186 ms after a renewal): asked again at its end
    [['gone', 'gone', 'gone'], true, 'recheck'],
    [['gone', 'gone', 'gone'], false, 'lost'],
    // 2 of 3 gone (> 3/2), one silent, the fence still runs: ask again when it ends
    [['unknown', 'gone', 'gone'], true, 'recheck'],
    // the same once the fence has ended: lost
    [['unknown', 'gone', 'gone'], false, 'lost'],
    // 5 members: 3 gone (> 5/2), 2 silent, fence ended → lost; 2 gone (≤ 5/2) → kept
    [['gone', 'gone', 'gone', 'unknown', 'unknown'], false, 'lost'],
    [['gone', 'gone', 'unknown', 'unknown', 'unknown'], false, 'keep'],
  ])('%j with the fence %s → %s', (answers, fenceAlive, verdict) => {
    expect(leaseLossVerdict(answers, fenceAlive)).toBe(verdict);
  });
});
