/**
 * A job's `python` through a real executor over a real etcd, built with the real venv and pip
 * from a local wheel directory (`BATCH_PIP_NO_INDEX`, `BATCH_PIP_FIND_LINKS`): the task's
 * `python3` is the environment's and imports the requirement; a second job with the same
 * requirements runs in the same environment, built once; a requirement the index does not have
 * ends the attempt `NodeError` (run again elsewhere, never counted as the task's failure) with
 * pip's own message in the task's stderr — not the exit 127 of a missing module.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pythonEnvOf } from '@batchapi/api';
import { waitFor } from '@batchapi/proc';
import { attemptPaths, type RunningExecutor } from '../src';
import { bind, groupOf, jobOf, startNode, useTestbed } from './harness';
import { writeWheel } from './wheels';

const tb = useTestbed();
let ex: RunningExecutor;
let wheels: string;

beforeAll(async () => {
  wheels = mkdtempSync(join(tmpdir(), 'wheels-'));
  writeWheel(wheels, 'tinypkg', '1.0', 'from the wheel');
  ex = await startNode(tb, 'py-node', { pip: { noIndex: true, findLinks: wheels } });
});
afterAll(() => ex?.close());

const ended = (id: string) =>
  waitFor(
    () => groupOf(tb, id),
    (g) => !!g && g.tasks.every((t) => t.state !== 'Bound' && t.state !== 'Running'),
    { timeoutMs: 60_000 },
  );
const output = (id: string, stream: 'stdout' | 'stderr') => readFileSync(attemptPaths(join(tb.dir, 'py-node'), id, 0, 1)[stream], 'utf8');
const task = ['python3', '-c', 'import os, sys, tinypkg; print(tinypkg.VALUE); print(sys.prefix == os.environ["VIRTUAL_ENV"])'];

it("runs the task with the environment's python3, which imports the requirement; a second job reuses the environment", async () => {
  const python = pythonEnvOf({ requirements: ['tinypkg==1.0'] });
  await bind(tb, 'py-node', 'py-first', task, 1, { resources: { cpu: 100 }, binding: { python } });
  expect((await ended('py-first'))!.tasks[0]).toMatchObject({ state: 'Succeeded', exitCode: 0 });
  expect(output('py-first', 'stdout')).toBe('from the wheel\nTrue\n');

  await bind(tb, 'py-node', 'py-second', task, 1, { resources: { cpu: 100 }, binding: { python } });
  expect((await ended('py-second'))!.tasks[0]).toMatchObject({ state: 'Succeeded', exitCode: 0 });
  expect(output('py-second', 'stdout')).toBe('from the wheel\nTrue\n');
  // one venv on the node, built once and found by the second attempt
  expect(readdirSync(join(tb.dir, 'py-node', 'python-envs', 'store'))).toHaveLength(1);
  const metrics = await (await fetch(`${ex.url}/metrics`)).text();
  expect(metrics).toMatch(/batch_executor_python_envs_total\{outcome="built",service="executor"\} 1\n/);
  expect(metrics).toMatch(/batch_executor_python_envs_total\{outcome="cached",service="executor"\} 1\n/);
});

it("ends the attempt NodeError with pip's message in the task's stderr when a requirement cannot be installed", async () => {
  const python = pythonEnvOf({ requirements: ['nosuchpkg==9.9'] });
  await bind(tb, 'py-node', 'py-missing', task, 1, { resources: { cpu: 100 }, binding: { python } });
  const t = (await ended('py-missing'))!.tasks[0];
  expect(t).toMatchObject({ state: 'Failed', reason: 'NodeError', exitCode: 126 });
  const stderr = output('py-missing', 'stderr');
  expect(stderr).toMatch(
    /^batch: could not build python environment sha256:[0-9a-f]{64}: pip install exited 1 \(ERROR: No matching distribution found for nosuchpkg==9\.9\)\nits output ends:\n/,
  );
  expect(stderr).toMatch(/No matching distribution found for nosuchpkg==9\.9/);
  // the node's fault, not the task's: requeued at the next attempt, nothing counted failed
  const job = await waitFor(
    () => jobOf(tb, 'py-missing'),
    (j) => (j?.pending.length ?? 0) > 0,
    { timeoutMs: 5000 },
  );
  expect(job).toMatchObject({ counts: { failed: 0 }, pending: [{ start: 0, end: 1, attempt: 2 }] });
});
