import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ephemeralPortRange, freePort, freePortRange, stopProcess, waitFor, waitUntil } from './index';

describe('freePort', () => {
  it('hands out ports outside the ephemeral range, never the same one twice', async () => {
    const [low, high] = ephemeralPortRange();
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    expect(new Set(ports).size).toBe(20);
    if (freePortRange([low, high])) for (const p of ports) expect(p < low || p > high).toBe(true);
  });

  it.each([
    // [ephemeral range, the range drawn from]: the wider side of it, from 10000 up, or nothing under 1000 ports
    [
      [32768, 60999],
      [10000, 32767],
    ], // Linux default: 22,768 below, 4,536 above
    [
      [49152, 65535],
      [10000, 49151],
    ], // IANA's dynamic range (macOS, Windows)
    [[1024, 65000], undefined], // below: none; above: 535
    [
      [1024, 50000],
      [50001, 65535],
    ], // below: none; above: 15,535
  ] as const)('draws from outside ephemeral range %j: %j', (range, expected) => {
    expect(freePortRange(range)).toEqual(expected);
  });

  it('reads the ephemeral range, or falls back to the default on a bad file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ports-'));
    writeFileSync(join(dir, 'good'), '40000\t50000\n');
    writeFileSync(join(dir, 'bad'), 'lots');
    expect(ephemeralPortRange(join(dir, 'good'))).toEqual([40000, 50000]);
    expect(ephemeralPortRange(join(dir, 'bad'))).toEqual([32768, 60999]);
    expect(ephemeralPortRange(join(dir, 'absent'))).toEqual([32768, 60999]);
  });

  it('gives a port a listener can bind on 127.0.0.1', async () => {
    const port = await freePort();
    const srv = createServer();
    await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(port, '127.0.0.1', resolve));
    expect((srv.address() as { port: number }).port).toBe(port);
    await new Promise((r) => srv.close(r));
  });
});

describe('stopProcess', () => {
  it('asks with the given signal and resolves on exit', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    await stopProcess(child, { signal: 'SIGINT' });
    expect(child.signalCode).toBe('SIGINT');
  });

  it('kills with SIGKILL a process that ignores the signal past the grace period', async () => {
    const child = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)"]);
    await new Promise((r) => child.stdout.once('data', r));
    await stopProcess(child, { graceMs: 200 });
    expect(child.signalCode).toBe('SIGKILL');
  });

  it('resolves at once for a process that has already exited', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => child.once('exit', r));
    await expect(stopProcess(child)).resolves.toBeUndefined();
  });
});

describe('waitFor / waitUntil', () => {
  it('returns the first answer that holds', async () => {
    let n = 0;
    expect(
      await waitFor(
        () => ++n,
        (v) => v >= 3,
        { intervalMs: 1 },
      ),
    ).toBe(3);
  });

  it('returns the last answer when the time runs out', async () => {
    let n = 0;
    expect(
      await waitFor(
        () => ++n,
        () => false,
        { timeoutMs: 30, intervalMs: 5 },
      ),
    ).toBeGreaterThan(1);
  });

  it('treats a throwing answer as not yet, and throws the last error at the deadline', async () => {
    let n = 0;
    const flaky = () => {
      if (++n < 3) throw new Error('not yet');
      return n;
    };
    expect(await waitFor(flaky, (v) => v === 3, { intervalMs: 1 })).toBe(3);
    await expect(
      waitFor(
        () => {
          throw new Error('down');
        },
        () => true,
        { timeoutMs: 20, intervalMs: 5 },
      ),
    ).rejects.toThrow('down');
  });

  it('waitUntil says whether the condition held in time', async () => {
    expect(await waitUntil(() => true)).toBe(true);
    expect(await waitUntil(() => false, { timeoutMs: 20, intervalMs: 5 })).toBe(false);
  });
});
