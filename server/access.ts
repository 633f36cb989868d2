/**
 * Who may do what: every authorization rule of Taskgate, in one place
 * (docs/access.md has the table; test/integration/access.test.ts checks every
 * RPC against it).
 *
 * - Agent tokens may only open their agent stream.
 * - The admin group manages users, targets, agents and everyone's tokens,
 *   reads the audit trail, and may use every target.
 * - Other users may use a target when it names none of its groups or one of
 *   theirs. They see a task when they created it, may use its target, or may
 *   review it; any other task is NOT_FOUND to them, as if it did not exist.
 * - A reviewer acts for a group they belong to; the creator never reviews
 *   their own task, whatever their groups.
 */
import { PermissionDeniedError } from '../shared/errors.js';
import type { AgentPrincipal, Principal, UserPrincipal } from './auth.js';
import { targetKey, type ReviewRecord, type TargetRecord, type TaskRecord } from './store/store.js';

/** Members of this group administer Taskgate. */
export const ADMIN_GROUP = 'admin';

/**
 * What an RPC requires of its caller before it looks at any object: a user
 * token, one of an admin, or an agent token (the agent stream only). Every
 * method's row is in its service (server/services/*.ts, `access`).
 */
export type Requirement = 'user' | 'admin' | 'agent';

/** Whether the user is in the admin group. */
export function isAdmin(user: UserPrincipal): boolean {
  return user.groups.includes(ADMIN_GROUP);
}

/** Throws PermissionDeniedError unless the principal meets the requirement; returns the user. */
export function authorize(principal: Principal, requirement: 'user' | 'admin'): UserPrincipal {
  if (principal.kind !== 'user') {
    throw new PermissionDeniedError('agent tokens may only open an agent stream; use a user token');
  }
  if (requirement === 'admin' && !isAdmin(principal)) {
    throw new PermissionDeniedError(`this needs membership of the "${ADMIN_GROUP}" group`);
  }
  return principal;
}

/** Throws PermissionDeniedError unless the principal is an agent; returns it. */
export function authorizeAgent(principal: Principal): AgentPrincipal {
  if (principal.kind !== 'agent') throw new PermissionDeniedError('this call needs an agent token');
  return principal;
}

/** Whether the user may create tasks on the target. */
export function mayUseTarget(user: UserPrincipal, target: TargetRecord): boolean {
  return isAdmin(user) || target.groups.length === 0 || target.groups.some((g) => user.groups.includes(g));
}

/** Throws PermissionDeniedError unless the user may create tasks on the target. */
export function requireUseTarget(user: UserPrincipal, target: TargetRecord): void {
  if (!mayUseTarget(user, target)) {
    throw new PermissionDeniedError(
      `target "${target.name}" is for members of ${target.groups.join(', ')}; you are in ${user.groups.join(', ') || 'no group'}`,
    );
  }
}

/** Whether the user is the task's creator. */
export function isCreator(user: UserPrincipal, task: TaskRecord): boolean {
  return task.createdBy === `user:${user.email}`;
}

/**
 * Whether the user may act on this review entry (ignoring who created the
 * task): a member of its group, or for review "anyone", anyone who may use
 * the task's target (not every user of the server: the reviewer sees the
 * script and its output). `target` is null when it was deleted.
 */
function mayActFor(user: UserPrincipal, review: ReviewRecord, target: TargetRecord | null): boolean {
  if (review.group === '') return target !== null && mayUseTarget(user, target);
  return user.groups.includes(review.group);
}

/**
 * Whether the user may see the task, its output and its history. `named`
 * is the target of the task's target name now: null when it was deleted,
 * and not the task's own when a new one was made under that name (either
 * way only admins, the creator and reviewer groups see it).
 */
export function maySeeTask(user: UserPrincipal, task: TaskRecord, named: TargetRecord | null): boolean {
  const target = targetOfTask(task, named);
  return (
    isAdmin(user) ||
    isCreator(user, task) ||
    (target !== null && mayUseTarget(user, target)) ||
    task.review.some((r) => mayActFor(user, r, target))
  );
}

/** The review entries still pending that the user may decide (never on their own task). */
export function pendingReviewsFor(user: UserPrincipal, task: TaskRecord, named: TargetRecord | null): ReviewRecord[] {
  if (isCreator(user, task)) return [];
  const target = targetOfTask(task, named);
  return task.review.filter((r) => r.status === 'pending' && mayActFor(user, r, target));
}

/** Throws PermissionDeniedError when the user created the task (creators never review). */
export function requireNotCreator(user: UserPrincipal, task: TaskRecord): void {
  if (isCreator(user, task)) throw new PermissionDeniedError('you created this task; someone else must review it');
}

/** Throws PermissionDeniedError unless the user may review the task for `group`. */
export function requireReview(user: UserPrincipal, task: TaskRecord, group: string, named: TargetRecord | null): void {
  requireNotCreator(user, task);
  const target = targetOfTask(task, named);
  const review = task.review.find((r) => r.group === group);
  if (review?.group === '' && !mayActFor(user, review, target)) {
    throw new PermissionDeniedError(`review "anyone" of target "${task.target}" is for users who may use it; you may not`);
  }
  if (review && !mayActFor(user, review, target)) {
    throw new PermissionDeniedError(`only members of "${group}" may review for it; you are in ${user.groups.join(', ') || 'no group'}`);
  }
}

/** Throws PermissionDeniedError unless the user may kill the task (its creator or an admin). */
export function requireKill(user: UserPrincipal, task: TaskRecord): void {
  if (!isCreator(user, task) && !isAdmin(user)) {
    throw new PermissionDeniedError(`only the task's creator (${task.createdBy}) or an admin may kill it`);
  }
}

/** Throws PermissionDeniedError unless the user may run (RunTask) the task. */
export function requireRun(user: UserPrincipal, task: TaskRecord): void {
  if (!isCreator(user, task) && !isAdmin(user)) {
    throw new PermissionDeniedError(`only the task's creator (${task.createdBy}) or an admin may run it`);
  }
}

/**
 * The audience keys ({@link taskAudience}) of the tasks a user who is not
 * an admin may see: their own, those on the targets given (the ones they
 * may use now), and those their groups review. Matches {@link maySeeTask}:
 * a review "anyone" entry is covered by the target's key.
 */
export function audienceFor(user: UserPrincipal, usableTargets: readonly Pick<TargetRecord, 'name' | 'uid'>[]): string[] {
  return [`by:user:${user.email}`, ...usableTargets.map((t) => targetKey(t.name, t.uid)), ...user.groups.map((g) => `group:${g}`)];
}

/**
 * The task's own target, or null: `target` is the target of that name now,
 * which is another one when the task's was deleted and a new one made under
 * its name (its users are not the task's readers).
 */
export function targetOfTask(task: Pick<TaskRecord, 'targetUid'>, target: TargetRecord | null): TargetRecord | null {
  return target !== null && (target.uid ?? '') === (task.targetUid ?? '') ? target : null;
}
