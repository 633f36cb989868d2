/**
 * The console's API clients: the public services over the Connect protocol
 * (binary form: logs are bytes), on the page's own origin. The session is
 * an HttpOnly cookie the browser sends itself (fetch's default
 * `credentials: 'same-origin'`); no token is ever held in script.
 */
import { Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import { AgentService } from '../../gen/es/taskgate/v1/agent_pb.js';
import { EventService } from '../../gen/es/taskgate/v1/event_pb.js';
import { TargetService } from '../../gen/es/taskgate/v1/target_pb.js';
import { TaskService } from '../../gen/es/taskgate/v1/task_pb.js';
import { UserService } from '../../gen/es/taskgate/v1/user_pb.js';

const unauthenticatedListeners = new Set<() => void>();

/** Calls `listener` whenever an RPC is refused as unauthenticated (signed out, session revoked or expired). */
export function onUnauthenticated(listener: () => void): () => void {
  unauthenticatedListeners.add(listener);
  return () => unauthenticatedListeners.delete(listener);
}

function notice(error: unknown): void {
  if (error instanceof ConnectError && error.code === Code.Unauthenticated) {
    for (const listener of [...unauthenticatedListeners]) listener();
  }
}

async function* watched<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    notice(error);
    throw error;
  }
}

/** Tells the session when any call, unary or streaming, is refused as unauthenticated. */
const sessionWatch: Interceptor = (next) => async (request) => {
  try {
    const response = await next(request);
    if (!response.stream) return response;
    return { ...response, message: watched(response.message) };
  } catch (error) {
    notice(error);
    throw error;
  }
};

const transport = createConnectTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [sessionWatch],
});

export const taskService = createClient(TaskService, transport);
export const targetService = createClient(TargetService, transport);
export const userService = createClient(UserService, transport);
export const agentService = createClient(AgentService, transport);
export const eventService = createClient(EventService, transport);

/** The one line to show a person for a failed call: the server's message, not the code's name. */
export function errorMessage(error: unknown): string {
  if (error instanceof ConnectError) return error.rawMessage || Code[error.code] || 'request failed';
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Whether the call failed because it was aborted (the page moved on). */
export function isAbort(error: unknown): boolean {
  return (
    (error instanceof ConnectError && error.code === Code.Canceled) ||
    (error instanceof DOMException && error.name === 'AbortError')
  );
}

/** Whether `error` is a ConnectError with `code`. */
export function hasCode(error: unknown, code: Code): boolean {
  return error instanceof ConnectError && error.code === code;
}

/** A fresh id for a retry-safe call (CreateTaskRequest.request_id). */
export function requestId(): string {
  return crypto.randomUUID();
}
