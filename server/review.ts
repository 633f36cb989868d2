/**
 * The Runops review model as pure functions over a task: which reviews a
 * target requires, and what one reviewer's decision does to a task. The
 * store applies {@link applyReview} inside its atomic per-task update, so two
 * decisions at the same moment are applied one after the other and end in
 * exactly one consistent outcome.
 */
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError } from '../shared/errors.js';
import { canMove, isTerminal, type TaskStatus } from '../shared/task-status.js';
import { actorOf, type UserPrincipal } from './auth.js';
import { requireNotCreator, requireReview } from './access.js';
import type { ReviewRecord, TargetRecord, TaskRecord } from './store/store.js';

/** The reviews a new task on `target` needs: none, one from anyone, or one per reviewer group. */
export function requiredReviews(target: TargetRecord): ReviewRecord[] {
  const pending = (group: string): ReviewRecord => ({ group, status: 'pending', reviewer: '', time: null, comment: '' });
  switch (target.review) {
    case 'none':
      return [];
    case 'anyone':
      return [pending('')];
    case 'team':
      return target.reviewers.map(pending);
  }
}

/** One reviewer's decision. */
export interface ReviewInput {
  decision: 'approve' | 'reject';
  /** The group acted for; "" lets the server pick the only one that fits. */
  group: string;
  comment: string;
  time: Date;
}

/** Names a review entry for people: its group, or "anyone". */
function label(review: ReviewRecord): string {
  return review.group === '' ? 'anyone' : review.group;
}

/** The review entry this decision is for; throws when none or several fit. */
function pickReview(user: UserPrincipal, task: TaskRecord, group: string): ReviewRecord {
  const anyone = task.review.find((r) => r.group === '');
  if (anyone) return anyone;
  if (group !== '') {
    const named = task.review.find((r) => r.group === group);
    if (!named) {
      throw new InvalidArgumentError(`task ${task.id} needs reviews from ${task.review.map(label).join(', ')}, not from "${group}"`);
    }
    return named;
  }
  const mine = task.review.filter((r) => user.groups.includes(r.group));
  if (mine.length === 0) {
    throw new PermissionDeniedError(
      `reviews of task ${task.id} come from ${task.review.map(label).join(', ')}; you are in ${user.groups.join(', ') || 'no group'}`,
    );
  }
  const pending = mine.filter((r) => r.status === 'pending');
  const candidates = pending.length > 0 ? pending : mine;
  if (candidates.length > 1) {
    throw new InvalidArgumentError(`you are in ${candidates.map(label).join(' and ')}, which both review this task; say which group you act for`);
  }
  return candidates[0] as ReviewRecord;
}

/**
 * The task after `user`'s decision, or null when the decision changes
 * nothing (approving again what is already approved). Throws
 * PermissionDeniedError when the user may not decide it (the creator, a
 * member of none of the groups) and FailedPreconditionError when the task is
 * past review.
 */
export function applyReview(task: TaskRecord, user: UserPrincipal, input: ReviewInput, target: TargetRecord | null): TaskRecord | null {
  if (task.review.length === 0) throw new FailedPreconditionError(`task ${task.id} needs no review`);
  if (task.status === 'rejected' || isTerminal(task.status)) {
    throw new FailedPreconditionError(`task ${task.id} is ${task.status}; it can no longer be reviewed`);
  }
  // The creator is refused first, whatever groups they are in.
  requireNotCreator(user, task);
  const review = pickReview(user, task, input.group);
  requireReview(user, task, review.group, target);
  if (input.decision === 'approve' && review.status === 'approved') return null;
  if (input.decision === 'approve' && task.distinctReviewers) {
    const mine = task.review.find((r) => r !== review && r.status === 'approved' && r.reviewer === actorOf(user));
    if (mine) {
      throw new PermissionDeniedError(
        `you approved task ${task.id} for ${label(mine)} already; target "${task.target}" needs a different person for each reviewer group`,
      );
    }
  }
  if (task.status !== 'pending-review') {
    throw new FailedPreconditionError(
      `task ${task.id} is ${task.status}; reviews are only taken while it is pending-review${task.status === 'approved' ? ' (kill it to stop it)' : ''}`,
    );
  }
  const actor = actorOf(user);
  const decided: ReviewRecord = {
    ...review,
    status: input.decision === 'approve' ? 'approved' : 'rejected',
    reviewer: actor,
    time: input.time,
    comment: input.comment,
  };
  const reviews = task.review.map((r) => (r === review ? decided : r));
  const said = input.comment === '' ? '' : `: ${input.comment}`;
  const events = [
    ...task.events,
    {
      time: input.time,
      actor,
      action: 'task.review',
      from: task.status,
      to: task.status,
      reason: `${decided.status} for ${label(decided)}${said}`,
    },
  ];
  let status: TaskStatus = task.status;
  if (input.decision === 'reject') status = 'rejected';
  else if (reviews.every((r) => r.status === 'approved')) status = 'approved';
  if (status !== task.status) {
    if (!canMove(task.status, status)) throw new FailedPreconditionError(`task ${task.id} cannot become ${status}`);
    events.push({
      time: input.time,
      actor,
      action: `task.${status}`,
      from: task.status,
      to: status,
      reason: status === 'rejected' ? `rejected by ${actor}${said}` : 'every required review approved',
    });
  }
  return { ...task, review: reviews, status, events };
}

