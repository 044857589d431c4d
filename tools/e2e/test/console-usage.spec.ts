/**
 * The console's usage page in a real browser, against a cluster with one real executor and a
 * PostgreSQL history store that quota archives finished jobs to half a second after they end.
 * The page is open before the jobs run; once they are archived their usage appears without a
 * reload: a table row per queue with the figures `GET /v1/usage` gives, the stacked columns adding
 * up to them, and the GPU-hours chart and the GPU-model grouping saying there are no GPUs.
 */
import type { TaskView, UsageView } from '@batchapi/api';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchConsoleBrowser, SCREENS, signIn } from './console-browser';
import { api, until, useCluster, waitForJob } from './harness';

let browser: Browser;
afterAll(async () => {
  await browser?.close();
});
const c = useCluster({
  executor: {},
  cluster: {
    tenants: [{ name: 'default' }, { name: 'other' }],
    queues: [
      { name: 'default', tenant: 'default' },
      { name: 'etl', tenant: 'default' },
    ],
  },
  withHistory: { afterMs: 500, intervalMs: 100, idempotencyHandoverMs: 1000 },
});

beforeAll(async () => {
  browser = await launchConsoleBrowser();
});

it('charts CPU core-hours by queue from the history store, live, with a table of what the API sums', async () => {
  const page = await signIn(browser, c.base, 'tenant-token');
  await page.getByRole('link', { name: 'Usage' }).click();
  await page.getByRole('heading', { name: 'Usage' }).waitFor();
  await page.getByText('Live: read again as jobs end').waitFor();
  await page.getByText('No task attempts ended in this period.').waitFor();

  // Two jobs in two queues: 2 tasks of 1 CPU in `default`, 1 task of 2 CPUs in `etl`, each a second long.
  const ids: string[] = [];
  for (const [queue, tasks, cpu] of [
    ['default', 2, '1'],
    ['etl', 1, '2'],
  ] as const) {
    const res = await api(c.base, 'POST', '/v1/jobs', { queue, tasks, resources: { cpu, memory: '32Mi' }, command: ['sleep', '1'] });
    expect(res.status).toBe(201);
    ids.push(res.body.id as string);
  }
  for (const id of ids) expect(await waitForJob(c.base, id, 30_000)).toMatchObject({ phase: 'Succeeded' });
  // Archived: the API's usage by queue counts both jobs' attempts.
  let usage: UsageView | undefined;
  const counted = await until(async () => {
    usage = (await api(c.base, 'GET', '/v1/usage?groupBy=queue')).body as UsageView;
    return usage.groups.reduce((n, g) => n + g.attempts, 0) === 3;
  }, 30_000);
  expect(counted).toBe(true);

  // The page shows both queues without a reload, each with the API's figures (2 decimals).
  for (const g of usage!.groups) {
    const row = page.locator(`tr[data-usage-group="${g.key}"]`);
    await row.waitFor({ timeout: 15_000 });
    await expect(row.getByTestId('attempts').textContent()).resolves.toBe(String(g.attempts));
    // Three significant digits below an hour (each run here is seconds long): within half a percent of the API's.
    const shown = Number((await row.getByTestId('core-hours').textContent())!.replaceAll(',', ''));
    expect(Math.abs(shown - g.cpuCoreHours)).toBeLessThanOrEqual(g.cpuCoreHours >= 1 ? 0.005 : g.cpuCoreHours * 0.005 + 1e-12);
  }
  expect(usage!.groups.map((g) => g.key).sort()).toEqual(['default', 'etl']);
  // What the API sums: each attempt's recorded run (endedAt − startedAt) × its CPUs, by queue, in core-hours rounded to
  // 1e-6 — default 2 attempts × 1 CPU, etl 1 × 2 CPUs, each about a second (`sleep 1`; the start is stamped once the
  // process runs, so a run can read a few ms under 1 s: CI once saw 1.994 core-seconds for default).
  const expected = new Map<string, number>();
  for (const [i, [queue, cpu]] of (
    [
      ['default', 1],
      ['etl', 2],
    ] as const
  ).entries()) {
    const { tasks } = (await api(c.base, 'GET', `/v1/jobs/${ids[i]}/tasks`)).body as { tasks: TaskView[] };
    for (const t of tasks) {
      const runS = (Date.parse(t.endedAt!) - Date.parse(t.startedAt!)) / 1000;
      expect(runS).toBeGreaterThan(0.9);
      expected.set(queue, (expected.get(queue) ?? 0) + (runS * cpu) / 3600);
    }
  }
  for (const g of usage!.groups) expect(Math.abs(g.cpuCoreHours - expected.get(g.key!)!)).toBeLessThanOrEqual(1e-6);

  // The stacked columns: a part per queue, and the columns add up to the two queues' core-hours.
  const legend = await page.locator('[data-legend]').evaluateAll((els) => els.map((e) => e.getAttribute('data-legend')));
  expect([...legend].sort()).toEqual(['default', 'etl']);
  expect(await page.locator('rect[data-series="etl"]').count()).toBeGreaterThan(0);
  const columns = await page.locator('g[data-step]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-total'))));
  expect(columns).toHaveLength(7); // the last 7 days, by the day
  const apiTotal = usage!.groups.reduce((a, g) => a + g.cpuCoreHours, 0);
  expect(columns.reduce((a, b) => a + b, 0)).toBeCloseTo(apiTotal, 6);
  await page.screenshot({ path: join(SCREENS, 'usage.png'), fullPage: true });

  // By the hour over the last day: 24 columns, the same total.
  await page.locator('#u-period').selectOption('24h');
  await until(async () => (await page.locator('g[data-step]').count()) === 24);
  expect(await page.locator('g[data-step]').count()).toBe(24);
  const hourly = await page.locator('g[data-step]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-total'))));
  expect(hourly.reduce((a, b) => a + b, 0)).toBeCloseTo(apiTotal, 6);

  // No GPUs ran: the GPU-hours chart says so, and by GPU model the one group is "no GPU".
  await page.locator('#u-measure').selectOption('gpuHours');
  await page.getByTestId('usage-empty').getByText('No GPU-hours in this period.').waitFor();
  await page.locator('#u-group').selectOption('gpuModel');
  await page.locator('tr[data-usage-group="no GPU"]').getByTestId('attempts').getByText('3').waitFor();
  await page.close();
});

it('refuses a usage window of over 800 steps, naming the step', async () => {
  // 40 days by the hour is 960 steps (the page asks for at most 90 by the day).
  const res = await api(c.base, 'GET', `/v1/usage?step=hour&from=${new Date(Date.now() - 40 * 86_400_000).toISOString()}`);
  expect(res.status).toBe(400);
  expect(res.body.error).toMatchObject({ code: 'invalid_argument', field: 'step' });
});
