/**
 * The storage contract. Two implementations keep it: {@link SqliteStore}
 * (embedded, the default) and {@link MongoStore} (production); one contract
 * suite (test/integration/store-contract*.test.ts: tasks and claims, then
 * the other records) runs against both.
 *
 * Every status change is conditional: it happens only if the task is still in
 * one of the expected statuses, and it appends its event in the same atomic
 * write, so a task's history can never disagree with its status. Neither
 * implementation needs multi-document transactions.
 */
import type { TaskStatus } from '../../shared/task-status.js';
import type {
  AgentPresence,
  AgentRecord,
  AuditEventRecord,
  AuditQuery,
  ChunkCursor,
  ChunkRecord,
  ClaimedTasks,
  ClaimNext,
  DeliveryPatch,
  DeliveryRecord,
  NewTargetRecord,
  OutputTotals,
  PublishedMark,
  RequestRecord,
  RetentionBatch,
  RetentionLimits,
  TargetPatch,
  TargetRecord,
  TaskPatch,
  TaskQuery,
  TaskRecord,
  TokenRecord,
  TransitionRequest,
  UserPatch,
  UserRecord,
} from './records.js';

// The records and their functions, for the modules that import the contract.
export * from './records.js';

/*
 * The contract is split by record kind, so each part of the server takes
 * only what it uses (a service of targets cannot touch tokens); {@link Store}
 * is all of them, which both implementations keep.
 */

/** Opening, closing and health of the backing database. */
export interface StoreLifecycle {
  /** Creates tables/collections and indexes; idempotent. */
  init(): Promise<void>;
  close(): Promise<void>;
  /** Whether the backing database answers (health, readiness). */
  ping(): Promise<void>;
}

/** Tasks: their writes, each atomic with the task's events, and their claims. */
export interface TaskStore {
  /**
   * Set when every write of a task also stores, in the same atomic step, the
   * audit records ({@link taskAuditEvent}) of its events past `published`,
   * so the event publisher need not copy those of tasks it saw written.
   */
  readonly recordsTaskEvents?: boolean;

  /**
   * Set when a task insert is one local, synchronous transaction whose
   * outcome is never in doubt and no other server shares the store (the
   * embedded store). Only then may CreateTask store a task already claimed
   * by its agent's session here: on MongoDB a hostile review found the
   * two-step request-id insert, an insert stored but reported failed, a
   * stream replaced while the insert was out, and a replica's older ready
   * task each leaving such a task running for nobody or out of order
   * (test/integration/claims-review.test.ts).
   */
  readonly claimsAtCreation?: boolean;

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


  // Batch forms (optional): a store that has one does in a single round
  // trip what the forms above do in several. Callers go through the
  // functions of the same names below, which fall back to the single forms.

  /** Advances each task's `published` to `published` (never back), in one step; unknown tasks are skipped. */
  markPublished?(marks: readonly PublishedMark[]): Promise<void>;
  /** Like {@link claimNextReady}, up to `limit` tasks (oldest first) and their targets, in one atomic step. */
  claimReady?(agent: string, bootId: string, time: Date, limit: number): Promise<ClaimedTasks>;
  /**
   * Like {@link updateTask}, with `mutate` also given the chunks and bytes
   * stored for the task, read in the same atomic step.
   */
  updateTaskWithOutput?(id: string, mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null): Promise<TaskRecord | null>;
  /**
   * {@link updateTaskWithOutput} and, when it wrote the task, the claim of
   * up to `next.limit` of `next.agent`'s ready tasks, oldest first, with
   * their targets (as {@link claimReady}), in one atomic step: an exit that
   * frees a full agent's slot and the claim of its next task. No write, no
   * claim. (The MongoDB store has no such step: there each claimed task
   * takes its own lock, so one call would save no round trip; the session
   * claims through {@link claimReady} as usual.)
   */
  finishAndClaimNext?(
    id: string,
    mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null,
    next: ClaimNext,
  ): Promise<{ task: TaskRecord | null; claimed: ClaimedTasks }>;
}

/** Tasks' output, in chunks. */
export interface OutputStore {
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
}

/** Request ids (retry-safe calls, server/request-ids.ts). */
export interface RequestStore {
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


  // Batch forms (optional): a store that has one does in a single round
  // trip what the forms above do in several. Callers go through the
  // functions of the same names below, which fall back to the single forms.

  /**
   * {@link insertRequest} and, when this call bound the id, {@link insertTask},
   * in one atomic step: returns null when both are stored, or the live record
   * that holds the id, having inserted nothing (a repeat finds the binding
   * first). A task that cannot be inserted (AlreadyExistsError) leaves no
   * binding. Through {@link insertRequestAndTask}, which falls back to the
   * two calls (where a failed insert leaves the binding, bound to a task
   * that does not exist; CreateTask's repeat then inserts it).
   */
  insertRequestAndTask?(record: RequestRecord, task: TaskRecord): Promise<RequestRecord | null>;
}

/** Targets and their stored secrets. */
export interface TargetStore {
  /** Throws AlreadyExistsError when the name is taken. */
  insertTarget(target: NewTargetRecord): Promise<void>;
  getTarget(name: string): Promise<TargetRecord | null>;
  /** Targets by name, after `afterName`. */
  listTargets(afterName: string, limit: number): Promise<TargetRecord[]>;
  updateTarget(name: string, patch: TargetPatch, time: Date): Promise<TargetRecord | null>;
  /** Returns whether it existed. */
  deleteTarget(name: string): Promise<boolean>;


  /** Creates or replaces a stored secret (sealed by server/secret-box.ts). */
  putSecret(target: string, key: string, sealed: string, time: Date): Promise<void>;
  /** A target's stored secrets, by key. */
  listSecrets(target: string): Promise<{ key: string; sealed: string }[]>;
  /** Returns whether it existed. */
  deleteSecret(target: string, key: string): Promise<boolean>;
}

/** What is known of agents. */
export interface AgentStore {
  /** Creates or replaces what is known of an agent. */
  putAgent(agent: AgentRecord): Promise<void>;
  /**
   * Sets an agent's presence fields, leaving every other field as it is;
   * returns false (and writes nothing) when the agent is unknown.
   */
  updateAgentPresence(name: string, presence: AgentPresence): Promise<boolean>;
  getAgent(name: string): Promise<AgentRecord | null>;
  listAgents(): Promise<AgentRecord[]>;


  // Batch forms (optional): a store that has one does in a single round
  // trip what the forms above do in several. Callers go through the
  // functions of the same names below, which fall back to the single forms.

  /** {@link updateAgentPresence} of each, in one step; unknown agents are skipped. */
  updateAgentsPresence?(updates: readonly { name: string; presence: AgentPresence }[]): Promise<void>;
}

/** Users and their tokens (agent tokens too). */
export interface UserStore {
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
  /**
   * Of these token ids, those whose verdict may have changed by `now`, in
   * one indexed query: missing, revoked, expired at or before `now`, or
   * made from another token (whose state is the parent's, so it is always
   * read again). Nothing else in a stored token decides whom it stands for
   * (its kind and subject never change), so the others stand for what they
   * did. The open-stream check reads only these again (server/live-streams.ts).
   */
  tokensToRecheck(ids: readonly string[], now: Date): Promise<string[]>;
  /** Users by email, in one query; emails not found are left out. */
  getUsers(emails: readonly string[]): Promise<UserRecord[]>;
}

/** Audit events. */
export interface AuditStore {
  /** Stores an audit event; storing the same id again is a no-op. */
  insertEvent(event: AuditEventRecord): Promise<void>;

  listEvents(query: AuditQuery): Promise<AuditEventRecord[]>;


  // Batch forms (optional): a store that has one does in a single round
  // trip what the forms above do in several. Callers go through the
  // functions of the same names below, which fall back to the single forms.

  /** {@link insertEvent} of each, in one step. */
  insertEvents?(events: readonly AuditEventRecord[]): Promise<void>;
}

/** Webhook deliveries. */
export interface DeliveryStore {
  /** Queues a delivery; queueing the same id again is a no-op. */
  insertDelivery(delivery: DeliveryRecord): Promise<void>;
  /**
   * Pending deliveries due at `now`, oldest first, each with nextAttempt
   * pushed to `leaseUntil` so another sender does not take it meanwhile.
   */
  claimDueDeliveries(now: Date, leaseUntil: Date, limit: number): Promise<DeliveryRecord[]>;
  updateDelivery(id: string, patch: DeliveryPatch): Promise<void>;
  getDelivery(id: string): Promise<DeliveryRecord | null>;
}

/** Retention's deletions. */
export interface RetentionStore {
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

/** The persistence Taskgate needs: every part above. */
export interface Store extends StoreLifecycle, TaskStore, OutputStore, RequestStore, TargetStore, AgentStore, UserStore, AuditStore, DeliveryStore, RetentionStore {}

/** Stores audit events: in one step where the store can (see {@link AuditStore.insertEvents}). */
export async function insertEvents(store: AuditStore, events: readonly AuditEventRecord[]): Promise<void> {
  if (events.length === 0) return;
  if (store.insertEvents) return store.insertEvents(events);
  for (const event of events) await store.insertEvent(event);
}

/**
 * Binds a request id and inserts the task it made: in one step where the
 * store can (see {@link RequestStore.insertRequestAndTask}), else binding first
 * and inserting only when this call bound it. Returns null when this call
 * bound the id (and stored the task), else the record holding it.
 */
export async function insertRequestAndTask(store: RequestStore & Pick<TaskStore, 'insertTask'>, record: RequestRecord, task: TaskRecord): Promise<RequestRecord | null> {
  if (store.insertRequestAndTask) return store.insertRequestAndTask(record, task);
  const holder = await store.insertRequest(record);
  if (!holder) await store.insertTask(task);
  return holder;
}

/** Agents' presence: in one step where the store can (see {@link AgentStore.updateAgentsPresence}). */
export async function updateAgentsPresence(store: AgentStore, updates: readonly { name: string; presence: AgentPresence }[]): Promise<void> {
  if (updates.length === 0) return;
  if (store.updateAgentsPresence) return store.updateAgentsPresence(updates);
  await Promise.all(updates.map(({ name, presence }) => store.updateAgentPresence(name, presence)));
}

/** Advances tasks' `published`: in one step where the store can (see {@link TaskStore.markPublished}). */
export async function markPublished(store: TaskStore, marks: readonly PublishedMark[]): Promise<void> {
  if (marks.length === 0) return;
  if (store.markPublished) return store.markPublished(marks);
  for (const { id, published } of marks) {
    // Only forward: a later change may already have published more.
    await store.updateTask(id, (t) => (t.published >= published ? null : { ...t, published }));
  }
}

/**
 * Claims up to `limit` of an agent's ready tasks, oldest first, and reads
 * their targets: in one step where the store can (see {@link TaskStore.claimReady}).
 * A store without that form claims one task a call, so on a slow store each
 * is on its way to the agent before the next is claimed (a claimed task
 * not yet sent is lost with an agent that restarts meanwhile). `exhausted`:
 * no more tasks were ready.
 */
export async function claimReady(store: TaskStore & Pick<TargetStore, 'getTarget'>, agent: string, bootId: string, time: Date, limit: number): Promise<ClaimedTasks & { exhausted: boolean }> {
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
 * {@link TaskStore.updateTask} with the task's stored output totals: in one
 * atomic step where the store can (see {@link TaskStore.updateTaskWithOutput}),
 * else the totals are read first. `mutate` is called once when the task
 * exists.
 */
export async function updateTaskWithOutput(
  store: TaskStore & Pick<OutputStore, 'chunkStats'>,
  id: string,
  mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null,
): Promise<TaskRecord | null> {
  if (store.updateTaskWithOutput) return store.updateTaskWithOutput(id, mutate);
  const output = await store.chunkStats(id);
  return store.updateTask(id, (task) => mutate(task, output));
}
