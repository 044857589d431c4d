import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Linux's default ephemeral range (`net.ipv4.ip_local_port_range`), when it cannot be read. */
const DEFAULT_EPHEMERAL: readonly [number, number] = [32768, 60999];
/** The lowest port handed out: above the well-known and most registered service ports. */
const LOWEST = 10000;
/** Ports tried per call before falling back to one the kernel picks. */
const TRIES = 64;

/** The kernel's ephemeral port range, `[low, high]`, from which outgoing connections take their local ports. */
export function ephemeralPortRange(file = '/proc/sys/net/ipv4/ip_local_port_range'): [number, number] {
  try {
    const [low, high] = readFileSync(file, 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high) && low > 0 && high >= low) return [low, high];
  } catch {
    // not Linux, or no /proc: the default below
  }
  return [...DEFAULT_EPHEMERAL];
}

/**
 * The ports `freePort` draws from, outside the ephemeral range: the widest of `[LOWEST, low)` and
 * `(high, 65535]`, or undefined when neither holds a thousand ports.
 */
export function freePortRange([low, high]: readonly [number, number]): [number, number] | undefined {
  const below: [number, number] = [LOWEST, low - 1];
  const above: [number, number] = [high + 1, 65535];
  const size = (r: [number, number]) => r[1] - r[0] + 1;
  const best = size(below) >= size(above) ? below : above;
  return size(best) >= 1000 ? best : undefined;
}

/** Ports this process handed out lately, oldest first: not handed out again until 4,096 later ones. */
const recent = new Set<number>();
const RECENT_MAX = 4096;

/** True when a listener can bind `port` on 127.0.0.1 now (it is closed again before this resolves). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A port the kernel picks (in the ephemeral range): the fallback when no range outside it is wide enough. */
function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Finds a free TCP port on 127.0.0.1 for a process that binds it a moment later (a service, etcd,
 * PostgreSQL started with `--port`).
 *
 * The port is taken from outside the kernel's ephemeral range, so no outgoing connection can take
 * it between this check and the caller's bind: a port the kernel picks for `listen(0)` comes from
 * the very range every `connect()` draws its local port from, and on a machine making thousands of
 * loopback requests a freed one is soon some client's, and the service that was meant to bind it
 * fails with EADDRINUSE. Each call draws at random (so two processes drawing at once meet with a
 * chance of one in the range's size), never one this process handed out in its last 4,096 calls,
 * and checks it bindable before returning it. Another process can still bind it first: callers
 * that can, check that what answers there is theirs and retry. When the range outside the
 * ephemeral one is too narrow, the kernel picks.
 */
export async function freePort(): Promise<number> {
  const range = freePortRange(ephemeralPortRange());
  if (!range) return kernelPort();
  for (let i = 0; i < TRIES; i++) {
    const port = range[0] + Math.floor(Math.random() * (range[1] - range[0] + 1));
    if (recent.has(port)) continue;
    recent.add(port);
    if (recent.size > RECENT_MAX) recent.delete(recent.values().next().value as number);
    if (await bindable(port)) return port;
  }
  return kernelPort();
}
