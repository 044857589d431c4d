/**
 * A job's `python` through a real executor over a real etcd, built with the real venv and pip
 * from a local wheel directory (`BATCH_PIP_NO_INDEX`, `BATCH_PIP_FIND_LINKS`): the task's
 * `python3` is the environment's and imports the requirement; a second job with the same
 * requirements runs in the same environment, built once; a requirement the index has no
 * distribution of ends the attempt `Error` 126 (the job's fault; any other failed build is the
 * node's, `NodeError`), with pip's own message in the task's stderr — not the exit 127 of a
 * missing module.
 * Hashed requirements (a `pip-compile --generate-hashes` lock file) install with `--require-hashes`:
 * the wheel's own hash builds the environment; a wrong one ends the attempt `Error` 126 like a
 * missing requirement, with pip's "do not match the hashes" in its stderr.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pythonEnvOf } from '@batchapi/api';
import { waitFor } from '@batchapi/proc';
import { attemptPaths, type RunningExecutor } from '../src';
import { bind, groupOf, startNode, useTestbed } from './harness';
import type { Binding } from '@batchapi/api';
import { hangingIndex, writeWheel } from './wheels';

const tb = useTestbed();
let ex: RunningExecutor;
let wheels: string;

beforeAll(async () => {
  wheels = mkdtempSync(join(tmpdir(), 'wheels-'));
  writeWheel(wheels, 'tinypkg', '1.0', 'from the wheel');
  writeWheel(wheels, 'hashedpkg', '1.0', 'from the hashed wheel');
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

it("ends the attempt Error 126 with pip's message in the task's stderr when the index has no such requirement (no node blamed)", async () => {
  const python = pythonEnvOf({ requirements: ['nosuchpkg==9.9'] });
  await bind(tb, 'py-node', 'py-missing', task, 1, { resources: { cpu: 100 }, binding: { python } });
  const t = (await ended('py-missing'))!.tasks[0];
  // the job's fault, like a working dir its tenant does not have: Error, not NodeError (which counts toward quarantine)
  expect(t).toMatchObject({ state: 'Failed', reason: 'Error', exitCode: 126 });
  const stderr = output('py-missing', 'stderr');
  expect(stderr).toMatch(
    /^batch: could not build python environment sha256:[0-9a-f]{64}: pip install exited 1 \(ERROR: No matching distribution found for nosuchpkg==9\.9\)\nits output ends:\n/,
  );
  expect(stderr).toMatch(/No matching distribution found for nosuchpkg==9\.9/);
});

it('ends an attempt cancelled while its environment is being built at once, without starting it', async () => {
  const index = await hangingIndex();
  const hung = await startNode(tb, 'py-hang', { pip: { noIndex: true, findLinks: index.url } });
  try {
    await bind(tb, 'py-hang', 'py-cancel', ['sh', '-c', 'echo ran'], 1, {
      resources: { cpu: 100 },
      binding: { python: pythonEnvOf({ requirements: ['tinypkg==1.0'] }) },
    });
    await waitFor(
      () => groupOf(tb, 'py-cancel'),
      (g) => g?.tasks[0].state === 'Running',
    );
    const key = tb.store.keys.binding('py-hang', 'py-cancel', 0, 1);
    const b = (await tb.store.get<Binding>(key))!;
    await tb.store.txn([], [{ put: key, value: { ...b.value, cancelRequested: true } }]);
    // the build hangs on the index (pip would wait minutes): the cancel does not wait for it
    const g = await waitFor(
      () => groupOf(tb, 'py-cancel'),
      (x) => x?.tasks[0].state === 'Cancelled',
    );
    expect(g?.tasks[0].state).toBe('Cancelled');
    // never started: no output of its command
    expect(existsSync(attemptPaths(join(tb.dir, 'py-hang'), 'py-cancel', 0, 1).stdout)).toBe(false);
  } finally {
    await hung.close(); // kills the build
    await index.close();
  }
});

describe('hashed requirements (pip-compile --generate-hashes)', () => {
  const sha256 = (file: string) =>
    createHash('sha256')
      .update(readFileSync(join(wheels, file)))
      .digest('hex');
  const hashedTask = ['python3', '-c', 'import hashedpkg; print(hashedpkg.VALUE)'];

  it("builds the environment when the wheel matches the requirement's hash", async () => {
    const hash = sha256('hashedpkg-1.0-py3-none-any.whl');
    // two hashes, as a lock file lists one per file of the release: pip takes a file matching any
    const python = pythonEnvOf({ requirements: [`hashedpkg==1.0 --hash=sha256:${'0'.repeat(64)} --hash=sha256:${hash}`] });
    await bind(tb, 'py-node', 'py-hashed', hashedTask, 1, { resources: { cpu: 100 }, binding: { python } });
    expect((await ended('py-hashed'))!.tasks[0]).toMatchObject({ state: 'Succeeded', exitCode: 0 });
    expect(output('py-hashed', 'stdout')).toBe('from the hashed wheel\n');
  });

  it("ends the attempt Error 126 (the job's fault) when the wheel does not match the hash, with pip's message in the task's stderr", async () => {
    const python = pythonEnvOf({ requirements: [`hashedpkg==1.0 --hash=sha256:${'f'.repeat(64)}`] });
    await bind(tb, 'py-node', 'py-badhash', hashedTask, 1, { resources: { cpu: 100 }, binding: { python } });
    expect((await ended('py-badhash'))!.tasks[0]).toMatchObject({ state: 'Failed', reason: 'Error', exitCode: 126 });
    const stderr = output('py-badhash', 'stderr');
    expect(stderr).toMatch(
      /^batch: could not build python environment sha256:[0-9a-f]{64}: pip install exited 1 \(ERROR: THESE PACKAGES DO NOT MATCH THE HASHES/,
    );
    expect(stderr).toContain(`Expected sha256 ${'f'.repeat(64)}`);
    // never built: nothing published on the node for it
    expect(stderr).not.toMatch(/^from the hashed wheel/m);
  });
});
