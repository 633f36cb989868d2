/**
 * Taskgate's RPC layer (docs/design.md "The RPC layer"): services are plain
 * functions of one shape, whatever carries them —
 *
 *   unary             (request, ctx) => Promise<response>
 *   server streaming  (request, ctx) => AsyncIterable<response>
 *   bidi (gRPC only)  (stream, ctx)  => Promise<void>
 *
 * — plus an access row per method. Middleware (authentication, the access
 * requirement, metrics, error mapping, later rate limits) wraps every
 * method once; a transport adapter (server/rpc/grpc.ts today, Connect next)
 * builds the call context, writes responses with back-pressure and turns
 * the RpcError that comes out into its own status.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { UnavailableError } from '../../shared/errors.js';
import type { AgentPrincipal, Principal, UserPrincipal } from '../auth.js';
import type { Requirement } from '../access.js';

/** How a method streams. */
export type MethodKind = 'unary' | 'server-streaming' | 'bidi';

/** One method of a service, as the middleware sees it. */
export interface MethodInfo {
  /** "/taskgate.v1.TaskService/CreateTask". */
  readonly path: string;
  /** "TaskService/CreateTask", as logs and metrics name it. */
  readonly name: string;
  readonly kind: MethodKind;
  /** Who may call it before it looks at any object (server/access.ts). */
  readonly requirement: Requirement;
  /** What carries it: "grpc" (grpc-js) or "connect" (Connect and gRPC-Web, the HTTP listener); metrics label calls by it. */
  readonly transport: 'grpc' | 'connect';
}

/** What every call carries, whatever its transport. */
export interface CallContext {
  readonly method: MethodInfo;
  /** A request header ("authorization"), lower-case name; undefined when absent. */
  header(name: string): string | undefined;
  /** The client's address (no port), for limits per address. */
  peer(): string;
  /**
   * Aborts when the client cancels (reason CancelledError), the deadline
   * passes (DeadlineExceededError) or the server stops (UnavailableError):
   * `signal.throwIfAborted()` ends the call with the right status. (On the
   * agent stream it follows the call only until the implementation
   * resolves; the session then owns the call and its shutdown.)
   */
  readonly signal: AbortSignal;
  /** Aborts when the server stops, only then. */
  readonly shutdown: AbortSignal;
  /** Ends the call with this error: aborts `signal` with it as the reason. */
  end(reason: Error): void;
  /** Who is calling; set by the authentication middleware. */
  principal?: Principal;
}

/** The context of a method that requires a user (every unary and server-streaming one). */
export interface UserContext extends CallContext {
  /** The caller; on a stream, replaced when their groups change and `recheck` allowed it. */
  readonly user: UserPrincipal;
  /**
   * Set by a streaming method after its first check: when the caller's
   * groups change while the stream is open (server/live-streams.ts), it is
   * called with the changed user and rejects if they may no longer go on.
   */
  recheck?: (user: UserPrincipal) => Promise<void>;
}

/** The context of the agent stream. */
export interface AgentContext extends CallContext {
  readonly agent: AgentPrincipal;
}

/**
 * A method as middleware sees it: for a unary method the promise holds the
 * response, for a streaming one an AsyncIterable of them.
 */
export type Handler = (request: unknown, ctx: CallContext) => Promise<unknown>;

/** Wraps a method's handler; applied once per method when the service is added. */
export type Middleware = (method: MethodInfo, next: Handler) => Handler;

/**
 * What the RPC layer reads of each method of a ts-proto definition
 * (outputServices=grpc-js); the serializers are there too, for the
 * transport.
 */
export interface MethodDefinition {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** A generated service definition: method key to method. */
export type ServiceDefinition = Readonly<Record<string, MethodDefinition>>;

type RequestOf<M> = M extends { requestDeserialize: (value: Buffer) => infer Req } ? Req : never;
type ResponseOf<M> = M extends { responseDeserialize: (value: Buffer) => infer Res } ? Res : never;

/** The function implementing method M. */
export type MethodImpl<M> = M extends { requestStream: true; responseStream: true }
  ? // The agent stream is gRPC-only: its implementation gets grpc-js's call.
    (stream: ServerDuplexStream<RequestOf<M>, ResponseOf<M>>, ctx: AgentContext) => Promise<void>
  : M extends { responseStream: true }
    ? (request: RequestOf<M>, ctx: UserContext) => AsyncIterable<ResponseOf<M>>
    : (request: RequestOf<M>, ctx: UserContext) => Promise<ResponseOf<M>>;

/**
 * A service: its generated definition, one implementation and one access row
 * per method. The compiler refuses a spec missing either for any method.
 */
export interface ServiceSpec<D extends ServiceDefinition> {
  readonly definition: D;
  readonly access: { readonly [K in keyof D]: Requirement };
  readonly methods: { readonly [K in keyof D]: MethodImpl<D[K]> };
}

/** Any service spec, as the adapters take them. */
export type AnyServiceSpec = {
  readonly definition: ServiceDefinition;
  readonly access: Readonly<Record<string, Requirement>>;
  readonly methods: Readonly<Record<string, unknown>>;
};

/** The kind of a generated method. */
export function kindOf(method: MethodDefinition): MethodKind {
  if (method.requestStream && method.responseStream) return 'bidi';
  if (method.responseStream) return 'server-streaming';
  if (method.requestStream) throw new Error(`${method.path}: client streaming is not supported by Taskgate's RPC layer`);
  return 'unary';
}

/** The method info of every method of a spec, keyed as the definition keys them. */
export function methodsOf(spec: AnyServiceSpec, transport: MethodInfo['transport']): Array<{ key: string; info: MethodInfo; definition: MethodDefinition }> {
  return Object.entries(spec.definition).map(([key, definition]) => {
    const requirement = spec.access[key];
    if (!requirement) throw new Error(`${definition.path} has no access row`);
    return {
      key,
      definition,
      info: { path: definition.path, name: definition.path.replace(/^\/[^/]*\.(\w+)\//, '$1/'), kind: kindOf(definition), requirement, transport },
    };
  });
}

/** The handler of one method with the middleware applied, outermost first. */
export function compose(method: MethodInfo, impl: unknown, middleware: readonly Middleware[]): Handler {
  let handler: Handler =
    method.kind === 'unary'
      ? (impl as Handler)
      : // A streaming implementation returns its iterable synchronously.
        (request, ctx) => Promise.resolve((impl as (req: unknown, ctx: CallContext) => unknown)(request, ctx));
  for (let i = middleware.length - 1; i >= 0; i--) handler = middleware[i]!(method, handler);
  return handler;
}

/**
 * Wraps a streaming result so `observe` sees how it ends: undefined when it
 * completed, else the error, which `observe` may replace. A stream its
 * consumer stopped reading ends as cancelled.
 */
export function watchStream<T>(source: AsyncIterable<T>, observe: (err: unknown) => unknown, cancelled: () => unknown): AsyncIterable<T> {
  return (async function* () {
    let settled = false;
    try {
      yield* source;
      settled = true;
      observe(undefined);
    } catch (err) {
      settled = true;
      throw observe(err);
    } finally {
      if (!settled) observe(cancelled());
    }
  })();
}

/** Why calls end when the server stops: clients should call, or follow, again. */
const STOPPING = { unary: new UnavailableError('server stopping; try again'), stream: new UnavailableError('server stopping; follow again') } as const;

/**
 * The calls a transport has open, so a server stop ends each with the
 * reason its kind gets ("try again" for unary, "follow again" for streams).
 * One listener on the shutdown signal for all of them (a listener per call
 * costs more than the call's own work).
 */
export class OpenCalls {
  readonly #shutdown: AbortSignal;
  readonly #open = new Map<AbortController, UnavailableError>();

  constructor(shutdown: AbortSignal) {
    this.#shutdown = shutdown;
    shutdown.addEventListener(
      'abort',
      () => {
        for (const [controller, reason] of this.#open) controller.abort(reason);
        this.#open.clear();
      },
      { once: true },
    );
  }

  /** A controller for a new call of `method`, aborted at once if the server is stopping; `done` forgets it. */
  open(method: MethodInfo): { controller: AbortController; done: () => void } {
    const controller = new AbortController();
    const stopping = method.kind === 'unary' ? STOPPING.unary : STOPPING.stream;
    if (this.#shutdown.aborted) controller.abort(stopping);
    else this.#open.set(controller, stopping);
    return { controller, done: () => void this.#open.delete(controller) };
  }
}
