/**
 * The records Taskgate stores, as both stores hold them (server/store/store.ts
 * is the contract that stores them), and what follows from a record alone:
 * a task's audience keys and audit records and the transition both stores
 * apply. How each is written and read back, across versions, is in
 * server/store/record-codecs.ts.
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

/**
 * The fields of a task that a run fills in, as a new task holds them: no
 * agent, no times, no outcome, no output, no event published yet.
 */
export function unstartedFields(): Pick<
  TaskRecord,
  'agent' | 'bootId' | 'started' | 'finished' | 'exitCode' | 'signal' | 'failureReason' | 'outputBytes' | 'killRequested' | 'outputDroppedBytes' | 'findings' | 'published'
> {
  return { agent: '', bootId: '', started: null, finished: null, exitCode: null, signal: '', failureReason: '', outputBytes: 0, killRequested: null, outputDroppedBytes: 0, findings: {}, published: 0 };
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
 * and take their defaults (see `newTarget` in record-codecs.ts).
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

/** Which agent's ready tasks {@link Store.finishAndClaimNext} claims, for which boot, and how many at most. */
export interface ClaimNext {
  agent: string;
  bootId: string;
  time: Date;
  limit: number;
}

/** Chunks and bytes of output stored for a task. */
export interface OutputTotals {
  chunks: number;
  bytes: number;
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
