/**
 * The one place where domain errors become gRPC statuses (STYLE.md "Errors").
 * Anything that is not a TaskgateError is a bug: it becomes INTERNAL with a
 * generic message, and its stack is logged.
 */
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  TaskgateError,
  UnauthenticatedError,
  UnavailableError,
} from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';

const CODES: ReadonlyArray<[new (...args: never[]) => TaskgateError, status]> = [
  [InvalidArgumentError, status.INVALID_ARGUMENT],
  [NotFoundError, status.NOT_FOUND],
  [AlreadyExistsError, status.ALREADY_EXISTS],
  [FailedPreconditionError, status.FAILED_PRECONDITION],
  [PermissionDeniedError, status.PERMISSION_DENIED],
  [UnauthenticatedError, status.UNAUTHENTICATED],
  [ResourceExhaustedError, status.RESOURCE_EXHAUSTED],
  [UnavailableError, status.UNAVAILABLE],
];

/** The gRPC code for a domain error. */
export function codeOf(err: TaskgateError): status {
  for (const [cls, code] of CODES) if (err instanceof cls) return code;
  return status.INTERNAL;
}

/** Longest status message sent, in characters; it travels in an HTTP/2 trailer. */
export const MAX_DETAILS = 1024;

/**
 * A message short enough for a trailer. Messages quote what the caller sent
 * (`target "..." not found`), and a caller may send megabytes: each quoted
 * value past 60 characters is cut and its length given instead, then the
 * whole is cut if still too long.
 */
export function boundedDetails(message: string): string {
  if (message.length <= MAX_DETAILS) return message;
  const shortened = message.replace(/"([^"]{60})([^"]+)"/g, (_all, head: string, rest: string) => `"${head}…" (${head.length + rest.length} characters)`);
  return shortened.length <= MAX_DETAILS ? shortened : `${shortened.slice(0, MAX_DETAILS - 1)}…`;
}

/** Turns any thrown value into a ServiceError for grpc-js, logging unexpected ones. */
export function toServiceError(err: unknown, logger: Logger, method: string): Partial<ServiceError> {
  if (err instanceof TaskgateError) {
    return { code: codeOf(err), details: boundedDetails(err.message), metadata: new Metadata() };
  }
  logger.error({ err, method }, 'unexpected error in handler');
  return { code: status.INTERNAL, details: 'internal error; see the server log', metadata: new Metadata() };
}
