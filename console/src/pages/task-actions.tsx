/**
 * What the caller may do to a task: review it (for one of their pending
 * groups), run it once approved, kill it before or while it runs. The
 * server decides; the buttons only show what it would allow, and a refusal
 * is shown as its one line.
 */
import { useState } from 'preact/hooks';
import { ReviewDecision, ReviewStatus, TaskStatus, type Task } from '../../../gen/es/taskgate/v1/task_pb.js';
import type { User } from '../../../gen/es/taskgate/v1/user_pb.js';
import { errorMessage, requestId, taskService } from '../api.js';
import { ErrorLine } from '../components.js';
import { actorOf, isAdmin } from '../session.js';

/** The pending review groups `user` may decide for on `task` ("" stands for anyone-mode). */
export function myPendingGroups(task: Task, user: User): string[] {
  if (task.status !== TaskStatus.PENDING_REVIEW || task.createdBy === actorOf(user)) return [];
  return task.review
    .filter((review) => review.status === ReviewStatus.PENDING && (review.group === '' || user.groups.includes(review.group)))
    .map((review) => review.group);
}

const KILLABLE = new Set([TaskStatus.CREATED, TaskStatus.PENDING_REVIEW, TaskStatus.APPROVED, TaskStatus.READY, TaskStatus.RUNNING]);

interface ReviewProps {
  task: Task;
  groups: string[];
  onTask: (task: Task) => void;
  /** Distinguishes several forms on one page (the Reviews inbox). */
  idPrefix?: string;
}

/** Approve or reject with a comment, with a group picker when several groups are the caller's. */
export function ReviewForm({ task, groups, onTask, idPrefix = 'review' }: ReviewProps) {
  const [group, setGroup] = useState(groups[0] ?? '');
  const [comment, setComment] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const chosen = groups.includes(group) ? group : (groups[0] ?? '');

  const decide = async (decision: ReviewDecision): Promise<void> => {
    setBusy(true);
    setError('');
    try {
      const response = await taskService.reviewTask({ id: task.id, decision, group: chosen, comment, requestId: requestId() });
      if (response.task) onTask(response.task);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="review-form" aria-label={`Review task ${task.id}`} onSubmit={(event) => event.preventDefault()}>
      {groups.length > 1 ? (
        <label>
          Review for group
          <select value={chosen} onChange={(event) => setGroup(event.currentTarget.value)}>
            {groups.map((g) => (
              <option key={g} value={g}>
                {g}
              </option>
            ))}
          </select>
        </label>
      ) : null}
      <label for={`${idPrefix}-comment-${task.id}`}>Comment{groups.length === 1 && groups[0] ? ` (for ${groups[0]})` : ''}</label>
      <textarea id={`${idPrefix}-comment-${task.id}`} rows={2} value={comment} onInput={(event) => setComment(event.currentTarget.value)} />
      <div class="buttons">
        <button type="button" class="approve" disabled={busy} onClick={() => void decide(ReviewDecision.APPROVE)}>
          Approve
        </button>
        <button type="button" class="reject" disabled={busy} onClick={() => void decide(ReviewDecision.REJECT)}>
          Reject
        </button>
      </div>
      <ErrorLine error={error} />
    </form>
  );
}

/** Run (approved; creator or admin) and Kill (not finished; creator or admin). */
export function RunKill({ task, user, onTask }: { task: Task; user: User; onTask: (task: Task) => void }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [confirmKill, setConfirmKill] = useState(false);
  const [reason, setReason] = useState('');
  const mayAct = task.createdBy === actorOf(user) || isAdmin(user);
  const canRun = mayAct && task.status === TaskStatus.APPROVED;
  const canKill = mayAct && KILLABLE.has(task.status) && !task.killRequested;
  if (!canRun && !canKill && !error) return null;

  const act = async (call: () => Promise<{ task?: Task }>): Promise<void> => {
    setBusy(true);
    setError('');
    try {
      const response = await call();
      if (response.task) onTask(response.task);
      setConfirmKill(false);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="actions" role="group" aria-label="Task actions">
      {canRun ? (
        <button type="button" class="run" disabled={busy} onClick={() => void act(() => taskService.runTask({ id: task.id, requestId: requestId() }))}>
          Run
        </button>
      ) : null}
      {canKill && !confirmKill ? (
        <button type="button" class="kill" disabled={busy} onClick={() => setConfirmKill(true)}>
          Kill
        </button>
      ) : null}
      {canKill && confirmKill ? (
        <form
          class="kill-form"
          aria-label="Kill task"
          onSubmit={(event) => {
            event.preventDefault();
            void act(() => taskService.killTask({ id: task.id, reason: reason || 'killed from the console', requestId: requestId() }));
          }}
        >
          <label>
            Reason
            <input type="text" value={reason} onInput={(event) => setReason(event.currentTarget.value)} />
          </label>
          <button type="submit" class="kill" disabled={busy}>
            Confirm kill
          </button>
          <button type="button" onClick={() => setConfirmKill(false)}>
            Cancel
          </button>
        </form>
      ) : null}
      <ErrorLine error={error} />
    </div>
  );
}
