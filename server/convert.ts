/** Conversions between stored records and the wire messages of proto/. */
import { Agent } from '../gen/taskgate/v1/agent.js';
import { Event } from '../gen/taskgate/v1/event.js';
import { ReviewMode as WireReviewMode, Target } from '../gen/taskgate/v1/target.js';
import { ReviewStatus, Task, TaskStatus as WireStatus } from '../gen/taskgate/v1/task.js';
import { Token, TokenKind as WireTokenKind, User } from '../gen/taskgate/v1/user.js';
import type { TaskStatus } from '../shared/task-status.js';
import type {
  AgentRecord,
  AuditEventRecord,
  ReviewMode,
  ReviewRecord,
  TargetRecord,
  TaskRecord,
  TokenRecord,
  UserRecord,
} from './store/store.js';

const TO_WIRE: Readonly<Record<TaskStatus, WireStatus>> = {
  created: WireStatus.TASK_STATUS_CREATED,
  'pending-review': WireStatus.TASK_STATUS_PENDING_REVIEW,
  approved: WireStatus.TASK_STATUS_APPROVED,
  rejected: WireStatus.TASK_STATUS_REJECTED,
  ready: WireStatus.TASK_STATUS_READY,
  running: WireStatus.TASK_STATUS_RUNNING,
  success: WireStatus.TASK_STATUS_SUCCESS,
  failure: WireStatus.TASK_STATUS_FAILURE,
  killed: WireStatus.TASK_STATUS_KILLED,
};

/** The wire enum value of a status. */
export function statusToWire(status: TaskStatus): WireStatus {
  return TO_WIRE[status];
}

/** The status named by a wire enum value, or undefined for UNSPECIFIED/unknown. */
export function statusFromWire(value: WireStatus): TaskStatus | undefined {
  for (const [name, wire] of Object.entries(TO_WIRE)) if (wire === value) return name as TaskStatus;
  return undefined;
}

/** A stored task as a wire Task. */
export function taskToWire(task: TaskRecord): Task {
  return Task.fromPartial({
    id: task.id,
    created: task.created,
    message: task.message,
    script: task.script,
    type: task.type,
    target: task.target,
    review: task.review.map((r) => ({
      group: r.group,
      status: REVIEW_TO_WIRE[r.status],
      reviewer: r.reviewer,
      time: r.time ?? undefined,
      comment: r.comment,
    })),
    status: statusToWire(task.status),
    createdBy: task.createdBy,
    agent: task.agent,
    started: task.started ?? undefined,
    finished: task.finished ?? undefined,
    exitCode: task.exitCode ?? undefined,
    signal: task.signal,
    failureReason: task.failureReason,
    outputBytes: task.outputBytes,
    killRequested: task.killRequested ?? undefined,
    timeoutSeconds: task.timeoutSeconds,
    outputDroppedBytes: task.outputDroppedBytes,
    findings: task.findings,
    createdByGroups: task.createdByGroups,
    events: task.events.map((e) => ({
      time: e.time,
      actor: e.actor,
      from: e.from ? statusToWire(e.from) : WireStatus.TASK_STATUS_UNSPECIFIED,
      to: statusToWire(e.to),
      reason: e.reason,
      action: e.action,
    })),
  });
}

const REVIEW_TO_WIRE: Readonly<Record<ReviewRecord['status'], ReviewStatus>> = {
  pending: ReviewStatus.REVIEW_STATUS_PENDING,
  approved: ReviewStatus.REVIEW_STATUS_APPROVED,
  rejected: ReviewStatus.REVIEW_STATUS_REJECTED,
};

const MODE_TO_WIRE: Readonly<Record<ReviewMode, WireReviewMode>> = {
  none: WireReviewMode.REVIEW_MODE_NONE,
  anyone: WireReviewMode.REVIEW_MODE_ANYONE,
  team: WireReviewMode.REVIEW_MODE_TEAM,
};

/** The review mode named by a wire value; UNSPECIFIED is "none". Undefined for unknown values. */
export function reviewModeFromWire(value: WireReviewMode): ReviewMode | undefined {
  if (value === WireReviewMode.REVIEW_MODE_UNSPECIFIED) return 'none';
  for (const [name, wire] of Object.entries(MODE_TO_WIRE)) if (wire === value) return name as ReviewMode;
  return undefined;
}

/** A stored target as a wire Target. */
export function targetToWire(target: TargetRecord): Target {
  // The uid stays inside the server: it tells a target from a later one of the same name.
  const { uid, ...wire } = target;
  void uid;
  return Target.fromPartial({ ...wire, review: MODE_TO_WIRE[target.review] });
}

/** A stored user as a wire User. */
export function userToWire(user: UserRecord): User {
  return User.fromPartial({ ...user });
}

const TOKEN_KINDS = {
  user: WireTokenKind.TOKEN_KIND_USER,
  agent: WireTokenKind.TOKEN_KIND_AGENT,
  session: WireTokenKind.TOKEN_KIND_SESSION,
} as const satisfies Record<TokenRecord['kind'], WireTokenKind>;

/** A stored token as a wire Token; the hash never leaves the server. */
export function tokenToWire(token: TokenRecord): Token {
  return Token.fromPartial({
    id: token.id,
    kind: TOKEN_KINDS[token.kind],
    subject: token.subject,
    name: token.name,
    created: token.created,
    revoked: token.revoked ?? undefined,
    createdBy: token.createdBy,
    expires: token.expires ?? undefined,
    lastUsed: token.lastUsed ?? undefined,
  });
}

/** A stored audit event as a wire Event. */
export function eventToWire(event: AuditEventRecord): Event {
  return Event.fromPartial({ ...event });
}

/**
 * A stored agent as a wire Agent, with what this server knows live. Its
 * session (boot id, token id, secret hashes) stays on the server: boot_id is
 * deprecated and always empty (issue 13).
 */
export function agentToWire(agent: AgentRecord, live: { connected: boolean; runningTasks: number }): Agent {
  return Agent.fromPartial({
    name: agent.name,
    connected: live.connected,
    version: agent.version,
    lastSeen: agent.lastSeen ?? undefined,
    runningTasks: live.runningTasks,
  });
}
