/**
 * One task: its fields, script, message, reviews, timeline and output,
 * live (WatchTask for the task, GetTaskLogs for the output). Every text a
 * user wrote (script, message, comments, reasons) is rendered as text.
 */
import { Code } from '@connectrpc/connect';
import { useEffect, useState } from 'preact/hooks';
import { TaskStatus, type Task } from '../../../gen/es/taskgate/v1/task_pb.js';
import type { User } from '../../../gen/es/taskgate/v1/user_pb.js';
import { errorMessage, hasCode, taskService } from '../api.js';
import { CodeEditor } from '../code-editor.js';
import { ErrorLine, StatusBadge, TableWrap, Time } from '../components.js';
import { keepFollowing } from '../follow.js';
import { actorName, formatBytes, isTerminal, reviewStatusName, statusName } from '../format.js';
import { TaskTerminal } from '../terminal.js';
import { OutputTables } from './output-tables.js';
import { myPendingGroups, ReviewForm, RunKill } from './task-actions.js';

/**
 * The later of two snapshots of one task. Its events only grow, and so does
 * its output; an action's answer (Run, Kill, a review) can arrive after
 * the stream already showed what followed and ended with the task, and must
 * not put the page back to a status the task has left.
 */
function later(shown: Task | undefined, incoming: Task): Task {
  if (!shown || shown.id !== incoming.id) return incoming;
  if (incoming.events.length !== shown.events.length) return incoming.events.length > shown.events.length ? incoming : shown;
  return incoming.outputBytes >= shown.outputBytes ? incoming : shown;
}

/** The task, followed until it ends. */
function useWatchTask(id: string): { task: Task | undefined; error: string; missing: boolean; setTask: (task: Task) => void } {
  const [task, setShown] = useState<Task | undefined>(undefined);
  const setTask = (incoming: Task): void => setShown((shown) => later(shown, incoming));
  const [error, setError] = useState('');
  const [missing, setMissing] = useState(false);
  useEffect(() => {
    const controller = new AbortController();
    setShown(undefined);
    setMissing(false);
    void keepFollowing(
      controller.signal,
      async (attempt) => {
        for await (const message of taskService.watchTask({ id }, { signal: controller.signal })) {
          attempt.healthy();
          if (message.task) {
            setTask(message.task);
            setError('');
          }
        }
        return true; // Closed: the task reached a terminal status.
      },
      (e) => {
        if (hasCode(e, Code.NotFound) || hasCode(e, Code.PermissionDenied)) setMissing(true);
        setError(errorMessage(e));
      },
    );
    return () => controller.abort();
  }, [id]);
  return { task, error, missing, setTask };
}

/** Whether the task has (or will have) output to follow. */
function hasOutput(task: Task): boolean {
  if (task.status === TaskStatus.READY || task.status === TaskStatus.RUNNING) return true;
  return task.started !== undefined || task.outputBytes > 0n;
}

function Fields({ task }: { task: Task }) {
  const findings = Object.entries(task.findings);
  return (
    <dl class="fields">
      <dt>Status</dt>
      <dd>
        <StatusBadge status={task.status} />
        {task.killRequested && !isTerminal(task.status) ? ' (kill requested)' : ''}
      </dd>
      <dt>Target</dt>
      <dd>{task.target}</dd>
      <dt>Type</dt>
      <dd>{task.type}</dd>
      <dt>Created by</dt>
      <dd>{actorName(task.createdBy)}</dd>
      <dt>Created</dt>
      <dd>
        <Time time={task.created} />
      </dd>
      {task.started ? (
        <>
          <dt>Started</dt>
          <dd>
            <Time time={task.started} />
          </dd>
        </>
      ) : null}
      {task.finished ? (
        <>
          <dt>Finished</dt>
          <dd>
            <Time time={task.finished} />
          </dd>
        </>
      ) : null}
      {task.agent ? (
        <>
          <dt>Agent</dt>
          <dd>{task.agent}</dd>
        </>
      ) : null}
      {task.exitCode !== undefined ? (
        <>
          <dt>Exit code</dt>
          <dd data-testid="exit-code">{task.exitCode}</dd>
        </>
      ) : null}
      {task.signal ? (
        <>
          <dt>Signal</dt>
          <dd>{task.signal}</dd>
        </>
      ) : null}
      {task.failureReason ? (
        <>
          <dt>Reason</dt>
          <dd class="pre">{task.failureReason}</dd>
        </>
      ) : null}
      {task.timeoutSeconds ? (
        <>
          <dt>Time limit</dt>
          <dd>{task.timeoutSeconds} s</dd>
        </>
      ) : null}
      <dt>Output</dt>
      <dd>
        {task.finished ? formatBytes(Number(task.outputBytes)) : 'counted when it ends'}
        {task.outputDroppedBytes > 0n ? ` (${formatBytes(Number(task.outputDroppedBytes))} dropped past the output limit)` : ''}
      </dd>
      {findings.length > 0 ? (
        <>
          <dt>Redacted</dt>
          <dd>{findings.map(([type, count]) => `${type} × ${count}`).join(', ')}</dd>
        </>
      ) : null}
    </dl>
  );
}

function Reviews({ task }: { task: Task }) {
  if (task.review.length === 0) return <p>No review needed.</p>;
  return (
    <TableWrap label="Reviews">
      <thead>
        <tr>
          <th scope="col">Group</th>
          <th scope="col">Decision</th>
          <th scope="col">By</th>
          <th scope="col">When</th>
          <th scope="col">Comment</th>
        </tr>
      </thead>
      <tbody>
        {task.review.map((review, i) => (
          <tr key={`${review.group}-${i}`}>
            <td>{review.group || 'anyone'}</td>
            <td>{reviewStatusName(review.status)}</td>
            <td>{actorName(review.reviewer)}</td>
            <td>
              <Time time={review.time} />
            </td>
            <td class="pre" data-testid="review-comment">
              {review.comment}
            </td>
          </tr>
        ))}
      </tbody>
    </TableWrap>
  );
}

function Timeline({ task }: { task: Task }) {
  return (
    <ol class="timeline" data-testid="timeline">
      {task.events.map((event, i) => (
        <li key={i}>
          <Time time={event.time} /> <strong>{event.action || `task.${statusName(event.to)}`}</strong> by {actorName(event.actor)}
          {event.from !== event.to ? ` (${event.from ? `${statusName(event.from)} ` : ''}→ ${statusName(event.to)})` : ''}
          {event.reason ? <span class="pre reason">: {event.reason}</span> : null}
        </li>
      ))}
    </ol>
  );
}

/** The task page. */
export function TaskPage({ id, user }: { id: string; user: User }) {
  const { task, error, missing, setTask } = useWatchTask(id);
  const [finished, setFinished] = useState<Task | undefined>(undefined);
  if (missing) {
    return (
      <main>
        <h1>Task {id}</h1>
        <ErrorLine error={error} />
      </main>
    );
  }
  if (!task) {
    return (
      <main>
        <h1>Task {id}</h1>
        {error ? <ErrorLine error={`Reconnecting: ${error}`} /> : <p class="loading">Loading…</p>}
      </main>
    );
  }
  const groups = myPendingGroups(task, user);
  const done = finished ?? (isTerminal(task.status) ? task : undefined);
  return (
    <main class="task-page">
      <h1>
        Task <span class="mono">{task.id}</span>
      </h1>
      {error ? <ErrorLine error={`Reconnecting: ${error}`} /> : null}
      <RunKill task={task} user={user} onTask={setTask} />
      <div class="task-grid">
        <section aria-labelledby="h-details">
          <h2 id="h-details">Details</h2>
          <Fields task={task} />
        </section>
        <section aria-labelledby="h-message">
          <h2 id="h-message">Message</h2>
          {task.message ? (
            <p class="pre message" data-testid="task-message">
              {task.message}
            </p>
          ) : (
            <p class="hint">No message.</p>
          )}
        </section>
      </div>
      <section aria-labelledby="h-script">
        <h2 id="h-script">Script</h2>
        <CodeEditor type={task.type} value={task.script} label={`Script (${task.type})`} />
      </section>
      <section aria-labelledby="h-reviews">
        <h2 id="h-reviews">Reviews</h2>
        <Reviews task={task} />
        {groups.length > 0 ? <ReviewForm task={task} groups={groups} onTask={setTask} /> : null}
      </section>
      <section aria-labelledby="h-output">
        <h2 id="h-output">Output</h2>
        {hasOutput(task) ? (
          <TaskTerminal taskId={task.id} outputBytes={Number(task.outputBytes)} onFinished={setFinished} />
        ) : (
          <p class="hint">No output: the task has not run.</p>
        )}
        {done && (task.type === 'postgres' || task.type === 'mysql') ? <OutputTables task={done} /> : null}
      </section>
      <section aria-labelledby="h-timeline">
        <h2 id="h-timeline">Timeline</h2>
        <Timeline task={task} />
      </section>
    </main>
  );
}
