/**
 * Usage from the history against a real PostgreSQL: CPU-, memory- and GPU-hours, attempt
 * outcomes and queue waits, grouped by tenant, queue, GPU model or label, over a window of
 * attempt end times. Every expected figure is worked out in the comment above it.
 */
import type { GroupStatus, JobRecord } from '@batchapi/api';
import { HistoryStore, InvalidHistoryRequestError, migrate, type UsageRow } from '@batchapi/history';
import { archived, finishedJob, usePostgres } from './history-fixture';

const postgres = usePostgres();
let history: HistoryStore;

const HOUR = 3_600_000;
const MINUTE = 60_000;
const GiB = 1024 ** 3;
// 2026-08-01 00:00Z: jobs are queued at D, their attempts bound and run after.
const D = Date.UTC(2026, 7, 1);

/** A job queued at D, whose attempts are given as [index, attempt, state, boundAt, startedAt, endedAt, gpuModel?]. */
function usageJob(
  id: string,
  over: Partial<JobRecord> & { labels?: Record<string, string>; tasks?: number },
  resources: Record<string, number>,
  attempts: Array<[number, number, 'Succeeded' | 'Failed' | 'Preempted', number, number, number, string?]>,
) {
  const finishedAt = Math.max(...attempts.map((a) => a[5])) + 1000;
  const job = finishedJob(id, { createdAt: D - MINUTE, queuedAt: D, startedAt: D, finishedAt, tasks: 2, ...over });
  job.spec = { ...job.spec, resources };
  const groups: GroupStatus[] = attempts.map(([index, attempt, state, boundAt, startedAt, endedAt, gpuModel]) => ({
    jobId: id,
    tenant: job.tenant,
    queue: job.queue,
    node: 'n1',
    start: index,
    end: index + 1,
    attempt,
    resources,
    devices: [],
    ...(gpuModel ? { gpuModel } : {}),
    boundAt,
    tasks: [{ state, startedAt, finishedAt: endedAt, ...(state === 'Failed' ? { exitCode: 1, reason: 'Error' as const } : {}) }],
  }));
  return archived(job, groups, []);
}

beforeAll(async () => {
  const url = await postgres.freshDatabase();
  await migrate(url);
  history = HistoryStore.connect(url);
  await history.archiveJobs([
    // acme/train, 2 tasks of 8 CPUs, 32 GiB, 1 GPU on H100 nodes:
    //   task 0: bound D+1m, ran D+2m → D+2h02m (2 h); task 1: bound D+3m, ran 1 h, preempted, then attempt 2 ran 1 h
    usageJob('u-train', { tenant: 'acme', queue: 'train', labels: { team: 'vision' } }, { cpu: 8000, memory: 32 * GiB, gpu: 1000 }, [
      [0, 1, 'Succeeded', D + MINUTE, D + 2 * MINUTE, D + 2 * MINUTE + 2 * HOUR, 'H100'],
      [1, 1, 'Preempted', D + 3 * MINUTE, D + 4 * MINUTE, D + 4 * MINUTE + HOUR, 'H100'],
      [1, 2, 'Succeeded', D + 2 * HOUR, D + 2 * HOUR, D + 3 * HOUR, 'H100'],
    ]),
    // acme/etl, 2 tasks of 500m CPU, 1 GiB, no GPU: task 0 bound D+5m, ran 30 m; task 1 bound D+7m, failed after 6 m
    usageJob('u-etl', { tenant: 'acme', queue: 'etl', labels: { team: 'data' } }, { cpu: 500, memory: GiB }, [
      [0, 1, 'Succeeded', D + 5 * MINUTE, D + 5 * MINUTE, D + 35 * MINUTE],
      [1, 1, 'Failed', D + 7 * MINUTE, D + 7 * MINUTE, D + 13 * MINUTE],
    ]),
    // globex/train, 1 task of half an A100 and 4 CPUs, 16 GiB: bound D+9m, ran 4 h
    usageJob('u-globex', { tenant: 'globex', queue: 'train', tasks: 1 }, { cpu: 4000, memory: 16 * GiB, gpu: 500 }, [
      [0, 1, 'Succeeded', D + 9 * MINUTE, D + 10 * MINUTE, D + 10 * MINUTE + 4 * HOUR, 'A100'],
    ]),
    // ended the day before the window: never counted
    usageJob('u-old', { tenant: 'acme', queue: 'train', tasks: 1, queuedAt: D - 2 * HOUR }, { cpu: 1000, memory: GiB }, [
      [0, 1, 'Succeeded', D - 2 * HOUR, D - 2 * HOUR, D - HOUR],
    ]),
  ]);
});
afterAll(async () => {
  await history?.close();
});

const day = { from: D, to: D + 24 * HOUR };
const byKey = (rows: UsageRow[]) => Object.fromEntries(rows.map((r) => [r.key ?? '(none)', r]));

it('sums CPU-, memory- and GPU-hours and counts attempts by tenant', async () => {
  const { rows, truncated } = await history.usage({ ...day, groupBy: 'tenant' });
  expect(truncated).toBe(false);
  // acme: u-train ran 2 h + 1 h + 1 h = 4 h of 8 CPUs, 32 GiB, 1 GPU → 32 core-h, 128 GiB-h, 4 GPU-h;
  //       u-etl ran 30 m + 6 m = 0.6 h of 0.5 CPU, 1 GiB → 0.3 core-h, 0.6 GiB-h
  //   → 32.3 core-h, 128.6 GiB-h, 4 GPU-h; 5 attempts: 3 succeeded, 1 failed, 1 preempted
  // globex: 4 h of 4 CPUs, 16 GiB, 0.5 GPU → 16 core-h, 64 GiB-h, 2 GPU-h
  // (u-old ended before the window)
  expect(rows.map((r) => r.key)).toEqual(['acme', 'globex']);
  expect(byKey(rows).acme).toMatchObject({ cpuCoreHours: 32.3, memoryGiBHours: 128.6, gpuHours: 4, attempts: 5, succeeded: 3, failed: 1, preempted: 1 });
  expect(byKey(rows).globex).toMatchObject({ cpuCoreHours: 16, memoryGiBHours: 64, gpuHours: 2, attempts: 1, succeeded: 1, failed: 0, preempted: 0 });
});

it('gives queue-wait percentiles of first attempts', async () => {
  const { rows } = await history.usage({ ...day, groupBy: 'tenant' });
  // acme's first attempts waited 1, 3, 5 and 7 minutes after D (the retry's bind is not a wait):
  //   p50 = 4 min = 240 s (between 3 and 5); p99 = 5 + 0.97 × 2 = 6.94 min = 416.4 s
  expect(byKey(rows).acme.queueWaitP50Seconds).toBeCloseTo(240, 6);
  expect(byKey(rows).acme.queueWaitP99Seconds).toBeCloseTo(416.4, 6);
});

it('groups GPU-hours by the GPU model of the node', async () => {
  const { rows } = await history.usage({ ...day, groupBy: 'gpuModel' });
  // H100: 4 GPU-h (u-train); A100: 2 GPU-h (u-globex); no GPU: u-etl
  expect(rows.map((r) => [r.key, r.gpuHours])).toEqual([
    ['H100', 4],
    ['A100', 2],
    [null, 0],
  ]);
});

it('groups by queue and by a label, within one tenant or queue', async () => {
  const byQueue = await history.usage({ ...day, groupBy: 'queue', tenant: 'acme' });
  expect(byQueue.rows.map((r) => [r.key, r.cpuCoreHours])).toEqual([
    ['train', 32],
    ['etl', 0.3],
  ]);
  const byTeam = await history.usage({ ...day, groupBy: { label: 'team' }, queue: 'train' });
  // u-train carries team=vision; u-globex no team
  expect(byTeam.rows.map((r) => [r.key, r.gpuHours])).toEqual([
    ['vision', 4],
    [null, 2],
  ]);
});

it('counts an attempt in the window of its end', async () => {
  // [D, D+1h): u-etl's two attempts (ended D+35m, D+13m) only; u-train's first ends at D+1h04m
  const { rows } = await history.usage({ from: D, to: D + HOUR, groupBy: 'queue' });
  expect(rows.map((r) => [r.key, r.attempts])).toEqual([['etl', 2]]);
});

it('splits each group into steps from the start of the window, adding up to its totals', async () => {
  const { rows } = await history.usage({ ...day, groupBy: 'tenant', stepMs: HOUR });
  const hourly = (key: string) => byKey(rows)[key].series!.map((s) => [s.start, s.cpuCoreHours, s.memoryGiBHours, s.gpuHours, s.attempts]);
  const at = (h: number) => new Date(D + h * HOUR).toISOString();
  // acme, by the hour its attempts ended in:
  //   [D, D+1h):    u-etl's two (D+35m, D+13m): 0.3 core-h, 0.6 GiB-h
  //   [D+1h, D+2h): u-train's preempted attempt (ended D+1h04m): 1 h × 8 CPUs, 32 GiB, 1 GPU
  //   [D+2h, D+3h): u-train task 0 (ended D+2h02m): 2 h → 16 core-h, 64 GiB-h, 2 GPU-h
  //   [D+3h, D+4h): u-train's retry, ended exactly at D+3h (a step holds its start): 1 h → 8, 32, 1
  //   0.3 + 8 + 16 + 8 = 32.3 core-h, acme's total; hours with nothing are left out
  expect(hourly('acme')).toEqual([
    [at(0), 0.3, 0.6, 0, 2],
    [at(1), 8, 32, 1, 1],
    [at(2), 16, 64, 2, 1],
    [at(3), 8, 32, 1, 1],
  ]);
  // globex: its one attempt ended at D+4h10m: 16 core-h, 64 GiB-h, 2 GPU-h
  expect(hourly('globex')).toEqual([[at(4), 16, 64, 2, 1]]);
});

it('aligns steps to the window, and gives the group without a key its steps too', async () => {
  const { rows } = await history.usage({ from: D + 30 * MINUTE, to: D + 24 * HOUR, groupBy: 'gpuModel', stepMs: HOUR });
  const half = (h: number) => new Date(D + 30 * MINUTE + h * HOUR).toISOString();
  // From D+30m the steps are [D+30m, D+1h30m)…; without a GPU: u-etl's task 0 (ended D+35m,
  // 30 min × 0.5 CPU = 0.25 core-h); its task 1 ended at D+13m, before the window.
  expect(byKey(rows)['(none)'].series).toEqual([{ start: half(0), cpuCoreHours: 0.25, memoryGiBHours: 0.5, gpuHours: 0, attempts: 1 }]);
  // H100: the preempted attempt (D+1h04m) in the first step, task 0 (D+2h02m) and the retry (D+3h) in the next two
  expect(byKey(rows).H100.series!.map((s) => [s.start, s.gpuHours])).toEqual([
    [half(0), 1],
    [half(1), 2],
    [half(2), 1],
  ]);
  // Without a step there is no series.
  expect((await history.usage({ ...day, groupBy: 'gpuModel' })).rows[0].series).toBeUndefined();
});

it.each([
  { name: 'an empty window', q: { from: D, to: D }, field: 'to' },
  { name: 'a window of over 800 steps', q: { from: D, to: D + 801 * HOUR, stepMs: HOUR }, field: 'step' },
  { name: 'a step under a second', q: { from: D, to: D + HOUR, stepMs: 10 }, field: 'step' },
  { name: 'a reversed window', q: { from: D, to: D - 1 }, field: 'to' },
  { name: 'a window over 400 days', q: { from: D, to: D + 401 * 24 * HOUR }, field: 'to' },
])('refuses $name, naming the field', async ({ q, field }) => {
  const err = await history.usage({ ...q, groupBy: 'tenant' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidHistoryRequestError);
  expect(err).toMatchObject({ field });
});

it('learns each queue a runtime estimate: a quantile of its succeeded attempts run times, with enough of them', async () => {
  // succeeded attempts ending in the day: train ran 2 h (u-train 0), 1 h (u-train 1, attempt 2), 4 h (u-globex);
  // its preempted hour does not count; etl's one success ran 30 min (its failure does not count); u-old ended before the day
  // train p90 over [1 h, 2 h, 4 h]: position 0.9 × (3 − 1) = 1.8 → 2 h + 0.8 × (4 h − 2 h) = 3.6 h = 12,960 s
  expect(await history.runtimeEstimates({ ...day, quantile: 0.9, minSamples: 1 })).toEqual([
    { queue: 'train', seconds: 12_960, samples: 3 },
    { queue: 'etl', seconds: 1_800, samples: 1 },
  ]);
  // p50 of train: the middle one, 2 h; etl has 1 sample, under 2: no estimate
  expect(await history.runtimeEstimates({ ...day, quantile: 0.5, minSamples: 2 })).toEqual([{ queue: 'train', seconds: 7_200, samples: 3 }]);
  await expect(history.runtimeEstimates({ ...day, quantile: 1, minSamples: 1 })).rejects.toThrow(InvalidHistoryRequestError);
  await expect(history.runtimeEstimates({ from: day.to, to: day.from, quantile: 0.9, minSamples: 1 })).rejects.toThrow('to must be after from');
});
