/**
 * `captureLog`: what of an attempt's log is uploaded — all of a small log; the last `cap` bytes of
 * a large one with a closing line saying how much was dropped; the rotated part before the
 * current file; nothing for an attempt that never wrote its file.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { captureLog } from '@batchapi/blobs';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'batch-log-capture-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const text = (b: Buffer) => gunzipSync(b).toString();

it('keeps a log under the cap whole, with no note', async () => {
  writeFileSync(join(dir, 'out'), 'line 1\nline 2\n');
  const c = await captureLog(join(dir, 'out'), 1024);
  expect(text(c!.body)).toBe('line 1\nline 2\n');
  expect(c).toMatchObject({ writtenBytes: 14, keptBytes: 14 });
});

it('keeps the last cap bytes of a large log and says so in its last line', async () => {
  // 100 lines of 10 bytes = 1,000 bytes; cap 250 → the last 25 lines
  writeFileSync(join(dir, 'out'), Array.from({ length: 100 }, (_, i) => `line ${String(i).padStart(4, '0')}\n`).join(''));
  const c = await captureLog(join(dir, 'out'), 250);
  const lines = text(c!.body).trimEnd().split('\n');
  expect(lines[0]).toBe('line 0075');
  expect(lines.at(-2)).toBe('line 0099');
  expect(lines.at(-1)).toBe('[batch: this log was 1000 bytes; only its last 250 are kept here (the cap of uploaded logs is 250 bytes)]');
  expect(c).toMatchObject({ writtenBytes: 1000, keptBytes: 250 });
});

it('puts the rotated part before the current file and says output before it is gone', async () => {
  writeFileSync(join(dir, 'out.1'), 'older\n');
  writeFileSync(join(dir, 'out'), 'newer');
  const c = await captureLog(join(dir, 'out'), 1024);
  expect(text(c!.body)).toBe('older\nnewer\n[batch: the log rotated on its node; output before its last rotation is not kept]\n');
});

it('captures an empty log as empty, and nothing for a log never written', async () => {
  appendFileSync(join(dir, 'empty'), '');
  expect(text((await captureLog(join(dir, 'empty')))!.body)).toBe('');
  expect(await captureLog(join(dir, 'absent'))).toBeUndefined();
});
