/**
 * Tasks: the live list (WatchTasks) with its filters in the URL query
 * (status, target, mine, review), so a filtered list is a shareable link.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Target } from '../../../gen/es/taskgate/v1/target_pb.js';
import { targetService } from '../api.js';
import { ErrorLine, preview, StatusBadge, TableWrap, Time } from '../components.js';
import { actorName, STATUSES, statusFromName, statusName } from '../format.js';
import { navigate, usePlace, withQuery } from '../router.js';
import { useWatchTasks } from '../watch-tasks.js';

/** The targets for a filter select; empty when they cannot be read. */
export function useTargets(): Target[] {
  const [targets, setTargets] = useState<Target[]>([]);
  useEffect(() => {
    targetService
      .listTargets({ pageSize: 500 })
      .then((response) => setTargets(response.targets))
      .catch(() => setTargets([]));
  }, []);
  return targets;
}

/** The task list page. */
export function TasksPage() {
  const { query } = usePlace();
  const status = statusFromName(query.get('status'));
  const target = query.get('target') ?? '';
  const mine = query.get('mine') === '1';
  const review = query.get('review') === '1';
  const list = useWatchTasks({
    statuses: status === undefined ? [] : [status],
    target,
    createdByMe: mine,
    awaitingMyReview: review,
    pageSize: 100,
  });
  const targets = useTargets();

  const set = (change: Record<string, string | boolean>): void => {
    const next = { status: status === undefined ? '' : statusName(status), target, mine, review, ...change };
    navigate(withQuery('/tasks', next), true);
  };

  return (
    <main>
      <h1>Tasks</h1>
      <form class="filters" aria-label="Filters" onSubmit={(event) => event.preventDefault()}>
        <label>
          Status
          <select value={status === undefined ? '' : statusName(status)} onChange={(event) => set({ status: event.currentTarget.value })}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={statusName(s)}>
                {statusName(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Target
          <select value={target} onChange={(event) => set({ target: event.currentTarget.value })}>
            <option value="">any</option>
            {targets.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
            {target && !targets.some((t) => t.name === target) ? <option value={target}>{target}</option> : null}
          </select>
        </label>
        <label class="check">
          <input type="checkbox" checked={mine} onChange={(event) => set({ mine: event.currentTarget.checked })} />
          Mine
        </label>
        <label class="check">
          <input type="checkbox" checked={review} onChange={(event) => set({ review: event.currentTarget.checked })} />
          Waiting for my review
        </label>
      </form>
      {list.error ? <ErrorLine error={`Reconnecting: ${list.error}`} /> : null}
      {!list.synced ? <p class="loading">Loading…</p> : null}
      {list.synced && list.tasks.length === 0 ? <p>No tasks match.</p> : null}
      {list.tasks.length > 0 ? (
        <TableWrap label="Tasks">
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Status</th>
              <th scope="col">Target</th>
              <th scope="col">Type</th>
              <th scope="col">Created by</th>
              <th scope="col">Created</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody data-testid="task-rows">
            {list.tasks.map((task) => (
              <tr key={task.id} data-task-id={task.id}>
                <td>
                  <a href={`/tasks/${encodeURIComponent(task.id)}`} class="mono">
                    {task.id}
                  </a>
                </td>
                <td>
                  <StatusBadge status={task.status} />
                </td>
                <td>{task.target}</td>
                <td>{task.type}</td>
                <td>{actorName(task.createdBy)}</td>
                <td>
                  <Time time={task.created} />
                </td>
                <td class="message-cell">{preview(task.message)}</td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      ) : null}
    </main>
  );
}
