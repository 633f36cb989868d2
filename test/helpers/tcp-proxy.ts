/**
 * A TCP proxy between agents (or clients) and the server that a test can
 * cut: every open connection is destroyed and new ones are refused until it
 * is restored, as when a network link drops. It can also hold back the
 * answer to one request: once bytes carrying a marker have passed towards
 * the server, nothing more of that connection passes back, so a test can cut
 * the link after the server acted and before the client heard.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';

/** A cuttable TCP proxy on 127.0.0.1. */
export class TcpProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #cut = false;
  #hold: { marker: Buffer; seen: () => void } | null = null;

  private constructor(server: Server, host: string, port: number) {
    this.#server = server;
    server.on('connection', (client: Socket) => {
      if (this.#cut) {
        client.destroy();
        return;
      }
      const upstream = connect(port, host);
      let holding = false;
      let tail = Buffer.alloc(0);
      // Towards the server: look for the marker (across chunk boundaries).
      const up = new Transform({
        transform: (chunk: Buffer, _encoding, done) => {
          const hold = this.#hold;
          if (hold && !holding) {
            const window = Buffer.concat([tail, chunk]);
            if (window.includes(hold.marker)) {
              holding = true;
              this.#hold = null;
              hold.seen();
            } else {
              tail = window.subarray(Math.max(0, window.length - hold.marker.length + 1));
            }
          }
          done(null, chunk);
        },
      });
      // Back to the client: nothing once held.
      const down = new Transform({ transform: (chunk: Buffer, _encoding, done) => done(null, holding ? undefined : chunk) });
      for (const [a, via, b] of [
        [client, up, upstream],
        [upstream, down, client],
      ] as const) {
        this.#sockets.add(a);
        a.on('error', () => b.destroy());
        a.on('close', () => {
          this.#sockets.delete(a);
          b.destroy();
        });
        a.pipe(via).pipe(b);
      }
    });
  }

  /**
   * Arms a hold: the first connection to carry `marker` towards the server
   * (e.g. a unique script in a CreateTask request) passes those bytes on,
   * then passes nothing more back to the client. Resolves when it happened;
   * `cut()` then drops the connection, answer unheard. One hold at a time.
   */
  holdAnswerAfter(marker: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      this.#hold = { marker: Buffer.from(marker), seen: resolve };
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
