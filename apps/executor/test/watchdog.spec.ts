/**
 * The watchdog's check with real process groups: a stale heartbeat kills every group that runs
 * one of this node's tasks — recorded or not — and notes when, so that an executor which was
 * only stalled reports those attempts NodeLost rather than failed. A heartbeat file that cannot
 * be read is not a stale one.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessGroupLedger } from '../src/process-group-ledger';
import { killedMarker, watchOnce, writeHeartbeat } from '../src/watchdog';
import { groupAlive } from './harness';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'watchdog-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A task as an executor with data directory `dataDir` (default: the test's) starts it. */
function task(node: string, dataDir = dir) {
  const child = spawn('sleep', ['30'], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, BATCH_NODE: node, BATCH_JOB_ID: 'j', BATCH_RESULT_PATH: join(dataDir, 'logs', 'j', '0', '1.result.json') },
  });
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

it("kills a task group nobody recorded (its executor died between starting and recording it), and leaves other executors' tasks", async () => {
  const heartbeat = join(dir, 'heartbeat');
  const ledger = new ProcessGroupLedger(join(dir, 'groups'), 'wd-node');
  const unrecorded = task('wd-node');
  const otherDir = mkdtempSync(join(tmpdir(), 'watchdog-other-'));
  const otherExecutors = task('wd-node', otherDir);
  const otherNode = task('another-node');
  try {
    writeFileSync(heartbeat, '1000');
    expect(ledger.hasRecords()).toBe(false);
    expect(ledger.liveCount()).toBe(1);
    // heartbeat at 1,000 ms, TTL 5,000 ms: stale at 6,001 ms
    watchOnce(heartbeat, ledger, 5000, process.pid, 6001);
    expect(await unrecorded.exited).toBe('SIGKILL');
    expect(ledger.liveCount()).toBe(0);
    expect(groupAlive(otherExecutors.pid) && groupAlive(otherNode.pid)).toBe(true);
  } finally {
    for (const t of [otherExecutors, otherNode])
      try {
        process.kill(-t.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    rmSync(otherDir, { recursive: true, force: true });
  }
});

it('reads an empty or half-written heartbeat as the last one it read, not as time 0', () => {
  const heartbeat = join(dir, 'heartbeat');
  const ledger = new ProcessGroupLedger(join(dir, 'groups'), 'wd-node');
  const t = task('wd-node');
  try {
    const state = { lastBeat: 0 };
    writeFileSync(heartbeat, '9000');
    watchOnce(heartbeat, ledger, 5000, process.pid, 9500, state);
    // the executor is writing the file: empty for a moment; 9,000 + 5,000 > 12,000, so still fresh
    writeFileSync(heartbeat, '');
    watchOnce(heartbeat, ledger, 5000, process.pid, 12_000, state);
    expect(existsSync(killedMarker(heartbeat))).toBe(false);
    expect(groupAlive(t.pid)).toBe(true);
  } finally {
    try {
      process.kill(-t.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

it('writes the heartbeat by rename, so a reader never sees it empty', () => {
  const heartbeat = join(dir, 'heartbeat');
  writeHeartbeat(heartbeat, 1234.5);
  expect(readFileSync(heartbeat, 'utf8')).toBe('1234.5');
  expect(existsSync(`${heartbeat}.tmp`)).toBe(false);
});
