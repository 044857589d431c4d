import { ApiError } from '@batchapi/api';
import type { ArchiveBacklog } from '@batchapi/store';
import { BacklogGate, backlogRefusal } from './archive-backlog';

const NOW = 1_800_000_000_000;
const limits = { maxFinished: 1000, staleMs: 300_000 };

describe('backlogRefusal', () => {
  it.each<[string, ArchiveBacklog | undefined, typeof limits, boolean]>([
    ['no count yet', undefined, limits, false],
    // 999 < 1000
    ['under the limit', { finished: 999, at: NOW - 1000 }, limits, false],
    // 1000 ≥ 1000
    ['at the limit', { finished: 1000, at: NOW - 1000 }, limits, true],
    ['over it', { finished: 5000, oldestFinishedAt: NOW - 600_000, at: NOW }, limits, true],
    // counted 300 s ago: 300,000 ms ≥ staleMs, not trusted
    ['a stale count', { finished: 5000, at: NOW - 300_000 }, limits, false],
    // 299.999 s ago: still fresh
    ['a count just fresh', { finished: 5000, at: NOW - 299_999 }, limits, true],
    ['the gate off', { finished: 5000, at: NOW }, { ...limits, maxFinished: 0 }, false],
  ])('%s → refused %s', (_, backlog, l, refused) => {
    expect(backlogRefusal(backlog, l, NOW) !== undefined).toBe(refused);
  });

  it('says how many wait, the limit, and how old the oldest is', () => {
    expect(backlogRefusal({ finished: 5000, oldestFinishedAt: NOW - 600_000, at: NOW }, limits, NOW)).toBe(
      'etcd holds 5000 finished jobs waiting for the history store (limit 1000, the oldest finished 600 s ago): submits pause until the archiver catches up',
    );
  });
});

describe('BacklogGate', () => {
  it('admits while it has seen no count, and refuses nothing when off', () => {
    expect(() => new BacklogGate(limits).check(NOW)).not.toThrow();
    expect(() => new BacklogGate({ ...limits, maxFinished: 0 }).check(NOW)).not.toThrow();
  });

  it('refuses with overloaded and a Retry-After of 30 s', () => {
    const gate = new BacklogGate(limits);
    (gate as unknown as { backlog: ArchiveBacklog }).backlog = { finished: 1000, at: NOW };
    const err = (() => {
      try {
        gate.check(NOW);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'overloaded', status: 503, details: { retryAfterSeconds: 30 } });
  });
});
