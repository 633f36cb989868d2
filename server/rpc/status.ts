/**
 * The one place where errors become call statuses (STYLE.md "Errors"),
 * independent of the transport: gRPC and Connect share these code numbers
 * (Connect's `Code` enum is gRPC's, 1:1), so each adapter only spells them.
 * Anything that is not a TaskgateError is a bug: it becomes INTERNAL with a
 * generic message, and its stack is logged.
 */
import {
  AlreadyExistsError,
  CancelledError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  TaskgateError,
  UnauthenticatedError,
  UnavailableError,
} from '../../shared/errors.js';

/** Status codes, numbered as gRPC and Connect number them. */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

/** A code's name ("NOT_FOUND"), as metrics and logs show it. */
export const CODE_NAMES: Readonly<Record<Code, string>> = Object.fromEntries(Object.entries(Code).map(([name, code]) => [code, name])) as Record<Code, string>;

const CODES: ReadonlyArray<[new (...args: never[]) => TaskgateError, Code]> = [
  [InvalidArgumentError, Code.INVALID_ARGUMENT],
  [NotFoundError, Code.NOT_FOUND],
  [AlreadyExistsError, Code.ALREADY_EXISTS],
  [FailedPreconditionError, Code.FAILED_PRECONDITION],
  [PermissionDeniedError, Code.PERMISSION_DENIED],
  [UnauthenticatedError, Code.UNAUTHENTICATED],
  [ResourceExhaustedError, Code.RESOURCE_EXHAUSTED],
  [UnavailableError, Code.UNAVAILABLE],
  [CancelledError, Code.CANCELLED],
  [DeadlineExceededError, Code.DEADLINE_EXCEEDED],
  [DataLossError, Code.DATA_LOSS],
];

/** The code of a domain error. */
export function codeOf(err: TaskgateError): Code {
  for (const [cls, code] of CODES) if (err instanceof cls) return code;
  return Code.INTERNAL;
}

/** Longest status message sent, in characters; gRPC carries it in an HTTP/2 trailer. */
export const MAX_MESSAGE = 1024;

/**
 * A message short enough for a trailer. Messages quote what the caller sent
 * (`target "..." not found`), and a caller may send megabytes: each quoted
 * value past 60 characters is cut and its length given instead, then the
 * whole is cut if still too long.
 */
export function boundedMessage(message: string): string {
  if (message.length <= MAX_MESSAGE) return message;
  const shortened = message.replace(/"([^"]{60})([^"]+)"/g, (_all, head: string, rest: string) => `"${head}…" (${head.length + rest.length} characters)`);
  return shortened.length <= MAX_MESSAGE ? shortened : `${shortened.slice(0, MAX_MESSAGE - 1)}…`;
}

/** How a call ended with an error, for any transport. */
export class RpcError extends Error {
  readonly code: Code;
  /** When the caller may try again, in ms. */
  readonly retryDelayMs: number | undefined;

  constructor(code: Code, message: string, retryDelayMs?: number) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.retryDelayMs = retryDelayMs;
  }
}

/** The message every unexpected error gets; the details are in the server log. */
export const INTERNAL_MESSAGE = 'internal error; see the server log';

/**
 * The status for any thrown value. `onBug` is told about values that are
 * not domain errors (they become INTERNAL).
 */
export function toRpcError(err: unknown, onBug: (err: unknown) => void): RpcError {
  if (err instanceof RpcError) return err;
  if (err instanceof TaskgateError) return new RpcError(codeOf(err), boundedMessage(err.message), err.retryDelayMs);
  onBug(err);
  return new RpcError(Code.INTERNAL, INTERNAL_MESSAGE);
}
