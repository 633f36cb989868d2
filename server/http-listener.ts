/**
 * The HTTP listener (`--http-listen`): the browser API (Connect and
 * gRPC-Web, server/rpc/connect.ts) behind the cross-site guard
 * (server/rpc/browser-guard.ts), and later the console's static files, on
 * one origin. With TLS (the same certificate as the gRPC listener) it is
 * HTTP/2 with HTTP/1.1 fallback, so a browser keeps many log streams on one
 * connection; without, HTTP/1.1 (what curl speaks by default).
 *
 * Like the gRPC listeners (server/listeners.ts) it holds at most
 * `maxConnections` connections, closes a TLS handshake that takes longer
 * than `handshakeTimeoutMs` and a request whose headers take as long.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from '../shared/logger.js';
import type { NodeHandler } from './rpc/connect.js';

/** How the HTTP listener accepts connections. */
export interface HttpListenerOptions {
  /** host:port; port 0 picks a free one. */
  listen: string;
  /** TLS (PEM): HTTPS, HTTP/2 with HTTP/1.1 fallback. */
  tls?: { cert: Buffer; key: Buffer };
  /** Time to finish the TLS handshake, and to send a request's headers, in ms. */
  handshakeTimeoutMs: number;
  /** Open connections at most; 0: no cap. */
  maxConnections: number;
  handler: NodeHandler;
  logger: Logger;
}

/** A listening HTTP(S) server. */
export class HttpListener {
  readonly port: number;
  /** "http://127.0.0.1:7080": where browsers and curl reach it. */
  readonly url: string;
  readonly #server: HttpServer | Http2SecureServer;
  readonly #sockets: Set<Socket>;
  readonly #responses: OpenResponses;

  private constructor(port: number, url: string, server: HttpServer | Http2SecureServer, sockets: Set<Socket>, responses: OpenResponses) {
    this.port = port;
    this.url = url;
    this.#server = server;
    this.#sockets = sockets;
    this.#responses = responses;
  }

  /** Listens on `options.listen`; rejects with one line when it cannot. */
  static async open(options: HttpListenerOptions): Promise<HttpListener> {
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(options.listen);
    if (!m) throw new Error(`cannot listen on ${options.listen}: expected HOST:PORT`);
    const host = m[1] ?? m[2] ?? '';
    const { tls, logger } = options;
    const responses = new OpenResponses();
    const handler = responses.counting(options.handler);
    const server: HttpServer | Http2SecureServer = tls
      ? createSecureServer({ cert: tls.cert, key: tls.key, allowHTTP1: true, handshakeTimeout: options.handshakeTimeoutMs }, handler)
      : createHttpServer({ headersTimeout: options.handshakeTimeoutMs, requestTimeout: 0 }, handler);
    const sockets = new Set<Socket>();
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    });
    if (options.maxConnections > 0) server.maxConnections = options.maxConnections;
    server.on('drop', () => logger.warn({ httpListen: options.listen, maxConnections: options.maxConnections }, 'connection refused: the HTTP listener holds its maximum of connections (--max-connections)'));
    if (tls) (server as Http2SecureServer).on('sessionError', () => undefined);
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${options.listen}: ${err.code === 'EADDRINUSE' ? 'the address is in use (another server on that port?)' : err.message}`, { cause: err })));
      server.listen({ host, port: Number(m[3]) }, () => {
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : Number(m[3]));
      });
    });
    server.on('error', (err) => logger.error({ err, httpListen: options.listen }, 'HTTP listener error'));
    const shown = host === '' || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    return new HttpListener(port, `${tls ? 'https' : 'http'}://${shown}:${port}`, server, sockets, responses);
  }

  /**
   * Resolves once every response is written to its end (a stream's last
   * message is its status: a stop waits for it, up to its deadline, before
   * closing connections).
   */
  drained(): Promise<void> {
    return this.#responses.none();
  }

  /** Stops accepting connections; calls under way go on. */
  stopAccepting(): void {
    this.#server.close();
    if ('closeIdleConnections' in this.#server) this.#server.closeIdleConnections();
  }

  /** Closes every connection still open. */
  destroy(): void {
    this.#server.close();
    for (const socket of this.#sockets) socket.destroy();
  }
}

/** Responses begun and not yet closed. */
class OpenResponses {
  #open = 0;
  #waiting: Array<() => void> = [];

  /** `handler`, counting each response until it closes. */
  counting(handler: NodeHandler): NodeHandler {
    return (req, res) => {
      this.#open++;
      res.once('close', () => {
        if (--this.#open === 0) for (const resolve of this.#waiting.splice(0)) resolve();
      });
      handler(req, res);
    };
  }

  /** Resolves when none is open. */
  none(): Promise<void> {
    return this.#open === 0 ? Promise.resolve() : new Promise((resolve) => this.#waiting.push(resolve));
  }
}
