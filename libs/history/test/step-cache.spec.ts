/**
 * The step cache against a real PostgreSQL: an entry is found by its tenant and key only (never
 * another tenant's), not once expired; a newer success of a key replaces the older; a tenant keeps
 * at most its limit of entries, the oldest evicted, and recording deletes its expired ones.
 */
import { HistoryStore, InvalidHistoryRequestError, migrate, type StepCacheEntry } from '@batchapi/history';
import { T0, usePostgres } from './history-fixture';

const postgres = usePostgres();
let history: HistoryStore;

beforeAll(async () => {
  const url = await postgres.freshDatabase();
  await migrate(url);
  history = HistoryStore.connect(url);
});
afterAll(async () => {
  await history?.close();
});

const MINUTE = 60_000;
const key = (n: number) => n.toString(16).padStart(64, '0');
const entry = (tenant: string, n: number, createdAt: number, jobId = `job-${n}`): StepCacheEntry => ({
  tenant,
  key: key(n),
  jobId,
  workflowId: `wf-${n}`,
  step: 'train',
  createdAt,
});
const roomy = { notBefore: 0, maxEntries: 100 };

it("finds an entry by its tenant and key only, never another tenant's", async () => {
  await history.recordStepCache(entry('team-a', 1, T0), roomy);
  expect(await history.findStepCache('team-a', key(1), 0)).toEqual(entry('team-a', 1, T0));
  expect(await history.findStepCache('team-b', key(1), 0)).toBeUndefined();
  expect(await history.findStepCache('team-a', key(2), 0)).toBeUndefined();
});

it('does not find an entry created before notBefore (expired)', async () => {
  await history.recordStepCache(entry('team-exp', 1, T0), roomy);
  expect(await history.findStepCache('team-exp', key(1), T0)).toBeDefined();
  expect(await history.findStepCache('team-exp', key(1), T0 + 1)).toBeUndefined();
});

it('keeps the latest success of a key, and recording one entry twice leaves one row', async () => {
  await history.recordStepCache(entry('team-new', 1, T0, 'job-old'), roomy);
  await history.recordStepCache(entry('team-new', 1, T0 + MINUTE, 'job-new'), roomy);
  await history.recordStepCache(entry('team-new', 1, T0 + MINUTE, 'job-new'), roomy);
  // an older success recorded late (a controller's retry) does not replace the newer one
  await history.recordStepCache(entry('team-new', 1, T0 - MINUTE, 'job-older'), roomy);
  expect((await history.findStepCache('team-new', key(1), 0))?.jobId).toBe('job-new');
});

it("keeps at most maxEntries of a tenant, evicting the oldest, and drops the tenant's expired entries; other tenants keep theirs", async () => {
  await history.recordStepCache(entry('team-other', 9, T0), roomy);
  // Entries 1..5 created a minute apart; the limit is 3: after the 5th, 3, 4, 5 are left (1 and 2 the oldest).
  for (let n = 1; n <= 5; n++) await history.recordStepCache(entry('team-lim', n, T0 + n * MINUTE), { notBefore: 0, maxEntries: 3 });
  const left = async () => {
    const found: number[] = [];
    for (let n = 1; n <= 6; n++) if (await history.findStepCache('team-lim', key(n), 0)) found.push(n);
    return found;
  };
  expect(await left()).toEqual([3, 4, 5]);
  // Recording 6 with notBefore at 4's time: 3 has expired and is deleted; 4, 5, 6 are left.
  await history.recordStepCache(entry('team-lim', 6, T0 + 6 * MINUTE), { notBefore: T0 + 4 * MINUTE, maxEntries: 3 });
  expect(await left()).toEqual([4, 5, 6]);
  expect(await history.findStepCache('team-other', key(9), 0)).toBeDefined();
});

it('refuses a key that is not a hex SHA-256 and a limit below 1, before sending anything', async () => {
  await expect(history.findStepCache('team-a', 'nope', 0)).rejects.toBeInstanceOf(InvalidHistoryRequestError);
  await expect(history.recordStepCache(entry('team-a', 1, T0), { notBefore: 0, maxEntries: 0 })).rejects.toMatchObject({ field: 'maxEntries' });
});
