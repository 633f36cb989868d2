/**
 * Taskgate's domain errors. Storage, the state machine and validation throw
 * these; the RPC layer (server/rpc/status.ts) maps each class to one status
 * code, which every transport (gRPC, Connect) sends as its own. Nothing below
 * the boundary knows about a transport.
 */

/** What a domain error may carry besides its message. */
export interface ErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** When the caller may try again, in ms (gRPC sends it as grpc-retry-pushback-ms). */
  retryDelayMs?: number;
}

/** Base of every domain error; `cause` keeps the underlying error. */
export class TaskgateError extends Error {
  /** When the caller may try again, in ms; undefined when it says nothing. */
  readonly retryDelayMs: number | undefined;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryDelayMs = options?.retryDelayMs;
  }
}

/** Thrown when a request is malformed: empty script, unknown type, oversized input. */
export class InvalidArgumentError extends TaskgateError {}

/** Thrown when a named task, target or agent does not exist. */
export class NotFoundError extends TaskgateError {}

/** Thrown when creating something whose name is taken, or a second live agent of one name. */
export class AlreadyExistsError extends TaskgateError {}

/**
 * Thrown when the object is not in a state that allows the operation, e.g. an
 * illegal status move; the message names the current status.
 */
export class FailedPreconditionError extends TaskgateError {}

/** Thrown when the caller is known but may not do this. */
export class PermissionDeniedError extends TaskgateError {}

/** Thrown when the caller presented no credentials or unknown ones. */
export class UnauthenticatedError extends TaskgateError {}

/** Thrown when a limit is exceeded (sizes, counts). */
export class ResourceExhaustedError extends TaskgateError {}

/** Thrown when the store cannot be reached; the caller may retry. */
export class UnavailableError extends TaskgateError {}

/** Thrown when stored data cannot be read back as written (a damaged row, an encoding this version does not know). */
export class DataLossError extends TaskgateError {}

/** Thrown when the caller gave up on the call (cancelled it, or went away). */
export class CancelledError extends TaskgateError {}

/** Thrown when the call's deadline passed before it finished. */
export class DeadlineExceededError extends TaskgateError {}
