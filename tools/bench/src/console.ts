/**
 * `bench console`: the console's jobs page in a real browser (Debian's chromium through
 * playwright-core) showing 1,000 rows while the caller's jobs change about ten times a second.
 * Against the local cluster (services as processes, simulated nodes): `--rows` jobs are
 * submitted, the page is opened and set to 1,000 rows a page, then for `--seconds` a job is
 * submitted every 1/`--rate` s (each one is new at the top of the list, and is queued and bound:
 * the page's counts stream carries a change every 100 ms at most). In the page, the browser's own
 * clock: how long the 1,000 rows took to appear (the page draws those in view and 20 on each
 * side, and spacers for the rest), every animation frame's interval while the jobs
 * change (a frame later than 1.5 × 16.7 ms dropped frames: ⌊interval / 16.7 ms + 0.5⌋ − 1 of
 * them), the long tasks (over 50 ms, `PerformanceObserver('longtask')`), and how many times the
 * list was read again. Figures only; nothing is asserted.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '@batchapi/cli';
import { chromium } from 'playwright-core';
import { percentile, progress } from './rng';

export interface ConsoleBenchOptions {
  /** Jobs submitted before the page opens (the rows drawn, at most 1,000 a page). @default 1000 */ rows: number;
  /** Jobs submitted per second while measuring. @default 10 */ rate: number;
  /** Seconds measured. @default 20 */ seconds: number;
}

const ROOT = join(__dirname, '../../..');
const CHROMIUM = '/usr/bin/chromium';
/** One frame at 60 Hz, in milliseconds. */
const FRAME_MS = 1000 / 60;

/** What the page records (installed before its scripts run). */
const RECORDER = `
  window.__bench = { frames: [], longTasks: [], recording: false };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (window.__bench.recording) window.__bench.longTasks.push(e.duration);
  }).observe({ type: 'longtask', buffered: false });
  window.__benchStart = () => {
    window.__bench.recording = true;
    const tick = (t) => {
      if (!window.__bench.recording) return;
      window.__bench.frames.push(t);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  };
`;

export async function benchConsole(o: ConsoleBenchOptions): Promise<Record<string, unknown>> {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium)`);
  progress('console: building the console bundle');
  execFileSync(process.execPath, [join(ROOT, 'apps/console/build.mjs')], { stdio: 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'batch-console-bench-'));
  progress('console: starting the local cluster with 20 simulated nodes');
  const cluster = await LocalCluster.start({ dataDir: dir, executors: 0, simulatedNodes: 20, history: false, onStep: (s) => progress(`console: ${s}`) });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const headers = { authorization: `Bearer ${cluster.tenantToken}`, 'content-type': 'application/json' };
    // Long tasks (an hour, simulated), so the listed jobs stay live and the page shows what changes.
    const job = (i: number) => ({ name: `row-${i}`, command: ['true'], resources: { cpu: '10m', memory: '16Mi' }, env: { BATCH_SIM_SECONDS: '3600' } });
    progress(`console: submitting ${o.rows} jobs`);
    for (let i = 0; i < o.rows; i += 1000) {
      const n = Math.min(1000, o.rows - i);
      const res = await fetch(`${cluster.apiUrl}/v1/jobs:batch`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ jobs: Array.from({ length: n }, (_, k) => ({ ...job(i + k), idempotencyKey: `bench-${i + k}` })) }),
      });
      if (!res.ok) throw new Error(`submitting the jobs failed: ${res.status} ${await res.text()}`);
    }

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.addInitScript(RECORDER);
    let reads = 0;
    page.on('request', (r) => {
      if (/\/v1\/jobs\?/.test(r.url())) reads++;
    });
    await page.goto(`${cluster.apiUrl}/console/`);
    await page.getByLabel('API token').fill(cluster.tenantToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('table[aria-busy=false]').waitFor();
    const want = Math.min(1000, o.rows);
    progress(`console: showing ${want} rows`);
    // (Run in the page: the DOM is the browser's, not this process's.)
    const renderMs = (await page.evaluate(`(async (rows) => {
      const t0 = performance.now();
      const select = document.getElementById('f-rows');
      select.value = '1000';
      select.dispatchEvent(new Event('change', { bubbles: true }));
      await new Promise((resolve) => {
        const check = () => (Number(document.querySelector('table.jobs')?.dataset.rows) >= rows ? resolve() : requestAnimationFrame(check));
        check();
      });
      // The frame after the rows are in the DOM is the one that paints them.
      await new Promise((r) => requestAnimationFrame(r));
      return performance.now() - t0;
    })(${want})`)) as number;

    progress(`console: ${o.seconds} s of ${o.rate} new jobs a second, recording frames`);
    const readsBefore = reads;
    await page.evaluate('window.__benchStart()');
    const started = performance.now();
    const answers: Array<Promise<unknown>> = [];
    for (let i = 0; i < o.seconds * o.rate; i++) {
      const wait = started + (i * 1000) / o.rate - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      answers.push(
        fetch(`${cluster.apiUrl}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify(job(o.rows + i)) }).then(
          (r) => r.text(),
          () => undefined,
        ),
      );
    }
    await Promise.all(answers);
    // The whole measured time even without changes (`--rate 0`: the page alone, a baseline), then a second for the last change to show.
    await new Promise((r) => setTimeout(r, Math.max(0, started + o.seconds * 1000 - performance.now()) + 1000));
    const recorded = (await page.evaluate('window.__bench.recording = false, window.__bench')) as { frames: number[]; longTasks: number[] };
    const rowsShown = Number(await page.locator('table.jobs').getAttribute('data-rows'));
    const rowsDrawn = await page.locator('tr[data-job]').count();
    // Scrolled to the end, the last row of the page is drawn where its spacer stood.
    await page.evaluate('window.scrollTo(0, document.body.scrollHeight)');
    await page.waitForTimeout(300);
    const lastDrawn = await page
      .locator('tbody tr[data-job]')
      .last()
      .evaluate((tr) => tr.nextElementSibling === null);
    const intervals = recorded.frames.slice(1).map((t, i) => t - recorded.frames[i]);
    const sorted = [...intervals].sort((a, b) => a - b);
    const dropped = intervals.reduce((n, d) => n + Math.max(0, Math.floor(d / FRAME_MS + 0.5) - 1), 0);
    const expected = intervals.reduce((a, d) => a + d, 0) / FRAME_MS;
    const result = {
      rows: rowsShown,
      rowsDrawn,
      lastRowDrawnAtTheEnd: lastDrawn,
      renderMs: Math.round(renderMs),
      seconds: o.seconds,
      jobsSubmittedPerSecond: o.rate,
      listReads: reads - readsBefore,
      frames: recorded.frames.length,
      droppedFrames: dropped,
      droppedPercent: expected > 0 ? Math.round((dropped / expected) * 1000) / 10 : 0,
      frameMsP50: Math.round(percentile(sorted, 50) * 10) / 10,
      frameMsP99: Math.round(percentile(sorted, 99) * 10) / 10,
      frameMsMax: Math.round(Math.max(0, ...intervals) * 10) / 10,
      longTasks: recorded.longTasks.length,
      longTaskMsMax: Math.round(Math.max(0, ...recorded.longTasks)),
    };
    progress(
      `console: ${result.rows} rows (${result.rowsDrawn} drawn: those in view and 20 on each side) shown in ${result.renderMs} ms; over ${o.seconds} s the list was read ${result.listReads} times; ` +
        `${result.frames} frames, ${result.droppedFrames} dropped (${result.droppedPercent} %), frame p50 ${result.frameMsP50} ms, p99 ${result.frameMsP99} ms, ` +
        `max ${result.frameMsMax} ms; ${result.longTasks} long tasks, the longest ${result.longTaskMsMax} ms`,
    );
    return result;
  } finally {
    await browser.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
