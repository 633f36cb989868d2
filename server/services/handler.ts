/**
 * Wraps service methods so each one authenticates its caller, checks the
 * requirement, and turns every error into a gRPC status in one place.
 */
import type {
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
} from '@grpc/grpc-js';
import type { Logger } from '../../shared/logger.js';
import { authorize, type Requirement } from '../access.js';
import type { Authenticator, UserPrincipal } from '../auth.js';
import { toServiceError } from '../grpc-status.js';

/** What every handler gets besides its request. */
export interface HandlerContext {
  /** The calling user (agent tokens never reach a handler). */
  user: UserPrincipal;
  /** Aborts when the client cancels or the server shuts down. */
  signal: AbortSignal;
}

/** Builds unary and server-streaming handlers with auth and error mapping. */
export class HandlerFactory {
  readonly #auth: Authenticator;
  readonly #logger: Logger;
  readonly #shutdown: AbortSignal;

  constructor(auth: Authenticator, logger: Logger, shutdown: AbortSignal) {
    this.#auth = auth;
    this.#logger = logger;
    this.#shutdown = shutdown;
  }

  /** A unary handler. */
  unary<Req, Res>(
    method: string,
    requirement: Requirement,
    fn: (request: Req, context: HandlerContext) => Promise<Res>,
  ): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
    return (call, callback) => {
      const controller = new AbortController();
      call.on('cancelled', () => controller.abort());
      this.#auth
        .authenticate(call.metadata)
        .then((principal) => {
          const user = authorize(principal, requirement);
          return fn(call.request, { user, signal: AbortSignal.any([controller.signal, this.#shutdown]) });
        })
        .then(
          (response) => callback(null, response),
          (err: unknown) => callback(toServiceError(err, this.#logger, method)),
        );
    };
  }

  /** A server-streaming handler; `fn` writes to the call and resolves when done. */
  stream<Req, Res>(
    method: string,
    requirement: Requirement,
    fn: (request: Req, call: ServerWritableStream<Req, Res>, context: HandlerContext) => Promise<void>,
  ): (call: ServerWritableStream<Req, Res>) => void {
    return (call) => {
      const controller = new AbortController();
      call.on('cancelled', () => controller.abort());
      this.#auth
        .authenticate(call.metadata)
        .then((principal) => {
          const user = authorize(principal, requirement);
          return fn(call.request, call, { user, signal: AbortSignal.any([controller.signal, this.#shutdown]) });
        })
        .then(
          () => call.end(),
          (err: unknown) => {
            if (controller.signal.aborted && call.cancelled) return;
            call.emit('error', toServiceError(err, this.#logger, method));
          },
        );
    };
  }
}

/** Resolves once the stream can take more data (honours write() returning false). */
export function drained(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
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
