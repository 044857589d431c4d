/**
 * The console in a real browser: Playwright (`playwright-core`) driving Debian's chromium at
 * /usr/bin/chromium against a cluster with one real executor (4 CPUs). Signs in, watches a job go
 * from pending to its end live on its page, opens a failed task's log, sees why a job that
 * cannot fit is pending, cancels from the UI, and checks a tenant gets the 404 page for another
 * tenant's job. Then the second slice's pages: a workflow's graph with its fan-out and critical
 * path followed to its end, a step opening its job; a queue's used bar moving when a job starts;
 * an operator cordoning a node from the nodes page, and a tenant told the page is for operators;
 * a job's Python environment, and one of its tasks cancelled from the task table.
 * Each page's screenshot goes to dist/console-screens/ (not committed).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { initTracing, shutdownTracing } from '@batchapi/telemetry';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { launchConsoleBrowser, SCREENS, signIn as signInWith } from './console-browser';
import { api, until, useCluster } from './harness';

let browser: Browser;
/** Jobs the test submitted: any still running is cancelled before the cluster stops (its executor would wait for them). */
const submitted: string[] = [];
afterAll(async () => {
  await browser?.close();
  for (const id of submitted) await api(c.base, 'DELETE', `/v1/jobs/${id}`).catch(() => undefined);
});
const ROOT = join(__dirname, '../../..');
const TRACE_UI = 'https://traces.example.com/trace/{traceId}';
const c = useCluster({ executor: {}, traceUrl: TRACE_UI });

beforeAll(async () => {
  browser = await launchConsoleBrowser();
  // Tracing on in this process (its services' spans kept in memory): a submit's span continues the caller's trace.
  initTracing('console-e2e', { exporter: new InMemorySpanExporter() });
});
afterAll(() => shutdownTracing());

/** A new tab signed in with `token` through the sign-in form, on the jobs page. */
const signIn = (token: string, screenshot?: string): Promise<Page> => signInWith(browser, c.base, token, screenshot);

const submit = async (body: unknown, token = 'tenant-token') => {
  const res = await api(c.base, 'POST', '/v1/jobs', body, token);
  expect(res.status).toBe(201);
  submitted.push(res.body.id as string);
  return res.body.id as string;
};
/** `ms` as a `datetime-local` input holds it: the browser's own time zone, to the second. */
const inputTime = (page: Page, ms: number) =>
  page.evaluate((t) => {
    const d = new Date(t);
    const p = (n: number) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }, ms);
const phaseOf = async (id: string) => (await api(c.base, 'GET', `/v1/jobs/${id}`)).body.phase as string;

it('is served with a strict Content-Security-Policy', async () => {
  const res = await fetch(`${c.base}/console/`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
  expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
});

it('follows a job from pending to its end live, shows a failed task log, why an unfit job waits, cancels from the UI, sorts and filters the list, and hides other tenants’ jobs', async () => {
  const page = await signIn('tenant-token', 'sign-in.png');

  // A blocker holds all 4 CPUs of the node, so the next job waits until it is cancelled from the UI.
  const blocker = await submit({ name: 'blocker', resources: { cpu: '4', memory: '32Mi' }, command: ['sleep', '60'] });
  expect(await until(async () => (await phaseOf(blocker)) === 'Running')).toBe(true);
  // The jobs page shows it without a reload (its counts stream reloads the list).
  await page.locator(`tr[data-job="${blocker}"]`).getByText('Running').waitFor();

  const job = await submit({
    name: 'two-tasks',
    tasks: 2,
    resources: { cpu: '1', memory: '32Mi' },
    command: ['sh', '-c', 'echo "out-$BATCH_TASK_INDEX"; if [ "$BATCH_TASK_INDEX" = 1 ]; then echo "broke-$BATCH_TASK_INDEX" >&2; exit 3; fi'],
  });
  await page.locator(`tr[data-job="${job}"]`).waitFor();
  await page.screenshot({ path: join(SCREENS, 'jobs.png'), fullPage: true });

  // Its page, opened while it waits behind the blocker: record every phase the page shows, in one load.
  await page.getByRole('link', { name: 'two-tasks' }).click();
  const phase = page.getByTestId('phase');
  await phase.waitFor();
  // (Browser code as text: this file is type-checked without the DOM's types.)
  await page.evaluate(`{
    const el = document.querySelector('[data-testid=phase]');
    window.shown = [el.textContent];
    new MutationObserver(() => window.shown.push(el.textContent)).observe(el, { characterData: true, childList: true, subtree: true });
  }`);
  expect(['Submitted', 'Queued']).toContain(await phase.textContent());
  await page.getByTestId('why').waitFor();
  await page.screenshot({ path: join(SCREENS, 'job-pending.png'), fullPage: true });

  // Cancel the blocker from its page, in a second tab, through the confirmation.
  const other = await signIn('tenant-token');
  await other.goto(`${c.base}/console/#/jobs/${blocker}`);
  await other.getByRole('button', { name: 'Cancel job' }).click();
  await other.getByRole('dialog').getByRole('button', { name: 'Cancel the job' }).click();
  await other.getByTestId('phase').getByText('Cancelled').waitFor();
  expect(await phaseOf(blocker)).toBe('Cancelled');
  await other.close();

  // The first tab follows the job to its end with no reload: task 1 exited 3, so the job failed.
  await phase.getByText('Failed').waitFor({ timeout: 30000 });
  const shown = await page.evaluate<string[]>('window.shown');
  expect(['Submitted', 'Queued']).toContain(shown[0]);
  expect(shown[shown.length - 1]).toBe('Failed');

  // Resubmit the failed job from its page: the new job's page opens, and the new job names the first.
  await page.getByRole('button', { name: 'Resubmit', exact: true }).click();
  await page.waitForURL((url) => url.hash.startsWith('#/jobs/') && !url.hash.endsWith(`/${job}`));
  const again = decodeURIComponent(new URL(page.url()).hash.slice('#/jobs/'.length));
  await page.getByRole('heading', { name: /two-tasks/ }).waitFor();
  expect((await api(c.base, 'GET', `/v1/jobs/${again}`)).body.labels).toMatchObject({ 'batch.resubmitted-from': job });
  await api(c.base, 'DELETE', `/v1/jobs/${again}`);
  await page.goto(`${c.base}/console/#/jobs/${job}`);
  await phase.getByText('Failed').waitFor();

  // Resubmit with changes: a line the form cannot read is refused naming its field and sends
  // nothing; then a new priority, less CPU and a variable set, and only those change.
  await page.getByRole('button', { name: 'Resubmit with changes…' }).click();
  const form = page.getByRole('dialog', { name: /Resubmit two-tasks with changes/ });
  await form.getByLabel('Set labels').fill('no equals sign here');
  await form.getByRole('button', { name: 'Resubmit', exact: true }).click();
  await form.getByRole('alert').getByText('labels: one key=value a line').waitFor();
  await form.getByLabel('Set labels').fill('');
  await form.getByLabel('Priority').fill('7');
  await form.getByLabel('CPU per task').fill('500m');
  await form.getByLabel('Set variables').fill('EXTRA=yes');
  await form.getByRole('button', { name: 'Resubmit', exact: true }).click();
  await page.waitForURL((url) => url.hash.startsWith('#/jobs/') && !url.hash.endsWith(`/${job}`));
  const changed = decodeURIComponent(new URL(page.url()).hash.slice('#/jobs/'.length));
  const [first, second] = await Promise.all([job, changed].map(async (id) => (await api(c.base, 'GET', `/v1/jobs/${id}`)).body));
  expect(second).toMatchObject({
    priority: 7,
    resources: { ...first.resources, cpu: '500m' },
    env: { ...first.env, EXTRA: 'yes' },
    tasks: first.tasks,
    queue: first.queue,
  });
  expect(second.command).toEqual(first.command);
  await api(c.base, 'DELETE', `/v1/jobs/${changed}`);
  await page.goto(`${c.base}/console/#/jobs/${job}`);
  await phase.getByText('Failed').waitFor();

  // The failed task's log: only failed tasks listed, stdout then stderr.
  await page.getByLabel('Failed tasks only').check();
  await page.locator('table[data-tasks=failed][aria-busy=false]').waitFor();
  const logButton = page.getByRole('button', { name: 'Log of task 1 attempt 1' });
  await logButton.waitFor();
  expect(await page.getByRole('button', { name: /^Log of task 0/ }).count()).toBe(0);
  await logButton.click();
  await page.getByTestId('log').getByText('out-1').waitFor();
  await page.getByLabel('stderr').check();
  await page.getByTestId('log').getByText('broke-1').waitFor();
  await page.screenshot({ path: join(SCREENS, 'job-failed-log.png'), fullPage: true });

  // A job no node can hold: why it waits, with the node count and what would let it run.
  const unfit = await submit({ name: 'too-big', resources: { cpu: '64', memory: '32Mi' }, command: ['true'] });
  await page.goto(`${c.base}/console/#/jobs/${unfit}`);
  const why = page.getByTestId('why');
  await why.waitFor();
  await why.getByText('Blocking constraints').waitFor();
  const explained = (await api(c.base, 'GET', `/v1/jobs/${unfit}/why`)).body as { blockers: Array<{ reason: string; nodes: number }> };
  expect(explained.blockers.length).toBeGreaterThan(0);
  await why.getByRole('cell', { name: explained.blockers[0].reason }).waitFor();
  await page.screenshot({ path: join(SCREENS, 'job-why.png'), fullPage: true });

  // Cancel many from the jobs page: select the unfit job, confirm.
  await page.goto(`${c.base}/console/#/`);
  await page.getByLabel('Select too-big').check();
  await page.getByRole('button', { name: 'Cancel selected (1)' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel the jobs' }).click();
  await page.locator(`tr[data-job="${unfit}"]`).getByText('Cancelled').waitFor();
  expect(await phaseOf(unfit)).toBe('Cancelled');
  await page.screenshot({ path: join(SCREENS, 'jobs-after-cancel.png'), fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: join(SCREENS, 'jobs-dark.png'), fullPage: true });

  // Sorted by submit time, newest first; a click on the column turns it to oldest first.
  const rows = page.locator('tbody tr[data-job]');
  expect(await rows.first().getAttribute('data-job')).toBe(unfit);
  await page.getByRole('button', { name: 'Submitted' }).click();
  await page.locator('th[aria-sort=ascending]').waitFor();
  await page.locator(`tbody tr[data-job]:first-child[data-job="${blocker}"]`).waitFor();
  // A filter of GET /v1/jobs: the name prefix leaves the job and its two resubmits, oldest first.
  await page.getByLabel('Name prefix').fill('two-');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.locator(`tr[data-job="${blocker}"]`).waitFor({ state: 'detached' });
  expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-job')))).toEqual([job, again, changed]);
  // A submit-time range, typed in the browser's own time zone to the second: from the unfit job's
  // second on leaves exactly the jobs the API says were submitted then or later (the blocker, the first, is not one).
  const all = (await api(c.base, 'GET', '/v1/jobs?limit=100')).body as { jobs: Array<{ id: string; createdAt: string }> };
  const from = Math.floor(Date.parse(all.jobs.find((j) => j.id === unfit)!.createdAt) / 1000) * 1000;
  const later = all.jobs
    .filter((j) => Date.parse(j.createdAt) >= from)
    .map((j) => j.id)
    .sort();
  expect(later).toContain(unfit);
  expect(later).not.toContain(blocker);
  const local = await inputTime(page, from);
  await page.getByLabel('Name prefix').fill('');
  await page.getByLabel('Submitted from').fill(local);
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.locator(`tr[data-job="${job}"]`).waitFor({ state: 'detached' });
  expect((await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-job')))).sort()).toEqual(later);
  await page.close();

  // Another tenant's token: the job is a 404 page, and absent from its list.
  const stranger = await signIn('other-token');
  await stranger.locator('table[aria-busy=false]').waitFor();
  expect(await stranger.locator(`tr[data-job="${job}"]`).count()).toBe(0);
  await stranger.goto(`${c.base}/console/#/jobs/${job}`);
  await stranger.getByRole('heading', { name: '404: job not found' }).waitFor();
  await stranger.screenshot({ path: join(SCREENS, 'not-found.png'), fullPage: true });
  await stranger.close();
});

it('signs in from a link (the token in the fragment) and opens the page it names, the token taken out of the address', async () => {
  const page = await browser.newPage();
  await page.goto(`${c.base}/console/#token=tenant-token&to=/queues`);
  await page.getByRole('heading', { name: 'Queues' }).waitFor();
  expect(new URL(page.url()).hash).toBe('#/queues');
  expect(page.url()).not.toContain('tenant-token');
  // signed in: the page's reads carry the token
  await page.locator('section.queue[data-queue=default]').waitFor();
  await page.close();
});

it('links a job’s trace id to the trace UI the deployment names', async () => {
  // A caller that traces sends its trace context: the job carries the trace it was submitted in.
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const res = await fetch(`${c.base}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: 'Bearer tenant-token', 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    body: JSON.stringify({ name: 'traced', resources: { cpu: '100m', memory: '16Mi' }, command: ['true'] }),
  });
  expect(res.status).toBe(201);
  const id = ((await res.json()) as { id: string; traceId?: string }).id;
  submitted.push(id);
  expect((await api(c.base, 'GET', `/v1/jobs/${id}`)).body.traceId).toBe(traceId);
  const page = await signIn('tenant-token');
  await page.goto(`${c.base}/console/#/jobs/${id}`);
  const link = page.getByRole('link', { name: traceId });
  await link.waitFor();
  expect(await link.getAttribute('href')).toBe(TRACE_UI.replace('{traceId}', traceId));
  expect(await link.getAttribute('target')).toBe('_blank');
  expect(await link.getAttribute('rel')).toContain('noopener');
  await page.close();
});

it('resubmits the selected jobs from the jobs page: a new job for each, labelled with the one it came from; filters by finish time', async () => {
  const first = await submit({ name: 'bulk-a', resources: { cpu: '100m', memory: '32Mi' }, command: ['true'] });
  const second = await submit({ name: 'bulk-b', resources: { cpu: '100m', memory: '32Mi' }, command: ['true'] });
  expect(await until(async () => (await phaseOf(first)) === 'Succeeded' && (await phaseOf(second)) === 'Succeeded', 20000)).toBe(true);
  // `since`: the next whole second (a datetime-local input's precision) after both ended; the resubmit waits for it.
  const ends = await Promise.all([first, second].map(async (id) => Date.parse((await api(c.base, 'GET', `/v1/jobs/${id}`)).body.finishedAt as string)));
  const since = (Math.floor(Math.max(...ends) / 1000) + 1) * 1000;
  await new Promise((r) => setTimeout(r, Math.max(0, since - Date.now())));
  const page = await signIn('tenant-token');
  await page.getByLabel('Name prefix').fill('bulk-');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByLabel('Select bulk-a').check();
  await page.getByLabel('Select bulk-b').check();
  await page.getByRole('button', { name: 'Resubmit selected (2)' }).click();
  const status = page.getByRole('status');
  await status.getByText(/Resubmitted as/).waitFor();
  // The API's own list: exactly one new job from each, named in the notice, and they run.
  const listed = (await api(c.base, 'GET', '/v1/jobs?namePrefix=bulk-&limit=100')).body.jobs as Array<{ id: string; labels: Record<string, string> }>;
  const made = listed.filter((j) => j.labels['batch.resubmitted-from']);
  expect(made.map((j) => j.labels['batch.resubmitted-from']).sort()).toEqual([first, second].sort());
  submitted.push(...made.map((j) => j.id));
  for (const j of made) expect(await status.textContent()).toContain(j.id);
  expect(await until(async () => (await Promise.all(made.map((j) => phaseOf(j.id)))).every((p) => p === 'Succeeded'), 20000)).toBe(true);
  // The finish-time range: from `since` on, the two new jobs (made after it) and not the two they came from.
  await page.getByLabel('Finished from').fill(await inputTime(page, since));
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.locator(`tr[data-job="${first}"]`).waitFor({ state: 'detached' });
  for (const j of made) await page.locator(`tr[data-job="${j.id}"]`).waitFor();
  const shown = await page.locator('tr[data-job]').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-job')));
  expect(shown.sort()).toEqual(made.map((j) => j.id).sort());
  await page.close();
});

it("draws a workflow's graph with its fan-out and critical path live to its end, opens a step's job, and cancels another workflow", async () => {
  const sh = (script: string) => ({ resources: { cpu: '100m', memory: '16Mi' }, command: ['sh', '-c', script] });
  const res = await api(c.base, 'POST', '/v1/workflows', {
    name: 'shards',
    steps: [
      { name: 'prep', job: sh('sleep 0.3') },
      // The fan-out: one array job, a task per item.
      {
        name: 'square',
        dependsOn: ['prep'],
        map: { items: [1, 2, 3] },
        job: sh('sleep 0.5; echo $((BATCH_MAP_ITEM * BATCH_MAP_ITEM)) > "$BATCH_RESULT_PATH"'),
      },
      { name: 'total', dependsOn: ['square'], job: sh('true') },
    ],
  });
  expect(res.status).toBe(201);
  const id = res.body.id as string;

  const page = await signIn('tenant-token');
  await page.getByRole('link', { name: 'Workflows' }).click();
  await page.locator(`tr[data-workflow="${id}"]`).getByRole('link', { name: 'shards' }).click();
  const phase = page.getByTestId('phase');
  await phase.waitFor();
  // The graph: three steps, the map step drawn as one node with its ring; followed live to the end.
  expect(await page.locator('svg.dag [data-step]').count()).toBe(3);
  await page.locator('svg.dag [data-step=square].fan-out circle.ring').waitFor();
  await phase.getByText('Succeeded').waitFor({ timeout: 20000 });
  await page.locator('svg.dag [data-step=square]').getByText('Succeeded · 3/3').waitFor();
  // prep → square → total is the only chain: it is the critical path, its two edges highlighted.
  await page
    .getByTestId('critical-path')
    .getByText(/^prep → square → total/)
    .waitFor();
  expect(await page.locator('svg.dag .edge.critical').count()).toBe(2);
  expect(await page.locator('svg.dag .step.critical').count()).toBe(3);
  await page.screenshot({ path: join(SCREENS, 'workflow.png'), fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: join(SCREENS, 'workflow-dark.png'), fullPage: true });
  await page.emulateMedia({ colorScheme: 'light' });

  // A step is a link to its job's page, which links back to the workflow.
  const square = ((await api(c.base, 'GET', `/v1/workflows/${id}`)).body.steps as Array<{ name: string; jobId: string }>).find((s) => s.name === 'square')!;
  await page.locator('svg.dag a[data-step=square]').click();
  await page.waitForURL(`**/console/#/jobs/${square.jobId}`);
  await page.getByTestId('phase').getByText('Succeeded').waitFor();
  await page.getByRole('link', { name: id }).waitFor();

  // Cancel cascades: a workflow whose first step sleeps, cancelled from its page after the confirmation.
  const slow = await api(c.base, 'POST', '/v1/workflows', {
    name: 'slow',
    steps: [
      { name: 'wait', job: sh('sleep 60') },
      { name: 'after', dependsOn: ['wait'], job: sh('true') },
    ],
  });
  await page.goto(`${c.base}/console/#/workflows/${slow.body.id}`);
  await page.locator('svg.dag [data-step=wait].step-Running').waitFor({ timeout: 15000 });
  await page.screenshot({ path: join(SCREENS, 'workflow-running.png'), fullPage: true });
  await page.getByRole('button', { name: 'Cancel workflow' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel the workflow' }).click();
  await page.getByTestId('phase').getByText('Cancelled').waitFor();
  const cancelled = (await api(c.base, 'GET', `/v1/workflows/${slow.body.id}`)).body as { phase: string; steps: Array<{ jobId: string | null }> };
  expect(cancelled.phase).toBe('Cancelled');
  expect(await phaseOf(cancelled.steps[0].jobId!)).toBe('Cancelled');
  await page.close();
});

it("shows a queue's used bar move when a job starts, lets an operator cordon and drain a node (a job from the CLI requeued), and tells a tenant the nodes page is for operators", async () => {
  // Nothing of the queue runs (the tasks cancelled before have left their node).
  const queues = async () => (await api(c.base, 'GET', '/v1/queues')).body.queues as Array<{ name: string; used: Record<string, unknown> }>;
  expect(await until(async () => (await queues()).every((q) => q.used.cpu === undefined))).toBe(true);
  const page = await signIn('tenant-token');
  await page.getByRole('link', { name: 'Queues' }).click();
  const queue = page.locator('[data-queue=default]');
  await queue.waitFor();
  expect(await queue.locator('.bar-row[data-resource=cpu]').count()).toBe(0);
  const job = await submit({ name: 'holds-two', resources: { cpu: '2', memory: '32Mi' }, command: ['sleep', '60'] });
  // Live (no reload): the queue's CPU bar shows the 2 CPUs once the job's task is bound.
  await queue.locator('.bar-row[data-resource=cpu] .bar[data-used="2"]').waitFor({ timeout: 15000 });
  // A job that fits no node waits: opened, the queue lists it at the place GET /v1/queues/default gives it, linked to its page.
  const waiting = await submit({ name: 'waits', resources: { cpu: '64', memory: '32Mi' }, command: ['true'] });
  await queue.getByText(/Your waiting jobs/).click();
  const placed = queue.locator(`tr[data-position-job="${waiting}"]`);
  await placed.waitFor({ timeout: 15000 });
  const positions = (await api(c.base, 'GET', '/v1/queues/default')).body.positions as Array<{ jobId: string; position: number; pendingTasks: number }>;
  const mine = positions.find((p) => p.jobId === waiting)!;
  expect(await placed.locator('td').allTextContents()).toEqual([String(mine.position), waiting, '1']);
  await page.screenshot({ path: join(SCREENS, 'queues.png'), fullPage: true });
  await api(c.base, 'DELETE', `/v1/jobs/${waiting}`);
  await api(c.base, 'DELETE', `/v1/jobs/${job}`);

  // A tenant's token: the nodes page says who may see it.
  await page.getByRole('link', { name: 'Nodes' }).click();
  await page.getByTestId('operators-only').waitFor();
  await page.screenshot({ path: join(SCREENS, 'nodes-tenant.png'), fullPage: true });
  await page.close();

  // An operator cordons the executor's node through the confirmation; the API then shows it cordoned.
  const ops = await signIn('operator-token');
  await ops.getByRole('link', { name: 'Nodes' }).click();
  const row = ops.locator('tr[data-node=local-0]');
  await row.getByText('Ready').waitFor();
  await row.getByRole('button', { name: 'Cordon local-0' }).click();
  const dialog = ops.getByRole('dialog');
  await dialog.getByLabel('Reason').fill('disk check');
  await dialog.getByRole('button', { name: 'Cordon the node' }).click();
  await row.getByText('Cordoned').waitFor();
  await row.getByText(/disk check/).waitFor();
  const listed = (await api(c.base, 'GET', '/v1/nodes', undefined, 'operator-token')).body.nodes as Array<{ name: string; cordon?: { reason: string } }>;
  expect(listed.find((n) => n.name === 'local-0')?.cordon?.reason).toBe('disk check');
  await ops.screenshot({ path: join(SCREENS, 'nodes.png'), fullPage: true });
  // Uncordon, through its confirmation: the page shows it ready again (the cordon's key deleted).
  await row.getByRole('button', { name: 'Uncordon local-0' }).click();
  await ops.getByRole('dialog').getByRole('button', { name: 'Uncordon the node' }).click();
  await row.getByText('Ready').waitFor();
  expect((await api(c.base, 'GET', '/v1/nodes', undefined, 'operator-token')).body.nodes[0].cordon).toBeUndefined();

  // A job submitted from the CLI (the built `batch`, as a user runs it) runs on the node; the
  // operator drains the node through the confirmation: the page shows it draining with the reason,
  // the API holds the drain's deadline, and at the deadline the task is stopped and requeued.
  // (Not execFileSync: the cluster's services run in this process and must answer meanwhile.)
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(ROOT, 'apps/cli/dist/main.js'), 'submit', '--name', 'from-cli', '--cpu', '100m', '--memory', '32Mi', '--', 'sleep', '60'],
    {
      env: { ...process.env, BATCH_API: c.base, BATCH_TOKEN: 'tenant-token' },
      encoding: 'utf8',
    },
  );
  const cli = stdout.trim();
  submitted.push(cli);
  expect(await until(async () => (await phaseOf(cli)) === 'Running')).toBe(true);
  await row.getByRole('button', { name: 'Drain local-0' }).click();
  const drain = ops.getByRole('dialog');
  await drain.getByLabel('Reason').fill('kernel upgrade');
  await drain.getByLabel('Deadline (seconds)').fill('1');
  await drain.getByRole('button', { name: 'Drain the node' }).click();
  await row.getByText('Draining').waitFor();
  await row.getByText(/kernel upgrade/).waitFor();
  const drained = (await api(c.base, 'GET', '/v1/nodes', undefined, 'operator-token')).body.nodes[0] as { cordon?: { reason: string; drainDeadline?: string } };
  expect(drained.cordon).toMatchObject({ reason: 'kernel upgrade', drainDeadline: expect.any(String) });
  // Past the deadline the task is stopped (SIGTERM) and handed back: its next attempt waits (no other node takes it).
  const attempts = async () => (await api(c.base, 'GET', `/v1/jobs/${cli}/tasks`)).body.tasks as Array<{ attempt: number; state: string; signal?: string }>;
  expect(await until(async () => (await attempts()).some((t) => t.attempt === 2), 20_000)).toBe(true);
  expect((await attempts()).map((t) => [t.attempt, t.state, t.signal])).toEqual([
    [1, 'Preempted', 'SIGTERM'],
    [2, 'Pending', undefined],
  ]);
  await ops.screenshot({ path: join(SCREENS, 'nodes-draining.png'), fullPage: true });
  await row.getByRole('button', { name: 'Uncordon local-0' }).click();
  await ops.getByRole('dialog').getByRole('button', { name: 'Uncordon the node' }).click();
  await row.getByText('Ready').waitFor();
  await api(c.base, 'DELETE', `/v1/jobs/${cli}`);
  await ops.close();
});

it("shows a job's Python environment and cancels one of its tasks from the task table", async () => {
  // Two tasks no node can take (a selector nobody meets): both stay Pending, each with its Cancel button.
  const id = await submit({
    name: 'py-env',
    tasks: 2,
    selector: { 'no.such.label': 'x' },
    python: { requirements: ['numpy==2.1.3', 'pandas>=2.2'] },
    resources: { cpu: '100m', memory: '32Mi' },
    command: ['python3', '-c', 'print(1)'],
  });
  const page = await signIn('tenant-token');
  await page.goto(`${c.base}/console/#/jobs/${id}`);
  const env = page.getByTestId('python-env');
  await env.getByText('2 requirements').waitFor();
  await env.getByText('2 requirements').click();
  await env.getByText('numpy==2.1.3').waitFor();
  await page.screenshot({ path: join(SCREENS, 'job-python-env.png'), fullPage: true });

  await page.getByRole('button', { name: 'Cancel task 1' }).click();
  expect(await until(async () => (await api(c.base, 'GET', `/v1/jobs/${id}`)).body.taskCounts.cancelled === 1)).toBe(true);
  // Task 1 is gone from the pending rows; task 0 still waits, still cancellable.
  await until(async () => (await page.getByRole('button', { name: 'Cancel task 1' }).count()) === 0);
  expect(await page.getByRole('button', { name: 'Cancel task 1' }).count()).toBe(0);
  expect(await page.getByRole('button', { name: 'Cancel task 0' }).count()).toBe(1);
  await page.close();
});
