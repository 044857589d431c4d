/**
 * `detectGpus` with fake `nvidia-smi` scripts (real child processes): the GPUs it lists; no GPUs
 * for a missing binary, an empty name, a failure, or no answer within the timeout — and then its
 * whole process group is killed, a wrapper script's children too.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@batchapi/proc';
import { detectGpus } from '../src';
import { alive } from './harness';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'inventory-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fake nvidia-smi running `body` (sh). */
function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

it.each([
  ['lists the GPUs it prints', 'echo "0, NVIDIA H100 80GB HBM3, 81559, GPU-a"\necho "1, NVIDIA H100 80GB HBM3, 81559, GPU-b"', ['GPU-a', 'GPU-b']],
  ['skips lines that are not a GPU', 'echo "No devices were found"\necho "3, T4, 15360, GPU-t"', ['GPU-t']],
  ['finds none when it fails, whatever it printed', 'echo "0, A100, 40960, GPU-x"\nexit 9', []],
  ['finds none when it prints nothing', 'exit 0', []],
])('%s', async (name, body, uuids) => {
  expect((await detectGpus(script(name.replace(/\W+/g, '-'), body))).map((g) => g.uuid)).toEqual(uuids);
});

it('finds none for a binary that is missing or an empty name', async () => {
  expect(await detectGpus(join(dir, 'absent'))).toEqual([]);
  expect(await detectGpus('')).toEqual([]);
});

it('finds none when it does not answer within the timeout, and kills its process group', async () => {
  const pidFile = join(dir, 'child.pid');
  // a wrapper whose child holds the output open, as a hung driver call would
  const hung = script('hung', `sleep 60 &\necho $! > ${JSON.stringify(pidFile)}\nwait`);
  const started = Date.now();
  // 5 s: time enough for the script to start its child on a loaded machine (the child's pid is read below)
  expect(await detectGpus(hung, 5000)).toEqual([]);
  // answered at the timeout, not when the script would end (60 s)
  expect(Date.now() - started).toBeLessThan(30_000);
  const child = Number(readFileSync(pidFile, 'utf8'));
  expect(child).toBeGreaterThan(1);
  expect(
    await waitFor(
      () => alive(child),
      (a) => !a,
      { timeoutMs: 5000 },
    ),
  ).toBe(false);
});
