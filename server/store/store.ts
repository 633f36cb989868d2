/**
 * The storage contract. Two implementations keep it: {@link SqliteStore}
 * (embedded, the default) and {@link MongoStore} (production); one contract
 * suite (test/integration/store-contract.test.ts) runs against both.
 *
 * Every status change is conditional: it happens only if the task is still in
 * one of the expected statuses, and it appends its event in the same atomic
 * write, so a task's history can never disagree with its status. Neither
 * implementation needs multi-document transactions.
 */
import { eventId } from '../../shared/ids.js';
import { isTerminal, type TaskStatus } from '../../shared/task-status.js';

/** One thing that happened to a task: a status change or a review decision. */
export interface TaskEventRecord {
  time: Date;
  /** Who caused it: "user:EMAIL", "agent:NAME" or "system". */
  actor: string;
  /** "task.<status>" for a status change, "task.review" for a review decision. */
  action: string;
  /** Null for the event that created the task. */
  from: TaskStatus | null;
  /** Equal to `from` when the status did not change. */
  to: TaskStatus;
  reason: string;
}

/** A review mode of a target (proto ReviewMode). */
export type ReviewMode = 'none' | 'anyone' | 'team';

/** One required review of a task. */
export interface ReviewRecord {
  /** The reviewer group; "" when any user may review (mode "anyone"). */
  group: string;
  status: 'pending' | 'approved' | 'rejected';
  /** "user:EMAIL" of who decided; "" while pending. */
  reviewer: string;
  time: Date | null;
  comment: string;
}

/** A task as stored. */
export interface TaskRecord {
  /** Sortable by creation time (see shared/ids.ts). */
  id: string;
  created: Date;
  message: string;
  script: string;
  type: string;
  target: string;
  status: TaskStatus;
  createdBy: string;
  /** The agent that runs it; empty until the task becomes ready. */
  agent: string;
  /** Boot id of the agent process it was handed to; empty until claimed. */
  bootId: string;
  started: Date | null;
  finished: Date | null;
  exitCode: number | null;
  signal: string;
  failureReason: string;
  outputBytes: number;
  /** When a kill of the running task was requested; null otherwise. */
  killRequested: Date | null;
  /** Time limit in seconds (0 = none), fixed when the task is created. */
  timeoutSeconds: number;
  /** Output the agent dropped past the per-task output limit, in bytes. */
  outputDroppedBytes: number;
  /** Redacted matches per info type. */
  findings: Record<string, number>;
  /** The creator's groups when it was created. */
  createdByGroups: string[];
  /** Required reviews, fixed when the task is created; empty without review. */
  review: ReviewRecord[];
  /** Each required group needs a different reviewer (from the target, fixed at creation; absent in older tasks: no). */
  distinctReviewers?: boolean;
  /**
   * The uid of the target it was made on (absent in older tasks, as in
   * older targets): a target deleted and made again under the same name is
   * another target, which does not inherit its tasks' readers.
   */
  targetUid?: string;
  events: TaskEventRecord[];
  /**
   * How many of `events` the event publisher has copied to the audit trail
   * and the webhook queue (the task document is its own outbox).
   */
  published: number;
  /** request_id of the CreateTask that made it; absent when it had none. */
  requestId?: string;
  /**
   * Marks of the id-carrying requests that changed it (server/request-ids.ts),
   * written in the same atomic update as the change, so a repeat never acts
   * twice however long after. One per change, so bounded by its moves.
   */
  requestMarks?: string[];
}

/** Fields a transition may set besides the status. */
export type TaskPatch = Partial<
  Pick<
    TaskRecord,
    | 'agent'
    | 'bootId'
    | 'started'
    | 'finished'
    | 'exitCode'
    | 'signal'
    | 'failureReason'
    | 'outputBytes'
    | 'review'
    | 'killRequested'
    | 'outputDroppedBytes'
    | 'findings'
  >
>;

/** A conditional status change. */
export interface TransitionRequest {
  id: string;
  /** The statuses the task must be in; otherwise nothing changes. */
  from: readonly TaskStatus[];
  to: TaskStatus;
  patch?: TaskPatch;
  actor: string;
  reason: string;
  time: Date;
}

/** Which tasks to list, newest first. */
export interface TaskQuery {
  statuses?: readonly TaskStatus[];
  target?: string;
  agent?: string;
  /** Only tasks whose kill was requested. */
  killRequested?: boolean;
  /** Only tasks whose id sorts before this one (for paging). */
  beforeId?: string;
  /**
   * Only tasks with one of these audience keys ({@link taskAudience}): what
   * a user may see, filtered by an index in the store, so a page costs
   * reads of tasks the caller may see, never of those they may not.
   */
  audience?: readonly string[];
  limit: number;
}

/** The audience key of a target: its name, and its uid when it has one. */
export function targetKey(name: string, uid: string | undefined): string {
  return uid ? `target:${name}#${uid}` : `target:${name}`;
}

/**
 * Who a task is visible to, as keys fixed when it is created (its creator,
 * target and review groups never change): "by:user:EMAIL" for its creator,
 * "target:NAME" for users who may use its target (decided when listing, as
 * target groups may change), "group:G" for each reviewing group. The keys a
 * user may see are built by server/access.ts (`audienceFor`); admins list
 * without them.
 */
export function taskAudience(task: Pick<TaskRecord, 'createdBy' | 'target' | 'review' | 'targetUid'>): string[] {
  const keys = [`by:${task.createdBy}`, targetKey(task.target, task.targetUid)];
  for (const review of task.review) if (review.group !== '') keys.push(`group:${review.group}`);
  return [...new Set(keys)];
}

/** A target as stored. */
export interface TargetRecord {
  name: string;
  /** Random, set when it is made; absent in targets made before uids existed. */
  uid?: string;
  type: string;
  agent: string;
  message: string;
  review: ReviewMode;
  /** With review "team": the groups that must each approve. */
  reviewers: string[];
  /** Groups that may create tasks on it; empty means every user. */
  groups: string[];
  allowTypeOverride: boolean;
  /** An inactive target takes no new tasks. */
  active: boolean;
  /** Default time limit of its tasks in seconds; 0 = none. */
  timeoutSeconds: number;
  /** Built-in info types to redact, or ["ALL"]; empty = none. */
  redact: string[];
  /** The target's own detectors. */
  customDetectors: { infoType: string; pattern: string }[];
  /** "", "env" or "file": where the agent finds its tasks' secrets. */
  secretProvider: string;
  secretPath: string;
  /** Task variable -> key in the secret object. */
  secretMapping: Record<string, string>;
  /** User of the agent host its tasks run as; "" = a uid of their own. */
  runAs: string;
  /** With review "team": a different person for each reviewer group. */
  distinctReviewers: boolean;
  created: Date;
  updated: Date;
}

/**
 * A target to insert: fields added after the first release may be left out
 * and take their defaults (see {@link upgrade}).
 */
export type NewTargetRecord = Omit<TargetRecord, 'runAs' | 'distinctReviewers'> & Partial<Pick<TargetRecord, 'runAs' | 'distinctReviewers'>>;

/** Target fields that UpdateTarget may change. */
export type TargetPatch = Partial<
  Pick<
    TargetRecord,
    | 'type'
    | 'agent'
    | 'message'
    | 'review'
    | 'reviewers'
    | 'groups'
    | 'allowTypeOverride'
    | 'active'
    | 'timeoutSeconds'
    | 'redact'
    | 'customDetectors'
    | 'secretProvider'
    | 'secretPath'
    | 'secretMapping'
    | 'runAs'
    | 'distinctReviewers'
  >
>;

/** A user as stored; the email is the key. */
export interface UserRecord {
  email: string;
  name: string;
  groups: string[];
  active: boolean;
  created: Date;
  updated: Date;
}

/** User fields that UpdateUser may change. */
export type UserPatch = Partial<Pick<UserRecord, 'name' | 'groups' | 'active'>>;

/**
 * What the store remembers of an agent. The boot id, token id and secret
 * hashes identify its current session (docs/agent-protocol.md "Session
 * secrets"); they never leave the server.
 */
export interface AgentRecord {
  name: string;
  version: string;
  /** Boot id of the process of its last welcomed session; "" before any. */
  bootId: string;
  lastSeen: Date | null;
  connected: boolean;
  /** Id of the agent token that session was opened with; "" before any. */
  tokenId: string;
  /**
   * Hex SHA-256 of the session secrets that may resume `bootId`: the one
   * sent in the last Welcome, then the one before it (that Welcome may have
   * been lost in flight). Empty before any session.
   */
  secretHashes: string[];
}

/** Agent fields a live session refreshes; the session's identity is not among them. */
export type AgentPresence = Pick<AgentRecord, 'lastSeen' | 'connected'>;

/** Kinds of bearer token: a session is a console sign-in, made from a user token (its `parent`). */
export type TokenKind = 'user' | 'agent' | 'session';

/** A bearer token; only its SHA-256 hash is kept. */
export interface TokenRecord {
  id: string;
  /** Hex SHA-256 of the secret. */
  hash: string;
  kind: TokenKind;
  /** Whom it authenticates: the user's email or the agent's name. */
  subject: string;
  /** A label to tell tokens apart. */
  name: string;
  created: Date;
  /** "user:EMAIL" or "system". */
  createdBy: string;
  /** When it was revoked; null while valid. */
  revoked: Date | null;
  /** When it stops being valid; null: never. (Absent in tokens made before expiry existed.) */
  expires?: Date | null;
  /** When it was last used, to within a minute per server; null: never. */
  lastUsed?: Date | null;
  /** A session's: the id of the user token it was signed in with; it ends when that token does. */
  parent?: string;
}

/** One entry of the audit trail (proto Event). Stored once, never edited. */
export interface AuditEventRecord {
  /** Sorts by time (see shared/ids.ts eventId); a task event's id is fixed by its task and index. */
  id: string;
  time: Date;
  actor: string;
  action: string;
  /** "tasks/ID", "targets/NAME", "tokens/ID", "users/EMAIL". */
  resource: string;
  from: string;
  to: string;
  detail: string;
}

/** Which audit events to list, oldest first. */
export interface AuditQuery {
  actor?: string;
  resource?: string;
  /** Inclusive. */
  since?: Date;
  /** Exclusive. */
  until?: Date;
  /** Only events whose id sorts after this one (for paging). */
  afterId?: string;
  limit: number;
}

/** One webhook POST to make, until it succeeds or runs out of attempts. */
export interface DeliveryRecord {
  /** `${hook}:${eventId}`, so queueing an event twice is a no-op. */
  id: string;
  /** Which configured webhook (its id, see server/webhooks.ts). */
  hook: string;
  eventId: string;
  /** The request body. */
  body: string;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  /** When to try next; a sender pushes it ahead while it tries (a lease). */
  nextAttempt: Date;
  lastError: string;
  created: Date;
}

/** Delivery fields a sender may change. */
export type DeliveryPatch = Partial<Pick<DeliveryRecord, 'state' | 'attempts' | 'nextAttempt' | 'lastError'>>;

/**
 * A client-chosen request id (AIP-155) bound to the request it came with, so
 * a retried call is answered instead of acted on twice (server/request-ids.ts).
 * Keyed by (caller, requestId).
 */
export interface RequestRecord {
  /** "user:EMAIL": request ids are scoped to their caller. */
  caller: string;
  requestId: string;
  /** The RPC it was used for, e.g. "CreateTask". */
  method: string;
  /** Hex SHA-256 of the method and every other field of the request. */
  hash: string;
  /** The task it created or acted on. */
  taskId: string;
  created: Date;
  /** From then on the record is ignored and deleted, and the id is free again. */
  expires: Date;
  /** The call completed; a repeat is answered with the task as it is. */
  done: boolean;
}

/** How often a store deletes expired request records (no TTL index: docs/design.md "Retries and request ids"), and how many at a time. */
export const REQUEST_SWEEP = { everyMs: 10 * 60_000, limit: 500 } as const;

/** A piece of a task's output, keyed by (taskId, seq). */
export interface ChunkRecord {
  taskId: string;
  seq: number;
  /** Byte offset of data[0] in the task's output. */
  offset: number;
  data: Buffer;
}

/** Where to start reading a task's output. */
export type ChunkCursor = { afterSeq: number } | { fromOffset: number };

/** How far the event publisher has published a task's events (TaskRecord.published). */
export interface PublishedMark {
  id: string;
  published: number;
}

/** Tasks claimed together, oldest first, with their targets as they were at the claim, by name (null: deleted). */
export interface ClaimedTasks {
  tasks: TaskRecord[];
  targets: Map<string, TargetRecord | null>;
}

/** Chunks and bytes of output stored for a task. */
export interface OutputTotals {
  chunks: number;
  bytes: number;
}

/** The persistence Taskgate needs. */
export interface Store {
  /**
   * Set when every write of a task also stores, in the same atomic step, the
   * audit records ({@link taskAuditEvent}) of its events past `published`,
   * so the event publisher need not copy those of tasks it saw written.
   */
  readonly recordsTaskEvents?: boolean;

  /** Creates tables/collections and indexes; idempotent. */
  init(): Promise<void>;
  close(): Promise<void>;
  /** Whether the backing database answers (health, readiness). */
  ping(): Promise<void>;

  insertTask(task: TaskRecord): Promise<void>;
  getTask(id: string): Promise<TaskRecord | null>;
  listTasks(query: TaskQuery): Promise<TaskRecord[]>;
  /** How many tasks are in each status (metrics). */
  countTasksByStatus(): Promise<Partial<Record<TaskStatus, number>>>;
  /**
   * Reads the task, applies `mutate` and writes the result, atomically with
   * respect to every other write of that task. `mutate` must be synchronous
   * and pure; returning null leaves the task as it was. Returns the task
   * after the change, or null when it does not exist or `mutate` declined.
   * A change that ends the task (a terminal status) sets `outputBytes` to
   * the bytes of output stored for it, whatever `mutate` said, so the
   * counter matches the chunks on every outcome.
   */
  updateTask(id: string, mutate: (task: TaskRecord) => TaskRecord | null): Promise<TaskRecord | null>;
  /**
   * Applies the change if the task is in one of `from`; returns the task
   * after it, or null. Like every write, a move to a terminal status sets
   * `outputBytes` from the stored chunks (see {@link updateTask}).
   */
  transition(request: TransitionRequest): Promise<TaskRecord | null>;
  /**
   * Sets fields of a task without changing its status, if it is still in
   * `status`; returns the task after it, or null.
   */
  patchTask(id: string, status: TaskStatus, patch: TaskPatch): Promise<TaskRecord | null>;
  /**
   * Moves the oldest ready task of `agent` to running, recording `bootId`;
   * returns it, or null when none is ready.
   */
  claimNextReady(agent: string, bootId: string, time: Date): Promise<TaskRecord | null>;
  /** Whether any task on the target has not reached a terminal status. */
  hasUnfinishedTasks(target: string): Promise<boolean>;
  /** Tasks with events not yet published (see TaskRecord.published), oldest first. */
  listUnpublished(limit: number): Promise<TaskRecord[]>;

  /** Stores a chunk; storing the same (taskId, seq) again is a no-op. */
  putChunk(chunk: ChunkRecord): Promise<void>;
  /**
   * Like {@link putChunk}, but only while the chunk's task is running;
   * returns false, storing nothing, when it is not (output of a finished
   * task is never stored).
   */
  putChunkIfRunning(chunk: ChunkRecord): Promise<boolean>;
  /**
   * Chunks in seq order, from a cursor; at most `limit`, and none after the
   * one that brings the total to `maxBytes` or more (at least one chunk is
   * returned when any is there), so a reader holds a bounded amount.
   */
  readChunks(taskId: string, cursor: ChunkCursor, limit: number, maxBytes?: number): Promise<ChunkRecord[]>;
  /** How many chunks and bytes a task has stored. */
  chunkStats(taskId: string): Promise<{ chunks: number; bytes: number }>;

  /**
   * Binds a request id: inserts the record unless a live one (`expires`
   * after `record.created`) holds its (caller, requestId), and returns null;
   * else returns that one. Of concurrent inserts of one key exactly one
   * returns null. An expired holder is deleted first; every
   * {@link REQUEST_SWEEP} interval a call also deletes some expired records.
   */
  insertRequest(record: RequestRecord): Promise<RequestRecord | null>;
  /** The record of (caller, requestId) still live at `now`, or null. */
  getRequest(caller: string, requestId: string, now: Date): Promise<RequestRecord | null>;
  /** Marks the record done; doing it again changes nothing. */
  completeRequest(caller: string, requestId: string): Promise<void>;
  /** Deletes up to `limit` records expired at `now`; returns how many. */
  deleteExpiredRequests(now: Date, limit: number): Promise<number>;

  /** Throws AlreadyExistsError when the name is taken. */
  insertTarget(target: NewTargetRecord): Promise<void>;
  getTarget(name: string): Promise<TargetRecord | null>;
  /** Targets by name, after `afterName`. */
  listTargets(afterName: string, limit: number): Promise<TargetRecord[]>;
  updateTarget(name: string, patch: TargetPatch, time: Date): Promise<TargetRecord | null>;
  /** Returns whether it existed. */
  deleteTarget(name: string): Promise<boolean>;

  /** Creates or replaces what is known of an agent. */
  putAgent(agent: AgentRecord): Promise<void>;
  /**
   * Sets an agent's presence fields, leaving every other field as it is;
   * returns false (and writes nothing) when the agent is unknown.
   */
  updateAgentPresence(name: string, presence: AgentPresence): Promise<boolean>;
  getAgent(name: string): Promise<AgentRecord | null>;
  listAgents(): Promise<AgentRecord[]>;

  /** Creates or replaces a stored secret (sealed by server/secret-box.ts). */
  putSecret(target: string, key: string, sealed: string, time: Date): Promise<void>;
  /** A target's stored secrets, by key. */
  listSecrets(target: string): Promise<{ key: string; sealed: string }[]>;
  /** Returns whether it existed. */
  deleteSecret(target: string, key: string): Promise<boolean>;

  /** Throws AlreadyExistsError when the email is taken. */
  insertUser(user: UserRecord): Promise<void>;
  getUser(email: string): Promise<UserRecord | null>;
  /** Users by email, after `afterEmail`. */
  listUsers(afterEmail: string, limit: number): Promise<UserRecord[]>;
  updateUser(email: string, patch: UserPatch, time: Date): Promise<UserRecord | null>;
  countUsers(): Promise<number>;

  insertToken(token: TokenRecord): Promise<void>;
  findTokenByHash(hash: string): Promise<TokenRecord | null>;
  getToken(id: string): Promise<TokenRecord | null>;
  /** Tokens of one subject, or all when undefined, oldest first. */
  listTokens(subject: string | undefined): Promise<TokenRecord[]>;
  /** Marks the token revoked (keeping the first revocation time); returns it, or null. */
  revokeToken(id: string, time: Date): Promise<TokenRecord | null>;
  /** Tokens by id, in one query; ids not found are left out. */
  getTokens(ids: readonly string[]): Promise<TokenRecord[]>;
  /** Sets a token's lastUsed. */
  touchToken(id: string, time: Date): Promise<void>;
  /** Users by email, in one query; emails not found are left out. */
  getUsers(emails: readonly string[]): Promise<UserRecord[]>;

  /** Stores an audit event; storing the same id again is a no-op. */
  insertEvent(event: AuditEventRecord): Promise<void>;

  // Batch forms (optional): a store that has one does in a single round trip
  // what the forms above do in several. Callers go through the functions of
  // the same names below, which fall back to the single forms.

  /** {@link insertEvent} of each, in one step. */
  insertEvents?(events: readonly AuditEventRecord[]): Promise<void>;
  /** Advances each task's `published` to `published` (never back), in one step; unknown tasks are skipped. */
  markPublished?(marks: readonly PublishedMark[]): Promise<void>;
  /** {@link updateAgentPresence} of each, in one step; unknown agents are skipped. */
  updateAgentsPresence?(updates: readonly { name: string; presence: AgentPresence }[]): Promise<void>;
  /** Like {@link claimNextReady}, up to `limit` tasks (oldest first) and their targets, in one atomic step. */
  claimReady?(agent: string, bootId: string, time: Date, limit: number): Promise<ClaimedTasks>;
  /**
   * Like {@link updateTask}, with `mutate` also given the chunks and bytes
   * stored for the task, read in the same atomic step.
   */
  updateTaskWithOutput?(id: string, mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null): Promise<TaskRecord | null>;

  listEvents(query: AuditQuery): Promise<AuditEventRecord[]>;

  /** Queues a delivery; queueing the same id again is a no-op. */
  insertDelivery(delivery: DeliveryRecord): Promise<void>;
  /**
   * Pending deliveries due at `now`, oldest first, each with nextAttempt
   * pushed to `leaseUntil` so another sender does not take it meanwhile.
   */
  claimDueDeliveries(now: Date, leaseUntil: Date, limit: number): Promise<DeliveryRecord[]>;
  updateDelivery(id: string, patch: DeliveryPatch): Promise<void>;
  getDelivery(id: string): Promise<DeliveryRecord | null>;

  /**
   * Retention (server/retention.ts): deletes tasks that ended before
   * `endedBefore`, with their output and every other row of theirs but
   * their audit events, which are kept. A task qualifies when its status is
   * terminal, every one of its events is published, and it ended before
   * then: its `finished`, or for a task that never ran (rejected) the time
   * of its last event. At most `limits.tasks` tasks and `limits.chunks`
   * chunks a call. A task's chunks are deleted first and the task only once
   * none is left, so a call cut short (or a crash) leaves the task to a
   * later call, never output without its task. Concurrent calls, from other
   * processes too, are safe: every row is deleted, and counted, once.
   */
  deleteEndedTasks(endedBefore: Date, limits: RetentionLimits): Promise<RetentionBatch>;
}

/** How much one {@link Store.deleteEndedTasks} call may delete; each at least 1. */
export interface RetentionLimits {
  tasks: number;
  /** Output chunks, of all its tasks together. */
  chunks: number;
}

/** What one {@link Store.deleteEndedTasks} call deleted. */
export interface RetentionBatch {
  tasks: number;
  chunks: number;
  /** The call stopped at a limit: more may be left to delete now. */
  more: boolean;
}

/** The audit record of a task's `index`-th event (its id fixed by the task and the index, so storing it twice is a no-op). */
export function taskAuditEvent(task: TaskRecord, index: number): AuditEventRecord {
  const e = task.events[index];
  if (!e) throw new RangeError(`task ${task.id} has no event ${index}`);
  return {
    id: eventId(e.time, `${task.id}-${String(index).padStart(5, '0')}`),
    time: e.time,
    actor: e.actor,
    action: e.action,
    resource: `tasks/${task.id}`,
    from: e.from ?? '',
    to: e.to,
    detail: e.reason,
  };
}

/** Stores audit events: in one step where the store can (see {@link Store.insertEvents}). */
export async function insertEvents(store: Store, events: readonly AuditEventRecord[]): Promise<void> {
  if (events.length === 0) return;
  if (store.insertEvents) return store.insertEvents(events);
  for (const event of events) await store.insertEvent(event);
}

/** Agents' presence: in one step where the store can (see {@link Store.updateAgentsPresence}). */
export async function updateAgentsPresence(store: Store, updates: readonly { name: string; presence: AgentPresence }[]): Promise<void> {
  if (updates.length === 0) return;
  if (store.updateAgentsPresence) return store.updateAgentsPresence(updates);
  await Promise.all(updates.map(({ name, presence }) => store.updateAgentPresence(name, presence)));
}

/** Advances tasks' `published`: in one step where the store can (see {@link Store.markPublished}). */
export async function markPublished(store: Store, marks: readonly PublishedMark[]): Promise<void> {
  if (marks.length === 0) return;
  if (store.markPublished) return store.markPublished(marks);
  for (const { id, published } of marks) {
    // Only forward: a later change may already have published more.
    await store.updateTask(id, (t) => (t.published >= published ? null : { ...t, published }));
  }
}

/**
 * Claims up to `limit` of an agent's ready tasks, oldest first, and reads
 * their targets: in one step where the store can (see {@link Store.claimReady}).
 * A store without that form claims one task a call, so on a slow store each
 * is on its way to the agent before the next is claimed (a claimed task
 * not yet sent is lost with an agent that restarts meanwhile). `exhausted`:
 * no more tasks were ready.
 */
export async function claimReady(store: Store, agent: string, bootId: string, time: Date, limit: number): Promise<ClaimedTasks & { exhausted: boolean }> {
  if (limit <= 0) return { tasks: [], targets: new Map(), exhausted: false };
  if (store.claimReady) {
    const claimed = await store.claimReady(agent, bootId, time, limit);
    return { ...claimed, exhausted: claimed.tasks.length < limit };
  }
  const task = await store.claimNextReady(agent, bootId, time);
  if (!task) return { tasks: [], targets: new Map(), exhausted: true };
  return { tasks: [task], targets: new Map([[task.target, await store.getTarget(task.target)]]), exhausted: false };
}

/**
 * {@link Store.updateTask} with the task's stored output totals: in one
 * atomic step where the store can (see {@link Store.updateTaskWithOutput}),
 * else the totals are read first. `mutate` is called once when the task
 * exists.
 */
export async function updateTaskWithOutput(
  store: Store,
  id: string,
  mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null,
): Promise<TaskRecord | null> {
  if (store.updateTaskWithOutput) return store.updateTaskWithOutput(id, mutate);
  const output = await store.chunkStats(id);
  return store.updateTask(id, (task) => mutate(task, output));
}

/**
 * The task after a conditional status change, or null when it is not in one
 * of `request.from`. Both stores apply transitions through this.
 */
export function applyTransition(task: TaskRecord, request: TransitionRequest): TaskRecord | null {
  if (!request.from.includes(task.status)) return null;
  return {
    ...task,
    ...request.patch,
    status: request.to,
    events: [
      ...task.events,
      {
        time: request.time,
        actor: request.actor,
        action: `task.${request.to}`,
        from: task.status,
        to: request.to,
        reason: request.reason,
      },
    ],
  };
}

/**
 * Whether a write takes a task from a live status to a terminal one; such a
 * write sets `outputBytes` to the bytes stored (see {@link Store.updateTask}).
 */
export function endsTask(before: TaskRecord, after: TaskRecord): boolean {
  return !isTerminal(before.status) && isTerminal(after.status);
}

/** The transition that hands an agent's oldest ready task to it. */
export function claimRequest(id: string, agent: string, bootId: string, time: Date): TransitionRequest {
  return { id, from: ['ready'], to: 'running', patch: { bootId }, actor: `agent:${agent}`, reason: 'handed to agent', time };
}

/** Whether the task has events the publisher has not handled yet. */
export function hasUnpublished(task: TaskRecord): boolean {
  return task.events.length > task.published;
}

/**
 * Fills fields that records written by an older version lack, so both
 * stores read old data directory and database contents.
 */
export const upgrade = {
  task(task: TaskRecord): TaskRecord {
    task.review ??= [];
    task.killRequested ??= null;
    task.timeoutSeconds ??= 0;
    task.outputDroppedBytes ??= 0;
    task.findings ??= {};
    task.createdByGroups ??= [];
    task.published ??= task.events.length;
    for (const e of task.events) e.action ??= `task.${e.to}`;
    return task;
  },
  target(target: NewTargetRecord): TargetRecord {
    target.review ??= 'none';
    target.reviewers ??= [];
    target.groups ??= [];
    target.allowTypeOverride ??= true;
    target.active ??= true;
    target.timeoutSeconds ??= 0;
    target.redact ??= [];
    target.customDetectors ??= [];
    target.secretProvider ??= '';
    target.secretPath ??= '';
    target.secretMapping ??= {};
    target.runAs ??= '';
    target.distinctReviewers ??= true;
    return target as TargetRecord;
  },
  agent(agent: AgentRecord): AgentRecord {
    agent.tokenId ??= '';
    agent.secretHashes ??= [];
    return agent;
  },
};
