/**
 * Reviews: the tasks waiting for a review the caller may give, live
 * (WatchTasks awaitingMyReview), newest first, each with its script and a
 * one-click Approve or Reject with a comment. A decided task leaves the
 * list when the server says so (`removed`).
 */
import type { User } from '../../../gen/es/taskgate/v1/user_pb.js';
import { CodeEditor } from '../code-editor.js';
import { ErrorLine, Time } from '../components.js';
import { actorName } from '../format.js';
import { useWatchTasks } from '../watch-tasks.js';
import { myPendingGroups, ReviewForm } from './task-actions.js';

/** At most the first 30 lines of a script; the task page has all of it. */
function scriptPreview(script: string): string {
  const lines = script.split('\n');
  return lines.length > 30 ? `${lines.slice(0, 30).join('\n')}\n… (${lines.length - 30} more lines on the task page)` : script;
}

/** The review inbox. */
export function ReviewsPage({ user }: { user: User }) {
  const list = useWatchTasks({ awaitingMyReview: true, pageSize: 500 });
  return (
    <main>
      <h1>Reviews</h1>
      {list.error ? <ErrorLine error={`Reconnecting: ${list.error}`} /> : null}
      {!list.synced ? <p class="loading">Loading…</p> : null}
      {list.synced && list.tasks.length === 0 ? <p data-testid="no-reviews">Nothing is waiting for your review.</p> : null}
      <ul class="inbox">
        {list.tasks.map((task) => {
          const groups = myPendingGroups(task, user);
          return (
            <li key={task.id} class="card" data-task-id={task.id}>
              <h2>
                <a href={`/tasks/${encodeURIComponent(task.id)}`} class="mono">
                  {task.id}
                </a>{' '}
                on {task.target}
              </h2>
              <p class="meta">
                {task.type} · by {actorName(task.createdBy)} · <Time time={task.created} />
              </p>
              {task.message ? <p class="pre message">{task.message}</p> : null}
              <CodeEditor type={task.type} value={scriptPreview(task.script)} label={`Script of task ${task.id}`} />
              {groups.length > 0 ? <ReviewForm task={task} groups={groups} onTask={() => undefined} idPrefix="inbox" /> : null}
            </li>
          );
        })}
      </ul>
    </main>
  );
}
