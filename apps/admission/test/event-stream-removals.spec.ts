/**
 * An event stream and the removals around its informers' start, over real HTTP against a real
 * etcd, with the two interleavings made certain by wrapping the admission store's `inform` (its
 * data is etcd's own; only when the stream's informer starts, or when its listing is handed
 * over, is chosen):
 *
 * - a job leaves etcd after the first view was read but before the informer lists: the listing
 *   lacks it, no key's revision moved, and the client must still get the smaller count;
 * - the listing is handed over together with another tenant's delete (as when the watch's first
 *   event arrives before the view is rebuilt): the caller's view did not change, so nothing is
 *   sent — the next event is the one of the caller's own job leaving;
 * - a client resumes with the id of the view it holds, but an older job of its has left since:
 *   the counts read now carry that same id (the newest job's revision), and must still be sent.
 */
import type { JobCountsView } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd, submitJob } from '@batchapi/store';
import { startAdmission, TokenAuthenticator } from '../src';
import { type InformerHook, hookInformers } from './informer-hook';
import { jobRecord } from './job-record';
import { nextWithin, sseEvents } from './sse';
import { teamTokens } from './tokens';

let etcd: LocalEtcd;
let store: EtcdStore;
let admission: RunningService;
/** Sets what happens to the next informer over `jobs/` (see `hookInformers`). */
let nextJobsInformer: (hook: InformerHook) => void;

const job = jobRecord;

const remove = (id: string) => store.txn([], [{ delete: store.keys.job(id) }]);

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  admission = await startAdmission({ tokens: new TokenAuthenticator(teamTokens('team-c')), config: { etcdEndpoints: etcd.endpoints, logLevel: 'error' } });
  const hook = hookInformers(admission.ctx.store);
  nextJobsInformer = (h) => hook(admission.ctx.store.keys.jobs(), h);
  await submitJob(store, job('a1', 'team-a'));
  await submitJob(store, job('a2', 'team-a', 'Running'));
});
afterAll(async () => {
  await admission?.close();
  await store?.close();
  await etcd?.stop();
});

it("sends the smaller count when one of the caller's jobs left etcd between the first view and the informer's listing", async () => {
  await submitJob(store, job('a5', 'team-a', 'Succeeded'));
  nextJobsInformer({ before: () => remove('a5').then(() => undefined) });
  const abort = new AbortController();
  const events = sseEvents<JobCountsView>(`${admission.url}/v1/jobs/events`, 'jobs', { authorization: 'Bearer token-a' }, abort.signal);
  try {
    // a1 Queued, a2 Running, a5 Succeeded: as read before the informer started
    expect(await nextWithin(events, 10_000)).toEqual({ counts: { Queued: 1, Running: 1, Succeeded: 1 }, total: 3 });
    // a5 left before the listing: no event carries its delete, and a1's and a2's revisions are older than a5's
    expect(await nextWithin(events, 10_000)).toEqual({ counts: { Queued: 1, Running: 1 }, total: 2 });
  } finally {
    abort.abort();
  }
});

it("sends nothing for another tenant's delete handed over with the listing, then the caller's own job leaving", async () => {
  await submitJob(store, job('a9', 'team-a', 'Succeeded'));
  await submitJob(store, job('b9', 'team-b', 'Succeeded'));
  // The listing is held until the watch's first event (b9's delete) and then handed over with it.
  let listedNow!: () => void;
  const listed = new Promise<void>((r) => {
    listedNow = r;
  });
  let firstEvent!: () => void;
  const handedOver = new Promise<void>((r) => {
    firstEvent = r;
  });
  nextJobsInformer({
    wrap: (h) => {
      let held: Parameters<typeof h.onSync> | undefined;
      return {
        onSync: (...args) => {
          held = args;
          listedNow();
        },
        onEvent: (ev) => {
          if (held) {
            h.onSync(...held);
            held = undefined;
            firstEvent();
          }
          h.onEvent(ev);
        },
      };
    },
  });

  const abort = new AbortController();
  const events = sseEvents<JobCountsView>(`${admission.url}/v1/jobs/events`, 'jobs', { authorization: 'Bearer token-a' }, abort.signal);
  try {
    // a1 Queued, a2 Running, a9 Succeeded
    expect(await nextWithin(events, 10_000)).toEqual({ counts: { Queued: 1, Running: 1, Succeeded: 1 }, total: 3 });
    await listed; // b9 leaves after the listing: the watch's first event
    await remove('b9');
    await handedOver;
    // team-a's counts did not change: the next event is a9's leaving, not the same counts again
    await remove('a9');
    expect(await nextWithin(events, 10_000)).toEqual({ counts: { Queued: 1, Running: 1 }, total: 2 });
  } finally {
    abort.abort();
  }
});

it('sends the counts to a client resuming at their id when one of its older jobs left since (the id did not move, the view did)', async () => {
  await submitJob(store, job('c1', 'team-c'));
  await submitJob(store, job('c2', 'team-c'));
  // The client held {Queued: 2} at c2's revision, the newest of its jobs; c1 leaves while it is away.
  const resumeAt = (await store.get(store.keys.job('c2')))!.modRevision;
  await remove('c1');
  const abort = new AbortController();
  const events = sseEvents<JobCountsView>(
    `${admission.url}/v1/jobs/events`,
    'jobs',
    { authorization: 'Bearer token-team-c', 'last-event-id': resumeAt },
    abort.signal,
  );
  try {
    expect(await nextWithin(events, 10_000)).toEqual({ counts: { Queued: 1 }, total: 1 });
  } finally {
    abort.abort();
  }
});
