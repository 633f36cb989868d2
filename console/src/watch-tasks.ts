/**
 * A live task list: WatchTasks' first page, then each change. After a
 * reconnect the list is replaced by what the new stream sends once it is
 * synced, so a task that left the filter while the stream was down does not
 * linger.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Task, TaskStatus } from '../../gen/es/taskgate/v1/task_pb.js';
import { errorMessage, taskService } from './api.js';
import { keepFollowing } from './follow.js';

/** The filters of WatchTasksRequest. */
export interface TaskFilter {
  statuses?: TaskStatus[];
  target?: string;
  pageSize?: number;
  awaitingMyReview?: boolean;
  createdByMe?: boolean;
}

/** What a followed list shows. */
export interface TaskList {
  /** Newest first. */
  tasks: Task[];
  /** The first page has arrived. */
  synced: boolean;
  /** The last failure, while reconnecting; "" when healthy. */
  error: string;
}

function newestFirst(tasks: Iterable<Task>): Task[] {
  // Ids are ULIDs: they sort by creation time.
  return [...tasks].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** Follows the tasks matching `filter`; `enabled` false follows nothing. */
export function useWatchTasks(filter: TaskFilter, enabled = true): TaskList {
  const [list, setList] = useState<TaskList>({ tasks: [], synced: false, error: '' });
  const key = JSON.stringify(filter);
  useEffect(() => {
    if (!enabled) return undefined;
    const controller = new AbortController();
    setList({ tasks: [], synced: false, error: '' });
    void keepFollowing(
      controller.signal,
      async (attempt) => {
        const tasks = new Map<string, Task>();
        let synced = false;
        for await (const message of taskService.watchTasks(filter, { signal: controller.signal })) {
          attempt.healthy();
          const event = message.event;
          if (event.case === 'task') tasks.set(event.value.id, event.value);
          else if (event.case === 'removed') tasks.delete(event.value);
          else if (event.case === 'synced') synced = true;
          if (synced) setList({ tasks: newestFirst(tasks.values()), synced: true, error: '' });
        }
        return false; // It never ends by itself: open it again.
      },
      (error) => setList((old) => ({ ...old, error: errorMessage(error) })),
    );
    return () => controller.abort();
  }, [key, enabled]);
  return list;
}
