/**
 * A TCP proxy between agents and the server that a test can cut: every open
 * connection is destroyed and new ones are refused until it is restored, as
 * when a network link drops.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A cuttable TCP proxy on 127.0.0.1. */
export class TcpProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #cut = false;

  private constructor(server: Server, host: string, port: number) {
    this.#server = server;
    server.on('connection', (client: Socket) => {
      if (this.#cut) {
        client.destroy();
        return;
      }
      const upstream = connect(port, host);
      for (const [a, b] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.#sockets.add(a);
        a.on('error', () => b.destroy());
        a.on('close', () => {
          this.#sockets.delete(a);
          b.destroy();
        });
        a.pipe(b);
      }
    });
  }

  /** Listens on a free port and forwards to `target` ("host:port"). */
  static async start(target: string): Promise<TcpProxy> {
    const at = target.lastIndexOf(':');
    const server = createServer();
    const proxy = new TcpProxy(server, target.slice(0, at), Number(target.slice(at + 1)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** host:port to give agents. */
  get address(): string {
    return `127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Drops every connection and refuses new ones. */
  cut(): void {
    this.#cut = true;
    for (const socket of this.#sockets) socket.destroy();
  }

  /** Accepts connections again. */
  restore(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}
