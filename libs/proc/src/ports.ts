import { createServer } from 'node:net';

/**
 * Finds a free TCP port on 127.0.0.1 (the kernel picks one; the listener is closed before
 * this returns, so another process can still take it: callers that bind later retry).
 */
export async function freePort(): Promise<number> {
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
