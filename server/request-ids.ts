/**
 * Request ids (AIP-155): what makes a retried CreateTask, RunTask,
 * ReviewTask or KillTask safe (docs/design.md "Retries and request ids").
 *
 * Two records, each written with a primitive that is atomic on SQLite,
 * MongoDB and FerretDB alike:
 *
 * - The request record (Store.insertRequest), keyed by (caller, request id)
 *   with a unique key: binds the id to one request (method and a hash of its
 *   fields) and one task for 24 h. A repeat finds it; a different request
 *   with the id gets ALREADY_EXISTS. For CreateTask it fixes the new task's
 *   id before the task is inserted, so racing repeats insert one task (its
 *   id is the tasks' primary key); for the others it says when the call
 *   completed, so a repeat is answered without acting.
 * - A mark in the task (TaskRecord.requestMarks), added in the same atomic
 *   per-task update as the change it made: a repeat that finds it acts no
 *   more, even when the first call was cut off before it completed, and even
 *   after the request record expired.
 */
import { createHash } from 'node:crypto';
import { AlreadyExistsError, InvalidArgumentError } from '../shared/errors.js';
import { insertRequestAndTask, type RequestRecord, type RequestStore, type TaskStore, type TaskRecord } from './store/store.js';

/** How long a request id stays bound to its request, in ms (24 h). */
export const REQUEST_ID_TTL_MS = 24 * 3600 * 1000;

/** Letters, digits, '-' and '_': a UUID, a ULID or base64url randomness fit. */
const REQUEST_ID = /^[A-Za-z0-9_-]{8,64}$/;

/** The methods that take a request id. */
export type IdempotentMethod = 'CreateTask' | 'RunTask' | 'ReviewTask' | 'KillTask';

/** One call that carries a request id: who, which id, and what it asks. */
export interface IdempotentRequest {
  /** "user:EMAIL". */
  caller: string;
  requestId: string;
  method: IdempotentMethod;
  /** Hex SHA-256 of the method and the request's other fields: what "the same request" means. */
  hash: string;
  /** What the task keeps once this request changed it. */
  mark: string;
}

/**
 * The request of a call, or null when it carries no request id (every such
 * call acts). `fields` are every field of the request but the request id,
 * in a fixed order. Throws InvalidArgumentError for a malformed id.
 */
export function requestOf(caller: string, method: IdempotentMethod, requestId: string, fields: readonly (string | number)[]): IdempotentRequest | null {
  if (requestId === '') return null;
  if (!REQUEST_ID.test(requestId)) {
    // The value itself is not echoed: it may be long or hold control characters.
    const problem = requestId.length < 8 || requestId.length > 64 ? `${requestId.length} characters` : 'other characters';
    throw new InvalidArgumentError(`request_id must be 8-64 characters of A-Z, a-z, 0-9, '-' and '_' (a random UUID, say); this one has ${problem}`);
  }
  const hash = createHash('sha256').update(JSON.stringify([method, ...fields])).digest('hex');
  const mark = createHash('sha256').update(JSON.stringify([caller, requestId, hash])).digest('base64url');
  return { caller, requestId, method, hash, mark };
}

/** Throws ALREADY_EXISTS unless `record` was bound by this same request. */
function requireSame(record: RequestRecord, request: IdempotentRequest): void {
  if (record.method === request.method && record.hash === request.hash) return;
  throw new AlreadyExistsError(
    `request_id ${request.requestId} was already used for another request (${record.method} of task ${record.taskId}); ` +
      'a new request needs a new request_id',
  );
}

/**
 * The live record of the request's id: null when there is none (or no
 * request). Throws ALREADY_EXISTS when the id is bound to another request.
 */
export async function priorRequest(store: RequestStore & TaskStore, request: IdempotentRequest | null): Promise<RequestRecord | null> {
  if (!request) return null;
  const record = await store.getRequest(request.caller, request.requestId, new Date());
  if (record) requireSame(record, request);
  return record;
}

/** The record binding the request's id to it and to `taskId`, from now for REQUEST_ID_TTL_MS. */
function bindingOf(request: IdempotentRequest, taskId: string): RequestRecord {
  const created = new Date();
  return {
    caller: request.caller,
    requestId: request.requestId,
    method: request.method,
    hash: request.hash,
    taskId,
    created,
    expires: new Date(created.getTime() + REQUEST_ID_TTL_MS),
    done: false,
  };
}

/**
 * Binds the request's id to it and to `taskId`. Returns null when this call
 * bound it, else the record a concurrent repeat bound first. Throws
 * ALREADY_EXISTS when another request holds the id.
 */
export async function bindRequest(store: RequestStore & TaskStore, request: IdempotentRequest | null, taskId: string): Promise<RequestRecord | null> {
  if (!request) return null;
  const holder = await store.insertRequest(bindingOf(request, taskId));
  if (holder) requireSame(holder, request);
  return holder;
}

/**
 * CreateTask's binding: binds the request's id to it and to `task`, the
 * task it makes, and inserts the task when this call bound the id, in one
 * store step where the store can (Store.insertRequestAndTask). Returns null
 * when this call bound it (the task is stored), else the record an earlier
 * or concurrent call bound (nothing is inserted). Throws ALREADY_EXISTS
 * when another request holds the id, and AlreadyExistsError when the task
 * id is taken.
 */
export async function bindRequestAndInsert(store: RequestStore & TaskStore, request: IdempotentRequest, task: TaskRecord): Promise<RequestRecord | null> {
  const holder = await insertRequestAndTask(store, bindingOf(request, task.id), task);
  if (holder) requireSame(holder, request);
  return holder;
}

/** Records that the call completed, so a repeat is answered at once. */
export async function completeRequest(store: RequestStore & TaskStore, request: IdempotentRequest | null): Promise<void> {
  if (request) await store.completeRequest(request.caller, request.requestId);
}

/** Whether the request already changed the task. */
export function changedBy(task: TaskRecord, request: IdempotentRequest | null): boolean {
  return request !== null && (task.requestMarks ?? []).includes(request.mark);
}

/**
 * Whether a call is a repeat to answer with the task as it is: its first
 * call completed, or changed the task and was cut off before it completed.
 */
export function isRepeat(prior: RequestRecord | null, task: TaskRecord, request: IdempotentRequest | null): boolean {
  return prior?.done === true || changedBy(task, request);
}

/**
 * Applies `mutate` (synchronous and pure, as Store.updateTask requires) to
 * the task, unless `request` changed it already; the change and the
 * request's mark are one atomic write. Returns the task after the change
 * (`applied`), the task as it is when the request had changed it before
 * (not `applied`), or null when `mutate` declined.
 */
export async function applyOnce(
  store: RequestStore & TaskStore,
  id: string,
  request: IdempotentRequest | null,
  mutate: (task: TaskRecord) => TaskRecord | null,
): Promise<{ task: TaskRecord; applied: boolean } | null> {
  const changed = await store.updateTask(id, (task) => {
    if (!request) return mutate(task);
    if (changedBy(task, request)) return null;
    const next = mutate(task);
    return next && { ...next, requestMarks: [...(task.requestMarks ?? []), request.mark] };
  });
  if (changed) return { task: changed, applied: true };
  if (!request) return null;
  const current = await store.getTask(id);
  return current && changedBy(current, request) ? { task: current, applied: false } : null;
}
