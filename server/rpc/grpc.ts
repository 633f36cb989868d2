/**
 * The grpc-js adapter of the RPC layer: serves service specs on a grpc-js
 * Server. It builds each call's context (headers, an AbortSignal for
 * cancel, deadline and shutdown), writes streamed responses honouring
 * back-pressure, and sends the RpcError that comes out of the middleware
 * as a gRPC status. Nothing else in the server writes to a grpc-js call,
 * except the agent stream's session, which owns its bidi call.
 */
import { Metadata, type sendUnaryData, type Server, type ServerWritableStream, type ServiceError, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { CancelledError, DeadlineExceededError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { compose, methodsOf, OpenCalls, type AnyServiceSpec, type CallContext, type MethodInfo, type Middleware } from './core.js';
import { toRpcError } from './status.js';

/** The metadata key gRPC clients read a retry delay from (gRPC A6, retry pushback). */
const RETRY_PUSHBACK = 'grpc-retry-pushback-ms';

/** The gRPC status for an error; what is not an RpcError yet is mapped (and logged when a bug). */
export function grpcStatus(err: unknown, logger: Logger, method: string): Partial<ServiceError> {
  const status = toRpcError(err, (bug) => logger.error({ err: bug, method }, 'unexpected error in handler'));
  const metadata = new Metadata();
  if (status.retryDelayMs !== undefined) metadata.set(RETRY_PUSHBACK, String(Math.max(0, Math.round(status.retryDelayMs))));
  // Code numbers are gRPC's (server/rpc/status.ts).
  return { code: status.code, details: status.message, metadata };
}

/** How close to its deadline a client's cancel counts as the deadline, in ms. */
const DEADLINE_SLACK_MS = 1000;

/** The kind of call object grpc-js hands each handler. */
interface GrpcCall {
  metadata: Metadata;
  cancelled: boolean;
  getDeadline(): Date | number;
  getPeer(): string;
  on(event: 'cancelled', listener: () => void): unknown;
}

/** The host of grpc-js's peer string ("127.0.0.1:5000", "[::1]:5000"). */
function peerHost(peer: string): string {
  const m = /^\[?(.*?)\]?:\d+$/.exec(peer);
  return m?.[1] ?? peer;
}

/** Serves Taskgate's services on a grpc-js server through the middleware. */
export class GrpcTransport {
  readonly #server: Server;
  readonly #middleware: readonly Middleware[];
  readonly #shutdown: AbortSignal;
  readonly #logger: Logger;
  readonly #open: OpenCalls;

  constructor(server: Server, options: { middleware: readonly Middleware[]; shutdown: AbortSignal; logger: Logger }) {
    this.#server = server;
    this.#middleware = options.middleware;
    this.#shutdown = options.shutdown;
    this.#logger = options.logger;
    this.#open = new OpenCalls(options.shutdown);
  }

  /** Adds a service: every method of its definition, through the middleware. */
  add(spec: AnyServiceSpec): void {
    const implementation: UntypedServiceImplementation = {};
    for (const { key, info } of methodsOf(spec, 'grpc')) {
      const handler = compose(info, spec.methods[key], this.#middleware);
      implementation[key] =
        info.kind === 'unary' ? this.#unary(info, handler) : info.kind === 'server-streaming' ? this.#serverStreaming(info, handler) : this.#bidi(info, handler);
    }
    this.#server.addService(spec.definition as never, implementation);
  }

  /** The context of one call, and what to run when it ends. */
  #context(call: GrpcCall, method: MethodInfo): { ctx: CallContext; done: () => void } {
    const shutdown = this.#shutdown;
    const { controller, done } = this.#open.open(method);
    call.on('cancelled', () => {
      const deadline = call.getDeadline();
      // A client gives up at its own deadline, which is a little earlier than
      // the server's copy (taken when the call arrived): a cancel that close
      // to the deadline is the deadline.
      const passed = (deadline instanceof Date ? deadline.getTime() : deadline) - Date.now() <= DEADLINE_SLACK_MS;
      controller.abort(passed ? new DeadlineExceededError('the deadline passed before the call finished') : new CancelledError('cancelled by the client'));
    });
    const metadata = call.metadata;
    const ctx: CallContext = {
      method,
      header: (name) => {
        const value = metadata.get(name)[0];
        return typeof value === 'string' ? value : undefined;
      },
      peer: () => peerHost(call.getPeer()),
      signal: controller.signal,
      shutdown,
      end: (reason) => controller.abort(reason),
    };
    return { ctx, done };
  }

  #unary(method: MethodInfo, handler: ReturnType<typeof compose>) {
    return (call: GrpcCall & { request: unknown }, callback: sendUnaryData<unknown>): void => {
      const { ctx, done } = this.#context(call, method);
      handler(call.request, ctx).then(
        (response) => {
          done();
          callback(null, response);
        },
        (err: unknown) => {
          done();
          callback(grpcStatus(err, this.#logger, method.name));
        },
      );
    };
  }

  #serverStreaming(method: MethodInfo, handler: ReturnType<typeof compose>) {
    return (call: ServerWritableStream<unknown, unknown>): void => {
      const { ctx, done } = this.#context(call, method);
      handler(call.request, ctx)
        .then((stream) => write(call, stream as AsyncIterable<unknown>, ctx.signal))
        .then(
          () => call.end(),
          (err: unknown) => {
            // A cancelled call has no one to tell; its status is already sent.
            if (!call.cancelled) call.emit('error', grpcStatus(err, this.#logger, method.name));
          },
        )
        .finally(done);
    };
  }

  #bidi(method: MethodInfo, handler: ReturnType<typeof compose>) {
    return (call: GrpcCall & { emit(event: 'error', status: Partial<ServiceError>): boolean }): void => {
      const { ctx, done } = this.#context(call, method);
      handler(call, ctx).then(done, (err: unknown) => {
        done();
        call.emit('error', grpcStatus(err, this.#logger, method.name));
      });
    };
  }
}

/**
 * Writes each message, waiting for `drain` whenever grpc-js's buffer is
 * full. When the call is aborted (cancelled: grpc-js then drops writes and
 * never drains; deadline; shutdown) or a write throws, the reason is thrown
 * into the stream at its `yield`, so its own cleanup runs and the
 * middleware sees the status it ends with.
 */
async function write(call: ServerWritableStream<unknown, unknown>, stream: AsyncIterable<unknown>, signal: AbortSignal): Promise<void> {
  const iterator = stream[Symbol.asyncIterator]();
  let next = await iterator.next();
  while (!next.done) {
    let problem: unknown;
    try {
      if (!call.write(next.value)) await drained(call, signal);
    } catch (err) {
      problem = err;
    }
    if (problem === undefined && signal.aborted) problem = signal.reason;
    next = problem === undefined ? await iterator.next() : await (iterator.throw ? iterator.throw(problem) : Promise.reject(problem));
  }
  // A stream that returned normally after an abort still ends with the abort's status (UNAVAILABLE on a stop, not OK).
  signal.throwIfAborted();
}

/** Resolves once the call can take more data, or the call is aborted. */
function drained(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    call.on('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
