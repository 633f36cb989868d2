/**
 * The middleware every Taskgate method runs through, outermost first
 * (server/server.ts composes them): metrics, error mapping,
 * authentication, the access requirement, per-caller limits, the
 * open-stream check. Each is applied once per method
 * when a service is added, so a call pays only for what it runs.
 */
import { CancelledError, DataLossError, InvalidArgumentError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { authorize, authorizeAgent } from '../access.js';
import type { Authenticator, UserPrincipal } from '../auth.js';
import type { LiveStreams } from '../live-streams.js';
import type { AuthFailureLimits, RateLimits } from '../rate-limits.js';
import type { Metrics } from '../metrics.js';
import { watchStream, type Middleware } from './core.js';
import { CODE_NAMES, Code, RpcError, toRpcError } from './status.js';

/** Why a stream its transport stopped reading ended. */
function stoppedReading(): CancelledError {
  return new CancelledError('the client stopped reading');
}

/** `stream`, calling `done` once when it ends, however it ends. */
function whenEnded<T>(stream: AsyncIterable<T>, done: () => void): AsyncIterable<T> {
  return watchStream(
    stream,
    (err) => {
      done();
      return err;
    },
    () => {
      done();
      return stoppedReading();
    },
  );
}

/**
 * Every error becomes an RpcError. A call the client cancelled, whose
 * deadline passed or that the server is stopping ends with the signal's
 * reason (CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE), whatever the
 * implementation threw on the way out; only errors that are not domain
 * errors of a live call are logged as bugs.
 */
export function mapErrors(logger: Logger): Middleware {
  return (method, next) => {
    const map = (err: unknown, signal: AbortSignal): RpcError => {
      if (signal.aborted && !(err instanceof RpcError)) {
        return toRpcError(signal.reason, (reason) => logger.error({ err: reason, method: method.name }, 'unexpected abort reason'));
      }
      // Damaged stored data is the operator's to hear of, not only the caller's.
      if (err instanceof DataLossError) logger.error({ err, method: method.name }, 'stored data could not be read; the call ends DATA_LOSS');
      return toRpcError(err, (bug) => logger.error({ err: bug, method: method.name }, 'unexpected error in handler'));
    };
    const streaming = method.kind === 'server-streaming';
    return async (request, ctx) => {
      let result: unknown;
      try {
        result = await next(request, ctx);
      } catch (err) {
        throw map(err, ctx.signal);
      }
      if (!streaming) return result;
      return watchStream(result as AsyncIterable<unknown>, (err) => (err === undefined ? undefined : map(err, ctx.signal)), stoppedReading);
    };
  };
}

/** Counts each call by method and status and times it (taskgate_rpc_*). */
export function recordMetrics(metrics: Metrics): Middleware {
  return (method, next) => {
    const handled = metrics.rpc(method.name, method.transport);
    const codeName = (err: unknown): string => CODE_NAMES[err instanceof RpcError ? err.code : Code.INTERNAL];
    if (method.kind !== 'server-streaming') {
      return (request, ctx) => {
        const start = performance.now();
        return next(request, ctx).then(
          (response) => {
            handled('OK', (performance.now() - start) / 1000);
            return response;
          },
          (err: unknown) => {
            handled(codeName(err), (performance.now() - start) / 1000);
            throw err;
          },
        );
      };
    }
    return (request, ctx) => {
      const start = performance.now();
      const done = (err: unknown): unknown => {
        handled(err === undefined ? 'OK' : codeName(err), (performance.now() - start) / 1000);
        return err;
      };
      return next(request, ctx).then(
        (stream) => watchStream(stream as AsyncIterable<unknown>, done, stoppedReading),
        (err: unknown) => Promise.reject(done(err)),
      );
    };
  };
}

/** Who is calling, from the `authorization: Bearer ...` header. */
export function authenticate(auth: Authenticator, failures: AuthFailureLimits): Middleware {
  return (_method, next) => async (request, ctx) => {
    // Only lookups of tokens this server has not verified lately count
    // against the address: counted before the lookup, given back if it was good.
    let counted = false;
    ctx.principal = await auth.authenticate(ctx.header('authorization'), () => {
      failures.take(ctx.peer());
      counted = true;
    });
    if (counted) failures.refund(ctx.peer());
    return next(request, ctx);
  };
}

/**
 * The method's access row: a user (or an admin) for the API, an agent for
 * the agent stream. Puts `user` or `agent` on the context.
 */
export function requireAccess(): Middleware {
  return (method, next) => {
    const requirement = method.requirement;
    if (requirement === 'agent') {
      return async (request, ctx) => next(request, Object.assign(ctx, { agent: authorizeAgent(ctx.principal!) }));
    }
    return async (request, ctx) => next(request, Object.assign(ctx, { user: authorize(ctx.principal!, requirement) }));
  };
}

/**
 * Registers every open server stream with the open-stream check
 * (server/live-streams.ts), so a revoked token, an expired one or a
 * deactivated user ends it, and a change of groups checks it again (the
 * method's access row, then its own `recheck`).
 */
export function guardStreams(live: LiveStreams): Middleware {
  return (method, next) => {
    if (method.kind !== 'server-streaming') return next;
    const requirement = method.requirement === 'agent' ? 'user' : method.requirement;
    return async (request, ctx) => {
      const stream = (await next(request, ctx)) as AsyncIterable<unknown>;
      const userCtx = ctx as unknown as { user: UserPrincipal; recheck?: (user: UserPrincipal) => Promise<void> };
      const unwatch = live.watch({
        principal: ctx.principal!,
        end: (err) => ctx.end(err),
        changed: async (principal) => {
          const user = authorize(principal, requirement);
          await userCtx.recheck?.(user);
          userCtx.user = user;
        },
      });
      return whenEnded(stream, unwatch);
    };
  };
}

/**
 * Per-caller limits (server/rate-limits.ts): every call takes from the
 * caller's bucket, and a server stream counts against their open streams
 * until it ends. The agent stream is not limited here.
 */
export function limitCallers(limits: RateLimits): Middleware {
  return (method, next) => {
    if (method.kind === 'bidi') return next;
    if (method.kind === 'unary') {
      return async (request, ctx) => {
        limits.call(ctx.principal!);
        return next(request, ctx);
      };
    }
    return async (request, ctx) => {
      limits.call(ctx.principal!);
      const release = limits.openStream(ctx.principal!);
      let stream: AsyncIterable<unknown>;
      try {
        stream = (await next(request, ctx)) as AsyncIterable<unknown>;
      } catch (err) {
        release();
        throw err;
      }
      return whenEnded(stream, release);
    };
  };
}

/**
 * Refuses a request with a NUL character (U+0000) in any string field, in
 * one line naming the field: it is never meaningful in a name, id, script
 * or message, and MongoDB-wire stores on PostgreSQL (FerretDB) cannot hold
 * it (docs/limits.md). Bytes fields (output) are not strings and may hold
 * anything. The agent stream checks its own messages.
 */
export function refuseNul(): Middleware {
  return (method, next) => {
    if (method.kind === 'bidi') return next;
    return async (request, ctx) => {
      // The walk that names the field runs only for a request that has one:
      // building every field's path cost each call more than the check.
      const field = hasNul(request) ? nulField(request, '') : undefined;
      if (field !== undefined) throw new InvalidArgumentError(`${field || 'the request'} must not contain NUL characters (U+0000)`);
      return next(request, ctx);
    };
  };
}

/** Whether any string (or map key) in `value` holds U+0000. */
function hasNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array || value instanceof Date) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (hasNul(item)) return true;
    return false;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    if (key.includes('\u0000') || hasNul((value as Record<string, unknown>)[key])) return true;
  }
  return false;
}

/** The path of the first string field holding U+0000 ("target.name", "statuses[2]"), or undefined. */
function nulField(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array || value instanceof Date) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nulField(value[i], `${path}[${i}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    // Map keys are strings too.
    if (key.includes('\u0000')) return path ? `${path} key` : 'a key';
    const found = nulField(item, path ? `${path}.${snake(key)}` : snake(key));
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A proto field's own name (ts-proto camelCases them). */
function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
