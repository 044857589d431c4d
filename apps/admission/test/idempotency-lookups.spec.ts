/**
 * Keyed submits' lookups of archived keys, batched, on a real PostgreSQL: each lookup gets its
 * own key's record (or none), concurrent lookups share statements, a lone lookup goes at once,
 * and a history store that does not answer fails every waiting lookup as unavailable.
 */
import { createDatabase, HistoryStore, HistoryUnavailableError, type LocalPostgres, migrate, startPostgres } from '@batchapi/history';
import type { JobRecord } from '@batchapi/api';
import { IdempotencyLookups } from '../src/idempotency-lookups';

let server: LocalPostgres;
let history: HistoryStore;
const T0 = Date.UTC(2026, 11, 1);

const job = (id: string): JobRecord =>
  ({
    id,
    tenant: 'acme',
    queue: 'default',
    phase: 'Succeeded',
    pending: [],
    counts: { succeeded: 1, failed: 0, cancelled: 0 },
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    createdAt: T0 - 60_000,
    finishedAt: T0,
    spec: { name: id, tasks: 1, command: ['true'], env: {}, labels: {}, resources: { cpu: '1', memory: '64Mi' } },
  }) as unknown as JobRecord;

beforeAll(async () => {
  server = await startPostgres({ ephemeral: true });
  const url = await createDatabase(server.url, 'lookups');
  await migrate(url);
  history = HistoryStore.connect(url);
  // 50 archived keys: k0 … k49, each its own job
  await history.archiveJobs(
    Array.from({ length: 50 }, (_, i) => ({
      job: job(`job-${i}`),
      groups: [],
      results: [],
      idempotency: { keyDigest: `k${i}`, requestHash: `h${i}`, createdAt: T0 - 60_000 },
    })),
  );
}, 60_000);
afterAll(async () => {
  await history?.close();
  await server?.stop();
});

it('answers each of 200 concurrent lookups with its own record or none, in a few statements', async () => {
  const lookups = new IdempotencyLookups(history, { maxInFlight: 1 });
  // k0 … k199: the first 50 archived, the rest not
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => lookups.get('acme', `k${i}`)));
  expect(answers.slice(0, 50).map((a) => a?.jobId)).toEqual(Array.from({ length: 50 }, (_, i) => `job-${i}`));
  expect(answers.slice(0, 50).every((a, i) => a?.requestHash === `h${i}`)).toBe(true);
  expect(answers.slice(50).filter((a) => a !== undefined)).toEqual([]);
  // asked in one tick with one statement at a time: the first statement takes them all (its batch fills before it is sent)
  expect({ statements: lookups.statements, keys: lookups.keys }).toEqual({ statements: 1, keys: 200 });
});

it('sends the lookups that arrive while its statements run together, once one ends', async () => {
  const lookups = new IdempotencyLookups(history, { maxInFlight: 1 });
  const first = lookups.get('acme', 'k1'); // goes at once: a free slot
  await new Promise((r) => setImmediate(r)); // … and is sent
  const waiting = Array.from({ length: 30 }, (_, i) => lookups.get('acme', `k${i + 10}`)); // arrive while it runs
  await Promise.all([first, ...waiting]);
  // 1 statement for the first, 1 for the 30 that waited
  expect({ statements: lookups.statements, keys: lookups.keys }).toEqual({ statements: 2, keys: 31 });
  // another tenant's same digest is another key
  expect(await lookups.get('other', 'k1')).toBeUndefined();
});

it('fails every waiting lookup as unavailable when the history store does not answer', async () => {
  const dead = HistoryStore.connect('postgresql://nobody@127.0.0.1:1/none');
  try {
    const lookups = new IdempotencyLookups(dead);
    const settled = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => lookups.get('acme', `k${i}`)));
    expect(settled.map((s) => s.status)).toEqual(Array(5).fill('rejected'));
    expect(settled.every((s) => s.status === 'rejected' && s.reason instanceof HistoryUnavailableError)).toBe(true);
  } finally {
    await dead.close();
  }
});
