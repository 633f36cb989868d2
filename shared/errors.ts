/**
 * Taskgate's domain errors. Storage, the state machine and validation throw
 * these; the gRPC boundary (server/grpc-status.ts) maps each class to one
 * status code. Nothing below the boundary knows about gRPC.
 */

/** Base of every domain error; `cause` keeps the underlying error. */
export class TaskgateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
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
