/**
 * An event stream whose watch cannot start, over real HTTP against a real etcd: the first view
 * goes out, then, when etcd does not answer the watch's listing (a fault injected at the store's
 * test seam, on that listing only), a final `stream-closed` event says why (`unavailable`, with
 * a retry delay) before the stream ends — not a stream that just stops.
 */
import type { JobRecord } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd, submitJob } from '@batchapi/store';
import { startAdmission, TokenAuthenticator } from '../src';
import { teamTokens } from './tokens';

let etcd: LocalEtcd;
let store: EtcdStore;
let admission: RunningService;

const job: JobRecord = {
  id: 'watched',
  tenant: 'team-a',
  queue: 'default',
  phase: 'Queued',
  createdAt: Date.now(),
  spec: { name: 'watched', command: ['true'], env: {}, resources: { cpu: 100 }, tasks: 1, priority: 0, labels: {} },
  pending: [{ start: 0, end: 1, attempt: 1 }],
  counts: { succeeded: 0, failed: 0, cancelled: 0 },
};

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  admission = await startAdmission({ tokens: new TokenAuthenticator(teamTokens()), config: { etcdEndpoints: etcd.endpoints, logLevel: 'error' } });
  await submitJob(store, job);
});
afterAll(async () => {
  admission.ctx.store.seam = undefined;
  await admission?.close();
  await store?.close();
  await etcd?.stop();
});

it("sends the first view, then stream-closed 'unavailable' when the watch's listing fails, and ends the stream", async () => {
  const jobKey = store.keys.job(job.id);
  let failed = 0;
  // The view is read with a get of the job's key; the watch starts with a listing under it: only that fails.
  admission.ctx.store.seam = (call, send) => {
    if (call.read?.prefix && call.read.key === jobKey) {
      failed++;
      return Promise.reject(new Error('injected: etcd did not answer'));
    }
    return send();
  };
  const res = await fetch(`${admission.url}/v1/jobs/${job.id}/events`, { headers: { authorization: 'Bearer token-a' } });
  expect(res.status).toBe(200);
  // the stream ends by itself: the whole body can be read
  const blocks = (await res.text()).split('\n\n').filter((b) => b.trim() && !b.startsWith(':'));
  const events = blocks.map((b) => ({ event: /^event: (.*)$/m.exec(b)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(b)![1]) }));
  expect(events.map((e) => e.event)).toEqual(['job', 'stream-closed']);
  expect(events[0].data).toMatchObject({ id: job.id, phase: 'Queued' });
  expect(events[1].data.error).toMatchObject({ code: 'unavailable', retryAfterSeconds: 1 });
  expect(events[1].data.error.message).toMatch(/reconnect with Last-Event-ID/);
  expect(failed).toBeGreaterThan(0);
});
