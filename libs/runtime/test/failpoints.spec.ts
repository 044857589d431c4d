import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAILPOINTS, failpoint, parseFailpoints } from '@batchapi/runtime';

describe('parseFailpoints', () => {
  it.each<[string, string, Array<[string, string]>]>([
    ['one armed', 'archiver.after-history-write=sigkill', [['archiver.after-history-write', 'sigkill']]],
    ['spaces and a comment', '  archiver.after-history-write = sigkill  # the fault test\n', [['archiver.after-history-write', 'sigkill']]],
    ['an unknown name arms nothing', 'archiver.before-everything=sigkill', []],
    ['an unknown action arms nothing', 'archiver.after-history-write=pause', []],
    ['a commented-out line', '# archiver.after-history-write=sigkill', []],
    ['empty', '', []],
  ])('%s', (_, text, armed) => {
    expect([...parseFailpoints(text)]).toEqual(armed);
  });
});

describe('failpoint', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'failpoints-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('does nothing without a file, with a missing file, or when another failpoint is armed', () => {
    expect(() => failpoint(FAILPOINTS.ArchiverAfterHistoryWrite, undefined)).not.toThrow();
    expect(() => failpoint(FAILPOINTS.ArchiverAfterHistoryWrite, join(dir, 'absent'))).not.toThrow();
    writeFileSync(join(dir, 'other'), 'archiver.before-everything=sigkill\n');
    expect(() => failpoint(FAILPOINTS.ArchiverAfterHistoryWrite, join(dir, 'other'))).not.toThrow();
  });

  it('sigkill: a process that passes the armed failpoint dies of SIGKILL right there', () => {
    const file = join(dir, 'armed');
    writeFileSync(file, `${FAILPOINTS.ArchiverAfterHistoryWrite}=sigkill\n`);
    // A child passes it (through the library's compiled build, as a service does), then would print.
    const script = `require(${JSON.stringify(join(__dirname, '../dist/failpoints.js'))}).failpoint(${JSON.stringify(FAILPOINTS.ArchiverAfterHistoryWrite)}); console.log('after');`;
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, BATCH_FAILPOINTS_FILE: file }, encoding: 'utf8' });
    expect({ signal: r.signal, stdout: r.stdout }).toEqual({ signal: 'SIGKILL', stdout: '' });
  });
});
