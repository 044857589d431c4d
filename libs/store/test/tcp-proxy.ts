/**
 * A TCP proxy on loopback for tests that need to stall one direction of a connection to etcd:
 * bytes a held direction receives stay in the proxy (in the socket buffers) until released,
 * as when a process or the path back to it is stopped.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly pairs: Array<{ client: Socket; server: Socket }> = [];
  private upHeld = false;
  private downHeld = false;

  private constructor(private readonly listener: Server) {}

  /** Starts a proxy to `target` (`http://host:port`). */
  static async start(target: string): Promise<TcpProxy> {
    const { hostname, port } = new URL(target);
    const listener = createServer();
    const proxy = new TcpProxy(listener);
    listener.on('connection', (client) => proxy.accept(client, hostname, Number(port)));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** The proxy's URL, to use as an etcd endpoint. */
  get url(): string {
    return `http://127.0.0.1:${(this.listener.address() as AddressInfo).port}`;
  }

  /** Holds what clients send (requests stop reaching etcd). */
  holdUpstream(): void {
    this.upHeld = true;
    for (const p of this.pairs) p.client.pause();
  }

  /** Lets what clients send through again (what was held so far too, unless the connections are dropped first). */
  releaseUpstream(): void {
    this.upHeld = false;
    for (const p of this.pairs) p.client.resume();
  }

  /** Holds what etcd sends (replies stop reaching clients). */
  holdDownstream(): void {
    this.downHeld = true;
    for (const p of this.pairs) p.server.pause();
  }

  /** Lets replies held so far, and later ones, through. */
  releaseDownstream(): void {
    this.downHeld = false;
    for (const p of this.pairs) p.server.resume();
  }

  /** Closes every connection made so far (clients see them reset); new ones are accepted as before. */
  dropConnections(): void {
    for (const p of this.pairs.splice(0)) {
      p.client.destroy();
      p.server.destroy();
    }
  }

  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.server.destroy();
    }
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }

  private accept(client: Socket, host: string, port: number): void {
    const server = connect(port, host);
    this.pairs.push({ client, server });
    client.on('data', (d) => server.write(d));
    server.on('data', (d) => client.write(d));
    if (this.upHeld) client.pause();
    if (this.downHeld) server.pause();
    const end = () => {
      client.destroy();
      server.destroy();
    };
    client.on('close', end).on('error', end);
    server.on('close', end).on('error', end);
  }
}
