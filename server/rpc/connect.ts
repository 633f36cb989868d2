/**
 * The Connect adapter of the RPC layer (docs/design.md "The Connect
 * adapter"): serves the same service specs and the same composed
 * middleware as server/rpc/grpc.ts, over the Connect protocol (JSON or
 * binary; what browsers and curl speak) and gRPC-Web, through
 * connect-node's router. connect-es hands handlers protobuf-es messages,
 * so each request is converted to the ts-proto object the service expects
 * and each response back (server/rpc/message-bridge.ts). The agent stream
 * stays on gRPC: over Connect it is refused with UNIMPLEMENTED and where
 * to go instead.
 */
import type { DescMethod, DescService, Message } from '@bufbuild/protobuf';
import { Code as ConnectCode, ConnectError, createContextKey, createContextValues, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { AgentService } from '../../gen/es/taskgate/v1/agent_pb.js';
import { EventService } from '../../gen/es/taskgate/v1/event_pb.js';
import { TargetService } from '../../gen/es/taskgate/v1/target_pb.js';
import { TaskService } from '../../gen/es/taskgate/v1/task_pb.js';
import { UserService } from '../../gen/es/taskgate/v1/user_pb.js';
import { MAX_GRPC_MESSAGE_BYTES } from '../../shared/limits.js';
import { CancelledError, DeadlineExceededError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { compose, methodsOf, OpenCalls, type AnyServiceSpec, type CallContext, type Handler, type MethodInfo, type Middleware } from './core.js';
import { toProtobufEs, toTsProto } from './message-bridge.js';
import { toRpcError } from './status.js';
import { sessionFromCookies } from '../session-cookie.js';

/** The protobuf-es descriptors of every service in proto/, by full name. */
const SERVICES: ReadonlyMap<string, DescService> = new Map([AgentService, EventService, TargetService, TaskService, UserService].map((s) => [s.typeName, s]));

/** The client address of a call, from the Node request (connect-es gives handlers no socket). */
const PEER = createContextKey<string>('unknown', { description: 'taskgate peer address' });

/** A request as node:http or node:http2 hands it over. */
export type NodeRequest = IncomingMessage | Http2ServerRequest;
/** A response as node:http or node:http2 hands it over. */
export type NodeResponse = ServerResponse | Http2ServerResponse;
/** A request listener for node:http or node:http2. */
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

/** The one line a client that opens the agent stream over Connect reads. */
export const AGENT_STREAM_REFUSED = 'AgentService.Connect is served over gRPC only: point the agent at the gRPC address (--listen, or --agent-listen with mutual TLS), not the HTTP one';

/** The Connect error for any thrown value: the RpcError's code (Connect numbers codes as gRPC does) and one-line message. */
export function connectError(err: unknown, logger: Logger, method: string): ConnectError {
  const status = toRpcError(err, (bug) => logger.error({ err: bug, method }, 'unexpected error in handler'));
  const metadata = new Headers();
  // HTTP's own pushback, in whole seconds (RFC 9110 §10.2.3).
  if (status.retryDelayMs !== undefined) metadata.set('retry-after', String(Math.max(0, Math.ceil(status.retryDelayMs / 1000))));
  return new ConnectError(status.message, status.code as number as ConnectCode, metadata);
}

/** Serves Taskgate's services over Connect and gRPC-Web through the middleware. */
export class ConnectTransport {
  readonly #middleware: readonly Middleware[];
  readonly #shutdown: AbortSignal;
  readonly #logger: Logger;
  readonly #routes: Array<(router: ConnectRouter) => void> = [];
  /** Paths of the gRPC-only methods (the agent stream). */
  readonly #refused = new Set<string>();
  readonly #open: OpenCalls;

  /** The console's session cookie: a call without an authorization header authenticates with it. */
  readonly #sessionCookie: string;

  constructor(options: { middleware: readonly Middleware[]; shutdown: AbortSignal; logger: Logger; sessionCookie: string }) {
    this.#middleware = options.middleware;
    this.#sessionCookie = options.sessionCookie;
    this.#shutdown = options.shutdown;
    this.#logger = options.logger;
    this.#open = new OpenCalls(options.shutdown);
  }

  /** Adds a service: every method of its definition, through the middleware, at /PACKAGE.SERVICE/METHOD. */
  add(spec: AnyServiceSpec): void {
    for (const { key, info, definition } of methodsOf(spec, 'connect')) {
      const serviceName = /^\/([^/]+)\//.exec(definition.path)?.[1] ?? '';
      const method = SERVICES.get(serviceName)?.methods.find((m) => `/${m.parent.typeName}/${m.name}` === definition.path);
      if (!method) throw new Error(`${definition.path}: no protobuf-es descriptor (run npm run gen)`);
      if (info.kind === 'bidi') {
        // Refused before anything runs (no authentication, no limits), and before
        // connect-node would answer a bidi call over HTTP/1.1 with a bare 505.
        this.#refused.add(definition.path);
        continue;
      }
      const handler = compose(info, spec.methods[key], this.#middleware);
      const impl = info.kind === 'unary' ? this.#unary(info, method, handler) : this.#serverStreaming(info, method, handler);
      this.#routes.push((router) => router.rpc(method, impl as never));
    }
  }

  /** The node:http / node:http2 request listener of every service added. */
  handler(): NodeHandler {
    const connect = connectNodeAdapter({
      routes: (router) => {
        for (const route of this.#routes) route(router);
      },
      // gRPC is grpc-js's, on the gRPC listeners (keepalive, connection limits, the agent stream).
      grpc: false,
      grpcWeb: true,
      connect: true,
      readMaxBytes: MAX_GRPC_MESSAGE_BYTES,
      writeMaxBytes: MAX_GRPC_MESSAGE_BYTES,
      contextValues: (req) => createContextValues().set(PEER, req.socket.remoteAddress ?? 'unknown'),
    }) as NodeHandler;
    return (req, res) => {
      if (this.#refused.has((req.url ?? '').split('?', 1)[0]!)) {
        writeConnectError(req, res, 501, 'unimplemented', AGENT_STREAM_REFUSED);
        return;
      }
      connect(req, res);
    };
  }

  /** The context of one call, and what to run when it ends. */
  #context(hctx: HandlerContext, method: MethodInfo): { ctx: CallContext; done: () => void } {
    const { controller, done: forget } = this.#open.open(method);
    const request = hctx.signal;
    const onAbort = (): void => {
      const deadline = ConnectError.from(request.reason).code === ConnectCode.DeadlineExceeded;
      controller.abort(deadline ? new DeadlineExceededError('the deadline passed before the call finished') : new CancelledError('cancelled by the client'));
    };
    if (request.aborted) onAbort();
    else request.addEventListener('abort', onAbort, { once: true });
    const ctx: CallContext = {
      method,
      header: (name) => hctx.requestHeader.get(name) ?? (name === 'authorization' ? this.#fromCookie(hctx) : undefined),
      peer: () => hctx.values.get(PEER),
      signal: controller.signal,
      shutdown: this.#shutdown,
      end: (reason) => controller.abort(reason),
    };
    return {
      ctx,
      done: () => {
        request.removeEventListener('abort', onAbort);
        forget();
      },
    };
  }

  /**
   * The console's session as a bearer header, when the request carries its
   * cookie (a browser; the cross-site guard, server/rpc/browser-guard.ts,
   * has already refused requests from other sites).
   */
  #fromCookie(hctx: HandlerContext): string | undefined {
    const secret = sessionFromCookies(hctx.requestHeader.get('cookie') ?? undefined, this.#sessionCookie);
    return secret === undefined ? undefined : `Bearer ${secret}`;
  }

  #unary(info: MethodInfo, method: DescMethod, handler: Handler) {
    return async (request: Message, hctx: HandlerContext): Promise<Message> => {
      const { ctx, done } = this.#context(hctx, info);
      try {
        const response = await handler(toTsProto(method.input, request), ctx);
        return toProtobufEs(method.output, response);
      } catch (err) {
        throw connectError(err, this.#logger, info.name);
      } finally {
        done();
      }
    };
  }

  #serverStreaming(info: MethodInfo, method: DescMethod, handler: Handler) {
    const logger = this.#logger;
    const context = (hctx: HandlerContext): { ctx: CallContext; done: () => void } => this.#context(hctx, info);
    return async function* (request: Message, hctx: HandlerContext): AsyncIterable<Message> {
      const { ctx, done } = context(hctx);
      const signal = ctx.signal;
      let iterator: AsyncIterator<unknown> | undefined;
      let finished = false;
      try {
        const stream = (await handler(toTsProto(method.input, request), ctx)) as AsyncIterable<unknown>;
        iterator = stream[Symbol.asyncIterator]();
        let next = await iterator.next();
        while (!next.done) {
          // connect-node writes each message and waits for `drain` before asking for the next.
          yield toProtobufEs(method.output, next.value);
          // Aborted while the message was written (deadline, shutdown, an ended stream): the
          // reason goes into the stream at its `yield`, so its cleanup runs and it ends with that status.
          next = signal.aborted ? await (iterator.throw ? iterator.throw(signal.reason) : Promise.reject(signal.reason)) : await iterator.next();
        }
        finished = true;
        // A stream that returned normally after an abort still ends with the abort's status.
        signal.throwIfAborted();
      } catch (err) {
        finished = true;
        throw connectError(err, logger, info.name);
      } finally {
        // The client went away mid-stream: connect-node stopped reading, so stop the service's stream too.
        if (!finished) await iterator?.return?.();
        done();
      }
    };
  }
}

/**
 * Answers a request that no handler runs for with a Connect error: JSON
 * `{code, message}` and the HTTP status Connect gives the code, which
 * Connect and gRPC-Web clients of any kind read back as the code.
 */
export function writeConnectError(req: NodeRequest, res: NodeResponse, http: number, code: string, message: string): void {
  const body = JSON.stringify({ code, message });
  // Drain the body we will not read, so the connection can be reused.
  req.resume();
  (res as ServerResponse).writeHead(http, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-content-type-options': 'nosniff' });
  res.end(body);
}
