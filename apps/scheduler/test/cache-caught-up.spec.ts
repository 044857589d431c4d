/**
 * A cycle starts only once the caches hold the scheduler's own last bind (`caughtUp`): the job,
 * the allocation and the binding it wrote in one transaction, which reach the caches through three
 * watches. Before bindings counted, a cycle could see the allocation without the binding: the room
 * taken with no expected end, so backfill made no reservation for blocked work and let unbounded
 * work take the room (`backfill-learned.spec` failed so, now and then).
 */
import type { EtcdStore, Informer } from '@batchapi/store';
import { SchedulerCache } from '../src';

/** A cache whose three watched prefixes have delivered up to the given revisions. */
function cacheAt(revisions: { jobs: number; allocs: number; bindings: number }): SchedulerCache {
  const keys = new Proxy({}, { get: (_, name) => () => `${String(name)}/` });
  const cache = new SchedulerCache({ keys } as unknown as EtcdStore);
  for (const [m, rev] of [
    [cache.jobs, revisions.jobs],
    [cache.allocs, revisions.allocs],
    [cache.bindings, revisions.bindings],
  ] as const)
    m.informer = { revision: String(rev) } as Informer;
  return cache;
}

describe('SchedulerCache.caughtUp', () => {
  it.each([
    // the last bind wrote at revision 10
    { jobs: 10, allocs: 10, bindings: 10, want: true },
    { jobs: 12, allocs: 11, bindings: 10, want: true }, // later changes seen too
    { jobs: 10, allocs: 10, bindings: 9, want: false }, // the binding not seen yet: the case that let work past a reservation
    { jobs: 10, allocs: 9, bindings: 10, want: false },
    { jobs: 9, allocs: 10, bindings: 10, want: false },
  ])('jobs $jobs, allocations $allocs, bindings $bindings → $want', ({ want, ...revisions }) => {
    expect(cacheAt(revisions).caughtUp(10n)).toBe(want);
  });
});
