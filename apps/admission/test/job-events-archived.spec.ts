/**
 * `GET /v1/jobs/:id/events` for a job that leaves etcd while it is followed, over real HTTP
 * against a real etcd and a real PostgreSQL: the stream's informer sees the running job only
 * as gone (as when the job's end and the archiver's delete both come before the stream's view
 * is rebuilt, or before the informer's listing). The stream
 * must not stay open with nothing more to send: it sends the archived final view and ends, or,
 * for a job that is nowhere any more, ends with `stream-closed` naming it.
 */
import type { JobRecord } from '@batchapi/api';
import { createDatabase, HistoryStore, type LocalPostgres, migrate, startPostgres } from '@batchapi/history';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd, submitJob } from '@batchapi/store';
import { startAdmission, TokenAuthenticator } from '../src';
import { jobRecord } from './job-record';
import { sseBlocks } from './sse';
import { teamTokens } from './tokens';

let etcd: LocalEtcd;
let pg: LocalPostgres;
let history: HistoryStore;
let store: EtcdStore;
let admission: RunningService;

const job = (id: string, phase: JobRecord['phase']) => jobRecord(id, 'team-a', phase);

interface Block {
  event?: string;
  data: { phase?: string; error?: { code: string; id?: string } };
}

/** Reads the stream's events as they come; `ended` resolves with them all once the server ends it. */
function follow(id: string): { next(): Promise<Block>; ended: Promise<Block[]> } {
  const got: Block[] = [];
  const waiting: Array<(b: Block) => void> = [];
  const ended = (async () => {
    const res = await fetch(`${admission.url}/v1/jobs/${id}/events`, { headers: { authorization: 'Bearer token-a' }, signal: AbortSignal.timeout(30_000) });
    expect(res.status).toBe(200);
    for await (const b of sseBlocks(res.body!)) {
      if (!b.event) continue; // a keep-alive comment
      got.push(b as Block);
      waiting.shift()?.(b as Block);
    }
    return got;
  })();
  let read = 0;
  return {
    next: () => (read < got.length ? Promise.resolve(got[read++]) : new Promise((r) => waiting.push((b) => (read++, r(b))))),
    ended,
  };
}

beforeAll(async () => {
  [etcd, pg] = await Promise.all([startEtcd(), startPostgres({ ephemeral: true })]);
  const url = await createDatabase(pg.url, 'archived_events');
  await migrate(url);
  history = HistoryStore.connect(url);
  store = new EtcdStore({ endpoints: etcd.endpoints });
  admission = await startAdmission({
    tokens: new TokenAuthenticator(teamTokens()),
    config: { etcdEndpoints: etcd.endpoints, logLevel: 'error' },
    historyUrl: url,
  });
}, 60_000);
afterAll(async () => {
  await admission?.close();
  await store?.close();
  await history?.close();
  await Promise.all([etcd?.stop(), pg?.stop()]);
});

it('sends the archived final view and ends when the job ends and leaves etcd in one step', async () => {
  await submitJob(store, job('moved', 'Running'));
  const stream = follow('moved');
  expect((await stream.next()).data.phase).toBe('Running');
  // the archiver's order: the history row first, then the etcd key goes (its end is not seen here)
  await history.archiveJobs([{ job: job('moved', 'Succeeded'), groups: [], results: [] }]);
  await store.txn([], [{ delete: store.keys.job('moved') }]);
  const blocks = await stream.ended;
  expect(blocks.map((b) => [b.event, b.data.phase])).toEqual([
    ['job', 'Running'],
    ['job', 'Succeeded'],
  ]);
});

it('ends with stream-closed not_found when the job left etcd and is not in the history either', async () => {
  await submitJob(store, job('gone', 'Running'));
  const stream = follow('gone');
  expect((await stream.next()).data.phase).toBe('Running');
  await store.txn([], [{ delete: store.keys.job('gone') }]);
  const blocks = await stream.ended;
  expect(blocks.map((b) => b.event)).toEqual(['job', 'stream-closed']);
  expect(blocks[1].data.error).toMatchObject({ code: 'not_found', id: 'gone' });
});
