/**
 * The executor's internal log endpoint over real HTTP: a whole file, a followed stream that
 * ends once the attempt has exited and its file is drained, 404 for a log that does not
 * exist, and 400 for parameters that are not ids (no path traversal). Only callers with the
 * service credential are answered (task pods may share the executor's network).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attemptPaths, type RunningExecutor } from '../src';
import { waitFor } from '@batchapi/proc';
import { bind, groupOf, startNode, useTestbed } from './harness';

const tb = useTestbed();
let ex: RunningExecutor;
beforeAll(async () => {
  ex = await startNode(tb, 'log-node');
});
afterAll(async () => {
  await ex?.close();
});

const logs = (path: string, authorization = ex.ctx.credential.authorization()) => fetch(`${ex.url}/internal/logs/${path}`, { headers: { authorization } });

it("returns a finished attempt's stdout and stderr as text", async () => {
  await bind(tb, 'log-node', 'done', ['sh', '-c', 'echo "out $BATCH_TASK_INDEX"; echo "err $BATCH_TASK_INDEX" >&2'], 2, { resources: { cpu: 100 } });
  await waitFor(
    () => groupOf(tb, 'done'),
    (g) => !!g?.tasks.every((t) => t.state === 'Succeeded'),
  );
  const out = await logs('done/1/1/stdout');
  expect(out.status).toBe(200);
  expect(out.headers.get('content-type')).toMatch(/^text\/plain/);
  expect(await out.text()).toBe('out 1\n');
  expect(await (await logs('done/0/1/stderr')).text()).toBe('err 0\n');
});

it('follows a running attempt: bytes arrive as written, and the stream ends once the process exited', async () => {
  // five lines 300 ms apart, then exit
  await bind(tb, 'log-node', 'tail', ['sh', '-c', 'for i in 1 2 3 4 5; do echo "line $i"; sleep 0.3; done'], 1, { resources: { cpu: 100 } });
  await waitFor(
    () => groupOf(tb, 'tail'),
    (g) => g?.tasks[0].state === 'Running',
  );
  const res = await logs('tail/0/1/stdout?follow=true');
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let stateAtFirstBytes: string | undefined;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (stateAtFirstBytes === undefined) stateAtFirstBytes = (await groupOf(tb, 'tail'))?.tasks[0].state;
    text += decoder.decode(value, { stream: true });
  }
  expect(stateAtFirstBytes).toBe('Running'); // streamed while the task ran, not read after the end
  expect(text).toBe('line 1\nline 2\nline 3\nline 4\nline 5\n');
  expect(ex.agent.isRunning('tail', 0, 1)).toBe(false);
});

it("follows a log across a rotation (copy-and-truncate) from the file's new start", async () => {
  await bind(tb, 'log-node', 'rotated', ['sh', '-c', 'echo first-line-of-output; sleep 1; echo after'], 1, { resources: { cpu: 100 } });
  await waitFor(
    () => groupOf(tb, 'rotated'),
    (g) => g?.tasks[0].state === 'Running',
  );
  const file = attemptPaths(join(tb.dir, 'log-node'), 'rotated', 0, 1).stdout;
  const res = await logs('rotated/0/1/stdout?follow=true');
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  expect(first).toBe('first-line-of-output\n');
  writeFileSync(file, ''); // what rotation does to the file the task keeps appending to
  let rest = '';
  for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
  expect(rest).toBe('after\n');
});

it('answers 404 with not_found for a log that does not exist', async () => {
  const res = await logs('nosuchjob/0/1/stdout');
  expect(res.status).toBe(404);
  expect(((await res.json()) as { error: unknown }).error).toMatchObject({ code: 'not_found', id: 'nosuchjob' });
});

it.each([
  ['..%2F..%2Fetc', '0', '1', 'stdout', 'jobId'],
  ['done', '-1', '1', 'stdout', 'index'],
  ['done', '0', '0', 'stdout', 'attempt'],
  ['done', '0', '1', 'passwd', 'stream'],
  ['done', '0', '1', '..%2F..%2F1.stdout', 'stream'],
])('refuses %s/%s/%s/%s with 400 naming %s, before touching the disk', async (job, index, attempt, stream, field) => {
  const res = await logs(`${job}/${index}/${attempt}/${stream}`);
  expect(res.status).toBe(400);
  expect(((await res.json()) as { error: unknown }).error).toMatchObject({ code: 'invalid_argument', field });
});

it.each([
  ['no credential', ''],
  ["a tenant's bearer token", 'Bearer tenant-token'],
  ['a wrong service token', 'Bearer not-the-service-token-of-this-cluster-at-all'],
  ['the right token in another scheme', () => ex.ctx.credential.authorization().replace('Bearer', 'Basic')],
])('refuses a log to a caller with %s: 401 before any file is read, counted', async (_what, header) => {
  const authorization = typeof header === 'function' ? header() : header;
  const before = await refusals();
  for (const path of ['done/1/1/stdout', 'done/0/1/stderr', 'nosuchjob/0/1/stdout', '..%2F..%2Fetc/0/1/stdout']) {
    const res = await fetch(`${ex.url}/internal/logs/${path}`, { headers: authorization ? { authorization } : {} });
    const body = await res.text();
    expect({ path, status: res.status, code: JSON.parse(body).error.code, field: JSON.parse(body).error.field }).toEqual({
      path,
      status: 401,
      code: 'unauthenticated',
      field: 'Authorization',
    });
    expect(body).not.toMatch(/out 1|err 0/);
  }
  expect((await refusals()) - before).toBe(4);
});

/** Refused internal calls so far, as the executor's /metrics says. */
async function refusals(): Promise<number> {
  const text = await (await fetch(`${ex.url}/metrics`)).text();
  return [...text.matchAll(/^batch_internal_calls_refused_total\{surface="http"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}
