/**
 * The server's listening sockets, owned by Taskgate rather than by grpc-js
 * (docs/limits.md "Connections"). grpc-js's own `bindAsync` gives no
 * handshake timeout and no connection cap, and under mutual TLS it refuses a
 * certificate from the wrong CA inside the TLS handshake, where a TLS 1.3
 * client cannot read why. Here each listener is a plain net or tls server
 * that hands every accepted connection to grpc-js through a connection
 * injector (plaintext to grpc-js: TLS, when on, is already terminated here),
 * and:
 * - closes a connection that has not finished its TLS handshake within
 *   `handshakeTimeoutMs`, or not sent the HTTP/2 preface within as long
 *   again (a client that opens connections and stays silent holds none);
 * - holds at most `maxConnections` connections (net.Server.maxConnections);
 * - under mutual TLS, answers a connection whose client certificate does not
 *   verify with UNAUTHENTICATED and the reason, from a bare HTTP/2 responder
 *   that never reaches a handler, then closes it (after its first answer, or
 *   `handshakeTimeoutMs` at the latest): the agent reads one line and stops,
 *   instead of retrying a handshake failure forever.
 */
import type { ConnectionInjector, Server } from '@grpc/grpc-js';
import { ServerCredentials } from '@grpc/grpc-js';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from '../shared/logger.js';
import { Code } from './rpc/status.js';

/** The HTTP/2 client connection preface (RFC 9113 §3.4): 24 bytes. */
const PREFACE_BYTES = 24;

/** How one listener accepts connections. */
export interface ListenerOptions {
  /** host:port; port 0 picks a free one. */
  listen: string;
  /** TLS (PEM); `clientCa` asks for a client certificate verified against it (mutual TLS). */
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer };
  /** Time to finish the TLS handshake and send the HTTP/2 preface, in ms. */
  handshakeTimeoutMs: number;
  /** Open connections at most; 0: no cap. */
  maxConnections: number;
  logger: Logger;
}

/** A listening socket feeding the gRPC server. */
export class Listener {
  readonly port: number;
  readonly #server: NetServer;
  readonly #injector: ConnectionInjector;
  readonly #refusals: Http2Server;
  readonly #sockets: Set<Socket>;

  private constructor(port: number, server: NetServer, injector: ConnectionInjector, refusals: Http2Server, sockets: Set<Socket>) {
    this.port = port;
    this.#server = server;
    this.#injector = injector;
    this.#refusals = refusals;
    this.#sockets = sockets;
  }

  /** Listens on `options.listen`; rejects with one line when it cannot. */
  static async open(grpc: Server, options: ListenerOptions): Promise<Listener> {
    const { host, port } = splitListen(options.listen);
    const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
    const refusals = certificateRefusals();
    const sockets = new Set<Socket>();
    const { tls, handshakeTimeoutMs, logger } = options;

    /** Closes a connection that has not sent the HTTP/2 preface within `handshakeTimeoutMs`. */
    const watchPreface = (socket: Socket): void => {
      const timer = setTimeout(() => {
        if (socket.bytesRead < PREFACE_BYTES) socket.destroy();
      }, handshakeTimeoutMs);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    };
    const track = (raw: Socket): void => {
      sockets.add(raw);
      raw.once('close', () => sockets.delete(raw));
      // A reset peer is ordinary; without a listener it would be an uncaught error.
      raw.on('error', () => undefined);
    };

    let server: NetServer;
    if (tls) {
      const mutual = tls.clientCa !== undefined;
      // The TLS handshake has `handshakeTimeoutMs`, and the preface as long again after it.
      const secure = createTlsServer({
        cert: tls.cert,
        key: tls.key,
        ALPNProtocols: ['h2'],
        handshakeTimeout: handshakeTimeoutMs,
        ...(mutual ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
      });
      secure.on('connection', track);
      secure.on('secureConnection', (socket: TLSSocket) => {
        socket.on('error', () => undefined);
        if (mutual && !socket.authorized) {
          logger.debug({ peer: socket.remoteAddress, reason: socket.authorizationError }, 'client certificate refused');
          // Long enough to read the answer, never longer: a refused connection holds no place.
          const timer = setTimeout(() => socket.destroy(), handshakeTimeoutMs);
          timer.unref();
          socket.once('close', () => clearTimeout(timer));
          refusals.emit('connection', socket);
          return;
        }
        watchPreface(socket);
        injector.injectConnection(socket);
      });
      secure.on('tlsClientError', (err, socket) => {
        logger.debug({ peer: socket.remoteAddress, err: err.message }, 'TLS handshake failed');
      });
      server = secure;
    } else {
      server = createNetServer((raw) => {
        track(raw);
        watchPreface(raw);
        injector.injectConnection(raw);
      });
    }
    if (options.maxConnections > 0) server.maxConnections = options.maxConnections;
    server.on('drop', () => logger.warn({ listen: options.listen, maxConnections: options.maxConnections }, 'connection refused: the listener holds its maximum of connections (--max-connections)'));

    const bound = await new Promise<number>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${options.listen}: ${listenError(err)}`, { cause: err })));
      server.listen({ host, port }, () => {
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
    server.on('error', (err) => logger.error({ err, listen: options.listen }, 'listener error'));
    return new Listener(bound, server, injector, refusals, sockets);
  }

  /** Stops accepting connections; those open stay for grpc-js to drain. */
  stopAccepting(): void {
    this.#server.close();
  }

  /** Closes whatever grpc-js left open (connections that never became HTTP/2, refused ones). */
  destroy(): void {
    this.#server.close();
    this.#injector.destroy();
    this.#refusals.close();
    for (const socket of this.#sockets) socket.destroy();
  }
}

/**
 * A bare HTTP/2 server for connections whose client certificate did not
 * verify: every call on them ends UNAUTHENTICATED with the reason in a
 * trailers-only response; nothing of Taskgate runs for them.
 */
function certificateRefusals(): Http2Server {
  const server = createHttp2Server();
  server.on('stream', (stream: ServerHttp2Stream) => {
    const socket = stream.session?.socket as TLSSocket | undefined;
    const presented = socket !== undefined && Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
    const message = presented ? certificateMessage(String(socket.authorizationError)) : NO_CERTIFICATE;
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(Code.UNAUTHENTICATED), 'grpc-message': grpcMessage(message) }, { endStream: true });
    // One answer is all it gets: GOAWAY, then the connection closes once the answer is out.
    stream.session?.close();
  });
  server.on('sessionError', () => undefined);
  return server;
}

const NO_CERTIFICATE = 'this agent address requires a client certificate: start the agent with --tls-cert and --tls-key (a certificate from the server\'s --agent-client-ca naming the agent)';

/** The grpc-message header: percent-encoded outside printable ASCII, and "%" itself (gRPC over HTTP/2). */
function grpcMessage(message: string): string {
  return Array.from(Buffer.from(message, 'utf8'), (byte) => (byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/** One line an operator can act on, from an OpenSSL verification code. */
function certificateMessage(reason: string): string {
  const why: Record<string, string> = {
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'it is not signed by the CA this agent address trusts',
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'it is not signed by the CA this agent address trusts',
    UNABLE_TO_GET_ISSUER_CERT: 'it is not signed by the CA this agent address trusts',
    SELF_SIGNED_CERT_IN_CHAIN: 'it is not signed by the CA this agent address trusts',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'it is self-signed, not signed by the CA this agent address trusts',
    CERT_HAS_EXPIRED: 'it has expired',
    CERT_NOT_YET_VALID: 'it is not valid yet',
  };
  return `the client certificate was refused: ${why[reason] ?? reason} (${reason}); use a certificate from the server's --agent-client-ca`;
}

/** Host and port of "host:port" or "[v6]:port". */
function splitListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`cannot listen on ${listen}: expected HOST:PORT`);
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

function listenError(err: NodeJS.ErrnoException): string {
  if (err.code === 'EADDRINUSE') return 'the address is in use (another server on that port?)';
  if (err.code === 'EACCES') return 'permission denied (ports below 1024 need privileges)';
  if (err.code === 'EADDRNOTAVAIL') return 'no such local address';
  return err.message;
}
