/**
 * The watchdog's check with real process groups: a stale heartbeat kills every recorded group
 * that runs one of this node's tasks and notes when, so that an executor which was only
 * stalled reports those attempts NodeLost rather than failed.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessGroupLedger } from '../src/process-group-ledger';
import { killedMarker, watchOnce } from '../src/watchdog';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'watchdog-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function task(node: string) {
  const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore', env: { ...process.env, BATCH_NODE: node, BATCH_JOB_ID: 'j' } });
  const exited = new Promise<string | null>((r) => child.once('exit', (_code, signal) => r(signal)));
  return { pid: child.pid!, exited };
}

it('kills the recorded task groups once the heartbeat is older than the TTL, and notes the time', async () => {
  const heartbeat = join(dir, 'heartbeat');
  const ledger = new ProcessGroupLedger(join(dir, 'groups'), 'wd-node');
  const t = task('wd-node');
  ledger.record(t.pid);
  // heartbeat at 1,000 ms, TTL 5,000 ms: fresh at 5,000 ms, stale at 6,001 ms
  writeFileSync(heartbeat, '1000');
  watchOnce(heartbeat, ledger, 5000, process.pid, 5000);
  expect(existsSync(killedMarker(heartbeat))).toBe(false);
  watchOnce(heartbeat, ledger, 5000, process.pid, 6001);
  expect(await t.exited).toBe('SIGKILL');
  expect(readFileSync(killedMarker(heartbeat), 'utf8')).toBe('6001');
});

it('notes nothing when a stale heartbeat finds no task group to kill', () => {
  const heartbeat = join(dir, 'heartbeat');
  writeFileSync(heartbeat, '0');
  watchOnce(heartbeat, new ProcessGroupLedger(join(dir, 'groups'), 'wd-node'), 5000, process.pid, 10_000);
  expect(existsSync(killedMarker(heartbeat))).toBe(false);
});
