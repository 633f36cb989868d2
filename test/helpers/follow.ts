/** Waiting on a task's output and status through the public API (no sleeps). */
import type { GetTaskLogsResponse, Task, WatchTaskResponse } from '../../gen/taskgate/v1/task.js';
import type { Api } from '../../cli/client.js';

/** Follows the task's output until it contains `text`. */
export async function untilOutput(api: Api, taskId: string, text: string): Promise<void> {
  const call = api.tasks.getTaskLogs({ id: taskId, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, api.metadata);
  let seen = '';
  try {
    for await (const { event } of call as AsyncIterable<GetTaskLogsResponse>) {
      if (event?.$case === 'chunk') seen += Buffer.from(event.value.data).toString();
      if (seen.includes(text)) return;
    }
  } finally {
    call.cancel();
  }
  throw new Error(`task ${taskId} ended without printing ${JSON.stringify(text)}`);
}

/** Watches a task until `done` holds for it; returns it. */
export async function watchUntil(api: Api, id: string, done: (t: Task) => boolean): Promise<Task> {
  const call = api.tasks.watchTask({ id }, api.metadata);
  try {
    for await (const { task } of call as AsyncIterable<WatchTaskResponse>) if (task && done(task)) return task;
  } finally {
    call.cancel();
  }
  throw new Error(`task ${id} ended without the awaited state`);
}
